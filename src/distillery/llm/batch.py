"""OpenAI Batch API mode: write the JSONL, upload, create, poll, collect — and resume after a restart.

Submitted batch ids and the cache keys they cover are committed to the cache database before
polling starts, so a killed run resumes polling the same batches instead of paying again. Each
collected answer is cached at once (at batch prices). A batch still running after `batch_wait_s`
leaves its requests `batch_pending`; the next run picks it up. So does a batch whose answers could
not all be stored (full disk): the guard halts and the batch stays open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from ..core.io import dumps, write_text
from .backend import Outcomes, Services
from .cache import CacheWriteError
from .config import TeacherParams
from .items import Item, cost_usd, worst_cost
from .online import ClientPool
from .outcome import CallError, Outcome
from .progress import Progress
from .provider_openai import classify, outcome_from_body, request_body

log = logging.getLogger(__name__)

DONE = {"completed", "failed", "expired", "cancelled"}


class BatchBackend:
    """One teacher's misses through the OpenAI Batch API (client shared with the online backend)."""

    def __init__(self, services: Services, pool: ClientPool, teacher: TeacherParams):
        self.s = services
        self.pool = pool
        self.t = teacher

    def prepare(self) -> None:
        self.pool.client(self.t)

    def submit(self, items: list[Item], bar: Progress) -> Outcomes:
        return self.s.loop.run(_run(self.s, self.pool.client(self.t), self.t, items, bar))

    def close(self) -> None:
        pass  # the pool is closed by its owner


async def _run(s: Services, client: Any, t: TeacherParams, items: list[Item], bar: Progress) -> Outcomes:
    cache = s.cache
    out: Outcomes = {}
    by_key: dict[str, list[Item]] = {}
    for it in items:
        by_key.setdefault(it.key, []).append(it)
    # 1. resume batches a previous run submitted
    batch_keys: dict[str, list[str]] = {}
    covered: set[str] = set()
    for bid, keys in cache.open_batches(t.name):
        batch_keys[bid] = keys
        covered.update(keys)
    if batch_keys:
        log.info("teacher %s: resuming %d submitted batch(es)", t.name, len(batch_keys))
    # 2. submit the rest (within budget)
    todo = []
    for key, group in by_key.items():
        if key in covered:
            continue
        worst = worst_cost(group[0], batch=True)
        if not s.budget.try_reserve(worst):
            for it in group:
                out[it.index] = s.refused(worst)
            continue
        todo.append((group[0], worst))
    reserved = {it.key: w for it, w in todo}
    for j in range(0, len(todo), t.batch_max_requests):
        chunk = [it for it, _ in todo[j:j + t.batch_max_requests]]
        try:
            batch_keys.update(await _submit(s, client, t, chunk))
        except CallError as e:
            for it in chunk:
                for same in by_key[it.key]:
                    out[same.index] = e
                s.budget.settle(reserved.pop(it.key, 0.0), 0.0, t.name)
            continue
    # 3. poll and collect every batch
    st = s.stat(t)
    for bid, keys in batch_keys.items():
        left_open = CallError("batch_pending", f"batch {bid} left open: the response cache could not store "
                                               "its answers; the rerun collects them without paying again")
        results: dict[str, Outcome | CallError] = {}
        pending_err = left_open
        if s.guard.halted is None:
            try:
                results = await _collect(client, t, bid)
            except CallError as e:
                if e.reason == "batch_pending":
                    log.warning("teacher %s: batch %s still running after %.0fs; rerun to collect it",
                                t.name, bid, t.batch_wait_s)
                pending_err = e
            else:
                pending_err = CallError("batch_failed", f"batch {bid}: request missing from output")
        for key in keys:
            r = results.get(key)
            if isinstance(r, Outcome) and s.guard.halted is None:
                c = cost_usd(t, r.prompt_tokens, r.completion_tokens, batch=True)
                try:
                    cache.put(key, t.name, t.model, r.text, r.finish_reason, r.prompt_tokens, r.completion_tokens,
                              c, s.stage)
                except CacheWriteError as e:
                    s.guard.halt(e)   # the batch stays open: the rerun collects these answers, paying nothing
                else:
                    s.budget.settle(reserved.pop(key, 0.0), c, t.name)
                    st.add_usage(r.prompt_tokens, r.completion_tokens, c)
                    bar.tokens(r.prompt_tokens + r.completion_tokens, c)
            if s.guard.halted is not None and not isinstance(r, CallError):
                r = None   # not stored (or not collected): the open batch gives it to the rerun
            for it in by_key.get(key, []):
                it.attempts += 1
                if isinstance(r, Outcome):
                    it.cost += cost_usd(t, r.prompt_tokens, r.completion_tokens, batch=True)
                    out[it.index] = (r, False)
                elif isinstance(r, CallError):
                    out[it.index] = r
                else:
                    out[it.index] = left_open if s.guard.halted is not None else pending_err
        if pending_err.reason != "batch_pending" and s.guard.halted is None:
            cache.set_batch_status(bid, "collected")
    for key, w in reserved.items():
        s.budget.settle(w, 0.0, t.name)
    for it in items:
        out.setdefault(it.index, CallError("batch_failed", "no batch covered this request"))
    return out


