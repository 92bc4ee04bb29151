"""Async token buckets for requests-per-minute and tokens-per-minute limits.

A request waits until both buckets hold enough; tokens are reserved up front (prompt estimate +
max_tokens), so the limit is never exceeded even with many requests in flight. A 429 can also
pause the whole teacher (`pause`) so that in-flight siblings stop hammering the provider.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class TokenBucket:
    """`rate_per_min` units refill continuously; capacity is one minute's worth."""

    def __init__(self, rate_per_min: float | None):
        self.rate = rate_per_min / 60.0 if rate_per_min else None
        self.capacity = float(rate_per_min or 0)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        if self.rate is None:
            return
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_time(self, amount: float) -> float:
        """Seconds until `amount` is available (0 = take it now)."""
        if self.rate is None:
            return 0.0
        amount = min(amount, self.capacity)  # a request bigger than a minute's budget still runs, alone
        self._refill()
        if self.level >= amount:
            return 0.0
        return (amount - self.level) / self.rate

    def take(self, amount: float) -> None:
        if self.rate is not None:
            self.level -= min(amount, self.capacity)


class RateLimiter:
    """RPM + TPM buckets plus a shared pause (after a 429 with Retry-After)."""

    def __init__(self, rpm: int | None, tpm: int | None):
        self.requests = TokenBucket(rpm)
        self.tokens = TokenBucket(tpm)
        self.paused_until = 0.0
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    async def acquire(self, tokens: int) -> None:
        async with self._lock:  # FIFO: one waiter at a time takes from the buckets
            while True:
                wait = max(self.paused_until - time.monotonic(), self.requests.wait_time(1),
                           self.tokens.wait_time(tokens))
                if wait <= 0:
                    self.requests.take(1)
                    self.tokens.take(tokens)
                    return
                await asyncio.sleep(min(wait, 5.0))


class Limiter(Protocol):
    """What a paid call waits on (a `RateLimiter` here, the Ray governor's across workers)."""

    def pause(self, seconds: float) -> None: ...

    async def acquire(self, tokens: int) -> None: ...
