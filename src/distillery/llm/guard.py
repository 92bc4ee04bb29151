"""The gate in front of every paid call: is there room to store its answer, and may this process pay?

Why: an answer is paid for the moment the provider sends it, so it must be able to land in the
cache. Before each paid call the guard holds room on the cache's disk for every answer in flight
plus this one (`room.Room`), and claims the request in the cache database (`reservations.claim`:
another process may already be paying for it, and `max_usd` holds across processes). The first
write that fails (disk full, read-only) halts the guard: no further call is paid for, checkpoints
stop, the held room is given back, the answers in flight land in it, and the engine then stops
the run with one line.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .cache import CacheWriteError, ResponseCache
from .outcome import Outcome
from .reservations import Claim
from .room import NoRoom, Room

log = logging.getLogger(__name__)

WAIT_POLL_S = 0.05        # how often a request waiting on the budget or on another process looks again
DISK_MARGIN = 1 << 20     # room held beyond what the answers in flight may need
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
        self.in_flight = 0        # calls claimed (or being claimed) whose answers are not stored yet
        self.room = Room(cache.path.parent)
        self._pending: list[tuple[str, str, str, Outcome, float]] = []    # answers for the next commit
        self._claims: list[tuple[str, float, asyncio.Future[Claim]]] = []  # claims for the next commit
        self._flushed: asyncio.Future[None] | None = None                  # that commit, once scheduled

    def halt(self, err: CacheWriteError) -> None:
        """Pay for nothing more, and give the answers in flight the room held for them."""
        if self.halted is None:
            self.halted = err
            log.debug("%s: cannot store LLM answers (%s); no further request will be paid for", self.cache.path, err)
            self.cache.checkpointer.pause()
            self.room.release()

    def close(self) -> None:
        """Give the held room back to the disk: a process that goes on after its engine (a notebook, a stage
        with several engines) must not keep a megabyte or more of the cache's disk."""
        self.room.release()

    def message(self) -> str:
        lost = f"; {self.lost} paid answer(s) in flight could not be stored" if self.lost else ""
        return (f"{self.cache.path}: cannot store LLM answers ({self.halted}); stopped before paying for more "
                f"requests{lost}. Free space (or make the cache writable) and rerun: stored answers are kept")

    def room_for(self, max_tokens: int) -> bool:
        """Hold room on the cache's disk for the answers in flight, this one included (else halt)."""
        try:
            self.room.hold(DISK_MARGIN + (COMMIT_BYTES + 8 * max_tokens) * self.in_flight)
        except NoRoom as e:
            self.halt(CacheWriteError(str(e.strerror)))
            return False
        return True

    async def claim(self, key: str, worst_usd: float, max_tokens: int) -> Claim | Outcome | None:
        """MINE (call it), BUSY (another process is), REFUSED (over max_usd), the stored answer, or None
        (halted). Waits while the overall budget is held by calls in flight that may settle lower.
        From the claim on, the call counts as in flight; on MINE it stays so until its answer is queued for
        storing (`store_soon`) or it ends without one (`done`)."""
        self.in_flight += 1
        try:
            got = await self._claim(key, worst_usd, max_tokens)
        except BaseException:
            self.in_flight -= 1
            raise
        if got is not Claim.MINE:
            self.in_flight -= 1
        return got

    def done(self) -> None:
        """A call claimed MINE ended without an answer to store."""
        self.in_flight -= 1

    async def _claim(self, key: str, worst_usd: float, max_tokens: int) -> Claim | Outcome | None:
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
        """`cache.claim`, made in the next commit (`flush`) together with every answer and claim queued in
        the same event-loop turn: the workers a wave of answers frees up store those answers and claim
        their next requests in one commit (a commit each was the client's largest SQLite cost)."""
        fut: asyncio.Future[Claim] = asyncio.get_running_loop().create_future()
        self._claims.append((key, worst_usd, fut))
        self._next_commit()
        return await fut

    def _next_commit(self) -> asyncio.Future[None]:
        """The commit that queued answers and claims go into (scheduled for the end of this loop turn)."""
        if self._flushed is None:
            loop = asyncio.get_running_loop()
            self._flushed = loop.create_future()
            loop.call_soon(self.flush)
        return self._flushed

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

    def store_soon(self, key: str, teacher: str, model: str, o: Outcome, cost: float) -> asyncio.Future[None]:
        """Queue the answer of a call claimed MINE for the next commit and return that commit's future. The
        caller awaits it before it pays for anything more; a worker that claims its next request in the same
        loop turn has that claim in the same commit, after the answer (so the claim fails if the answer cannot
        be stored). The call stops counting as in flight here: its worker sends nothing until this answer is
        stored, and the room held never shrinks, so what was held for the call now holds its answer."""
        self.in_flight -= 1
        self._pending.append((key, teacher, model, o, cost))
        return self._next_commit()

    def flush(self) -> None:
        """Commit the queued answers, then the queued claims, in one transaction; wake their callers."""
        rows, self._pending = self._pending, []
        claims, self._claims = self._claims, []
        fut, self._flushed = self._flushed, None
        got: list[Claim] = []
        err: Exception | None = None
        if rows or claims:
            try:
                got = self.cache.commit(_answer_rows(rows), self.stage, [(k, w) for k, w, _ in claims],
                                        self.max_usd, self.refresh)
            except CacheWriteError as e:
                self.halt(e)
                self._commit(rows)       # the answers alone, in the room the halt gave back; no claim
                err = e
            except Exception as e:  # noqa: BLE001 - every waiter gets the failure
                err = e
        for i, (*_, cf) in enumerate(claims):
            if not cf.done():
                cf.set_exception(err) if err is not None else cf.set_result(got[i])
        if fut is not None and not fut.done():
            if rows and err is not None and not isinstance(err, CacheWriteError):
                fut.set_exception(err)   # the answers are not stored: their callers fail loudly
            else:
                fut.set_result(None)     # stored, or the guard is halted and says so

    def _commit(self, rows: list[tuple[str, str, str, Outcome, float]]) -> None:
        """Store answers in one commit. When that fails, halt (which gives the held room back) and try once
        more: what still fails is counted as lost."""
        for _ in range(2):
            if not rows:
                return
            try:
                self.cache.put_many(_answer_rows(rows), self.stage)
                return
            except CacheWriteError as e:
                self.halt(e)
        self.lost += sum(int(c > 0) for *_, c in rows)


def _answer_rows(rows: list[tuple[str, str, str, Outcome, float]]) -> list[tuple]:
    return [(k, t, m, o.text, o.finish_reason, o.prompt_tokens, o.completion_tokens, c) for k, t, m, o, c in rows]
