"""params.yaml `export:` section: which trainer files to write and what the dataset card says.

By default a bundle holds the two files the pipeline itself reads and most users load
(`sft/messages.jsonl`, `dpo/trl.jsonl`); every other format is opt-in, and any format can be written
gzipped (`.jsonl.gz`) or as Parquet by naming it with that extension (see docs/export.md).
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field

from ..core.params import Section

SftFormat = Literal["messages", "sharegpt", "alpaca", "chatml_text"]
DpoFormat = Literal["trl", "messages_pair", "prompt_pairs", "alpaca_pref"]
FileType = Literal["jsonl", "jsonl.gz", "parquet"]
FILE_TYPES: tuple[str, ...] = get_args(FileType)


def split_format(entry: str) -> tuple[str, str]:
    """`messages` -> (messages, jsonl); `sharegpt.parquet` -> (sharegpt, parquet); `trl.jsonl.gz` -> (trl, jsonl.gz)."""
    for ext in sorted(FILE_TYPES, key=len, reverse=True):
        if entry.endswith("." + ext):
            return entry[: -len(ext) - 1], ext
    return entry, "jsonl"


def _checker(names: tuple[str, ...]):
    def check(entry: str) -> str:
        fmt, _ = split_format(entry)
        if fmt not in names:
            raise ValueError(f"unknown format {entry!r}: use one of {', '.join(names)}, optionally with "
                             f".jsonl.gz or .parquet (e.g. {names[0]}.parquet)")
        return entry
    return check


def _unique(entries: list[str]) -> list[str]:
    seen: dict[tuple[str, str], str] = {}
    for e in entries:
        key = split_format(e)
        if key in seen:
            raise ValueError(f"{e!r} repeats {seen[key]!r} (the same file)")
        seen[key] = e
    return entries


SftEntry = Annotated[str, AfterValidator(_checker(get_args(SftFormat)))]
DpoEntry = Annotated[str, AfterValidator(_checker(get_args(DpoFormat)))]


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

    sft_formats: Annotated[list[SftEntry], AfterValidator(_unique)] = Field(
        default_factory=lambda: ["messages"],
        description="SFT files written under sft/: messages (default), sharegpt, alpaca, chatml_text; "
                    "`name.jsonl.gz` or `name.parquet` for a gzipped or Parquet file (several allowed)")
    dpo_formats: Annotated[list[DpoEntry], AfterValidator(_unique)] = Field(
        default_factory=lambda: ["trl"],
        description="DPO files written under dpo/: trl (default), messages_pair, prompt_pairs, alpaca_pref; "
                    "`name.jsonl.gz` or `name.parquet` as for sft_formats")
    eval: bool = Field(True, description="also export the held-out split (eval.jsonl) into eval/")
    phases: bool = Field(True, description="also export each curriculum phase (phases/*.jsonl) into phases/<name>/")
    keep_id: bool = Field(True, description="keep the record id as an `id` string column on every row")
    system_prompt: str = Field("", description="system prompt to inject (empty: leave records as they are)")
    system_prompt_mode: Literal["if_missing", "override"] = Field(
        "if_missing", description="inject only where a record has none, or replace every record's")
    dataset_prefix: str = Field("distillery", pattern=r"^[A-Za-z0-9_]+$",
                                description="prefix of the LLaMA-Factory dataset names in dataset_info.json")
    workers: int = Field(0, ge=0, description="processes converting blocks of records (0 = every core); inputs "
                                               "under 2 MB are exported in the stage's own process")
    max_reject_rate: float | None = Field(
        None, ge=0, le=1, description="stop when more is rejected (default project.max_reject_rate)")
    card: CardParams = Field(default_factory=CardParams)
