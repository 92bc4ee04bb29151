"""A damaged cache file loses no paid answer: it is moved aside with one line, its readable rows are
salvaged into a fresh cache (not bought again) and the spend ledger survives."""

from __future__ import annotations

import logging
import os
import random
import sqlite3

from distillery.llm import ChatRequest
from distillery.llm.cache import ResponseCache
from distillery.llm.engine import Engine

N = 600


def _reqs(n: int = N) -> list[ChatRequest]:
    return [ChatRequest(teacher="t", messages=[{"role": "user", "content": f"question number {i} " + "pad " * 20}])
            for i in range(n)]


def _fill(srv, make_params) -> tuple[object, float]:
    p = make_params(srv.url)
    with Engine.from_params(p, stage="s") as eng:
        assert all(r.ok for r in eng.run(_reqs()))
    c = ResponseCache(p.llm.cache_path)          # closing checkpointed the WAL into the main file
    try:
        return p, c.total_spend()
    finally:
        c.close()


def _rerun(srv, p, caplog) -> tuple[int, float, list[str]]:
    srv.reset()
    with caplog.at_level(logging.WARNING):
        with Engine.from_params(p, stage="s") as eng:
            assert all(r.ok for r in eng.run(_reqs()))
            new = eng.metrics()["budget"]["spent_usd"]
    c = ResponseCache(p.llm.cache_path)
    try:
        ledger = c.total_spend()
        assert len(c) == N
    finally:
        c.close()
    lines = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    return len(srv.requests()), ledger - new, lines


def test_8kb_overwritten_mid_file_is_salvaged_not_bought_again(srv, make_params, caplog):
    p, ledger = _fill(srv, make_params)
    path = p.llm.cache_path
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.seek(size // 2 // 4096 * 4096)
        fh.write(random.Random(7).randbytes(8192))
    with sqlite3.connect(path) as conn:          # what every run used to die on
        try:
            conn.execute("SELECT count(*), sum(length(text)) FROM responses").fetchone()
            damaged = False
        except sqlite3.DatabaseError:
            damaged = True
    assert damaged
    bought, kept_ledger, lines = _rerun(srv, p, caplog)
    assert len(lines) == 1 and "salvaged" in lines[0] and ".corrupt-" in lines[0]
    assert 0 < bought < N // 5                   # only the rows on the two damaged pages are bought again
    assert abs(kept_ledger - ledger) < 1e-9      # the ledger of the first run survived
    assert any(".corrupt-" in f.name for f in path.parent.iterdir())


def test_truncated_file_keeps_its_readable_rows_and_ledger(srv, make_params, caplog):
    p, ledger = _fill(srv, make_params)
    path = p.llm.cache_path
    size = path.stat().st_size
    os.truncate(path, size * 6 // 10)
    bought, kept_ledger, lines = _rerun(srv, p, caplog)
    assert len(lines) == 1
    assert 0 < bought < N * 6 // 10              # what the lost 40% held, not everything
    assert abs(kept_ledger - ledger) < 1e-9


def test_lost_ledger_pages_fall_back_to_the_salvaged_answers_costs(tmp_path, caplog):
    from distillery.llm.salvage import copy_readable_rows

    path = tmp_path / "c.sqlite"
    c = ResponseCache(path)
    for i in range(50):
        c.put(f"{i:064x}", "t", "m", f"answer {i}", "stop", 3, 4, 0.01, "s")
    c.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE spend")         # as if its pages were unreadable
    fresh = sqlite3.connect(tmp_path / "fresh.sqlite", isolation_level=None)
    from distillery.llm.cache_db import DDL

    fresh.executescript(DDL)
    got = copy_readable_rows(path, fresh)
    assert got.responses == 50 and not got.ledger_intact and abs(got.ledger_usd - 0.5) < 1e-9
    assert abs(fresh.execute("SELECT sum(usd) FROM spend").fetchone()[0] - 0.5) < 1e-9
