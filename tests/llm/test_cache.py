"""Response cache: crash safety (kill -9), corrupt files, bulk lookups."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from distillery.llm import ChatRequest

from distillery.llm.engine import Engine
from distillery.llm.cache import ResponseCache

RUNNER = r"""
import json, os, sys
from distillery.llm import ChatRequest
from distillery.llm.engine import Engine
from distillery.core.params import load_params
url, cache, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = load_params(None, sections=("llm", "engine"), extra={"llm.teachers": [{"name": "t", "provider": "openai", "model": "m", "base_url": url,
    "api_key_env": "TEST_LLM_KEY", "max_concurrency": 4, "price_input_per_1m": 1, "price_output_per_1m": 1}],
    "llm.default_teacher": "t", "llm.cache_path": cache, "llm.progress": False})
with Engine.from_params(p, stage="s") as eng:
    res = eng.run([ChatRequest(teacher="t", messages=[{"role": "user", "content": f"q{i}"}]) for i in range(n)])
print(json.dumps({"ok": sum(r.ok for r in res), "cached": sum(r.cached for r in res)}))
"""


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_pays_nothing_twice(srv, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test")
    srv.configure(latency_ms=40)
    cache = tmp_path / "c.sqlite"
    n = 120
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    proc = subprocess.Popen([sys.executable, str(script), srv.url, str(cache), str(n)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while len(srv.requests()) < 30 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    first_sent = len(srv.requests())
    assert 30 <= first_sent < n
    kept = len(ResponseCache(cache))  # what the killed run had completed (committed)
    assert kept >= first_sent - 4     # at most the 4 in flight were lost
    srv.reset()
    out = subprocess.run([sys.executable, str(script), srv.url, str(cache), str(n)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary == {"ok": n, "cached": kept}
    resent = {r["body"]["messages"][0]["content"] for r in srv.requests()}
    assert len(srv.requests()) == n - kept          # nothing completed was paid again
    assert len(resent) == n - kept


def test_corrupt_cache_is_moved_aside_and_rebuilt(srv, make_params, tmp_path, caplog):
    p = make_params(srv.url)
    cache = tmp_path / "cache.sqlite"
    cache.write_bytes(b"this is not a sqlite database" * 100)
    with caplog.at_level(logging.WARNING):
        with Engine.from_params(p, stage="s") as eng:
            (r,) = eng.run([ChatRequest(teacher="t", messages=[{"role": "user", "content": "hi"}])])
    assert r.ok
    assert any("damaged" in rec.getMessage() for rec in caplog.records)
    aside = [f for f in tmp_path.iterdir() if ".corrupt-" in f.name]
    assert aside and aside[0].read_bytes().startswith(b"this is not")
    assert len(ResponseCache(cache)) == 1


def test_cache_with_damaged_header_is_rebuilt(tmp_path, caplog):
    path = tmp_path / "c.sqlite"
    c = ResponseCache(path)
    c.put("k", "t", "m", "x", "stop", 1, 1, 0.0, "s")
    c.close()
    data = bytearray(path.read_bytes())
    data[:16] = b"garbage-garbage!"
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        c2 = ResponseCache(path)
    assert any("damaged" in r.getMessage() for r in caplog.records)
    assert c2.get("k") is None
    c2.put("new", "t", "m", "y", "stop", 1, 1, 0.0, "s")
    assert c2.get("new")["text"] == "y"


def test_cache_ledger_and_bulk_get(tmp_path):
    c = ResponseCache(tmp_path / "c.sqlite")
    for i in range(1200):
        c.put(f"k{i}", "t", "m", f"text {i}", "stop", 3, 4, 0.001, "distill" if i % 2 else "score")
    got = c.get_many([f"k{i}" for i in range(0, 1300, 7)])
    assert len(got) == len(range(0, 1200, 7)) and got["k7"]["text"] == "text 7"
    assert {k: round(v, 9) for k, v in c.spend().items()} == {"distill": 0.6, "score": 0.6}
    assert abs(c.total_spend() - 1.2) < 1e-9


def test_cache_path_from_params_is_the_file_used(srv, make_params, tmp_path):
    p = make_params(srv.url, cache_path=str(tmp_path / "elsewhere" / "r.sqlite"))
    with Engine.from_params(p, stage="s") as eng:
        eng.run([ChatRequest(teacher="t", messages=[{"role": "user", "content": "hi"}])])
    assert len(ResponseCache(p.llm.cache_path)) == 1
    assert p.llm.cache_path == tmp_path / "elsewhere" / "r.sqlite"


def test_snapshot_and_merge_share_responses_between_machines(tmp_path):
    a = ResponseCache(tmp_path / "a.sqlite")
    for i in range(50):
        a.put(f"k{i}", "t", "m", f"a{i}", "stop", 1, 1, 0.01, "s")
    snap = a.snapshot(tmp_path / "remote" / "responses.sqlite")
    b = ResponseCache(tmp_path / "b.sqlite")
    b.put("k0", "t", "m", "local answer wins", "stop", 1, 1, 0.0, "s")
    b.put("own", "t", "m", "b", "stop", 1, 1, 0.0, "s")
    assert b.merge_from(snap) == 49
    assert b.get("k0")["text"] == "local answer wins" and b.get("k49")["text"] == "a49" and len(b) == 51
    assert b.total_spend() == 0.0  # spend stays with the machine that paid it
    (tmp_path / "junk.sqlite").write_bytes(b"junk" * 100)
    assert b.merge_from(tmp_path / "junk.sqlite") == 0


def test_the_write_ahead_log_stays_small_while_answers_are_stored(tmp_path):
    """The engine's connection leaves checkpoints to a thread (no stall on the event loop); the log must
    still be folded back into the database as a run goes on, not grow with every answer."""
    c = ResponseCache(tmp_path / "c.sqlite")
    wal = tmp_path / "c.sqlite-wal"
    try:
        sizes = []
        for r in range(8):
            c.put_many([(f"k{r}-{i}", "t", "m", "x" * 2000, "stop", 1, 1, 0.0) for i in range(200)], "s")
            sizes.append(wal.stat().st_size)
            time.sleep(0.7)   # > the checkpointer's period
        assert len(c) == 1600
    finally:
        c.close()
    # 8 x 400 KB of answers: an unchecked log would pass 3.2 MB, SQLite's own autocheckpoint lets it reach 4 MB
    assert max(sizes) < 1_500_000, sizes
    again = ResponseCache(tmp_path / "c.sqlite")
    try:
        assert again.get("k7-199")["text"] == "x" * 2000
    finally:
        again.close()
