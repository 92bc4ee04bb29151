"""params.yaml `ingest:` section: one spec per source plus shared normalisation defaults.

A new source is added here, in params, with no code: pick an adapter, and map its field and
speaker names onto ours (`fields`, `roles`). Unknown keys and adapters stop with one line.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from ..core.params import BucketName, ExistingPath, KeyProblem, Section

Adapter = Literal["auto", "alpaca", "openai_messages", "sharegpt", "oasst_tree", "hh", "prompt_chosen_rejected",
                  "gsm8k", "self_instruct", "mapping", "record"]
Format = Literal["auto", "json", "jsonl", "jsonl.gz", "csv", "parquet"]
Role = Literal["system", "user", "assistant"]
Side = Literal["first", "second"]
Label = str | int | float | bool


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


class PreferenceRule(Section):
    """Which of two answers wins, read from the row's own judgment (mapping adapter).

    Judged sets store the answers in a fixed order and say which is better in another field; taking
    one field as `chosen` inverts every pair the judge decided the other way. Ties are quarantined
    (`preference_tie`); the judgment is kept in `labels.preference`.
    """

    first: str = Field(description="field of the first answer (text, a message or a list of messages)")
    second: str = Field(description="field of the second answer")
    rule: Literal["threshold", "label", "higher", "lower"] = Field(
        description="threshold: a number vs `threshold`; label: a value in first_wins/second_wins/ties; "
                    "higher/lower: the answer whose `score_fields` value is higher (scores) or lower (ranks)")
    field: str | None = Field(None, description="threshold/label: the field holding the judgment")
    threshold: float | None = Field(None, description="threshold: the value that separates the two sides")
    above: Side = Field("second", description="threshold: the side that wins above it (the other wins below)")
    first_wins: list[Label] = Field(default_factory=list, description="label: values meaning the first wins")
    second_wins: list[Label] = Field(default_factory=list, description="label: values meaning the second wins")
    ties: list[Label] = Field(default_factory=list, description="label: values meaning a tie (dropped)")
    score_fields: list[str] = Field(default_factory=list, description="higher/lower: [first's, second's] field")
    margin: float = Field(0, ge=0, description="threshold/higher/lower: a difference not above this is a tie")
    _outcomes: dict[str, str] = PrivateAttr(default_factory=dict)   # label_key -> first | second | tie

    @model_validator(mode="after")
    def _keys_fit_rule(self) -> "PreferenceRule":
        """Each rule needs its keys, and a key of another rule is a mistake, not something to ignore."""
        needs = {"threshold": ("field", "threshold"), "label": ("field", "first_wins", "second_wins"),
                 "higher": ("score_fields",), "lower": ("score_fields",)}[self.rule]
        for key in ("field", "threshold", "first_wins", "second_wins", "ties", "score_fields"):
            given = getattr(self, key) not in (None, [])
            if key in needs and not given:
                raise KeyProblem(key, f"required by rule {self.rule!r}")
            if given and key not in needs and not (key == "ties" and self.rule == "label"):
                raise KeyProblem(key, f"not used by rule {self.rule!r}")
        if self.rule in ("higher", "lower") and len(self.score_fields) != 2:
            raise KeyProblem("score_fields", "give two fields: [first answer's, second answer's]")
        seen: dict[str, str] = {}
        for key in ("first_wins", "second_wins", "ties"):
            for v in getattr(self, key):
                k = label_key(v)
                if k in seen and seen[k] != key:
                    raise KeyProblem(key, f"{v!r} is also in {seen[k]}")
                seen[k] = key
        names = {"first_wins": "first", "second_wins": "second", "ties": "tie"}
        self._outcomes = {k: names[v] for k, v in seen.items()}
        return self

    def outcome(self, label: Any) -> str | None:
        """`label` rule: 'first', 'second' or 'tie' for a judgment value; None for a value not configured."""
        return self._outcomes.get(label_key(label))


def label_key(v: Any) -> str:
    """A judgment value compared loosely: 'A' == 'a', 1 == '1' == 1.0 (CSV holds text, JSON numbers)."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return v.strip().lower()
    if isinstance(v, (int, float)) and v == v and abs(v) != float("inf"):
        return str(int(v)) if float(v).is_integer() else repr(float(v))
    return str(v).strip().lower()


class DialogueShape(Section):
    """How a turn list becomes SFT examples: who speaks as whom, and where each example ends.

    Human-human dialogues stop wherever the people stopped, often on the user's turn, and their
    speakers are ids rather than roles; an SFT record must end with the assistant.
    """

    alternate: bool = Field(False, description="roles by speaker order, not `roles`: the first speaker is "
                                               "`first_role`, the other speaker the other role (plain-text "
                                               "turns alternate by position)")
    first_role: Literal["user", "assistant"] = Field("user", description="alternate: role of the first speaker")
    merge_consecutive: bool = Field(False, description="join consecutive turns of one role (blank line between)")
    trim: bool = Field(False, description="end at the last assistant turn; drop turns before the first user turn")
    split: bool = Field(False, description="one example per assistant turn, each ending on that turn (implies trim)")


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
    workers: int = Field(0, ge=0, description="processes adapting and checking rows (0 = all cores; an input "
                                              "under 2 MB is read in one); the output is the same for any number")


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
    preference: PreferenceRule | None = Field(None, description="mapping: chosen/rejected from a judgment field")
    dialogue: DialogueShape | None = Field(None, description="turn lists: role alternation, trimming, splitting")
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

    @model_validator(mode="after")
    def _shaping_fits_adapter(self) -> "SourceSpec":
        """`preference` and `dialogue` shape what one adapter family reads; elsewhere they would be ignored."""
        if self.preference is not None:
            if self.adapter != "mapping":
                raise KeyProblem("preference", f"needs adapter: mapping (got {self.adapter!r})")
            if self.fields.chosen or self.fields.rejected:
                raise KeyProblem("preference", "replaces fields.chosen/rejected: name the answers in "
                                               "preference.first/second instead")
        if self.dialogue is not None:
            if self.adapter not in ("mapping", "sharegpt", "openai_messages", "auto"):
                raise KeyProblem("dialogue", f"needs a turn-list adapter (mapping, sharegpt, openai_messages, "
                                             f"auto), got {self.adapter!r}")
            if self.adapter == "mapping" and not self.fields.messages:
                raise KeyProblem("dialogue", "needs fields.messages (the turn list) with adapter: mapping")
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
