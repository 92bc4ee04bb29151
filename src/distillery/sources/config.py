"""params.yaml `ingest:` section: one spec per source plus shared normalisation defaults.

A new source is added here, in params, with no code: pick an adapter, and map its field and
speaker names onto ours (`fields`, `roles`). Unknown keys and adapters stop with one line.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..core.params import BucketName, ExistingPath, KeyProblem, Section

Adapter = Literal["auto", "alpaca", "openai_messages", "sharegpt", "oasst_tree", "hh", "prompt_chosen_rejected",
                  "gsm8k", "self_instruct", "mapping", "record"]
Format = Literal["auto", "json", "jsonl", "jsonl.gz", "csv", "parquet"]
Role = Literal["system", "user", "assistant"]


class FieldMap(Section):
    """Which input field holds each part of a record. Unset keys use the adapter's defaults."""

    prompt: str | None = Field(None, description="user turn (instruction / question / prompt)")
    input: str | None = Field(None, description="extra context appended to the prompt (Alpaca `input`)")
    response: str | None = Field(None, description="assistant answer of an SFT record")
    system: str | None = Field(None, description="optional system prompt")
    messages: str | None = Field(None, description="list of turns (OpenAI messages / ShareGPT conversations)")
    role: str | None = Field(None, description="speaker key inside each turn (`role`, `from`, `speaker`)")
    content: str | None = Field(None, description="text key inside each turn (`content`, `value`, `text`)")
    chosen: str | None = Field(None, description="preferred answer (string, message or transcript)")
    rejected: str | None = Field(None, description="dispreferred answer")
    id: str | None = Field(None, description="upstream id kept in source.upstream_id")


class NormalizeParams(Section):
    """Turn-level normalisation and rejection rules shared by every source."""

    min_turn_chars: int = Field(1, ge=0, description="turns shorter than this (after normalising) are rejected")
    min_alnum_chars: int = Field(1, ge=0, description="turns with fewer letters/digits are near-empty")
    placeholder_turns: list[str] = Field(
        default_factory=lambda: ["n/a", "<no output>", "<nooutput>", "no output", "<noinput>"],
        description="whole-turn values (case-insensitive) that mean 'no content'")
    empty_input_values: list[str] = Field(
        default_factory=lambda: ["<noinput>", "<no input>", "no input", "noinput", "n/a", "none"],
        description="Alpaca `input` values treated as empty")
    max_record_chars: int = Field(200_000, gt=0, description="records with more text are quarantined")

    @model_validator(mode="after")
    def _turn_fits_record(self) -> "NormalizeParams":
        """A turn is part of its record: a turn minimum above the record maximum rejects everything."""
        for lo in ("min_turn_chars", "min_alnum_chars"):
            if getattr(self, lo) > self.max_record_chars:
                raise KeyProblem(lo, f"{getattr(self, lo)} is above max_record_chars ({self.max_record_chars})")
        return self


class IngestDefaults(NormalizeParams):
    max_reject_rate: float | None = Field(
        None, ge=0, le=1, description="stop the source when more is rejected (default project.max_reject_rate)")


class SourceSpec(Section):
    """One input: a file or directory, its adapter and where its records go."""

    path: ExistingPath
    format: Format = "auto"
    adapter: Adapter = Field("auto", description="row layout; `auto` tells it from each row's fields")
    fields: FieldMap = Field(default_factory=FieldMap)
    roles: dict[str, Role] = Field(default_factory=dict, description="source speaker -> role")
    dataset: str | None = Field(None, description="source.dataset (default: the source name)")
    revision: str = Field("", description="upstream commit / version recorded in source.revision")
    sha256: str | None = Field(None, description="expected sha256 of the file; a mismatch stops the stage")
    bucket: BucketName | None = None
    labels: dict[str, Any] = Field(default_factory=dict)
    license: str = ""
    limit: int | None = Field(None, gt=0, description="read only the first N input rows")
    pairs: Literal["adjacent", "best_worst", "all", "none"] = Field(
        "adjacent", description="oasst_tree: which ranked sibling replies become preference pairs")
    paths: bool = Field(True, description="oasst_tree: emit root-to-leaf SFT conversations")
    skip_synthetic: bool = Field(False, description="oasst_tree: drop messages flagged synthetic")
    max_reject_rate: float | None = Field(None, ge=0, le=1)

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{64}", v.lower()):
            raise ValueError("must be 64 hex digits")
        return v.lower() if v else v

    @model_validator(mode="after")
    def _sha_needs_file(self) -> "SourceSpec":
        if self.sha256 and self.path.is_dir():
            raise ValueError("sha256 needs `path` to be a single file, not a directory")
        return self


class IngestParams(Section):
    sources: dict[str, SourceSpec] = Field(default_factory=dict)
    defaults: IngestDefaults = Field(default_factory=IngestDefaults)

    @field_validator("sources")
    @classmethod
    def _names(cls, v: dict[str, SourceSpec]) -> dict[str, SourceSpec]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                raise ValueError(f"source name {name!r} may use only letters, digits, '_', '-', '.'")
        return v
