"""The one record shape every stage reads and writes (see DESIGN.md, "Record").

Stages add fields, never rename them. Hot paths (dedup over 600K records) work on the
plain dicts read from JSONL; `Record` is the typed model used where validation matters.
"""

from __future__ import annotations

from typing import Any, Iterable, Literal

import xxhash
from pydantic import BaseModel, ConfigDict, Field

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


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    content: str


class Source(BaseModel):
    model_config = ConfigDict(extra="allow")
    dataset: str
    revision: str = ""
    row: int | str | None = None


class Record(BaseModel):
    """A training example: `sft` (a conversation ending with the assistant) or `preference`
    (a prompt ending with the user, plus a chosen and a rejected assistant answer)."""

    model_config = ConfigDict(extra="allow")
    id: str
    kind: Kind
    messages: list[Message]
    chosen: Message | None = None
    rejected: Message | None = None
    bucket: str | None = None
    source: Source
    lineage: list[dict[str, Any]] = Field(default_factory=list)
    scores: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, Any] = Field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


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
