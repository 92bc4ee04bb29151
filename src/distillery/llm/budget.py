"""Hard spending caps: a request is started only if its worst-case cost still fits.

Worst case = prompt bytes (a byte-level tokenizer never makes more tokens than bytes) + max_tokens,
at the teacher's prices. It is reserved before the call and settled with the real cost after, so
concurrent requests can never push spend past `max_usd`, per stage (this run) or overall (the
ledger in the cache: every paid response of every stage). This object holds one process's view;
the overall cap across processes is enforced again where the reservation is written to the cache
database (`reservations.claim`), against the ledger plus every live process's reservations.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Budget:
    stage: str
    stage_max_usd: float | None
    overall_max_usd: float | None
    overall_spent_before: float = 0.0     # ledger total when the engine started
    spent: float = 0.0                    # paid by this engine
    reserved: float = 0.0
    refused: int = 0
    by_teacher: dict[str, float] = field(default_factory=dict)

    def _fits(self, amount: float) -> bool:
        if self.stage_max_usd is not None and amount > self.stage_max_usd + 1e-12:
            return False
        return self.overall_max_usd is None or self.overall_spent_before + amount <= self.overall_max_usd + 1e-12

    def try_reserve(self, worst_usd: float) -> bool:
        """Reserve now or refuse (batch submissions: everything is in flight at once)."""
        if not self._fits(self.spent + self.reserved + worst_usd):
            self.refused += 1
            return False
        self.reserved += worst_usd
        return True

    async def reserve(self, worst_usd: float, poll_s: float = 0.01) -> bool:
        """Reserve, waiting while in-flight reservations may still settle below their worst case.

        Refuses only when the request cannot fit even if everything in flight costs nothing more.
        """
        import asyncio

        while True:
            if not self._fits(self.spent + worst_usd):
                self.refused += 1
                return False
            if self._fits(self.spent + self.reserved + worst_usd):
                self.reserved += worst_usd
                return True
            await asyncio.sleep(poll_s)

    def note_refused(self) -> None:
        """A refusal decided elsewhere (the overall cap, checked in the cache database across processes)."""
        self.refused += 1

    def settle(self, reserved_usd: float, actual_usd: float, teacher: str) -> None:
        self.reserved = max(0.0, self.reserved - reserved_usd)
        self.spent += actual_usd
        self.by_teacher[teacher] = self.by_teacher.get(teacher, 0.0) + actual_usd

    def describe(self) -> str:
        """The caps and what was spent against them, for a refusal's one line."""
        parts = []
        if self.stage_max_usd is not None:
            parts.append(f"stage max ${self.stage_max_usd:g}, spent ${self.spent:.4f}")
        if self.overall_max_usd is not None:
            parts.append(f"overall max ${self.overall_max_usd:g}, spent ${self.overall_spent_before + self.spent:.4f}")
        return "; ".join(parts) or "unlimited"

    def as_metrics(self) -> dict[str, float | int | None]:
        return {"stage_max_usd": self.stage_max_usd, "overall_max_usd": self.overall_max_usd,
                "spent_usd": round(self.spent, 8),
                "overall_spent_usd": round(self.overall_spent_before + self.spent, 8),
                "refused_requests": self.refused}
