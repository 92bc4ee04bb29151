"""One paid call with retries: exponential backoff with jitter, Retry-After honoured (the teacher
pauses, as a provider's account-wide limit requires), a per-attempt timeout."""

from __future__ import annotations

import asyncio
import random
from typing import Any, Awaitable, Callable

from .config import TeacherParams
from .items import Item
from .outcome import CallError, Outcome
from .stats import TeacherStats


async def call_with_retries(make_call: Callable[[], Awaitable[Outcome]], t: TeacherParams, limiter: Any, it: Item,
                            st: TeacherStats, reserve_tokens: int) -> Outcome:
    """Call until an answer, a non-retryable CallError, or `t.max_retries` retries (then the last error)."""
    from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

    def wait(state) -> float:
        exc = state.outcome.exception()
        ra = getattr(exc, "retry_after", None)
        backoff = min(t.backoff_max_s, t.backoff_base_s * (2 ** (state.attempt_number - 1)))
        backoff = backoff * (0.5 + random.random() / 2)  # jitter
        if ra is not None:
            limiter.pause(min(ra, t.backoff_max_s))
            return min(t.backoff_max_s, max(ra, backoff * 0.1))
        return backoff

    def before_sleep(state) -> None:
        st.retries += 1
        st.retry_reasons[state.outcome.exception().reason] += 1

    retrying = AsyncRetrying(stop=stop_after_attempt(t.max_retries + 1), wait=wait,
                             retry=retry_if_exception(lambda e: isinstance(e, CallError) and e.retryable),
                             before_sleep=before_sleep, reraise=True)
    async for attempt in retrying:
        with attempt:
            await limiter.acquire(reserve_tokens)
            it.attempts += 1
            try:
                return await asyncio.wait_for(make_call(), timeout=t.timeout_s + 5)
            except asyncio.TimeoutError:
                raise CallError("timeout", "no answer within timeout_s", retryable=True) from None
    raise AssertionError("unreachable")
