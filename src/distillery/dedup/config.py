"""params.yaml `dedup:` section: exact + MinHash-LSH near-dup, decontamination, semantic dedup.

Every key has a default so `scripts/dedup.py --input F --output D` runs on any record file.
`threshold` means what users expect: every pair whose Jaccard (on word `shingle_size`-gram
sets) is >= threshold ends in one cluster; the banding is picked for recall at that threshold and
each candidate pair is verified before it may cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ..core.params import KeyProblem, Section

Key = Literal["prompt", "response", "conversation", "prompt_chosen"]


class EvalSet(Section):
    """One evaluation set to decontaminate against."""

    name: str = Field(..., description="short name used in the contamination report")
    path: Path = Field(..., description="file: .jsonl, .jsonl.gz, .json or .csv")
    format: Literal["auto", "jsonl", "csv"] = Field("auto", description="auto: by file suffix")
    fields: list[str] = Field(..., min_length=1,
                              description="fields whose text is the benchmark item (lists are joined)")
    id_field: str | None = Field(None, description="item id field (default: the row number)")


def _default_eval_sets() -> list[EvalSet]:
    return [
        EvalSet(name="gsm8k_test", path=Path("data/raw/eval/gsm8k_test.jsonl.gz"), fields=["question"]),
        EvalSet(name="humaneval", path=Path("data/raw/eval/humaneval.jsonl.gz"), fields=["prompt"],
                id_field="task_id"),
        EvalSet(name="truthfulqa", path=Path("data/raw/eval/truthfulqa.csv"), fields=["Question"]),
        EvalSet(name="mt_bench", path=Path("data/raw/eval/mt_bench_questions.jsonl"), fields=["turns"],
                id_field="question_id"),
        EvalSet(name="wizardlm", path=Path("data/raw/eval/wizardlm_testset.jsonl"), fields=["Instruction"],
                id_field="idx"),
    ]


class DecontamParams(Section):
    """Remove training records that contain evaluation items."""

    enabled: bool = True
    ngram: int = Field(13, ge=4, description="a shared word n-gram of this length with an eval item is a hit")
    min_ngram: int = Field(8, ge=2, description="eval items shorter than `ngram` tokens are matched on their "
                                                "whole token sequence when they have at least this many tokens")
    near_ngram: int = Field(3, ge=1, description="word n-gram size of the near-duplicate (containment) test")
    near_threshold: float = Field(0.8, gt=0, le=1,
                                  description="near-duplicate hit: share of an eval item's word `near_ngram`-grams "
                                              "found in the record (containment) at or above this")
    sets: list[EvalSet] = Field(default_factory=_default_eval_sets)

    @model_validator(mode="after")
    def _short_items(self) -> "DecontamParams":
        """min_ngram is the fallback for items shorter than ngram, so it cannot exceed it."""
        if self.min_ngram > self.ngram:
            raise KeyProblem("min_ngram", f"{self.min_ngram} is above ngram ({self.ngram})")
        return self


class SemanticParams(Section):
    """Paraphrase dedup with sentence embeddings (off by default: ~1-2 ms per record on CPU)."""

    enabled: bool = False
    model: str = Field("minilm", description="'minilm' (offline all-MiniLM-L6-v2) or a local model path")
    threshold: float = Field(0.95, gt=0, le=1, description="cosine similarity at or above this is a duplicate")
    batch_size: int = Field(128, gt=0)
    max_records: int = Field(200_000, gt=0,
                             description="refuse (one line) above this many survivors: the pair search is "
                                         "O(n^2)")


class DedupParams(Section):
    key: Key = Field("conversation", description="what counts as the same: prompt, response, conversation, "
                                                 "or DPO prompt+chosen")
    cross_source: bool = Field(True, description="false: only records of the same source.dataset are compared")
    exact: bool = Field(True, description="exact dedup on the normalised key text (xxh3-128), first step")
    near: bool = Field(True, description="MinHash-LSH near-dup")
    shingle_size: int = Field(5, ge=1, description="word n-gram size (CJK/Thai: characters are words)")
    num_perm: int = Field(128, ge=8, le=1024)
    threshold: float = Field(0.8, gt=0, le=1, description="Jaccard at or above which two records are duplicates")
    bands: int | None = Field(None, ge=1, description="explicit LSH bands (with rows); default: chosen from "
                                                      "threshold and lsh_recall")
    rows: int | None = Field(None, ge=1)
    lsh_recall: float = Field(0.95, gt=0, lt=1,
                              description="auto banding: P(candidate | J = threshold) at least this")
    verify: Literal["exact", "signature"] = Field(
        "exact", description="exact: Jaccard of the shingle-hash sets; signature: MinHash estimate")
    max_bucket_all_pairs: int = Field(
        64, ge=2, description="LSH buckets up to this size compare all pairs; larger ones star+chain")
    source_priority: list[str] = Field(
        default_factory=list, description="source.dataset names, most preferred first (keep-policy tie-break)")
    score_field: str = Field("judge.overall", description="dotted path under `scores` of the quality score")
    workers: int = Field(0, ge=0, description="processes; 0 = all cores")
    batch_size: int = Field(2048, gt=0, description="input lines (records) per worker task")
    histogram_bins: int = Field(20, ge=2, le=200)
    max_reject_rate: float | None = Field(
        None, ge=0, le=1, description="bad input lines + empty key texts allowed (default project.max_reject_rate)")
    tmp_dir: Path | None = Field(None, description="spill folder for signatures/shingles (default: beside output)")
    decontaminate: DecontamParams = Field(default_factory=DecontamParams)
    semantic: SemanticParams = Field(default_factory=SemanticParams)

    @model_validator(mode="after")
    def _banding(self) -> "DedupParams":
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both bands and rows, or neither")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands*rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self


class PromptDedupParams(Section):
    """params.yaml `prompt_dedup:`: the prompts the teachers answer, deduplicated and decontaminated first.

    Same library as the dedup stage, keyed on the prompt; the eval sets and n-gram tests are
    dedup.decontaminate's, so a prompt dropped here is one the final dedup would have dropped anyway,
    only after a teacher and a judge were paid for it."""

    exact: bool = Field(True, description="drop prompts whose normalised text repeats an earlier one")
    near: bool = Field(True, description="MinHash-LSH near-duplicate prompts")
    threshold: float = Field(0.8, gt=0, le=1, description="Jaccard at or above which two prompts are duplicates")
    shingle_size: int = Field(5, ge=1, description="word n-gram size of the near-dup test")
    num_perm: int = Field(128, ge=8, le=1024)
    cross_source: bool = Field(True, description="false: only prompts of the same source.dataset are compared")
    decontaminate: bool = Field(True, description="drop prompts matching dedup.decontaminate.sets")
    workers: int = Field(0, ge=0, description="processes; 0 = all cores")
    max_reject_rate: float | None = Field(
        None, ge=0, le=1, description="bad input lines + records with no prompt (default project.max_reject_rate)")
