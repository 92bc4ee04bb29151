"""The one interface behind which the engine's three ways of answering requests sit.

`Backend.submit(items, bar)` answers the cache misses of one teacher: the online
(OpenAI-compatible) backend calls them concurrently, the batch backend uploads them to the Batch
API and collects them, the local backend generates them in padded batches. Each returns one
outcome per item index: `(Outcome, cached)` or a `CallError` with a reason code. The engine never
looks inside a backend and a backend never reaches into the engine: what they share (cache, pay
guard, budget, per-teacher counters, the event loop) is the `Services` object handed to each.
This is curator's request-processor split (an online and a batch base behind one interface).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Coroutine, Protocol, TypeVar, Union

from .outcome import CallError, Outcome
from .stats import TeacherStats

if TYPE_CHECKING:
    from .budget import Budget
    from .cache import ResponseCache
    from .config import LLMParams, TeacherParams
    from .guard import PayGuard
    from .items import Item
    from .progress import Progress

T = TypeVar("T")

# what one round gives each item: (the answer, whether it came from the cache) or why it failed
Got = Union[tuple[Outcome, bool], CallError]
Outcomes = dict[int, Got]


class AsyncLoop:
    """One event loop per engine, shared by the online and batch backends (their clients live on it)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.close()


@dataclass
class Services:
    """What every backend shares with the engine: one stage run's cache, guard, budget and counters."""

    llm: LLMParams
    stage: str
    cache: ResponseCache
    guard: PayGuard
    budget: Budget
    loop: AsyncLoop = field(default_factory=AsyncLoop)
    stats: dict[str, TeacherStats] = field(default_factory=dict)

    def stat(self, t: TeacherParams) -> TeacherStats:
        """The counters of teacher `t` (made on first use)."""
        s = self.stats.get(t.name)
        if s is None:
            s = self.stats[t.name] = TeacherStats(t.name, t.model)
        return s

    def refused(self, worst: float) -> CallError:
        """The failure of a request the budget cannot fit."""
        return CallError("budget_refused", f"stage {self.stage}: next request could cost ${worst:.4f}; "
                                           f"budget {self.budget.describe()}")


class Backend(Protocol):
    """Answers one teacher's uncached requests."""

    def prepare(self) -> None:
        """Check what a call needs (an API-key variable...) before anything is sent: one-line error."""

    def submit(self, items: list[Item], bar: Progress) -> Outcomes:
        """One outcome per item index (items missing from the result were not run: the run halted)."""
        ...

    def close(self) -> None:
        """Release clients and connections."""