async def _submit(s: Services, client: Any, t: TeacherParams, chunk: list[Item]) -> dict[str, list[str]]:
    """Upload and create one batch per endpoint; returns {batch_id: keys}."""
    if len({it.mode for it in chunk}) > 1:  # a batch has one endpoint: split chat and completion
        out = await _submit(s, client, t, [it for it in chunk if it.mode == "chat"])
        out.update(await _submit(s, client, t, [it for it in chunk if it.mode != "chat"]))
        return out
    url = "/v1/chat/completions" if chunk[0].mode == "chat" else "/v1/completions"
    lines = [dumps({"custom_id": it.key, "method": "POST", "url": url,
                    "body": request_body(t, it.mode, it.payload, it.gen, it.req.schema)}) for it in chunk]
    path = Path(s.llm.cache_path).parent / "batches" / f"{s.stage}-{t.name}-{chunk[0].key[:12]}.jsonl"
    write_text(path, "\n".join(lines) + "\n")
    try:
        with open(path, "rb") as fh:
            f = await client.files.create(file=fh, purpose="batch")
        b = await client.batches.create(input_file_id=f.id, endpoint=url, completion_window="24h")
    except Exception as e:  # noqa: BLE001
        raise classify(e) from None
    s.cache.add_batch(b.id, t.name, s.stage, f.id, [it.key for it in chunk])
    log.info("teacher %s: submitted batch %s (%d requests)", t.name, b.id, len(chunk))
    return {b.id: [it.key for it in chunk]}


async def _collect(client: Any, t: TeacherParams, bid: str) -> dict[str, Outcome | CallError]:
    deadline = time.monotonic() + t.batch_wait_s
    while True:
        try:
            b = await client.batches.retrieve(bid)
        except Exception as e:  # noqa: BLE001
            failure = classify(e)
            if not failure.retryable:
                raise failure
            b = None
        if b is not None and b.status in DONE:
            break
        if time.monotonic() >= deadline:
            raise CallError("batch_pending", f"batch {bid} not finished")
        await asyncio.sleep(min(t.batch_poll_s, max(0.0, deadline - time.monotonic())))
    results: dict[str, Outcome | CallError] = {}
    for file_id in (b.output_file_id, b.error_file_id):
        if not file_id:
            continue
        try:
            content = await client.files.content(file_id)
            text = content.text
        except Exception as e:  # noqa: BLE001
            raise classify(e) from None
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                key = row["custom_id"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
            resp = row.get("response") or {}
            status = resp.get("status_code", 0)
            if row.get("error") or status != 200:
                err: Any = row.get("error") or {}
                msg = (err.get("message") if isinstance(err, dict) else str(err)) or f"HTTP {status}"
                reason = "rate_limited" if status == 429 else "server_error" if status >= 500 else "batch_failed"
                results[key] = CallError(reason, str(msg)[:200])
                continue
            body = resp.get("body") or {}
            mode = "chat" if "message" in ((body.get("choices") or [{}])[0]) else "completion"
            try:
                results[key] = outcome_from_body(body, mode)
            except CallError as e:
                results[key] = e
    if b.status != "completed":
        log.warning("teacher %s: batch %s ended %s", t.name, bid, b.status)
    return results
