"""Generation fanned out over Ray: same results as local, one shared budget, and a worker killed
mid-run loses nothing and re-sends at most what it had in flight (counted by the test server)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import pytest

from distillery.distributed.generate import make_engine, run_chat
from distillery.distributed.generate_ray import RayEngine, gpu_path_unavailable
from distillery.llm import ChatRequest
from distillery.testing.testserver import TestServer
from distillery.core.params import load_params

pytestmark = [pytest.mark.ray, pytest.mark.slow]

KEY_ENV = "DIST_TEST_LLM_KEY"


@pytest.fixture(scope="module")
def server():
    with TestServer(latency_ms=0) as srv:
        yield srv


def _params(url: str, cache, engine: str, concurrency: int = 4, **llm):
    t = {"name": "t", "provider": "openai", "model": "m", "base_url": url, "api_key_env": KEY_ENV,
         "price_input_per_1m": 1.0, "price_output_per_1m": 2.0, "max_concurrency": concurrency,
         "timeout_s": 5.0, "max_retries": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.1,
         "gen": {"temperature": 0.0, "max_tokens": 16}}
    extra = {"llm.teachers": [t], "llm.default_teacher": "t", "llm.cache_path": str(cache), "llm.progress": False,
             "engine.engine": engine, **{f"llm.{k}": v for k, v in llm.items()}}
    return load_params(None, sections=("llm", "engine"), extra=extra)


def _reqs(n: int, tag: str = "") -> list[ChatRequest]:
    return [ChatRequest(teacher="t", messages=[{"role": "user", "content": f"{tag} question number {i}"}])
            for i in range(n)]


def _prompts(srv) -> list[str]:
    return [r["body"]["messages"][-1]["content"] for r in srv.requests() if "messages" in r.get("body", {})]


def test_ray_results_equal_local_and_cached_rerun_calls_nothing(ray_cluster, server, tmp_path):
    server.configure(latency_ms=5)
    server.reset()
    reqs = _reqs(150, "eq")
    local = run_chat(_params(server.url, tmp_path / "local.sqlite", "local"), reqs, stage="distill")
    p = _params(server.url, tmp_path / "ray.sqlite", "ray")
    server.reset()
    with make_engine(p, "distill") as eng:
        assert isinstance(eng, RayEngine)
        first = eng.run(reqs)
        m = eng.metrics()
    assert len(_prompts(server)) == 150
    assert [r.text for r in first] == [r.text for r in local] and all(r.ok for r in first)
    assert m["totals"]["requests"] == 150 and m["totals"]["cost_usd"] > 0
    server.reset()
    again = run_chat(p, reqs, stage="distill")
    assert _prompts(server) == []
    assert [r.text for r in again] == [r.text for r in first] and all(r.cached for r in again)


def test_one_budget_for_all_workers(ray_cluster, server, tmp_path):
    server.configure(latency_ms=20)
    server.reset()
    p = _params(server.url, tmp_path / "c.sqlite", "ray", stage_max_usd={"distill": 0.0008})
    with make_engine(p, "distill") as eng:
        res = eng.run(_reqs(120, "budget"))
        spent = eng.metrics()["budget"]["spent_usd"]
    assert spent <= 0.0008 + 1e-12
    refused = Counter(r.error for r in res if not r.ok)
    assert refused["budget_refused"] > 0 and sum(r.ok for r in res) == len(_prompts(server))


def test_worker_killed_mid_run_loses_nothing_and_repeats_only_in_flight(ray_cluster, server, tmp_path):
    server.configure(latency_ms=60)
    server.reset()
    conc = 2
    p = _params(server.url, tmp_path / "kill.sqlite", "ray", concurrency=conc)
    reqs = _reqs(160, "kill")
    out: dict = {}

    eng = RayEngine(p, "distill", p.engine, shard_size=80, progress=False)

    def go():
        out["res"] = eng.run(reqs)

    th = threading.Thread(target=go)
    th.start()
    deadline = time.time() + 60
    while len(_prompts(server)) < 40 and time.time() < deadline:
        time.sleep(0.05)
    gov = ray_cluster.get_actor(eng.governor_name)
    pids = ray_cluster.get(gov.worker_pids.remote())
    os.kill(pids[0], signal.SIGKILL)
    th.join(timeout=120)
    eng.close()
    res = out["res"]
    assert len(res) == 160 and all(r.ok for r in res)                     # nothing lost
    sent = Counter(_prompts(server))
    assert set(sent) == {r.messages[0]["content"] for r in reqs}
    repeated = sum(c - 1 for c in sent.values())
    assert repeated <= conc                                               # only what was in flight
    server.reset()
    again = run_chat(p, reqs, stage="distill")                           # resumable: all cached now
    assert _prompts(server) == [] and [r.text for r in again] == [r.text for r in res]


def test_local_teacher_without_gpus_skips_vllm_with_a_clear_message(ray_cluster):
    assert gpu_path_unavailable(ray_cluster) == "the Ray cluster has no GPUs"
