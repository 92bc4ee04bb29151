"""Generation on Ray: requests fan out to Ray tasks, each running the normal LLM `Engine` on its
share, under ONE rate limit and ONE budget held by a Ray actor (`Governor`), writing to the same
SQLite response cache (WAL; a shared path on multi-node clusters).

Why this keeps paid calls safe:
- every completed response is committed to the cache before the task moves on, so a task that is
  retried after its worker died answers those from the cache; only the requests that were in
  flight in the killed worker (at most the teacher's `max_concurrency`) are sent again, and their
  answers had never reached us;
- budget reservations are made in the actor before a call and settled after it; a dead worker's
  open reservations are never released, so a crash can only make the budget stricter, never overrun it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Any, Sequence

from ..llm.budget import Budget
from ..llm.engine import Engine
from ..llm.failed import FailedLog
from ..llm.ratelimit import RateLimiter
from ..llm.stats import TeacherStats
from ..llm.types import ChatRequest, ChatResult
from .config import EngineParams

log = logging.getLogger(__name__)

GOVERNOR_NAME = "distillery-governor-{stage}-{pid}-{n}"  # named so operators (and tests) can find it


class Governor:
    """Ray actor (async): the shared RPM/TPM buckets per teacher and the stage budget."""

    def __init__(self, limits: dict[str, tuple[int | None, int | None]], stage: str, stage_max: float | None,
                 overall_max: float | None, overall_before: float):
        self.limits = limits
        self.limiters: dict[str, RateLimiter] = {}
        self.budget = Budget(stage, stage_max, overall_max, overall_spent_before=overall_before)
        self.workers: list[int] = []
        self.done = 0

    def _lim(self, teacher: str) -> RateLimiter:
        if teacher not in self.limiters:
            self.limiters[teacher] = RateLimiter(*self.limits.get(teacher, (None, None)))
        return self.limiters[teacher]

    async def acquire(self, teacher: str, tokens: int) -> None:
        await self._lim(teacher).acquire(tokens)

    def pause(self, teacher: str, seconds: float) -> None:
        self._lim(teacher).pause(seconds)

    async def reserve(self, worst: float) -> bool:
        return await self.budget.reserve(worst)

    def try_reserve(self, worst: float) -> bool:
        return self.budget.try_reserve(worst)

    def settle(self, reserved: float, actual: float, teacher: str) -> None:
        self.budget.settle(reserved, actual, teacher)

    def budget_state(self) -> dict:
        b = self.budget
        return {"spent": b.spent, "reserved": b.reserved, "refused": b.refused, "by_teacher": dict(b.by_teacher)}

    def register(self, pid: int) -> None:
        self.workers.append(pid)

    def worker_pids(self) -> list[int]:
        return list(self.workers)

    def progress(self, n: int) -> None:
        self.done += n

    def done_count(self) -> int:
        return self.done


class RemoteLimiter:
    """RateLimiter interface backed by the Governor (what `Engine._attempts` calls)."""

    def __init__(self, gov: Any, teacher: str):
        self.gov, self.teacher = gov, teacher

    async def acquire(self, tokens: int) -> None:
        await self.gov.acquire.remote(self.teacher, tokens)

    def pause(self, seconds: float) -> None:
        self.gov.pause.remote(self.teacher, seconds)


class RemoteBudget(Budget):
    """Budget interface backed by the Governor; the local fields mirror this worker's own spend."""

    def __init__(self, gov: Any, base: Budget):
        super().__init__(base.stage, base.stage_max_usd, base.overall_max_usd, base.overall_spent_before)
        self.gov = gov

    async def reserve(self, worst_usd: float, poll_s: float = 0.01) -> bool:
        ok = await self.gov.reserve.remote(worst_usd)
        self.refused += int(not ok)
        return ok

    def try_reserve(self, worst_usd: float) -> bool:
        import ray

        ok = ray.get(self.gov.try_reserve.remote(worst_usd))
        self.refused += int(not ok)
        return ok

    def settle(self, reserved_usd: float, actual_usd: float, teacher: str) -> None:
        import ray

        ray.get(self.gov.settle.remote(reserved_usd, actual_usd, teacher))  # before the next reserve
        super().settle(0.0, actual_usd, teacher)


