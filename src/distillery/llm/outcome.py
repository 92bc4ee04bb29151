"""What one provider call returns (`Outcome`) or raises (`CallError`, with a reason code)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Outcome:
    text: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    model: str | None = None


class CallError(Exception):
    """A failed attempt. `retryable` ones are retried with backoff; `retry_after` is the server's hint."""

    def __init__(self, reason: str, detail: str = "", *, retryable: bool = False,
                 retry_after: float | None = None):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after
