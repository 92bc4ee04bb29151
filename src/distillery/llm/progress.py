"""Live progress on stderr: done / failed / cached, tokens, spend and projected total cost."""

from __future__ import annotations

import os
import time

from .types import ChatResult


class Progress:
    def __init__(self, total: int, enabled: bool = True, desc: str = "llm"):
        self.total = total
        self.done = self.failed = self.cached = self.tokens_n = 0
        self.usd = 0.0
        self.paid_done = 0
        self._last = 0.0
        self.bar = None
        if enabled and os.environ.get("DISTILLERY_PROGRESS", "1") != "0" and total:
            from ..core.stage import progress

            self.bar = progress(total=total, desc=f"llm {desc}", unit="req")

    def result(self, r: ChatResult) -> None:
        self.done += 1
        self.failed += int(not r.ok)
        self.cached += int(r.cached)
        if not r.cached and r.cost_usd:
            self.paid_done += 1
        if self.bar is not None:
            self.bar.update(1)
            self._postfix()

    def cached_ok(self, n: int) -> None:
        """`result` for n ok answers straight from the cache (the bulk cached pass)."""
        self.done += n
        self.cached += n
        if self.bar is not None and n:
            self.bar.update(n)
            self._postfix()

    def tokens(self, n: int, usd: float) -> None:
        self.tokens_n += n
        self.usd += usd

    def projected_usd(self) -> float:
        """Spend so far plus the mean cost of a paid request times the requests still to do."""
        if not self.paid_done:
            return self.usd
        return self.usd + self.usd / self.paid_done * max(0, self.total - self.done)

    def _postfix(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.bar is not None and (force or now - self._last > 0.5):
            self._last = now
            self.bar.set_postfix_str(f"failed={self.failed} cached={self.cached} tok={self.tokens_n} "
                                     f"${self.usd:.4f} proj=${self.projected_usd():.4f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self._postfix(force=True)
            self.bar.close()
