"""Per-teacher counters for metrics: requests, ok, cached, failures by reason, tokens, cost."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from .types import ChatResult


@dataclass
class TeacherStats:
    teacher: str
    model: str
    requests: int = 0
    ok: int = 0
    cached: int = 0
    failed: Counter = field(default_factory=Counter)
    prompt_tokens: int = 0          # tokens actually paid for / generated in this run
    completion_tokens: int = 0
    cost_usd: float = 0.0
    retries: int = 0
    retry_reasons: Counter = field(default_factory=Counter)
    repairs: int = 0

    def count_result(self, r: ChatResult) -> None:
        self.requests += 1
        self.ok += int(r.ok)
        self.cached += int(r.cached)
        if not r.ok:
            self.failed[r.error or "unknown"] += 1

    def count_cached_ok(self, n: int) -> None:
        """`count_result` for n ok answers straight from the cache (the bulk cached pass)."""
        self.requests += n
        self.ok += n
        self.cached += n

    def add_usage(self, pt: int, ct: int, usd: float) -> None:
        self.prompt_tokens += pt
        self.completion_tokens += ct
        self.cost_usd += usd

    def as_metrics(self) -> dict:
        return {"model": self.model, "requests": self.requests, "ok": self.ok, "cached": self.cached,
                "failed": sum(self.failed.values()), "failed_by_reason": dict(sorted(self.failed.items())),
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cost_usd": round(self.cost_usd, 8), "retries": self.retries,
                "retries_by_reason": dict(sorted(self.retry_reasons.items())), "repair_rounds": self.repairs}

    @staticmethod
    def total(stats: Iterable["TeacherStats"]) -> dict:
        out: dict[str, Any] = {"requests": 0, "ok": 0, "cached": 0, "failed": 0, "prompt_tokens": 0, "completion_tokens": 0,
               "cost_usd": 0.0, "retries": 0}
        by_reason: Counter = Counter()
        for s in stats:
            m = s.as_metrics()
            for k in out:
                out[k] += m[k]
            by_reason.update(s.failed)
        out["cost_usd"] = round(out["cost_usd"], 8)
        out["failed_by_reason"] = dict(sorted(by_reason.items()))
        return out
