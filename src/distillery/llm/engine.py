"""The engine every stage calls: cache first, then budget, rate limits, retries, and the provider.

`Engine.run(requests)` returns one `ChatResult` per request, in order, and never raises for a
request's own failure (it comes back `ok=False` with a reason code and is written to the
failed-requests file). Config problems (unknown teacher, missing API-key variable) raise a
one-line `DistilleryError` before anything is called.

Structured requests (`schema=`) are parsed tolerantly; a failed parse gets up to
`llm.max_parse_retries` repair rounds (the model sees its answer and the problem). Each round is
a normal request, so it is cached and budgeted like any other.

Paid (online) calls are claimed in the cache database first (`reservations`): a request another
process is already paying for is waited on, not sent again, and `max_usd` is checked against the
ledger plus every process's in-flight worst case. If an answer cannot be stored (disk full,
read-only cache), nothing more is paid for and `run` raises a one-line `CacheFullError`.

Cache misses go to one `Backend` per teacher (`online`, `batch`, `local`), which share the cache,
guard, budget and counters through a `Services` object; nothing here reaches into them.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Iterator, Protocol, Sequence

from ..core.errors import DistilleryError, OutputError
from .backend import AsyncLoop, Backend, Got, Outcomes, Services
from .budget import Budget
from .cache import ResponseCache, canonical, key_frame, key_from_parts, payload_json, payload_utf8, request_key
from .config import GEN_KEYS, LLMParams, TeacherParams
from .dryrun import stand_in
from .failed import FailedLog
from .guard import PayGuard
from .items import Item, cost_usd, endpoint_id, gen_key, prompt_bytes, sent_messages  # noqa: F401 - re-exported
from .online import ClientPool
from .outcome import CallError, Outcome
from .parsing import ParseFailure, parse_structured, repair_messages, schema_json
from .progress import Progress
from .ratelimit import Limiter, RateLimiter
from .secrets import redact
from .stats import TeacherStats
from .types import ChatRequest, ChatResult

log = logging.getLogger(__name__)

_NOT_OK = ("length", "content_filter")   # finish reasons that make an answer a failure


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a bulk pass that allocates a few acyclic objects per request
    (nothing for it to free): left on, it walks every live object again and again while 50k results are
    built, about 40% of a fully cached rerun's CPU."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


class HasLLM(Protocol):
    """Loaded params with an `llm` section (what `Engine.from_params` reads)."""

    @property
    def llm(self) -> LLMParams: ...


class CacheFullError(DistilleryError):
    """Answers cannot be stored in the response cache; the run stopped before paying for more."""


class Engine:
    """Runs ChatRequests against the teachers in `llm` params. One per stage run."""

    def __init__(self, llm: LLMParams, stage: str = "default", *, refresh: bool = False, dry_run: bool = False,
                 failed_path: str | os.PathLike[str] | None = None, progress: bool | None = None):
        self.llm = llm
        self.stage = stage
        self.refresh = refresh
        self.dry_run = dry_run
        self.dry_requests: list[ChatRequest] = []
        self.cache = ResponseCache(llm.cache_path, stale_after_s=llm.inflight_wait_s)
        self.failed = FailedLog(failed_path or Path(llm.cache_path).parent / "failed" / f"{stage}.jsonl")
        budget = Budget(stage, llm.stage_max_usd.get(stage), llm.max_usd, overall_spent_before=self.cache.total_spend())
        self.guard = PayGuard(self.cache, stage, llm.max_usd, refresh=refresh, wait_s=llm.inflight_wait_s)
        self.services = Services(llm, stage, self.cache, self.guard, budget)
        self.stats: dict[str, TeacherStats] = self.services.stats
        self.down: dict[str, str] = {}            # teacher -> why it was taken out (mark_down)
        self._memo: dict[Any, Any] = {}           # per run: resolved teachers, gen params, schemas
        self.show_progress = llm.progress if progress is None else progress
        self.clients = ClientPool(self.services.loop, self.make_limiter)
        self._backends: dict[str, Backend] = {}

    @property
    def budget(self) -> Budget:
        """This run's spending caps (shared with the backends; the Ray path puts a cluster-wide one here)."""
        return self.services.budget

    @budget.setter
    def budget(self, b: Budget) -> None:
        self.services.budget = b

    def make_limiter(self, t: TeacherParams) -> Limiter:
        """The rate limiter of an online teacher (override to share one across processes)."""
        return RateLimiter(t.rpm, t.tpm)

    def backend(self, t: TeacherParams) -> Backend:
        """The backend that answers teacher `t`'s cache misses (made once per engine)."""
        b = self._backends.get(t.name)
        if b is None:
            if t.provider == "local":
                from .local import LocalBackend

                b = LocalBackend(self.services, t)
            elif t.batch:
                from .batch import BatchBackend

                b = BatchBackend(self.services, self.clients, t)
            else:
                from .online import OnlineBackend

                b = OnlineBackend(self.services, self.clients, t)
            self._backends[t.name] = b
        return b

    @classmethod
    def from_params(cls, params: HasLLM, stage: str = "default", refresh: bool = False, dry_run: bool = False,
                    failed_path: str | os.PathLike[str] | None = None, progress: bool | None = None) -> Engine:
        return cls(params.llm, stage, refresh=refresh, dry_run=dry_run, failed_path=failed_path,
                   progress=progress)

    # preparation --------------------------------------------------------------------------------
    def _teacher_gen(self, req: ChatRequest) -> tuple[tuple[TeacherParams, str, str], tuple[dict[str, Any], str]] | str:
        """(teacher, its endpoint and model as canonical JSON), (merged gen params, their canonical JSON),
        worked out once per distinct teacher/gen in a `run` (`self._memo`); or why the gen is bad."""
        memo = self._memo
        tm = memo.get(req.teacher)
        if tm is None:
            t = self.llm.teacher(req.teacher)
            tm = memo[req.teacher] = (t, canonical(endpoint_id(t)), canonical(t.model))
        gkey = gen_key(tm[0].name, req.gen)
        gm = memo.get(gkey)
        if gm is None:
            bad = sorted(set(req.gen or {}) - GEN_KEYS)
            if bad:
                return f"unknown generation key {bad[0]!r}"
            gen = {**tm[0].gen, **(req.gen or {})}
            gen = {k: gen[k] for k in sorted(gen) if gen[k] is not None}
            gm = memo[gkey] = (gen, canonical(gen), req.gen)      # keeps req.gen alive: its id stays unique
        return tm, (gm[0], gm[1])

    def resolve(self, i: int, req: ChatRequest) -> Item | str:
        """The request resolved against its teacher (what is sent, under which cache key), or why it is a
        bad request. Unknown teacher -> ParamsError (one line). No side effects.

        The teacher, its merged generation params and the schema are worked out once per distinct
        object in a `run` (`self._memo`), so a large rerun pays per request only for its messages."""
        memo = self._memo
        parts = self._teacher_gen(req)
        if isinstance(parts, str):
            return parts
        (t, url_js, model_js), (gen, gen_js) = parts
        if (req.messages is None) == (req.prompt is None):
            return "give exactly one of messages or prompt"
        payload: Any
        if req.messages is not None:
            payload = sent_messages(req.messages)
            if payload is None:
                return "messages must be a list of {role, content}"
            mode = "chat"
        else:
            mode, payload = "completion", req.prompt
        skey = ("schema", id(req.schema))
        sm = memo.get(skey)
        if sm is None:
            try:
                sj = schema_json(req.schema)
            except TypeError as e:
                return str(e)
            sm = memo[skey] = (sj, canonical(sj), req.schema)
        it = Item(i, req, t, mode, payload, gen, sm[0])
        it.key = it.req_key = key_from_parts(url_js, model_js, payload_json(payload), gen_js, sm[1])
        return it

    def items(self, requests: Sequence[ChatRequest]) -> list[Item]:
        """The valid requests resolved (estimates, benchmarks); bad ones are left out."""
        self._memo = {}
        try:
            return [it for it in (self.resolve(i, r) for i, r in enumerate(requests)) if isinstance(it, Item)]
        finally:
            self._memo = {}

    def _item(self, i: int, req: ChatRequest) -> Item | ChatResult:
        it = self.resolve(i, req)
        if isinstance(it, str):
            return self._fail_early(req, self.llm.teacher(req.teacher), "bad_request", it)
        return it

    def _fail_early(self, req: ChatRequest, t: TeacherParams, reason: str, detail: str) -> ChatResult:
        r = ChatResult(ok=False, teacher=t.name, model=t.model, error=reason, detail=detail,
                       sent=req.messages if req.prompt is None else req.prompt)
        self.services.stat(t).count_result(r)
        self.failed.add(req, r)
        return r

    # public API ---------------------------------------------------------------------------------
    def mark_down(self, teacher: str, why: str) -> None:
        """Take a teacher out for the rest of this engine's life: its uncached requests come back
        `teacher_down` at once (counted and logged like any failure, never silently skipped)."""
        self.llm.teacher(teacher)
        self.down.setdefault(teacher, why)

    def run(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Answer every request (same order). Per-request failures come back as ok=False results.

        The cache hits are answered first, in bulk and before any event loop (`_answer_hits`); only the
        rest go through Items and rounds."""
        results: list[ChatResult | None] = [None] * len(requests)
        if self.dry_run:
            self.dry_requests.extend(requests)
        pending: list[Item] = []
        self._memo = {}
        try:
            todo: Sequence[int] = range(len(requests))
            resolved: dict[int, Item] = {}
            with gc_paused():
                if not self.refresh:
                    todo = self._answer_hits(requests, results, resolved)
                for i in todo:
                    it = resolved.get(i) or self._item(i, requests[i])
                    if isinstance(it, ChatResult):
                        results[i] = it
                    else:
                        pending.append(it)
        finally:
            self._memo = {}
        bar = Progress(len(requests), enabled=self.show_progress and not self.dry_run, desc=self.stage)
        bar.cached_ok(len(requests) - len(todo))
        for i in todo:
            r = results[i]
            if r is not None:
                bar.result(r)
        try:
            while pending:
                outcomes = self._round(pending, bar)
                nxt: list[Item] = []
                for it in pending:
                    res, again = self._finish_item(it, outcomes.get(it.index))
                    if again:
                        nxt.append(it)
                    else:
                        results[it.index] = res
                        bar.result(res)
                        self.services.stat(it.teacher).count_result(res)
                        if res.ok:
                            if self.failed:
                                self.failed.resolve(it.req, it.req_key)
                        else:
                            self.failed.add(it.req, res, it.req_key)
                pending = nxt
        finally:
            bar.close()
            self._flush_failed()
        if self.guard.halted is not None:
            raise CacheFullError(self.guard.message())
        return results  # type: ignore[return-value]

    def _hit_frame(self, req: ChatRequest) -> tuple[TeacherParams, bytes, bytes, dict[str, Any]] | None:
        """The teacher, the key bytes around the payload of a request without schema, and its merged gen
        params (None: a bad gen)."""
        parts = self._teacher_gen(req)
        if isinstance(parts, str):
            return None
        (t, url_js, model_js), (gen, gen_js) = parts
        return (t, *key_frame(url_js, model_js, gen_js, canonical(None)), gen)

    def _answer_hits(self, requests: Sequence[ChatRequest], results: list[ChatResult | None],
                     resolved: dict[int, Item]) -> list[int]:
        """The bulk cached pass: every plain request's cache key in one tight pass (the same bytes as
        `resolve`'s, so existing caches are read), all hits in one read (`ResponseCache.answers`), and their
        results built directly. Returns the indices left for the full path: misses, schema requests (they
        are parsed), truncated or filtered answers, and anything `resolve` must judge. A miss this pass
        keyed goes into `resolved` as its Item (what `resolve` would make), so the paid path starts
        without keying it again."""
        frames: dict[Any, tuple[TeacherParams, bytes, bytes, dict[str, Any]] | None] = {}
        sha256, utf8 = hashlib.sha256, payload_utf8
        keyed: list[tuple[int, str, Any, tuple[TeacherParams, bytes, bytes, dict[str, Any]]]] = []
        rest: list[int] = []
        for i, req in enumerate(requests):
            msgs, prompt, gen = req.messages, req.prompt, req.gen
            fk = gen_key(req.teacher, gen) if gen else req.teacher
            if fk in frames:
                frame = frames[fk]
            else:
                frame = frames[fk] = self._hit_frame(req)
            if frame is None or req.schema is not None:
                rest.append(i)
                continue
            sent: Any = None
            if type(msgs) is list and prompt is None:
                sent = []
                for m in msgs:
                    if type(m) is not dict or len(m) != 2:
                        break
                    role, content = m.get("role"), m.get("content")
                    if type(role) is not str or type(content) is not str:
                        break
                    sent.append({"role": role, "content": content})
                else:
                    pj = utf8(sent)
                    if pj is not None:
                        keyed.append((i, sha256(frame[1] + pj + frame[2]).hexdigest(), sent, frame))
                        continue
            elif type(prompt) is str and msgs is None:
                pj = utf8(prompt)
                if pj is not None:
                    keyed.append((i, sha256(frame[1] + pj + frame[2]).hexdigest(), prompt, frame))
                    continue
            rest.append(i)
        rows = self.cache.answers({k[1] for k in keyed}) if keyed else {}
        hit_teachers: list[str] = []
        teachers: dict[str, TeacherParams] = {}
        not_ok = _NOT_OK
        for i, key, sent, frame in keyed:
            t = frame[0]
            row = rows.get(key)
            if row is None or row[2] in not_ok:
                rest.append(i)
                it = resolved[i] = Item(i, requests[i], t, "chat" if type(sent) is list else "completion", sent,
                                        frame[3], None)
                it.key = it.req_key = key
                continue
            # positional (ok, teacher, model, text, parsed, finish_reason, truncated, error, detail, usage,
            # cost_usd, cached, sent): a fifth cheaper than keywords, 50k times
            results[i] = ChatResult(True, t.name, t.model, row[1], None, row[2], False, None, None,
                                    {"prompt_tokens": row[3], "completion_tokens": row[4]}, 0.0, True, sent)
            hit_teachers.append(t.name)
        for f in frames.values():
            if f is not None:
                teachers[f[0].name] = f[0]
        hits = Counter(hit_teachers)
        for name, n in hits.items():
            self.services.stat(teachers[name]).count_cached_ok(n)
        if self.failed:   # failures of earlier runs of this engine that these answers resolve
            for i, key, _, _ in keyed:
                if results[i] is not None:
                    self.failed.resolve(requests[i], key)
        rest.sort()
        return rest

    def _finish_item(self, it: Item, got: tuple[Outcome, bool] | CallError | None) -> tuple[ChatResult, bool]:
        """Turn a round's outcome into a result, or schedule a repair round (returns again=True)."""
        t = it.teacher
        base = dict(teacher=t.name, model=t.model, sent=it.payload)
        if isinstance(got, CallError) or got is None:
            err = got or CallError("not_run", "no outcome (the run stopped)")
            return ChatResult(ok=False, error=err.reason, detail=redact(err.detail), usage=dict(it.usage),
                              cost_usd=it.cost, latency_s=it.latency, attempts=it.attempts, **base), False
        out, cached = got
        if cached and it.rounds == 0 and it.req.schema is None and out.finish_reason not in _NOT_OK:
            # the fully cached rerun: one answer from the cache, nothing to parse (the hot path)
            return ChatResult(True, t.name, t.model, out.text, None, out.finish_reason,
                              usage={"prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens},
                              cached=True, sent=it.payload), False
        it.usage["prompt_tokens"] += out.prompt_tokens
        it.usage["completion_tokens"] += out.completion_tokens
        it.all_cached = it.all_cached and cached
        if it.req.schema is None and out.finish_reason not in _NOT_OK and not self.dry_run:
            # a plain answer, paid for now (or cached after a repair round): positional, the paid run's hot path
            return ChatResult(True, t.name, t.model, out.text, None, out.finish_reason, False, None, None,
                              dict(it.usage), it.cost, it.all_cached, it.payload, it.latency, it.attempts), False
        common = dict(text=out.text, finish_reason=out.finish_reason, usage=dict(it.usage), cost_usd=it.cost,
                      cached=it.all_cached, latency_s=it.latency, attempts=it.attempts, **base)
        if out.finish_reason == "length":
            return ChatResult(ok=False, truncated=True, error="truncated",
                              detail=f"hit max_tokens={it.gen.get('max_tokens')}", **common), False
        if out.finish_reason == "content_filter":
            return ChatResult(ok=False, error="content_filter", detail="provider filtered the answer",
                              **common), False
        if self.dry_run and not cached:
            common["detail"] = "dry_run"
        if it.req.schema is None:
            return ChatResult(ok=True, **common), False
        try:
            parsed = parse_structured(out.text or "", it.req.schema)
        except ParseFailure as e:
            if it.mode == "chat" and it.rounds < self.llm.max_parse_retries:
                it.rounds += 1
                it.payload = repair_messages(it.payload, out.text or "", str(e), it.req.schema)
                it.key = request_key(endpoint_id(t), t.model, it.payload, it.gen, it.schema_js)
                self.services.stat(t).repairs += 1
                return None, True  # type: ignore[return-value]
            return ChatResult(ok=False, error="parse_error", detail=str(e)[:300], **common), False
        return ChatResult(ok=True, parsed=parsed, **common), False

    def _round(self, items: list[Item], bar: Progress) -> dict[int, tuple[Outcome, bool] | CallError]:
        """One pass: cache hits, then misses per teacher (local batches, batch API, or online calls)."""
        got: dict[int, tuple[Outcome, bool] | CallError] = {}
        hits = {} if self.refresh else self.cache.lookup({it.key for it in items})
        misses: dict[str, list[Item]] = defaultdict(list)
        dupes: dict[str, list[Item]] = defaultdict(list)   # same key twice in one round: call once
        first: dict[str, Item] = {}
        for it in items:
            h = hits.get(it.key)
            if h is not None:
                got[it.index] = (h, True)
            elif it.key in first:
                dupes[it.key].append(it)
            else:
                first[it.key] = it
                misses[it.teacher.name].append(it)
        for name in [n for n in misses if n in self.down]:
            for it in misses.pop(name):
                got[it.index] = CallError("teacher_down", f"teacher {name} taken out of this run: {self.down[name]}")
        try:
            if self.dry_run:
                self._stand_ins(misses, got)
            elif misses:
                self._run_misses(misses, got, bar)
        finally:
            for key, same in dupes.items():
                o = got.get(first[key].index)
                for it in same:
                    if isinstance(o, tuple):
                        got[it.index] = (o[0], True)
                    elif o is not None:
                        got[it.index] = o
        return got

    @staticmethod
    def _stand_ins(misses: dict[str, list[Item]], got: Outcomes) -> None:
        """Dry run: a stand-in answer for every miss, so the stage goes on to build its later requests."""
        for group in misses.values():
            for it in group:
                text = stand_in(int(it.gen.get("max_tokens") or 0), it.schema_js)
                got[it.index] = (Outcome(text, "stop", 0, 0, it.teacher.model), False)

    def _run_misses(self, misses: dict[str, list[Item]], got: Outcomes, bar: Progress) -> None:
        backends = [(self.backend(group[0].teacher), group) for group in misses.values()]
        for b, _ in backends:  # fail fast on config (keys) before any call is made
            b.prepare()
        for b, group in backends:
            got.update(b.submit(group, bar))

    # estimates and metrics -----------------------------------------------------------------------
    def dry_run_estimate(self) -> dict:
        """The estimate of every request `run` saw in dry-run mode (nothing was called)."""
        return self.estimate(self.dry_requests)

    def estimate(self, requests: Sequence[ChatRequest]) -> dict[str, Any]:
        """Tokens and cost of the requests not yet cached, as an upper bound (see the estimate module)."""
        from .estimate import estimate

        return estimate(self.items(requests), stage=self.stage, cache=self.cache, budget=self.budget,
                        refresh=self.refresh, pilot_min_samples=self.llm.pilot_min_samples)

    def metrics(self) -> dict:
        """Per teacher + totals (every result returned), budget (this run's spend and the ledger's total),
        and the outstanding failures of the failed-requests file by reason."""
        teachers = {n: s.as_metrics() for n, s in sorted(self.stats.items())}
        totals = TeacherStats.total(self.stats.values())
        budget = self.budget.as_metrics()
        try:
            budget["overall_spent_usd"] = round(self.cache.total_spend(), 8)
        except Exception:  # noqa: BLE001 - a closed or damaged cache: keep this run's own figure
            pass
        return {"stage": self.stage, "teachers": teachers, "totals": totals, "budget": budget,
                "failed_requests_path": str(self.failed.path),
                "outstanding_by_reason": dict(sorted(self.failed.by_reason().items())),
                "teachers_down": dict(sorted(self.down.items()))}

    def close(self) -> None:
        for b in self._backends.values():
            b.close()
        self.clients.close()
        self.services.loop.close()
        try:
            self._flush_failed()
        finally:
            self.guard.close()
            self.cache.close()

    def _flush_failed(self) -> None:
        """Write the failed-requests file; on a disk the guard found full, the guard's one line says it all."""
        try:
            self.failed.flush()
        except OutputError:
            if self.guard.halted is None:
                raise

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

