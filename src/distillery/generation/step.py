"""The one shape of an LLM step, and the one runner every generation stage sends its prompts through.

A step says what to ask and how to read the answer (curator's `LLM.prompt/parse`, distilabel's
`format_input/format_output`):

- `prompt(item)` -> the request(s) for one item (none: the item goes straight to `parse`);
- `parse(item, results)` -> the item (kept, its fields filled), a `Reject(reason, detail)`, or a
  `Resend(request)` (a failover teacher, a judge's re-ask): the runner sends it in the next round
  and calls `parse` again with every result so far.

`run_step` does the rest once for every stage: batches through the engine, lineage (model, the exact
prompt sent) on the item, and the failure classification (`classify`: teacher_failed with the engine's
reason, e.g. teacher_down or budget_refused, empty, truncated). `Sink` ends every unit a stage took as
exactly one output record or one quarantine entry, counted in the stage's counter; the engine itself
logs each failed request in failed_requests.jsonl.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from ..core.io import AtomicWriter
from ..core.quarantine import Quarantine, StageCounter
from ..llm import ChatRequest, ChatResult
from .common import lineage_entry, sample_gen
from .templates import Template

if TYPE_CHECKING:
    from ..llm.config import LLMParams

I = TypeVar("I")
MAX_ROUNDS = 16   # a parse that keeps asking to resend is cut off here (failover lists and re-asks are short)


@dataclass(frozen=True)
class Reject:
    """Why an item ends in the quarantine: a reason code, one line of detail, extra entry fields."""

    reason: str
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Resend:
    """Ask again for this item (another teacher, or the same one with a correction)."""

    requests: tuple[ChatRequest, ...]

    @classmethod
    def of(cls, *requests: ChatRequest) -> "Resend":
        return cls(tuple(requests))


class ChatEngine(Protocol):
    """What the runner needs of the engine (its public `run`)."""

    def run(self, requests: Sequence[ChatRequest]) -> list[ChatResult]: ...


def failed(res: ChatResult) -> bool:
    """The request got no usable answer (a truncated answer still carries text)."""
    return not res.ok and res.error != "truncated"


def is_truncated(res: ChatResult) -> bool:
    return bool(res.truncated or res.finish_reason == "length")


def classify(res: ChatResult, *, empty: str | None = "empty_response",
             truncated: str | None = "truncated_response", truncated_detail: str = "hit max_tokens") -> Reject | None:
    """The failure classification every step shares: None when the answer is usable.

    teacher_failed (detail: the engine's reason, e.g. teacher_down, budget_refused, http_500), then
    `empty` (no text), then `truncated` (hit max_tokens). None for `empty`/`truncated` skips that check."""
    if failed(res):
        return Reject("teacher_failed", f"{res.error}: {res.detail or ''}")
    if empty and not (res.text or "").strip():
        return Reject(empty)
    if truncated and is_truncated(res):
        return Reject(truncated, truncated_detail)
    return None


class Step(Generic[I]):
    """One LLM call shape. Subclasses set `stage`, `role`, `gen`, `templates` and implement
    `prompt` and `parse`; `lineage` and `attach` have defaults (one entry per result on
    `item.lineage` or `item["lineage"]`)."""

    stage: str = ""
    role: str = "answer"
    gen: dict[str, Any] = {}
    templates: tuple[Template | None, ...] = ()
    llm: LLMParams | None = None   # list prices for the lineage's cost_usd
    attempt_numbers = False  # lineage entries carry `attempt` (judge steps)

    def prompt(self, item: I) -> ChatRequest | Sequence[ChatRequest] | None:
        raise NotImplementedError

    def parse(self, item: I, results: list[ChatResult]) -> I | Reject | Resend:
        raise NotImplementedError

    def lineage_extra(self, item: I) -> dict[str, Any]:
        return {}

    def lineage(self, item: I, results: list[ChatResult]) -> list[dict[str, Any]]:
        extra = self.lineage_extra(item)
        return [lineage_entry(self.stage, r, self.gen, self.templates, role=self.role, llm=self.llm,
                              **({"attempt": n + 1} if self.attempt_numbers else {}), **extra)
                for n, r in enumerate(results)]

    def attach(self, item: I, entries: list[dict[str, Any]]) -> None:
        target = item.get("lineage") if isinstance(item, dict) else getattr(item, "lineage", None)
        if target is None:
            raise TypeError(f"{type(item).__name__} has no lineage list; override Step.attach")
        target.extend(entries)


def current_draws(results: list[ChatResult]) -> int:
    """How many of `results` are draws of the request now being asked: the last one and the truncated
    answers just before it (a failed request before them was another teacher's, or another turn's)."""
    n = 1
    while n < len(results) and is_truncated(results[-n - 1]) and not failed(results[-n - 1]):
        n += 1
    return n


class RedrawnStep(Step[I]):
    """A step with one sampled request per item, whose answer may loop past max_tokens (a small
    model): `redraw` asks a truncated answer again with the next seed (`sample_gen`, tag suffix
    `:rN`), at most `redraws` times, before the step classifies it. Every draw is a paid request;
    each stays in the item's lineage with its own seed and `attempt`, and the engine logs the
    truncated ones in failed_requests.jsonl. Greedy steps are not redrawn: they would loop the same way.

    `redraw_stride`: a step that already sends n samples of one prompt (best-of-n, seeds + 1000 x
    sample) sets it to n, so draw k of sample s takes sample s + k x n's seed, which no other sample
    or draw uses (the cache would otherwise answer a redraw with another sample's text)."""

    redraws = 0
    redraw_stride = 1

    def draw_gen(self, first: ChatRequest, draw: int) -> dict[str, Any]:
        """The gen of draw `draw` (0 = the first) of a request: its own seed, strided past other samples."""
        return sample_gen(first.gen, draw * self.redraw_stride)

    def redraw(self, item: I, results: list[ChatResult]) -> Resend | None:
        res, n = results[-1], current_draws(results)
        if not (self.gen.get("temperature") and n <= self.redraws and is_truncated(res) and not failed(res)):
            return None
        first = self._first(item)
        return Resend.of(replace(first, gen=self.draw_gen(first, n), tag=f"{first.tag}:r{n}"))

    def lineage(self, item: I, results: list[ChatResult]) -> list[dict[str, Any]]:
        """One entry per draw of the request asked last (`current_draws`), each with the gen it was sent with."""
        extra, first = self.lineage_extra(item), self._first(item)
        draws = results[-current_draws(results):]
        return [lineage_entry(self.stage, r, self.draw_gen(first, k), self.templates, role=self.role, llm=self.llm,
                              **extra, **({"attempt": k + 1} if len(draws) > 1 else {}))
                for k, r in enumerate(draws)]

    def _first(self, item: I) -> ChatRequest:
        first = self.prompt(item)
        assert isinstance(first, ChatRequest), "a redrawn step sends one request per item"
        return first


def _as_list(reqs: ChatRequest | Sequence[ChatRequest] | None) -> list[ChatRequest]:
    if reqs is None:
        return []
    if isinstance(reqs, ChatRequest):
        return [reqs]
    return list(reqs)


def run_step(step: Step[I], items: Iterable[I], engine: ChatEngine, batch_size: int = 0
             ) -> Iterator[tuple[I, I | Reject]]:
    """Send every item's requests through the engine, `batch_size` items at a time (0 = all at
    once), resend what `parse` asks for, attach lineage, and yield (item, kept item or Reject) in input
    order. Every item yields exactly once."""
    batch: list[I] = []
    for item in items:
        batch.append(item)
        if batch_size and len(batch) >= batch_size:
            yield from _run_batch(step, batch, engine)
            batch = []
    if batch:
        yield from _run_batch(step, batch, engine)


def _run_batch(step: Step[I], batch: list[I], engine: ChatEngine) -> Iterator[tuple[I, I | Reject]]:
    results: list[list[ChatResult]] = [[] for _ in batch]
    verdicts: list[I | Reject | None] = [None] * len(batch)
    pending = {i: _as_list(step.prompt(item)) for i, item in enumerate(batch)}
    for rnd in range(MAX_ROUNDS):
        flat = [(i, r) for i, reqs in pending.items() for r in reqs]
        answers = engine.run([r for _, r in flat]) if flat else []
        for (i, _), res in zip(flat, answers):
            results[i].append(res)
        nxt: dict[int, list[ChatRequest]] = {}
        for i in pending:
            parsed = step.parse(batch[i], list(results[i]))
            if isinstance(parsed, Resend):
                if rnd + 1 < MAX_ROUNDS and parsed.requests:
                    nxt[i] = list(parsed.requests)
                    continue
                parsed = Reject("too_many_attempts", f"{len(results[i])} requests")
            verdicts[i] = parsed
        pending = nxt
        if not pending:
            break
    for i, item in enumerate(batch):
        if results[i]:
            step.attach(item, step.lineage(item, results[i]))
        v = verdicts[i]
        yield item, (v if v is not None else Reject("too_many_attempts"))


class Sink:
    """Where every unit a stage took ends: records.jsonl (kept) or quarantine.jsonl (with its reason),
    both atomic, counted in the stage's counter (in = out + quarantined)."""

    def __init__(self, out: str | Path, stage: str, counter: StageCounter):
        self.out = Path(out)
        self.counter = counter
        self.quarantine = Quarantine(self.out / "quarantine.jsonl", stage, counter)
        self.writer = AtomicWriter(self.out / "records.jsonl")

    def __enter__(self) -> "Sink":
        self.quarantine.__enter__()
        self.writer.__enter__()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        try:
            self.writer.__exit__(et, ev, tb)
        finally:
            self.quarantine.__exit__(et, ev, tb)

    def keep(self, record: dict[str, Any], *, taken: bool = True) -> None:
        if taken:
            self.counter.records_in += 1
        self.counter.records_out += 1
        self.writer.write_record(record)

    def reject(self, rej: Reject, record: Any, *, taken: bool = True) -> None:
        if taken:
            self.counter.records_in += 1
        self.quarantine.reject(rej.reason, record, detail=rej.detail, **rej.extra)

    def settle(self, record: dict[str, Any], verdict: object) -> bool:
        """Write one unit's record as kept, or quarantine it when the verdict is a Reject; True if kept."""
        if isinstance(verdict, Reject):
            self.reject(verdict, record)
            return False
        self.keep(record)
        return True
