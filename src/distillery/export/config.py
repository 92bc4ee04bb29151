"""params.yaml `export:` section: which trainer files to write and what the dataset card says.

Every file format is on by default so one pass writes the whole bundle (see docs/export.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..core.params import Section

SftFormat = Literal["messages", "sharegpt", "alpaca", "chatml_text"]
DpoFormat = Literal["trl", "messages_pair", "prompt_pairs", "alpaca_pref"]


class CardParams(Section):
    """Free text of the dataset card (data/export/README.md); the numbers come from metrics."""

    title: str = "distillery export"
    description: str = Field(
        "SFT and DPO training data built by the distillery pipeline from public instruction and preference "
        "datasets, optionally distilled and judged by teacher LLMs, deduplicated, decontaminated and mixed "
        "into weighted buckets.", description="opening paragraph")
    license: str = Field("", description="license of the export itself (default: the source licenses apply)")
    intended_use: str = Field(
        "Supervised fine-tuning (SFT) and preference optimisation (DPO/ORPO/SimPO) of small and medium open "
        "chat models; research on data mixes.", description="intended-use paragraph")
    limitations: list[str] = Field(default_factory=lambda: [
        "Answers distilled from teacher models inherit their errors and biases; judge scores are model "
        "opinions, not ground truth.",
        "Source datasets carry their own licenses and terms; check them before commercial use.",
        "Decontamination covers only the eval sets configured in params (dedup); other benchmarks may overlap.",
        "Red-team records teach refusals; keep their safety labels when re-mixing.",
    ], description="bullet list of known limitations")


class ExportParams(Section):
    """Export stage: trainer-ready files from the mixed records."""

    sft_formats: list[SftFormat] = Field(
        default_factory=lambda: ["messages", "sharegpt", "alpaca", "chatml_text"],
        description="SFT files written under sft/")
    dpo_formats: list[DpoFormat] = Field(
        default_factory=lambda: ["trl", "messages_pair", "prompt_pairs", "alpaca_pref"],
        description="DPO files written under dpo/")
    eval: bool = Field(True, description="also export the held-out split (eval.jsonl) into eval/")
    phases: bool = Field(True, description="also export each curriculum phase (phases/*.jsonl) into phases/<name>/")
    keep_id: bool = Field(True, description="keep the record id as an `id` string column on every row")
    system_prompt: str = Field("", description="system prompt to inject (empty: leave records as they are)")
    system_prompt_mode: Literal["if_missing", "override"] = Field(
        "if_missing", description="inject only where a record has none, or replace every record's")
    dataset_prefix: str = Field("distillery", pattern=r"^[A-Za-z0-9_]+$",
                                description="prefix of the LLaMA-Factory dataset names in dataset_info.json")
    max_reject_rate: float | None = Field(
        None, ge=0, le=1, description="stop when more is rejected (default project.max_reject_rate)")
    card: CardParams = Field(default_factory=CardParams)
