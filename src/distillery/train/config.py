"""Params of the train_eval stage (LoRA SFT/DPO + base-vs-tuned eval) and of remote storage.

Defaults are the shipped CPU configuration: SmolLM2-135M-Instruct, a common LoRA setting
(r=16, alpha=32, all attention and MLP projections), a fixed small compute budget that
finishes in a few minutes on 2 cores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ..core.params import Section, TeacherName

SEED_000_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class LoraParams(Section):
    """peft LoraConfig values (rank 16, alpha 32, dropout 0.05 on every attention and MLP projection)."""

    r: int = Field(16, gt=0, description="LoRA rank")
    alpha: int = Field(32, gt=0, description="LoRA alpha (scale = alpha / r)")
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: list(SEED_000_TARGETS), min_length=1)


class EvalSetParams(Section):
    """Eval sets and their sizes. Loss sets have floors (always scored); the greedy-generation sets
    (GSM8K exact match, the judged win rate) get what `time_budget_s` leaves, by a measured cost model,
    so the sizes are the same on every machine for the same params (docs/train_eval.md, "Eval sizes")."""

    gsm8k_path: Path = Path("data/raw/eval/gsm8k_test.jsonl.gz")
    mt_bench_questions_path: Path = Path("data/raw/eval/mt_bench_questions.jsonl")
    mt_bench_answers_path: Path = Path("data/raw/eval/mt_bench_reference_answers.jsonl")
    truthfulqa_path: Path = Path("data/raw/eval/truthfulqa.csv")
    wizardlm_path: Path | None = Field(Path("data/raw/eval/wizardlm_testset.jsonl"),
                                       description="WizardLM test set instructions for the judged win rate, "
                                                   "alternating with MT-Bench (null = MT-Bench only)")
    heldout_limit: int = Field(200, ge=0, description="held-out SFT records scored for loss (floor; topped up from "
                                                      "`topup_from` when the eval split holds fewer; 0 = the split)")
    pairs_limit: int = Field(100, ge=0, description="held-out preference pairs for preference accuracy (floor, "
                                                    "topped up like heldout_limit; 0 = the split)")
    gsm8k_ref_limit: int = Field(200, ge=0, description="GSM8K test solutions scored for reference-answer loss")
    mt_bench_limit: int = Field(0, ge=0, description="MT-Bench reference-answer turns scored (0 = all)")
    truthfulqa_limit: int = Field(200, ge=0, description="TruthfulQA best answers scored for loss (0 = skip)")
    topup_from: list[Path] = Field(default_factory=list, description="ingested record files whose records the "
                                   "production mix does not hold top up the held-out sets")
    gsm8k_em_limit: int = Field(200, ge=0, description="most GSM8K questions answered greedily (budget decides)")
    time_budget_s: float = Field(600, ge=0, description="CPU seconds for evaluating base + tuned; loss floors are "
                                                        "always scored, generation gets the rest")
    loss_item_cpu_s: float = Field(1.0, gt=0, description="cost model: CPU s to score one loss item")
    gen_item_cpu_s: float = Field(4.0, gt=0, description="cost model: CPU s for one greedy answer")
    judge_item_cpu_s: float = Field(16.0, gt=0, description="cost model: CPU s for one judge call")
    max_new_tokens: int = Field(96, gt=0, description="greedy generation length for GSM8K / win rate")
    batch_size: int = Field(8, gt=0, description="eval batch size (loss and generation)")
    n_boot: int = Field(2000, ge=100, description="bootstrap replicates per interval")


class JudgeParams(Section):
    """Pairwise win rate of tuned vs base, judged by a teacher in both orders (off when teacher is empty)."""

    teacher: TeacherName = Field("", description="teacher name from llm.teachers; empty = no win rate")
    prompts: int = Field(80, ge=0, description="most prompts answered by both models and judged: MT-Bench first "
                                               "turns and WizardLM test set instructions, alternating "
                                               "(eval.time_budget_s decides how many)")


class TrainEvalParams(Section):
    """LoRA SFT (+ DPO when preference rows exist) on the production mix, then base-vs-tuned eval."""

    base_model: str = Field("smollm2", description="'smollm2' (offline alias), a local HF model dir or a hub id")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="compute of training and eval: bfloat16 = bf16 mixed precision (autocast; on CUDA the "
                            "weights too); auto = bfloat16 where the device runs it natively, else float32")
    threads: int = Field(0, ge=0, description="CPU threads for torch; 0 = torch's default (one per core). "
                                              "Set 1 on a machine shared with other jobs")
    seed: int | None = Field(None, description="training seed; null = project.seed")
    steps: int = Field(30, gt=0, description="SFT optimizer steps (fixed compute)")
    batch_size: int = Field(4, gt=0)
    grad_accum: int = Field(1, gt=0)
    learning_rate: float = Field(2e-4, gt=0)
    warmup_steps: int = Field(2, ge=0)
    max_length: int = Field(256, gt=0, description="cap on max_length; the stats stage's recommended_max_length "
                                                   "is used when smaller")
    stats_path: Path = Path("metrics/stats.json")
    dpo: Literal["auto", "required", "off"] = Field(
        "auto", description="auto: DPO when the export has rows, else skip with a note; required: an empty "
                            "export is an error; off: never")
    dpo_steps: int = Field(8, gt=0)
    dpo_beta: float = Field(0.1, gt=0)
    dpo_learning_rate: float = Field(5e-5, gt=0)
    log_every: int = Field(1, gt=0, description="training-loss logging interval (steps) for the loss curve")
    lora: LoraParams = Field(default_factory=LoraParams)
    eval: EvalSetParams = Field(default_factory=EvalSetParams)
    judge: JudgeParams = Field(default_factory=JudgeParams)
    loss_csv: Path = Path("metrics/plots/train_loss.csv")

    @field_validator("dpo", mode="before")
    @classmethod
    def _yaml_off(cls, v):
        """YAML reads a bare `off` (e.g. `-S train_eval.dpo=off`) as false."""
        return "off" if v is False else v


class RemoteParams(Section):
    """Where shared artifacts beyond DVC outs (the LLM response cache) travel.

    The DVC remotes themselves live in .dvc/config (`dvc remote add/modify`); see docs/remote.md.
    """

    name: str = Field("", description="DVC remote used by cache_sync; empty = the default remote (core.remote)")
    llm_cache_key: str = Field("distillery/llm_cache/responses.sqlite",
                               description="object path of the LLM response cache below the remote url")
    sync_llm_cache: bool = Field(True, description="make push/pull also sync the LLM response cache")


class JudgeEvalParams(Section):
    """judge_eval: how often the configured judge agrees with human preference labels (docs/train_eval.md)."""

    judges: list[TeacherName] = Field(default_factory=lambda: ["local-smollm2"], min_length=1,
                                      description="teachers judged, each with the score.judge settings")
    set_paths: dict[str, Path] = Field(
        default_factory=lambda: {"hh": Path("data/ingest/hh_harmless/records.jsonl"),
                                 "oasst": Path("data/ingest/oasst/records.jsonl")},
        description="set name -> ingested preference records (chosen = the human's pick)")
    sets: list[str] = Field(default_factory=lambda: ["hh", "oasst"], min_length=1,
                            description="labelled sets, names of `set_paths`")
    sample: int = Field(8, ge=1, description="pairs judged per set (a seeded sample; both orders each)")
    min_agreement: float = Field(0.6, ge=0, le=1, description="a judge below this agreement on a set is flagged")
    n_boot: int = Field(2000, ge=100, description="bootstrap replicates for the agreement interval")
    max_reject_rate: float | None = Field(None, ge=0, le=1, description="null = project.max_reject_rate")

    @field_validator("sets")
    @classmethod
    def _known(cls, v: list[str], info):
        paths = info.data.get("set_paths") or {}
        unknown = [s for s in v if paths and s not in paths]
        if unknown:
            raise ValueError(f"unknown set {unknown[0]!r} (known: {', '.join(paths)}); add it to set_paths")
        return v
