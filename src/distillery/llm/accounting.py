"""What an LLM stage tells its user at the end: ok, failed by reason, refused by budget, spent of cap.

Why here: every LLM stage ends the same way (`generation.common.run_llm_stage`), and a run that
failed or hit its budget must say so in one line and in its metrics, not exit 0 in silence. The
figures come from `engine.metrics()` (the local and the Ray engine both give it): failures are the
outstanding lines of the failed-requests file (a unit resolved by a later success is not counted),
so they describe this run only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# reasons whose unit the stage itself judges as an answer (a truncated text, an unparsed verdict)
ANSWER_REASONS = frozenset({"truncated", "parse_error"})
REFUSED = "budget_refused"


@dataclass
class LLMAccount:
    stage: str
    ok: int = 0
    outstanding: Counter = field(default_factory=Counter)   # failed units by reason (incl. refused)
    spent_usd: float = 0.0                                  # paid in this run
    ledger_usd: float | None = None                         # the cache ledger's total after the run
    stage_cap: float | None = None
    overall_cap: float | None = None
    teachers_down: dict = field(default_factory=dict)

    @classmethod
    def from_metrics(cls, m: dict[str, Any], fallback_failed: Counter | None = None) -> "LLMAccount":
        b = m.get("budget") or {}
        out = m.get("outstanding_by_reason")
        outstanding = Counter(out) if out is not None else Counter(fallback_failed or {})
        return cls(stage=str(m.get("stage", "")), ok=int((m.get("totals") or {}).get("ok", 0)),
                   outstanding=outstanding, spent_usd=float(b.get("spent_usd") or 0.0),
                   ledger_usd=b.get("overall_spent_usd"), stage_cap=b.get("stage_max_usd"),
                   overall_cap=b.get("overall_max_usd"), teachers_down=dict(m.get("teachers_down") or {}))

    @property
    def refused(self) -> int:
        return self.outstanding.get(REFUSED, 0)

    @property
    def failed(self) -> int:
        return sum(self.outstanding.values()) - self.refused

    @property
    def cap_usd(self) -> float | None:
        """The cap this stage run answers to: its own stage cap, else the overall `max_usd`."""
        return self.stage_cap if self.stage_cap is not None else self.overall_cap

    def delivery_failures(self) -> int:
        """Units that got no answer at all (refused, teacher down, HTTP errors...)."""
        return sum(n for r, n in self.outstanding.items() if r not in ANSWER_REASONS)

    def summary_line(self) -> str:
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.outstanding.items(), key=lambda x: (-x[1], x[0]))
                            if r != REFUSED)
        failed = f"{self.failed} failed" + (f" ({reasons})" if reasons else "")
        spend = f"spent ${self.spent_usd:.4f}"
        if self.stage_cap is not None:
            spend += f" of ${self.stage_cap:.4f} cap (llm.stage_max_usd.{self.stage})"
        if self.overall_cap is not None:
            ledger = self.ledger_usd if self.ledger_usd is not None else self.spent_usd
            spend += f"; ledger ${ledger:.4f} of ${self.overall_cap:.4f} cap (llm.max_usd)"
        if self.stage_cap is None and self.overall_cap is None:
            spend += " (no cap)"
        down = f"; teachers down: {', '.join(sorted(self.teachers_down))}" if self.teachers_down else ""
        return f"{self.stage}: {self.ok} ok, {failed}, {self.refused} refused by budget; {spend}{down}"

    def headline(self) -> dict[str, Any]:
        return {"cost_usd": round(self.spent_usd, 6), "cap_usd": self.cap_usd, "refused": self.refused,
                "failed": self.failed}

    def details(self) -> dict[str, Any]:
        return {"ok": self.ok, "failed_by_reason": dict(sorted(self.outstanding.items())),
                "refused_by_budget": self.refused, "spent_usd": round(self.spent_usd, 8),
                "ledger_usd": self.ledger_usd, "stage_max_usd": self.stage_cap, "max_usd": self.overall_cap,
                "teachers_down": self.teachers_down}