class WorkerEngine(Engine):
    """The normal engine with the Governor's limiter and budget injected."""

    def __init__(self, llm: Any, stage: str, gov: Any, **kw: Any):
        super().__init__(llm, stage, **kw)
        self.gov = gov
        self.budget = RemoteBudget(gov, self.budget)

    def make_limiter(self, t: Any) -> Any:
        return RemoteLimiter(self.gov, t.name)


def run_shard(llm: Any, stage: str, gov: Any, requests: list[ChatRequest], refresh: bool
              ) -> tuple[list[ChatResult], dict[str, TeacherStats]]:
    """Ray task body: one share of the requests through a WorkerEngine."""
    import ray

    ray.get(gov.register.remote(os.getpid()))
    scratch = tempfile.mkdtemp(prefix="distillery-failed-")
    try:
        eng = WorkerEngine(llm, stage, gov, refresh=refresh, progress=False,
                           failed_path=os.path.join(scratch, "failed.jsonl"))
        with eng:
            res = eng.run(requests)
        gov.progress.remote(len(requests))
        return res, eng.stats
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _get(ray: Any, ref: Any) -> Any:
    """ray.get, re-raising a worker's one-line DistilleryError as itself (no remote traceback)."""
    from ..core.errors import DistilleryError

    try:
        return ray.get(ref)
    except Exception as e:  # noqa: BLE001 - RayTaskError wraps the worker's exception
        cause = getattr(e, "cause", None)
        if isinstance(cause, DistilleryError):
            raise cause from None
        raise


def gpu_path_unavailable(ray: Any) -> str | None:
    """Why local teachers cannot run on Ray Data LLM (vLLM) here, or None when they can."""
    gpus = ray.cluster_resources().get("GPU", 0)
    if not gpus:
        return "the Ray cluster has no GPUs"
    try:
        import vllm  # noqa: F401
        from ray.data.llm import build_processor  # noqa: F401
    except ImportError:
        return "vllm is not installed (pip install vllm on the GPU nodes)"
    return None


