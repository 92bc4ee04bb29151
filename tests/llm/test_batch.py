"""OpenAI Batch API mode against the test server: submit, poll, collect, resume, batch prices."""

from __future__ import annotations

import json

import pytest

from distillery.llm import ChatRequest

from distillery.llm.engine import CacheFullError, Engine
from distillery.llm.cache import ResponseCache

BATCH = {"batch": True, "batch_poll_s": 0.05, "price_input_per_1m": 1.0, "price_output_per_1m": 2.0,
         "batch_discount": 0.5}


def reqs(n: int, prefix: str = "q") -> list[ChatRequest]:
    return [ChatRequest(teacher="t", messages=[{"role": "user", "content": f"{prefix} {i}"}]) for i in range(n)]


def paths(srv) -> list[str]:
    return [r["path"] for r in srv.requests()]


def test_batch_submit_poll_collect_at_batch_prices(srv, make_params, tmp_path):
    srv.configure(batch_delay_s=0.2)
    with Engine.from_params(make_params(srv.url, teacher=BATCH), stage="distill") as eng:
        res = eng.run(reqs(5))
        m = eng.metrics()
    assert [r.text for r in res] == [f"Test answer to: q {i}" for i in range(5)]
    assert all(r.ok for r in res)
    p = paths(srv)
    assert p.count("/v1/files") == 1 and p.count("/v1/batches") == 1 and "/v1/chat/completions" not in p
    assert any(x.startswith("/v1/batches/") for x in p) and any(x.endswith("/content") for x in p)
    full = (res[0].usage["prompt_tokens"] * 1.0 + res[0].usage["completion_tokens"] * 2.0) / 1e6
    assert res[0].cost_usd == pytest.approx(full * 0.5)
    assert m["teachers"]["t"]["cost_usd"] == pytest.approx(sum(r.cost_usd for r in res))
    body = next(r["body"] for r in srv.requests() if r["path"] == "/v1/batches")
    assert body["endpoint"] == "/v1/chat/completions" and body["completion_window"] == "24h"
    jsonl = list((tmp_path / "batches").glob("distill-t-*.jsonl"))
    lines = [json.loads(x) for x in jsonl[0].read_text().splitlines()]
    assert len(lines) == 5 and lines[0]["url"] == "/v1/chat/completions" and lines[0]["body"]["model"] == "test-model"


def test_batch_resumes_after_restart_without_resubmitting(srv, make_params):
    srv.configure(batch_delay_s=1.0)
    p_wait_short = make_params(srv.url, teacher={**BATCH, "batch_wait_s": 0.1})
    with Engine.from_params(p_wait_short, stage="distill") as eng:
        res = eng.run(reqs(4))
    assert {r.error for r in res} == {"batch_pending"}
    assert paths(srv).count("/v1/batches") == 1
    # "restart": a new engine on the same cache polls the stored batch id instead of paying again
    with Engine.from_params(make_params(srv.url, teacher=BATCH), stage="distill") as eng:
        res = eng.run(reqs(4))
    assert all(r.ok for r in res)
    assert paths(srv).count("/v1/batches") == 1 and paths(srv).count("/v1/files") == 1
    with Engine.from_params(make_params(srv.url, teacher=BATCH), stage="distill") as eng:
        res = eng.run(reqs(4))
    assert all(r.cached for r in res) and paths(srv).count("/v1/batches") == 1


def test_batch_error_lines_become_failed_results(srv, make_params):
    srv.configure(rules=[{"match": "q 1$", "status": 500}])
    with Engine.from_params(make_params(srv.url, teacher=BATCH), stage="distill") as eng:
        res = eng.run(reqs(3))
    assert [r.ok for r in res] == [True, False, True]
    assert res[1].error == "server_error"
    # the failed one is not cached: a rerun resubmits only it
    srv.reset()
    srv.configure(rules=[])
    with Engine.from_params(make_params(srv.url, teacher=BATCH), stage="distill") as eng:
        res = eng.run(reqs(3))
    assert all(r.ok for r in res) and [r.cached for r in res] == [True, False, True]
    up = [r for r in srv.requests() if r["path"] == "/v1/files"]
    assert len(up) == 1


def test_batch_respects_budget(srv, make_params):
    p = make_params(srv.url, teacher=BATCH, stage_max_usd={"distill": 0.0})
    with Engine.from_params(p, stage="distill") as eng:
        res = eng.run(reqs(3))
    assert {r.error for r in res} == {"budget_refused"} and srv.requests() == []


def test_batch_completion_mode_uses_completions_endpoint(srv, make_params):
    with Engine.from_params(make_params(srv.url, teacher=BATCH), stage="completion") as eng:
        res = eng.run([ChatRequest(teacher="t", prompt="Once upon a time"),
                       ChatRequest(teacher="t", messages=[{"role": "user", "content": "hi"}])])
    assert all(r.ok for r in res) and res[0].text == "Test answer to: Once upon a time"
    endpoints = sorted(r["body"]["endpoint"] for r in srv.requests() if r["path"] == "/v1/batches")
    assert endpoints == ["/v1/chat/completions", "/v1/completions"]


def test_batch_state_survives_in_cache_file(srv, make_params):
    srv.configure(batch_delay_s=5.0)
    p = make_params(srv.url, teacher={**BATCH, "batch_wait_s": 0.05})
    with Engine.from_params(p, stage="distill") as eng:
        eng.run(reqs(2))
    c = ResponseCache(p.llm.cache_path)
    (bid, keys), = c.open_batches("t")
    assert bid.startswith("batch-") and len(keys) == 2


def test_a_full_disk_at_collection_stops_in_one_line_and_the_rerun_collects_the_same_batch(srv, make_params,
                                                                                            tiny_fs, fill_disk_when):
    """The batch is paid for once it completes. When its answers cannot be stored (the cache's disk filled
    up meanwhile), the run stops with CacheFullError and leaves the batch open; once there is room, the
    rerun collects the same batch instead of submitting (and paying for) a new one."""
    disk = tiny_fs("6m")
    srv.configure(batch_delay_s=0.5, rules=[{"match": "q ", "response": "word " * 4000}])   # 20 KB answers
    p = make_params(srv.url, teacher={**BATCH, "gen": {"temperature": 0.0, "max_tokens": 8000}},
                    cache_path=str(disk / "cache.sqlite"))
    filler = disk / "someone-else.bin"

    th = fill_disk_when(lambda: "/v1/batches" in paths(srv), filler)
    try:
        with Engine.from_params(p, stage="distill") as eng:
            with pytest.raises(CacheFullError, match="cannot store LLM answers"):
                eng.run(reqs(40))
            left = eng.failed.by_reason()
    finally:
        th.join()
    assert left and set(left) == {"batch_pending"}    # left open for the rerun, not failed
    filler.unlink()
    with Engine.from_params(p, stage="distill") as eng:
        res = eng.run(reqs(40))
    assert all(r.ok for r in res) and len({r.text for r in res}) == 1
    assert paths(srv).count("/v1/batches") == 1 and paths(srv).count("/v1/files") == 1
