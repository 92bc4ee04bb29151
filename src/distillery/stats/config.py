"""Params of the token statistics stage (`stats`). Pydantic only: cheap to import."""

from __future__ import annotations

from pydantic import Field, field_validator

from ..core.params import Section


class StatsParams(Section):
    """Token lengths under the target model's chat template, and the max_length they recommend."""

    tokenizer: str = Field("smollm2", description="'smollm2' (offline SmolLM2-135M-Instruct) or a local HF "
                                                  "tokenizer/model folder")
    chat_template: str | None = Field(None, description="Jinja chat template (inline text or a path to a "
                                                        ".jinja/.j2 file) replacing the tokenizer's own")
    sft_files: list[str] = Field(default_factory=lambda: ["sft/messages.jsonl"],
                                 description="SFT files below an --input folder ({messages: [...]} rows)")
    dpo_files: list[str] = Field(default_factory=lambda: ["dpo/trl.jsonl"],
                                 description="DPO files below an --input folder ({prompt, chosen, rejected} rows)")
    candidate_max_lengths: list[int] = Field(default_factory=lambda: [512, 1024, 2048, 4096],
                                             description="report the share of sequences longer than each")
    percentile: float = Field(99.0, gt=0, le=100, description="recommended max_length covers this percentile")
    round_to: int = Field(64, gt=0, description="recommended max_length is rounded up to a multiple of this")
    batch_size: int = Field(256, gt=0, description="conversations tokenised per batch (fast tokenizer)")
    histogram_bin: int = Field(64, gt=0, description="width in tokens of a histogram bin (dvc plots)")
    unknown_bucket: str = Field("unknown", description="bucket name for rows whose bucket cannot be found")
    workers: int = Field(0, ge=0, description="processes measuring batches (0 = every core); inputs under "
                                              "2 MB are measured in one process")
    cache_path: str | None = Field("data/stats_cache/lengths.sqlite",
                                   description="SQLite file remembering measured rows across runs (outside the "
                                               "DVC outs, so a rerun tokenises only new rows); null = no cache")
    fast_count: bool = Field(True, description="count tokens of byte-level BPE tokenizers with a Python copy of "
                                               "their pre-tokenizer (same counts, several times faster); false = "
                                               "the Rust tokenizer only")

    @field_validator("candidate_max_lengths")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(x <= 0 for x in v):
            raise ValueError("lengths must be > 0")
        return sorted(set(v))
