"""Two processes sharing one cache: a request is paid for once, and `max_usd` holds across them.
Real subprocesses against the test server, which records every request it receives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from distillery.llm.cache import ResponseCache

RUNNER = r"""
import json, sys
from distillery.llm import ChatRequest
from distillery.llm.engine import Engine
from distillery.core.params import load_params
url, cache, n, salt, max_usd = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
llm = {"llm.teachers": [{"name": "t", "provider": "openai", "model": "m", "base_url": url, "api_key_env": "TEST_LLM_KEY",
       "max_concurrency": 8, "max_retries": 0, "price_input_per_1m": 10, "price_output_per_1m": 30,
       "gen": {"temperature": 0.0, "max_tokens": 32}}],
       "llm.default_teacher": "t", "llm.cache_path": cache, "llm.progress": False}
if max_usd != "none":
    llm["llm.max_usd"] = float(max_usd)
p = load_params(None, sections=("llm", "engine"), extra=llm)
reqs = [ChatRequest(teacher="t", messages=[{"role": "user", "content": f"{salt} question {i}"}]) for i in range(n)]
with Engine.from_params(p, stage="s") as eng:
    res = eng.run(reqs)
    m = eng.metrics()
print(json.dumps({"ok": sum(r.ok for r in res), "cached": sum(r.cached for r in res),
                  "refused": sum(r.error == "budget_refused" for r in res), "spent": m["budget"]["spent_usd"],
                  "errors": sorted({r.error for r in res if not r.ok and r.error != "budget_refused"})}))
"""


def _start(script, srv, cache, n, salt, max_usd="none"):
    return subprocess.Popen([sys.executable, str(script), srv.url, str(cache), str(n), salt, str(max_usd)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def test_two_processes_same_requests_pay_once(srv, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test")
    srv.configure(latency_ms=40)
    script, cache, n = tmp_path / "runner.py", tmp_path / "shared.sqlite", 200
    script.write_text(RUNNER)
    a, b = _start(script, srv, cache, n, "same"), _start(script, srv, cache, n, "same")
    ra, rb = _result(a), _result(b)
    assert ra["ok"] == rb["ok"] == n
    sent = [r["body"]["messages"][0]["content"] for r in srv.requests()]
    assert len(sent) == n and len(set(sent)) == n                  # each request paid for exactly once
    assert ra["cached"] + rb["cached"] >= n                          # what one paid for, the other took
    c = ResponseCache(cache)
    try:
        assert len(c) == n and abs(c.total_spend() - (ra["spent"] + rb["spent"])) < 1e-9
    finally:
        c.close()


def test_max_usd_holds_across_two_processes(srv, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test")
    srv.configure(latency_ms=30)
    script, cache = tmp_path / "runner.py", tmp_path / "shared.sqlite"
    script.write_text(RUNNER)
    # one request: ~4 prompt + ~6 completion tokens ($0.0002); worst case (prompt bytes + 32) about $0.0011
    cap = 0.0303
    a, b = _start(script, srv, cache, 300, "alpha", cap), _start(script, srv, cache, 300, "beta", cap)
    ra, rb = _result(a), _result(b)
    assert ra["refused"] > 0 and rb["refused"] > 0 and ra["errors"] == rb["errors"] == []
    c = ResponseCache(cache)
    try:
        ledger = c.total_spend()
    finally:
        c.close()
    assert abs(ledger - (ra["spent"] + rb["spent"])) < 1e-9
    assert ledger <= cap + 1e-12                                     # the two together stay under the cap
    assert ra["ok"] + rb["ok"] == len(srv.requests())              # refused ones were never sent


def test_a_dead_process_reservation_is_stale(srv, tmp_path, monkeypatch):
    """A process killed mid-call leaves claims behind; the next run takes them over instead of waiting."""
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test")
    srv.configure(latency_ms=200)
    script, cache = tmp_path / "runner.py", tmp_path / "shared.sqlite"
    script.write_text(RUNNER)
    p = _start(script, srv, cache, 40, "killed")
    deadline = time.time() + 60
    while len(srv.requests()) < 8 and time.time() < deadline:
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    srv.configure(latency_ms=0)
    started = time.time()
    r = _result(_start(script, srv, cache, 40, "killed"))
    assert r["ok"] == 40 and time.time() - started < 60
