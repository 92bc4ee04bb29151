"""The one record shape every stage reads and writes (described in docs/records.md).

Stages add fields, never rename them. Hot paths (dedup over 600K records) work on the
plain dicts read from JSONL; `Record` is the typed model used where validation matters, and
`check_record` is its plain-Python twin for stage boundaries: the same verdict, a reason code,
and no pydantic on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal

import xxhash
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Role = Literal["system", "user", "assistant"]
Kind = Literal["sft", "preference"]

DEFAULT_BUCKETS = (
    "instruction",
    "cot_math",
    "code",
    "analytical",
    "tool_use",
    "creative",
    "red_team",
    "factual",
)


# Strict: JSON types map one to one onto field types (no "3" -> 3, no 3.0 -> 3, no True -> 1),
# which is what stages assume when they read the plain dicts, and what `check_record` mirrors.
class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    role: Role
    content: str


class Source(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    dataset: str
    revision: str = ""
    row: int | str | None = None


class Record(BaseModel):
    """A training example: `sft` (a conversation ending with the assistant) or `preference`
    (a prompt ending with the user, plus a chosen and a rejected assistant answer).

    Beyond the field types: messages are non-empty, a preference has both answers, every
    top-level score is a number or an object (stages write `scores[name] = {...}`), and no
    number anywhere is NaN or Infinity (Python's json reads them; they poison means and sorts).
    Role order is `check_roles`'s business, not the model's.
    """

    model_config = ConfigDict(extra="allow", strict=True)
    id: str
    kind: Kind
    messages: list[Message] = Field(min_length=1)
    chosen: Message | None = None
    rejected: Message | None = None
    bucket: str | None = None
    source: Source
    lineage: list[dict[str, Any]] = Field(default_factory=list)
    scores: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, Any] = Field(default_factory=dict)

    @field_validator("scores")
    @classmethod
    def _scores_are_numbers_or_objects(cls, v: dict[str, Any]) -> dict[str, Any]:
        for k, x in v.items():
            if not _is_score(x):
                raise ValueError(f"scores.{k}: expected a number or an object")
        return v

    @model_validator(mode="after")
    def _answers_and_finite_numbers(self) -> "Record":
        if self.kind == "preference" and (self.chosen is None or self.rejected is None):
            raise ValueError("a preference needs chosen and rejected")
        for name, v in (("lineage", self.lineage), ("scores", self.scores), ("labels", self.labels),
                        ("source", self.source.model_extra), ("", self.model_extra)):
            if _non_finite(v) is not None:
                raise ValueError(f"{name}: NaN or Infinity")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a record is invalid: a stable snake_case `reason` (quarantine key) and a short `detail`."""

    reason: str
    detail: str = ""


#: Every reason `check_record` returns; `detail` names the field ("messages[1].role", "scores.judge.overall").
REASONS = (
    "not_an_object",      # the record is not a JSON object
    "missing_field",      # a required field is absent (or null: a preference's chosen/rejected)
    "wrong_type",         # a field has the wrong JSON type ("messages: expected a list")
    "bad_kind",           # kind is a string other than sft / preference
    "empty_messages",     # messages is []
    "bad_role",           # a role is a string other than system / user / assistant
    "unexpected_field",   # a message has a key other than role and content
    "non_finite_number",  # NaN or +-Infinity anywhere (scores, labels, lineage, source, other fields)
)

_ROLES = ("system", "user", "assistant")
_KNOWN = frozenset(("id", "kind", "messages", "chosen", "rejected", "bucket", "source", "lineage",
                    "scores", "labels"))
_SOURCE_KNOWN = frozenset(("dataset", "revision", "row"))
_SCALARS = frozenset((str, int, bool, type(None)))
_OPT_STR = frozenset((str, type(None)))
_ROW = frozenset((int, str, type(None)))
_SCORE = frozenset((int, float, dict))
_EMPTY: dict = {}  # defaults for absent fields; never mutated
_EMPTY_LIST: list = []


def check_record(rec: Any) -> Invalid | None:
    """None when `rec` is a valid record, else the first reason it is not.

    The verdict equals `Record.model_validate(rec)`'s (pinned by tests/core/test_record_check.py),
    in plain Python so that every stage can afford it at its boundary. Measured (timeit, best of 10)
    on the 3,746 ingest outputs of the shipped samples: 7.5 µs a record, ~130K records/s on one
    core of the 2-core dev VM, where `sum(range(100))` takes 1.3 µs (about half a current desktop
    core's speed, so ~250K/s there); `Record.model_validate` takes ~30 µs (~33K/s).
    Exact JSON types (what readers yield) take one fast pass; anything else gets the full checks,
    which also name the reason. Role order is `check_roles`'s job, not this one's.
    """
    if type(rec) is dict and _plainly_valid(rec):
        return None
    return _diagnose(rec)


def _plainly_valid(rec: dict) -> bool:
    """True only for a valid record built of exact JSON types (what readers yield); False sends the
    record to `_diagnose`, which decides (and names the reason) with the full checks."""
    kind, msgs, src = rec.get("kind"), rec.get("messages"), rec.get("source")
    if not (type(rec.get("id")) is str and (kind == "sft" or kind == "preference") and type(msgs) is list
            and msgs and type(src) is dict and type(src.get("dataset")) is str and _KNOWN.issuperset(rec)):
        return False
    for m in msgs:
        if not (type(m) is dict and len(m) == 2 and type(m.get("content")) is str and m.get("role") in _ROLES):
            return False
    for m in (rec.get("chosen"), rec.get("rejected")):
        if m is None:
            if kind == "preference":
                return False
        elif not (type(m) is dict and len(m) == 2 and type(m.get("content")) is str and m.get("role") in _ROLES):
            return False
    if (type(rec.get("bucket")) not in _OPT_STR or type(src.get("revision", "")) is not str
            or type(src.get("row")) not in _ROW or not _plain(src)):
        return False
    lineage, scores, labels = rec.get("lineage", _EMPTY_LIST), rec.get("scores", _EMPTY), rec.get("labels", _EMPTY)
    if type(lineage) is not list:
        return False
    for step in lineage:
        if type(step) is not dict or not _plain(step):
            return False
    if type(scores) is not dict or type(labels) is not dict or (labels and not _plain(labels)):
        return False
    for k, x in scores.items():  # each a number or an object
        if type(k) is not str or type(x) not in _SCORE or _non_finite(x) is not None:
            return False
    return True


def _plain(d: dict) -> bool:
    """String keys, and no NaN/Infinity in the values (scalars in one test)."""
    for k, x in d.items():
        if type(k) is not str or (type(x) not in _SCALARS and _non_finite(x) is not None):
            return False
    return True


def _diagnose(rec: Any) -> Invalid | None:
    """The full checks, in field order (isinstance, so dict/str subclasses pass as the model lets them)."""
    if not isinstance(rec, dict):
        return Invalid("not_an_object", type(rec).__name__)
    for k in ("id", "kind", "messages", "source"):
        if k not in rec:
            return Invalid("missing_field", k)
    if not isinstance(rec["id"], str):
        return Invalid("wrong_type", "id: expected a string")
    kind = rec["kind"]
    if not isinstance(kind, str):
        return Invalid("wrong_type", "kind: expected a string")
    if kind != "sft" and kind != "preference":
        return Invalid("bad_kind", f"kind: {kind[:40]!r}")

    msgs = rec["messages"]
    if not isinstance(msgs, list):
        return Invalid("wrong_type", "messages: expected a list")
    if not msgs:
        return Invalid("empty_messages", "messages: []")
    for i, m in enumerate(msgs):
        bad = _message(m, f"messages[{i}]")
        if bad is not None:
            return bad
    for k in ("chosen", "rejected"):
        v = rec.get(k)
        if v is None:
            if kind == "preference":
                return Invalid("missing_field", f"{k}: a preference needs it")
        else:
            bad = _message(v, k)
            if bad is not None:
                return bad
    bucket = rec.get("bucket")
    if bucket is not None and not isinstance(bucket, str):
        return Invalid("wrong_type", "bucket: expected a string or null")

    src = rec["source"]
    if not isinstance(src, dict):
        return Invalid("wrong_type", "source: expected an object")
    if "dataset" not in src:
        return Invalid("missing_field", "source.dataset")
    if not isinstance(src["dataset"], str):
        return Invalid("wrong_type", "source.dataset: expected a string")
    if not isinstance(src.get("revision", ""), str):
        return Invalid("wrong_type", "source.revision: expected a string")
    row = src.get("row")
    if not (row is None or isinstance(row, str) or (isinstance(row, int) and not isinstance(row, bool))):
        return Invalid("wrong_type", "source.row: expected an integer, a string or null")
    for k, x in src.items():
        if not isinstance(k, str):
            return Invalid("wrong_type", "source: keys must be strings")
        if k not in _SOURCE_KNOWN and isinstance(x, (float, dict, list)):
            p = _non_finite(x)
            if p is not None:
                return Invalid("non_finite_number", f"source.{k}{p}")

    if "lineage" in rec:
        lineage = rec["lineage"]
        if not isinstance(lineage, list):
            return Invalid("wrong_type", "lineage: expected a list")
        for i, step in enumerate(lineage):
            if not isinstance(step, dict):
                return Invalid("wrong_type", f"lineage[{i}]: expected an object")
            for k, x in step.items():
                if not isinstance(k, str):
                    return Invalid("wrong_type", f"lineage[{i}]: keys must be strings")
                if isinstance(x, (float, dict, list)):
                    p = _non_finite(x)
                    if p is not None:
                        return Invalid("non_finite_number", f"lineage[{i}].{k}{p}")
    for k in ("scores", "labels"):
        bad = _object(rec, k)
        if bad is not None:
            return bad
    for k, x in rec.items():
        if k not in _KNOWN:
            if not isinstance(k, str):
                return Invalid("wrong_type", "record keys must be strings")
            p = _non_finite(x)
            if p is not None:
                return Invalid("non_finite_number", f"{k}{p}")
    return None


def _message(m: Any, where: str) -> Invalid | None:
    if not isinstance(m, dict):
        return Invalid("wrong_type", f"{where}: expected an object")
    for k in ("role", "content"):
        if k not in m:
            return Invalid("missing_field", f"{where}.{k}")
    role = m["role"]
    if not isinstance(role, str):
        return Invalid("wrong_type", f"{where}.role: expected a string")
    if role not in _ROLES:
        return Invalid("bad_role", f"{where}.role: {role[:40]!r}")
    if not isinstance(m["content"], str):
        return Invalid("wrong_type", f"{where}.content: expected a string")
    for k in m:
        if k != "role" and k != "content":
            return Invalid("unexpected_field", f"{where}.{str(k)[:40]}")
    return None


def _object(rec: dict, key: str) -> Invalid | None:
    """Optional `key` must be an object with string keys and finite numbers."""
    v = rec.get(key)
    if v is None and key not in rec:
        return None
    if not isinstance(v, dict):
        return Invalid("wrong_type", f"{key}: expected an object")
    for k, x in v.items():
        if not isinstance(k, str):
            return Invalid("wrong_type", f"{key}: keys must be strings")
        if key == "scores" and not _is_score(x):
            return Invalid("wrong_type", f"scores.{k}: expected a number or an object")
        if isinstance(x, (float, dict, list)):
            p = _non_finite(x)
            if p is not None:
                return Invalid("non_finite_number", f"{key}.{k}{p}")
    return None


def _is_score(x: Any) -> bool:
    return isinstance(x, dict) or (isinstance(x, (int, float)) and not isinstance(x, bool))


def _non_finite(v: Any) -> str | None:
    """Path (relative to v: "", ".a", "[2].b") of the first NaN/Infinity float in v, else None."""
    if isinstance(v, float):
        return None if v - v == 0.0 else ""
    if isinstance(v, dict):
        items: Iterable = v.items()
    elif isinstance(v, list):
        items = enumerate(v)
    else:
        return None
    for k, x in items:
        if isinstance(x, float):
            if x - x == 0.0:  # False for nan and +-inf only
                continue
            p = ""
        elif isinstance(x, (dict, list)):
            p = _non_finite(x)
            if p is None:
                continue
        else:
            continue
        return (f"[{k}]" if isinstance(v, list) else f".{k}") + p
    return None


def stable_id(*parts: Any) -> str:
    """A short stable id: xxh3-128 of the parts joined by a separator that cannot occur in them."""
    h = xxhash.xxh3_128()
    for p in parts:
        h.update(str(p).encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()[:24]


def check_roles(kind: str, messages: list[dict], chosen: dict | None = None,
                rejected: dict | None = None) -> str | None:
    """Return a reason code if the role sequence is invalid, else None.

    Rule: an optional system message first, then strictly alternating user/assistant starting
    with user; sft ends with assistant; a preference prompt ends with user and has assistant
    chosen/rejected answers.
    """
    if not messages:
        return "empty_conversation"
    roles = [m.get("role") for m in messages]
    if any(r not in ("system", "user", "assistant") for r in roles):
        return "unknown_role"
    body = roles[1:] if roles[0] == "system" else roles
    if "system" in body:
        return "system_not_first"
    if not body:
        return "no_user_turn"
    for i, r in enumerate(body):
        if r != ("user" if i % 2 == 0 else "assistant"):
            return "role_order"
    if kind == "sft":
        if body[-1] != "assistant":
            return "sft_must_end_with_assistant"
    elif kind == "preference":
        if body[-1] != "user":
            return "prompt_must_end_with_user"
        for name, ans in (("chosen", chosen), ("rejected", rejected)):
            if not ans or not isinstance(ans, dict):
                return f"missing_{name}"
            if ans.get("role") != "assistant":
                return f"{name}_not_assistant"
    else:
        return "unknown_kind"
    return None


def iter_texts(rec: dict) -> Iterable[str]:
    """Every message content of a record (prompt, answers), in order."""
    for m in rec.get("messages") or []:
        yield m.get("content") or ""
    for k in ("chosen", "rejected"):
        if rec.get(k):
            yield rec[k].get("content") or ""


def prompt_messages(rec: dict) -> list[dict]:
    """The prompt part: for sft, every message before the last assistant turn."""
    msgs = rec.get("messages") or []
    if rec.get("kind") == "sft" and msgs and msgs[-1].get("role") == "assistant":
        return msgs[:-1]
    return list(msgs)


def response_text(rec: dict) -> str:
    """The answer part: the last assistant turn (sft) or the chosen answer (preference)."""
    if rec.get("kind") == "preference":
        return (rec.get("chosen") or {}).get("content") or ""
    msgs = rec.get("messages") or []
    return msgs[-1].get("content", "") if msgs and msgs[-1].get("role") == "assistant" else ""


def system_prompt(rec: dict) -> str:
    msgs = rec.get("messages") or []
    return msgs[0]["content"] if msgs and msgs[0].get("role") == "system" else ""


def add_lineage(rec: dict, stage: str, **fields: Any) -> dict:
    """Append a lineage step (stage, model, the exact prompt sent, params, cost)."""
    rec.setdefault("lineage", []).append({"stage": stage, **fields})
    return rec
