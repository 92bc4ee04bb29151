"""The gate in front of every paid call: is there room to store its answer, and may this process pay?

Why: an answer is paid for the moment the provider sends it, so it must be able to land in the
cache. Before each paid call the guard checks the cache's disk has room for every answer in
flight plus this one, and claims the request in the cache database (`reservations.claim`: another
process may already be paying for it, and `max_usd` holds across processes). The first write that
fails (disk full, read-only) halts the guard: no further call is paid for, the calls in flight
still land, and the engine then stops the run with one line.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .cache import CacheWriteError, ResponseCache
from .outcome import Outcome
from .reservations import Claim

log = logging.getLogger(__name__)

WAIT_POLL_S = 0.05        # how often a request waiting on the budget or on another process looks again
DISK_MARGIN = 1 << 20     # free bytes kept beside the cache beyond what in-flight answers may need
COMMIT_BYTES = 64 << 10   # WAL pages one stored answer may add (leaf, index, ledger, reservation)


def cached_outcome(row: dict) -> Outcome:
    return Outcome(row["text"], row["finish_reason"], row["prompt_tokens"], row["completion_tokens"], row["model"])


class PayGuard:
    def __init__(self, cache: ResponseCache, stage: str, max_usd: float | None, *, refresh: bool = False,
                 wait_s: float = 900.0):
        self.cache = cache
        self.stage = stage
        self.max_usd = max_usd
        self.refresh = refresh
        self.wait_s = wait_s
        self.halted: CacheWriteError | None = None
        self.lost = 0             # paid answers that could not be stored
        self.in_flight = 0
        self._pending: list[tuple[str, str, str, Outcome, float]] = []
        self._flushed: asyncio.Future[None] | None = None
        self._claims: list[tuple[str, float, asyncio.Future[Claim]]] = []

    def halt(self, err: CacheWriteError) -> None:
        if self.halted is None:
            self.halted = err
            log.debug("%s: cannot store LLM answers (%s); no further request will be paid for", self.cache.path, err)

    def message(self) -> str:
        lost = f"; {self.lost} paid answer(s) in flight could not be stored" if self.lost else ""
        return (f"{self.cache.path}: cannot store LLM answers ({self.halted}); stopped before paying for more "
                f"requests{lost}. Free space (or make the cache writable) and rerun: stored answers are kept")

    def room_for(self, max_tokens: int) -> bool:
        """Whether the cache's disk can take the answers in flight plus this one (else halt)."""
        per = COMMIT_BYTES + 8 * max_tokens
        need = DISK_MARGIN + per * (self.in_flight + 1)
        free = self.cache.free_bytes()
        if free < need:
            self.halt(CacheWriteError(f"disk nearly full: {free / 1e6:.1f} MB free, {need / 1e6:.1f} MB needed"))
            return False
        return True

    async def claim(self, key: str, worst_usd: float, max_tokens: int) -> Claim | Outcome | None:
        """MINE (call it), BUSY (another process is), REFUSED (over max_usd), the stored answer, or None
        (halted). Waits while the overall budget is held by calls in flight that may settle lower."""
        while True:
            if self.halted is not None or not self.room_for(max_tokens):
                return None
            try:
                c = await self._claim_batched(key, worst_usd)
            except CacheWriteError as e:
                self.halt(e)
                return None
            if c is Claim.HAVE:
                row = self.cache.get(key)
                if row is not None:
                    return cached_outcome(row)
                continue
            if c is not Claim.WAIT:
                return c
            await asyncio.sleep(WAIT_POLL_S)

    async def _claim_batched(self, key: str, worst_usd: float) -> Claim:
        """`cache.claim`, with the claims asked for in the same event-loop turn in one transaction: the
        workers a wave of answers frees up share one commit (a commit each was the client's largest
        SQLite cost per paid request)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Claim] = loop.create_future()
        self._claims.append((key, worst_usd, fut))
        if len(self._claims) == 1:
            loop.call_soon(self._claim_pending)
        return await fut

    def _claim_pending(self) -> None:
        batch, self._claims = self._claims, []
        try:
            got = self.cache.claim_many([(k, w) for k, w, _ in batch], self.stage, self.max_usd, self.refresh)
        except Exception as e:  # noqa: BLE001 - every waiter gets the failure (CacheWriteError halts the guard)
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        for (*_, fut), c in zip(batch, got):
            if not fut.done():
                fut.set_result(c)

    async def answer_elsewhere(self, key: str) -> Outcome | bool:
        """Wait for the answer of a request another process holds: the answer, True when its claim ended
        without one (try here), False after `wait_s` or when halted."""
        deadline = time.monotonic() + self.wait_s
        while self.halted is None:
            row = self.cache.get(key)
            if row is not None:
                return cached_outcome(row)
            if not self.cache.held_elsewhere(key):
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(WAIT_POLL_S)
        return False

    def store(self, key: str, teacher: str, model: str, o: Outcome, cost: float) -> None:
        """Store one answer now (its own commit)."""
        self._commit([(key, teacher, model, o, cost)])

    def store_rows(self, rows: list[tuple[str, str, str, Outcome, float]]) -> None:
        """Store answers that arrived together (a local batch, a collected batch file): one commit."""
        if rows:
            self._commit(rows)

    async def store_async(self, key: str, teacher: str, model: str, o: Outcome, cost: float) -> None:
        """Store an answer together with the others that arrive in the same event-loop turn: one commit
        for all of them (the per-response commit was most of the client's SQLite time). Returns once
        it is committed, so the caller pays for nothing more before its answer is stored."""
        self._pending.append((key, teacher, model, o, cost))
        if self._flushed is None:
            loop = asyncio.get_running_loop()
            self._flushed = loop.create_future()
            loop.call_soon(self.flush)
        await asyncio.shield(self._flushed)

    def flush(self) -> None:
        """Commit the answers waiting in `store_async` (and wake their callers)."""
        rows, self._pending = self._pending, []
        fut, self._flushed = self._flushed, None
        if rows:
            self._commit(rows)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _commit(self, rows: list[tuple[str, str, str, Outcome, float]]) -> None:
        try:
            self.cache.put_many([(k, t, m, o.text, o.finish_reason, o.prompt_tokens, o.completion_tokens, c)
                                 for k, t, m, o, c in rows], self.stage)
        except CacheWriteError as e:
            self.lost += sum(int(c > 0) for *_, c in rows)
            self.halt(e)
