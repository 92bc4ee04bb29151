"""The two values every stage exchanges with the engine: a request and its result.

Kept free of heavy imports so generation code can build requests cheaply.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# error reason codes a ChatResult can carry (ChatResult.error)
REASONS = ("rate_limited", "server_error", "timeout", "connection", "truncated", "parse_error",
           "budget_refused", "teacher_down", "in_flight_elsewhere", "bad_request", "auth", "not_found",
           "content_filter", "malformed_response", "batch_failed", "batch_pending", "local_error", "not_run")


@dataclass
class ChatRequest:
    """One call to a teacher: chat `messages` or raw completion `prompt` (base models)."""

    teacher: str
    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    gen: dict[str, Any] = field(default_factory=dict)
    schema: Any = None          # pydantic model class or JSON-schema dict -> structured output
    tag: str = ""               # free text shown in failed-request logs

    @property
    def mode(self) -> str:
        return "completion" if self.prompt is not None else "chat"


@dataclass
class ChatResult:
    """What came back. `sent` is exactly what the model received (store it in lineage)."""

    ok: bool
    teacher: str
    model: str
    text: str | None = None
    parsed: Any = None
    finish_reason: str | None = None
    truncated: bool = False
    error: str | None = None
    detail: str | None = None   # one line of context for `error` (never contains secrets)
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    cost_usd: float = 0.0
    cached: bool = False
    sent: Any = None
    latency_s: float = 0.0
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["parsed"] is not None and hasattr(self.parsed, "model_dump"):
            d["parsed"] = self.parsed.model_dump(mode="json")
        return d