class RayEngine:
    """Engine-compatible front (run / metrics / close): fans requests out over a Ray cluster."""

    def __init__(self, params: Any, stage: str, cfg: EngineParams, *, refresh: bool = False,
                 failed_path: str | os.PathLike | None = None, progress: bool | None = None, shard_size: int = 64,
                 max_task_retries: int = 3):
        from pathlib import Path

        self.params, self.llm, self.stage, self.cfg = params, params.llm, stage, cfg
        self.refresh = refresh
        self.shard_size = shard_size
        self.max_task_retries = max_task_retries
        self.failed = FailedLog(failed_path or Path(self.llm.cache_path).parent / "failed" / f"{stage}.jsonl")
        self.stats: dict[str, TeacherStats] = {}
        self.show_progress = self.llm.progress if progress is None else progress
        self.budget_state: dict = {}
        self.notes: list[str] = []
        self._session = None
        self.governor_name = GOVERNOR_NAME.format(stage=stage, pid=os.getpid(), n=id(self))

    # public API (as Engine) -------------------------------------------------------------------
    def run(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Answer every request (same order), like `Engine.run`. The cluster session and the
        Governor (one budget for the whole stage) live until `close()`, across calls."""
        from ..llm.secrets import api_key

        requests = list(requests)
        for name in sorted({r.teacher for r in requests}):  # config problems: one line, before any start
            t = self.llm.teacher(name)
            if t.provider == "openai":
                api_key(t.name, t.api_key_env)
        if not requests:
            return []
        ray = self._start()
        local_teachers = sorted({r.teacher for r in requests if self.llm.teacher(r.teacher).provider == "local"})
        if local_teachers:
            why = gpu_path_unavailable(ray)
            msg = (f"local teacher(s) {', '.join(local_teachers)}: Ray Data LLM (vLLM) path skipped: {why}; "
                   f"running the in-process provider on the Ray workers" if why else
                   f"local teacher(s) {', '.join(local_teachers)}: GPUs found; vLLM batch inference is "
                   f"used through ray.data.llm (answers go to the cache, then served as hits)")
            log.warning(msg) if why else log.info(msg)
            self.notes.append(msg)
            if why is None:
                from .vllm_ray import fill_cache_with_vllm

                fill_cache_with_vllm(ray, self.llm, self.stage, requests)
        try:
            return self._fan_out(ray, self._gov, requests, self._cpus)
        finally:
            self.budget_state = ray.get(self._gov.budget_state.remote())

    def _start(self) -> Any:
        if self._session is not None:
            return self._ray
        from ..llm.cache import ResponseCache
        from .runtime import cluster_cpus, ray_session

        self._session = ray_session(self.cfg)
        ray = self._ray = self._session.__enter__()
        cache = ResponseCache(self.llm.cache_path)
        before = cache.total_spend()
        cache.close()
        limits = {n: (t.rpm, t.tpm) for n, t in self.llm.teachers.items()}
        gov_cls = ray.remote(num_cpus=0, max_concurrency=1000)(Governor)
        self._gov = gov_cls.options(name=self.governor_name).remote(
            limits, self.stage, self.llm.stage_max_usd.get(self.stage), self.llm.max_usd, before)
        self._cpus = cluster_cpus(ray)
        return ray

    def _fan_out(self, ray: Any, gov: Any, requests: list[ChatRequest], cpus: int) -> list[ChatResult]:
        from ..core.stage import progress

        task = ray.remote(num_cpus=1, max_retries=self.max_task_retries, retry_exceptions=False)(run_shard)
        llm_ref = ray.put(self.llm)
        shards = [(i, requests[i:i + self.shard_size]) for i in range(0, len(requests), self.shard_size)]
        inflight_max = self.cfg.concurrency or cpus
        results: list[ChatResult | None] = [None] * len(requests)
        pending: dict[Any, int] = {}
        it = iter(shards)
        if self.show_progress:
            bar = progress(total=len(requests), desc=f"{self.stage} (ray)", unit="req")
        else:
            from tqdm import tqdm

            bar = tqdm(total=len(requests), disable=True)
        try:
            while True:
                while len(pending) < inflight_max:
                    nxt = next(it, None)
                    if nxt is None:
                        break
                    pending[task.remote(llm_ref, self.stage, gov, nxt[1], self.refresh)] = nxt[0]
                if not pending:
                    break
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    start = pending.pop(ref)
                    res, stats = _get(ray, ref)
                    results[start:start + len(res)] = res
                    for name, s in stats.items():
                        self._merge(name, s)
                    bar.update(len(res))
        finally:
            bar.close()
        for req, res in zip(requests, results):
            if not res.ok:
                self.failed.add(req, res)
        self.failed.flush()
        return results  # type: ignore[return-value]

    def _merge(self, name: str, s: TeacherStats) -> None:
        if name not in self.stats:
            self.stats[name] = TeacherStats(s.teacher, s.model)
        m = self.stats[name]
        for f in ("requests", "ok", "cached", "prompt_tokens", "completion_tokens", "cost_usd", "retries", "repairs"):
            setattr(m, f, getattr(m, f) + getattr(s, f))
        m.failed.update(s.failed)
        m.retry_reasons.update(s.retry_reasons)

    def metrics(self) -> dict:
        b = self.budget_state
        budget = {"stage_max_usd": self.llm.stage_max_usd.get(self.stage), "overall_max_usd": self.llm.max_usd,
                  "spent_usd": round(b.get("spent", 0.0), 8), "refused_requests": b.get("refused", 0)}
        return {"stage": self.stage, "engine": "ray", "teachers": {n: s.as_metrics() for n, s in sorted(self.stats.items())},
                "totals": TeacherStats.total(self.stats.values()), "budget": budget,
                "failed_requests_path": str(self.failed.path), "notes": self.notes}

    def close(self) -> None:
        self.failed.flush()
        if self._session is not None:
            try:
                self._ray.kill(self._gov)
            finally:
                session, self._session = self._session, None
                session.__exit__(None, None, None)

    def __enter__(self) -> "RayEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
