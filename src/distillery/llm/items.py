"""A request resolved against its teacher (`Item`) and the arithmetic on it: endpoint, worst-case
prompt size, cost. Separate from the engine so estimates and the batch path share it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import TeacherParams
from .types import ChatRequest


@dataclass
class Item:
    """A request resolved against its teacher: what will be sent and under which cache key."""

    index: int
    req: ChatRequest
    teacher: TeacherParams
    mode: str
    payload: Any                 # messages list (chat) or prompt text (completion)
    gen: dict
    schema_js: dict | None
    key: str = ""
    req_key: str = ""            # the key before any repair round: the request's identity
    rounds: int = 0              # repair rounds done
    usage: dict = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    cost: float = 0.0
    latency: float = 0.0
    attempts: int = 0
    all_cached: bool = True


def gen_key(teacher: str, gen: dict | None) -> tuple:
    """Memo key of a request's gen params: their content when hashable, else the dict's identity
    (kept alive by the memo, so the id stays unique during the run)."""
    if not gen:
        return (teacher,)
    try:
        k = (teacher, tuple(sorted((name, type(v), v) for name, v in gen.items())))  # 1, 1.0, True differ
        hash(k)
        return k
    except TypeError:
        return (teacher, "id", id(gen))


def sent_messages(msgs: Any) -> list[dict] | None:
    """The messages as sent ({role, content} only), or None when they are not a list of such dicts."""
    if not isinstance(msgs, list):
        return None
    out = []
    for m in msgs:
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            return None
        out.append({"role": m["role"], "content": m["content"]})
    return out


def endpoint_id(t: TeacherParams) -> str:
    return f"local:{t.model}:{t.dtype}" if t.provider == "local" else (t.base_url or "").rstrip("/")


def prompt_bytes(mode: str, payload: Any) -> int:
    """Upper bound of prompt tokens: a byte-level BPE never yields more tokens than bytes (+ overhead)."""
    if mode == "chat":
        return sum(len(str(m.get("content", "")).encode()) + 8 for m in payload) + 8
    return len(str(payload).encode()) + 2


def cost_usd(t: TeacherParams, prompt_tokens: int, completion_tokens: int, batch: bool = False) -> float:
    c = (prompt_tokens * t.price_input_per_1m + completion_tokens * t.price_output_per_1m) / 1e6
    return c * (1 - t.batch_discount) if batch else c
