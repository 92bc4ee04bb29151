"""The online backend: OpenAI-compatible calls, `max_concurrency` at a time, each one claimed,
budgeted, rate-limited, retried, and its answer stored before the next is paid for.

`ClientPool` holds one client and one limiter per teacher (the batch backend shares it: same key,
same connection pool). The limiter comes from a factory, so the Ray path can put a cluster-wide
one in its place.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from .backend import Outcomes, Services
from .config import TeacherParams
from .items import Item, cost_usd, prompt_bytes, worst_cost
from .outcome import CallError, Outcome
from .progress import Progress
from .ratelimit import Limiter, RateLimiter
from .reservations import Claim
from .retry import call_with_retries


def default_limiter(t: TeacherParams) -> Limiter:
    return RateLimiter(t.rpm, t.tpm)


class ClientPool:
    """One OpenAI client and one limiter per teacher, made on first use."""

    def __init__(self, loop: Any, make_limiter: Callable[[TeacherParams], Limiter] = default_limiter):
        self.loop = loop
        self.make_limiter = make_limiter
        self.clients: dict[str, Any] = {}
        self.direct: dict[str, Any] = {}
        self.limiters: dict[str, Limiter] = {}

    def client(self, t: TeacherParams) -> Any:
        """The teacher's client; a missing API-key variable raises one line naming it."""
        if t.name not in self.clients:
            from .provider_openai import make_client

            self.clients[t.name] = make_client(t)
            self.limiters[t.name] = self.make_limiter(t)
        return self.clients[t.name]

    def caller(self, t: TeacherParams) -> Any:
        """What online calls go through: the SDK client, or a `DirectClient` (`http_backend: direct`)."""
        if t.http_backend != "direct":
            return self.client(t)
        if t.name not in self.direct:
            from .provider_openai import DirectClient

            self.client(t)   # the key check, one line, and the limiter
            self.direct[t.name] = DirectClient(t)
        return self.direct[t.name]

    def limiter(self, t: TeacherParams) -> Limiter:
        self.client(t)
        return self.limiters[t.name]

    def close(self) -> None:
        for c in [*self.clients.values(), *self.direct.values()]:
            try:
                self.loop.run(c.close())
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self.clients.clear()
        self.direct.clear()


class OnlineBackend:
    """Concurrent calls to one OpenAI-compatible teacher."""

    def __init__(self, services: Services, pool: ClientPool, teacher: TeacherParams):
        self.s = services
        self.pool = pool
        self.t = teacher

    def prepare(self) -> None:
        self.pool.client(self.t)

    def submit(self, items: list[Item], bar: Progress) -> Outcomes:
        return self.s.loop.run(self._run(items, bar))

    def close(self) -> None:
        pass  # the pool is closed by its owner (shared with the batch backend)

    async def _run(self, items: list[Item], bar: Progress) -> Outcomes:
        from . import provider_openai

        s, t = self.s, self.t
        client = self.pool.caller(t)
        limiter = self.pool.limiter(t)
        st = s.stat(t)
        guard, budget = s.guard, s.budget
        out: Outcomes = {}
        queue = iter(items)
        elsewhere: list[Item] = []      # being paid for by another process: wait for its answer

        async def one(it: Item, stored: asyncio.Future[None] | None = None) -> asyncio.Future[None] | None:
            """Claim, pay for and queue the answer of one request. `stored`: the commit of this worker's
            previous answer, awaited before this call is paid for (normally this claim's own commit).
            Returns the commit its answer goes into, for the worker's next call to await."""
            if guard.halted is not None:
                return stored
            worst = worst_cost(it)
            if not await budget.reserve(worst):
                out[it.index] = s.refused(worst)
                return stored
            claim = await guard.claim(it.key, worst, it.max_tokens)
            if stored is not None:
                await asyncio.shield(stored)
            if claim is not Claim.MINE:
                budget.settle(worst, 0.0, t.name)
                if claim is Claim.BUSY:
                    elsewhere.append(it)
                elif claim is Claim.REFUSED:
                    budget.note_refused()
                    out[it.index] = s.refused(worst)
                elif isinstance(claim, Outcome):
                    out[it.index] = (claim, True)
                return None
            if guard.halted is not None:     # the claim landed, but an answer before it could not be stored
                guard.done()
                budget.settle(worst, 0.0, t.name)
                s.cache.release(it.key)
                return None
            start = time.perf_counter()
            try:
                o = await call_with_retries(lambda: provider_openai.call(client, t, it.mode, it.payload, it.gen,
                                                                         it.req.schema),
                                            t, limiter, it, st,
                                            prompt_bytes(it.mode, it.payload) + int(it.gen.get("max_tokens") or 0))
            except CallError as e:
                guard.done()
                budget.settle(worst, 0.0, t.name)
                s.cache.release(it.key)
                out[it.index] = e
                return None
            except BaseException:
                guard.done()
                raise
            finally:
                it.latency += time.perf_counter() - start
            c = cost_usd(t, o.prompt_tokens, o.completion_tokens)
            it.cost += c
            budget.settle(worst, c, t.name)
            st.add_usage(o.prompt_tokens, o.completion_tokens, c)
            bar.tokens(o.prompt_tokens + o.completion_tokens, c)
            out[it.index] = (o, False)
            return guard.store_soon(it.key, t.name, t.model, o, c)

        async def await_elsewhere(it: Item) -> None:
            """Another process is paying for it: take its answer; call here only if its claim ends without one."""
            got = await guard.answer_elsewhere(it.key)
            if isinstance(got, Outcome):
                out[it.index] = (got, True)
            elif got:
                stored = await one(it)
                if stored is not None:
                    await asyncio.shield(stored)
            elif guard.halted is None:
                out[it.index] = CallError("in_flight_elsewhere", f"another process held this request for more than "
                                                                 f"llm.inflight_wait_s={s.llm.inflight_wait_s:g}s")

        async def worker() -> None:
            stored = None
            for it in queue:
                stored = await one(it, stored)
            if stored is not None:
                await asyncio.shield(stored)
            while elsewhere:
                await await_elsewhere(elsewhere.pop(0))

        try:
            await asyncio.gather(*(worker() for _ in range(min(t.max_concurrency, len(items)))))
        finally:
            guard.flush()
        return out
