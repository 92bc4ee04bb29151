"""The engine every stage calls: cache first, then budget, rate limits, retries, and the provider.

`Engine.run(requests)` returns one `ChatResult` per request, in order, and never raises for a
request's own failure (it comes back `ok=False` with a reason code and is written to the
failed-requests file). Config problems (unknown teacher, missing API-key variable) raise a
one-line `DistilleryError` before anything is called.

Structured requests (`schema=`) are parsed tolerantly; a failed parse gets up to
`llm.max_parse_retries` repair rounds (the model sees its answer and the problem). Each round is
a normal request, so it is cached and budgeted like any other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .budget import Budget
from .cache import ResponseCache, request_key
from .config import GEN_KEYS, LLMParams, TeacherParams
from .failed import FailedLog
from .outcome import CallError, Outcome
from .parsing import ParseFailure, parse_structured, repair_messages, schema_json
from .progress import Progress
from .ratelimit import RateLimiter
from .secrets import redact
from .stats import TeacherStats
from .types import ChatRequest, ChatResult

log = logging.getLogger(__name__)


@dataclass
class Item:
    """A request resolved against its teacher: what will be sent and under which cache key."""

    index: int
    req: ChatRequest
    teacher: TeacherParams
    mode: str
    payload: Any                 # messages list (chat) or prompt text (completion)
    gen: dict
    schema_js: dict | None
    key: str = ""
    rounds: int = 0              # repair rounds done
    usage: dict = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    cost: float = 0.0
    latency: float = 0.0
    attempts: int = 0
    all_cached: bool = True


def endpoint_id(t: TeacherParams) -> str:
    return f"local:{t.model}:{t.dtype}" if t.provider == "local" else (t.base_url or "").rstrip("/")


def prompt_bytes(mode: str, payload: Any) -> int:
    """Upper bound of prompt tokens: a byte-level BPE never yields more tokens than bytes (+ overhead)."""
    if mode == "chat":
        return sum(len(str(m.get("content", "")).encode()) + 8 for m in payload) + 8
    return len(str(payload).encode()) + 2


def cost_usd(t: TeacherParams, prompt_tokens: int, completion_tokens: int, batch: bool = False) -> float:
    c = (prompt_tokens * t.price_input_per_1m + completion_tokens * t.price_output_per_1m) / 1e6
    return c * (1 - t.batch_discount) if batch else c


class Engine:
    """Runs ChatRequests against the teachers in `llm` params. One per stage run."""

    def __init__(self, llm: LLMParams, stage: str = "default", *, refresh: bool = False, dry_run: bool = False,
                 failed_path: str | os.PathLike | None = None, progress: bool | None = None):
        self.llm = llm
        self.stage = stage
        self.refresh = refresh
        self.dry_run = dry_run
        self.dry_requests: list[ChatRequest] = []
        self.cache = ResponseCache(llm.cache_path)
        self.failed = FailedLog(failed_path or Path(llm.cache_path).parent / "failed" / f"{stage}.jsonl")
        self.budget = Budget(stage, llm.stage_max_usd.get(stage), llm.max_usd,
                             overall_spent_before=self.cache.total_spend())
        self.stats: dict[str, TeacherStats] = {}
        self.show_progress = llm.progress if progress is None else progress
        self._clients: dict[str, Any] = {}
        self._limiters: dict[str, RateLimiter] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_params(cls, params: Any, stage: str = "default", refresh: bool = False, dry_run: bool = False,
                    failed_path: str | os.PathLike | None = None, progress: bool | None = None) -> "Engine":
        return cls(params.llm, stage, refresh=refresh, dry_run=dry_run, failed_path=failed_path,
                   progress=progress)

    # preparation --------------------------------------------------------------------------------
    def _item(self, i: int, req: ChatRequest) -> Item | ChatResult:
        t = self.llm.teacher(req.teacher)  # unknown teacher -> ParamsError (one line)
        if (req.messages is None) == (req.prompt is None):
            return self._fail_early(req, t, "bad_request", "give exactly one of messages or prompt")
        bad = sorted(set(req.gen or {}) - GEN_KEYS)
        if bad:
            return self._fail_early(req, t, "bad_request", f"unknown generation key {bad[0]!r}")
        if req.messages is not None and (not isinstance(req.messages, list) or not all(
                isinstance(m, dict) and "role" in m and "content" in m for m in req.messages)):
            return self._fail_early(req, t, "bad_request", "messages must be a list of {role, content}")
        gen = {**t.gen, **(req.gen or {})}
        gen = {k: gen[k] for k in sorted(gen) if gen[k] is not None}
        mode = req.mode
        payload = [{"role": m["role"], "content": m["content"]} for m in req.messages] if mode == "chat" \
            else req.prompt
        try:
            sj = schema_json(req.schema)
        except TypeError as e:
            return self._fail_early(req, t, "bad_request", str(e))
        it = Item(i, req, t, mode, payload, gen, sj)
        it.key = request_key(endpoint_id(t), t.model, payload, gen, sj)
        return it

    def _fail_early(self, req: ChatRequest, t: TeacherParams, reason: str, detail: str) -> ChatResult:
        r = ChatResult(ok=False, teacher=t.name, model=t.model, error=reason, detail=detail,
                       sent=req.messages if req.prompt is None else req.prompt)
        self._stat(t).count_result(r)
        self.failed.add(req, r)
        return r

    def _stat(self, t: TeacherParams) -> TeacherStats:
        if t.name not in self.stats:
            self.stats[t.name] = TeacherStats(t.name, t.model)
        return self.stats[t.name]

    # public API ---------------------------------------------------------------------------------
    def run(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Answer every request (same order). Per-request failures come back as ok=False results."""
        results: list[ChatResult | None] = [None] * len(requests)
        if self.dry_run:
            self.dry_requests.extend(requests)
        pending: list[Item] = []
        for i, req in enumerate(requests):
            it = self._item(i, req)
            if isinstance(it, ChatResult):
                results[i] = it
            else:
                pending.append(it)
        bar = Progress(len(requests), enabled=self.show_progress and not self.dry_run, desc=self.stage)
        for r in results:
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
                        self._stat(it.teacher).count_result(res)
                        if not res.ok:
                            self.failed.add(it.req, res)
                pending = nxt
        finally:
            bar.close()
            self.failed.flush()
        return results  # type: ignore[return-value]

    def _finish_item(self, it: Item, got: tuple[Outcome, bool] | CallError | None) -> tuple[ChatResult, bool]:
        """Turn a round's outcome into a result, or schedule a repair round (returns again=True)."""
        t = it.teacher
        base = dict(teacher=t.name, model=t.model, sent=it.payload)
        if isinstance(got, CallError) or got is None:
            err = got or CallError("dry_run", "not in the cache; --dry-run calls nothing")
            return ChatResult(ok=False, error=err.reason, detail=redact(err.detail), usage=dict(it.usage),
                              cost_usd=it.cost, latency_s=it.latency, attempts=it.attempts, **base), False
        out, cached = got
        it.usage["prompt_tokens"] += out.prompt_tokens
        it.usage["completion_tokens"] += out.completion_tokens
        it.all_cached = it.all_cached and cached
        common = dict(text=out.text, finish_reason=out.finish_reason, usage=dict(it.usage), cost_usd=it.cost,
                      cached=it.all_cached, latency_s=it.latency, attempts=it.attempts, **base)
        if out.finish_reason == "length":
            return ChatResult(ok=False, truncated=True, error="truncated",
                              detail=f"hit max_tokens={it.gen.get('max_tokens')}", **common), False
        if out.finish_reason == "content_filter":
            return ChatResult(ok=False, error="content_filter", detail="provider filtered the answer",
                              **common), False
        if it.req.schema is None:
            return ChatResult(ok=True, **common), False
        try:
            parsed = parse_structured(out.text or "", it.req.schema)
        except ParseFailure as e:
            if it.mode == "chat" and it.rounds < self.llm.max_parse_retries:
                it.rounds += 1
                it.payload = repair_messages(it.payload, out.text or "", str(e), it.req.schema)
                it.key = request_key(endpoint_id(t), t.model, it.payload, it.gen, it.schema_js)
                self._stat(t).repairs += 1
                return None, True  # type: ignore[return-value]
            return ChatResult(ok=False, error="parse_error", detail=str(e)[:300], **common), False
        return ChatResult(ok=True, parsed=parsed, **common), False

    def _round(self, items: list[Item], bar: Progress) -> dict[int, tuple[Outcome, bool] | CallError]:
        """One pass: cache hits, then misses per teacher (local batches, batch API, or online calls)."""
        got: dict[int, tuple[Outcome, bool] | CallError] = {}
        hits = {} if self.refresh else self.cache.get_many({it.key for it in items})
        misses: dict[str, list[Item]] = defaultdict(list)
        dupes: dict[str, list[Item]] = defaultdict(list)   # same key twice in one round: call once
        first: dict[str, Item] = {}
        for it in items:
            h = hits.get(it.key)
            if h is not None:
                got[it.index] = (Outcome(h["text"], h["finish_reason"], h["prompt_tokens"],
                                         h["completion_tokens"], h["model"]), True)
            elif it.key in first:
                dupes[it.key].append(it)
            else:
                it.all_cached = False
                first[it.key] = it
                misses[it.teacher.name].append(it)
        if self.dry_run or not misses:
            return got
        try:
            self._run_misses(misses, got, bar)
        finally:
            for key, same in dupes.items():
                o = got.get(first[key].index)
                for it in same:
                    got[it.index] = (o[0], True) if isinstance(o, tuple) else o
        return got

    def _run_misses(self, misses: dict[str, list[Item]], got: dict, bar: Progress) -> None:
        for name, group in misses.items():  # fail fast on config (keys) before any call is made
            if group[0].teacher.provider == "openai":
                self._client(group[0].teacher)
        for name, group in misses.items():
            t = group[0].teacher
            if t.provider == "local":
                got.update(self._run_local(t, group, bar))
            elif t.batch:
                from .batch import run_batch

                got.update(run_batch(self, t, group, bar))
            else:
                got.update(self._loop_run(self._run_online(t, group, bar)))

    # local --------------------------------------------------------------------------------------
    def _run_local(self, t: TeacherParams, items: list[Item], bar: Progress) -> dict[int, Any]:
        from . import provider_local

        out: dict[int, Any] = {}
        groups: dict[str, list[Item]] = defaultdict(list)
        for it in items:
            groups[f"{it.mode}|{sorted(it.gen.items())!r}|{json.dumps(it.schema_js, sort_keys=True)}"].append(it)
        for gk in sorted(groups):
            group = sorted(groups[gk], key=lambda it: (prompt_bytes(it.mode, it.payload), it.key))
            for s in range(0, len(group), t.batch_size):
                chunk = group[s:s + t.batch_size]
                start = time.perf_counter()
                try:
                    outs = provider_local.generate(t, chunk[0].mode, [it.payload for it in chunk], chunk[0].gen,
                                                   chunk[0].schema_js)
                except CallError as e:
                    for it in chunk:
                        out[it.index] = e
                    continue
                dt = time.perf_counter() - start
                for it, o in zip(chunk, outs):
                    it.latency += dt
                    it.attempts += 1
                    self.cache.put(it.key, t.name, t.model, o.text, o.finish_reason, o.prompt_tokens,
                                   o.completion_tokens, 0.0, self.stage)
                    out[it.index] = (o, False)
                    self._stat(t).add_usage(o.prompt_tokens, o.completion_tokens, 0.0)
                bar.tokens(sum(o.prompt_tokens + o.completion_tokens for o in outs), 0.0)
        return out

    # online (OpenAI-compatible) ----------------------------------------------------------------
    def _client(self, t: TeacherParams) -> Any:
        if t.name not in self._clients:
            from .provider_openai import make_client

            self._clients[t.name] = make_client(t)  # missing key var -> one line naming it
            self._limiters[t.name] = RateLimiter(t.rpm, t.tpm)
        return self._clients[t.name]

    def _loop_run(self, coro):
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    def worst_cost(self, it: Item, batch: bool = False) -> float:
        return cost_usd(it.teacher, prompt_bytes(it.mode, it.payload), int(it.gen.get("max_tokens") or 4096), batch)

    async def _run_online(self, t: TeacherParams, items: list[Item], bar: Progress) -> dict[int, Any]:
        from . import provider_openai

        client = self._client(t)
        limiter = self._limiters[t.name]
        st = self._stat(t)
        out: dict[int, Any] = {}
        queue = iter(items)

        async def one(it: Item) -> None:
            worst = self.worst_cost(it)
            if not await self.budget.reserve(worst):
                out[it.index] = CallError("budget_exceeded", f"stage {self.stage}: next request could cost "
                                                             f"${worst:.4f}; budget {self._budget_text()}")
                return
            start = time.perf_counter()
            try:
                o = await self._attempts(lambda: provider_openai.call(client, t, it.mode, it.payload, it.gen,
                                                                      it.req.schema),
                                         t, limiter, it, st,
                                         prompt_bytes(it.mode, it.payload) + int(it.gen.get("max_tokens") or 0))
            except CallError as e:
                self.budget.settle(worst, 0.0, t.name)
                out[it.index] = e
                it.latency += time.perf_counter() - start
                return
            it.latency += time.perf_counter() - start
            c = cost_usd(t, o.prompt_tokens, o.completion_tokens)
            it.cost += c
            self.budget.settle(worst, c, t.name)
            self.cache.put(it.key, t.name, t.model, o.text, o.finish_reason, o.prompt_tokens, o.completion_tokens,
                           c, self.stage)
            st.add_usage(o.prompt_tokens, o.completion_tokens, c)
            bar.tokens(o.prompt_tokens + o.completion_tokens, c)
            out[it.index] = (o, False)

        async def worker() -> None:
            for it in queue:
                await one(it)

        await asyncio.gather(*(worker() for _ in range(min(t.max_concurrency, len(items)))))
        return out

    async def _attempts(self, make_call, t: TeacherParams, limiter: RateLimiter, it: Item, st: TeacherStats,
                        reserve_tokens: int) -> Outcome:
        """Call with retries: exponential backoff + jitter, Retry-After honoured, per-attempt timeout."""
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

    def _budget_text(self) -> str:
        b = self.budget
        parts = []
        if b.stage_max_usd is not None:
            parts.append(f"stage max ${b.stage_max_usd:g}, spent ${b.spent:.4f}")
        if b.overall_max_usd is not None:
            parts.append(f"overall max ${b.overall_max_usd:g}, spent ${b.overall_spent_before + b.spent:.4f}")
        return "; ".join(parts) or "unlimited"

    # estimates and metrics -----------------------------------------------------------------------
    def dry_run_estimate(self) -> dict:
        """The estimate of every request `run` saw in dry-run mode (nothing was called)."""
        return self.estimate(self.dry_requests)

    def estimate(self, requests: Sequence[ChatRequest]) -> dict:
        from .estimate import estimate

        return estimate(self, requests)

    def metrics(self) -> dict:
        teachers = {n: s.as_metrics() for n, s in sorted(self.stats.items())}
        totals = TeacherStats.total(self.stats.values())
        return {"stage": self.stage, "teachers": teachers, "totals": totals, "budget": self.budget.as_metrics(),
                "failed_requests_path": str(self.failed.path)}

    def close(self) -> None:
        for c in self._clients.values():
            try:
                self._loop_run(c.close())
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self._clients.clear()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.close()
        self.failed.flush()
        self.cache.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

