"""The leaf of the LLM layer: a request resolved against its teacher (`Item`), its endpoint
identity, worst-case prompt size and cost.

Why a leaf: the engine, the three backends (online, batch, local), estimates and the Ray/vLLM
path all share these, so this module imports nothing else from the LLM package at run time (the
teacher and request types are named for type checkers only). No cycle can go through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:   # types only: no run-time import of the rest of the package
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
    gen: dict[str, Any]
    schema_js: dict[str, Any] | None
    key: str = ""
    req_key: str = ""            # the key before any repair round: the request's identity
    rounds: int = 0              # repair rounds done
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    cost: float = 0.0
    latency: float = 0.0
    attempts: int = 0
    all_cached: bool = True

    @property
    def max_tokens(self) -> int:
        """The answer's token bound (4096 when the request sets none): what budgets and disk checks assume."""
        return int(self.gen.get("max_tokens") or 4096)


def gen_key(teacher: str, gen: dict[str, Any] | None) -> tuple[Any, ...]:
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


def sent_messages(msgs: Any) -> list[dict[str, Any]] | None:
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
    """What identifies the model's endpoint in a cache key (a local model: name and dtype)."""
    return f"local:{t.model}:{t.dtype}" if t.provider == "local" else (t.base_url or "").rstrip("/")


def prompt_bytes(mode: str, payload: Any) -> int:
    """Upper bound of prompt tokens: a byte-level BPE never yields more tokens than bytes (+ overhead)."""
    if mode == "chat":
        return sum(len(str(m.get("content", "")).encode()) + 8 for m in payload) + 8
    return len(str(payload).encode()) + 2


def cost_usd(t: TeacherParams, prompt_tokens: float, completion_tokens: float, batch: bool = False) -> float:
    c = (prompt_tokens * t.price_input_per_1m + completion_tokens * t.price_output_per_1m) / 1e6
    return c * (1 - t.batch_discount) if batch else c


def worst_cost(it: Item, batch: bool = False) -> float:
    """The most this request can cost: every prompt byte a token, plus max_tokens of answer."""
    return cost_usd(it.teacher, prompt_bytes(it.mode, it.payload), it.max_tokens, batch)
