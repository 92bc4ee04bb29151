"""Engine-level accounting: the failed-requests file (latest run, resolved units dropped), teachers taken
down, dry-run stand-ins, a claim held by another cache owner, and a store failure that halts paying."""

from __future__ import annotations

import os
import sqlite3
import threading

import pytest
from pydantic import BaseModel, Field

from distillery.llm import ChatRequest, ChatResult
from distillery.llm.cache import CacheWriteError, ResponseCache
from distillery.llm.dryrun import embedded_tokens, stand_in
from distillery.llm.engine import CacheFullError, Engine
from distillery.llm.failed import FailedLog
from distillery.llm.parsing import parse_structured, schema_json


def chat(i, tag: str = "") -> ChatRequest:
    return ChatRequest(teacher="t", messages=[{"role": "user", "content": f"question {i}"}], tag=tag)


def _fail(error: str, teacher: str = "t") -> ChatResult:
    return ChatResult(ok=False, teacher=teacher, model="m", error=error, detail="d")


def test_failed_log_keeps_one_line_per_unit_and_drops_resolved_ones(tmp_path):
    path = tmp_path / "failed.jsonl"
    path.write_text('{"old": "line from an earlier run"}\n')
    log = FailedLog(path)
    log.flush()
    assert path.read_text() == ""                                    # describes this run only
    a, b, c = chat(1, "unit-a"), chat(2, "unit-b"), chat(3)
    log.add(a, _fail("connection", "dead"))
    log.add(a, _fail("server_error", "small"))                       # the unit's failover failed too
    log.add(b, _fail("timeout"))
    log.add(c, _fail("budget_refused"), key="k3")
    log.resolve(b)                                                   # a later request of unit-b succeeded
    rows = {r["tag"]: r for r in log.rows}
    assert set(rows) == {"unit-a", ""} and rows["unit-a"]["error"] == "server_error"
    assert rows["unit-a"]["earlier"] == [{"teacher": "dead", "error": "connection", "detail": "d"}]
    assert log.by_reason() == {"server_error": 1, "budget_refused": 1}
    log.resolve(chat(3), key="k3")
    assert log.by_reason() == {"server_error": 1}


def test_a_warm_cache_rerun_writes_the_same_failed_requests_file(srv, make_params, tmp_path):
    """The file is a DVC output of every generation stage: the truncated answer served from the cache must
    give the same line as when it was paid for, or a rerun would change the output and rerun what follows."""
    srv.configure(rules=[{"match": "question 1$", "response": "cut short", "finish_reason": "length"}])
    p = make_params(srv.url)
    files = []
    for run in range(2):
        path = tmp_path / f"failed-{run}.jsonl"
        with Engine.from_params(p, stage="s", failed_path=path) as eng:
            res = eng.run([chat(0), chat(1)])
        assert [r.error for r in res] == [None, "truncated"] and [r.cached for r in res] == [bool(run)] * 2
        files.append(path.read_bytes())
    assert len(srv.requests()) == 2 and files[0] == files[1] and b'"truncated"' in files[0]


def test_a_teacher_marked_down_fails_fast_but_cached_answers_still_come(srv, make_params):
    p = make_params(srv.url)
    with Engine.from_params(p, stage="s") as eng:
        eng.run([chat(0)])
    srv.reset()
    with Engine.from_params(p, stage="s") as eng:
        eng.mark_down("t", "failed 5 times in a row")
        res = eng.run([chat(0), chat(1), chat(2)])
        m = eng.metrics()
    assert res[0].ok and res[0].cached
    assert [r.error for r in res[1:]] == ["teacher_down", "teacher_down"] and srv.requests() == []
    assert m["outstanding_by_reason"] == {"teacher_down": 2} and m["teachers_down"] == {"t": "failed 5 times in a row"}


class Verdict(BaseModel):
    score: int = Field(ge=1, le=10)
    reason: str
    tags: list[str] = Field(min_length=1)


class Nested(BaseModel):
    verdict: Verdict
    winner: str = Field(pattern="^(A|B)$", json_schema_extra={"enum": ["A", "B"]})


def test_dry_run_stand_ins_parse_under_their_schema_and_mark_their_bound():
    for model in (Verdict, Nested):
        text = stand_in(64, schema_json(model))
        assert isinstance(parse_structured(text, model), model)
    plain = stand_in(64, None)
    assert embedded_tokens(plain) == 64 and len(plain.splitlines()) >= 10
    assert embedded_tokens(f"user said: {plain}\n and again {plain}") == 128


def test_dry_run_answers_every_request_and_calls_nothing(srv, make_params):
    with Engine.from_params(make_params(srv.url), stage="s", dry_run=True) as eng:
        res = eng.run([chat(1), ChatRequest(teacher="t", messages=[{"role": "user", "content": "judge"}],
                                            schema=Verdict)])
    assert all(r.ok and r.detail == "dry_run" for r in res) and isinstance(res[1].parsed, Verdict)
    assert srv.requests() == []


def test_a_request_another_owner_is_paying_for_is_waited_on_not_paid(srv, make_params):
    p = make_params(srv.url)
    with Engine.from_params(p, stage="s") as eng:
        key = eng.items([chat(7)])[0].key
    other = ResponseCache(p.llm.cache_path)                          # another process's claim (same file)
    assert other.claim(key, "s", 0.001, None).value == "mine"
    timer = threading.Timer(0.4, lambda: other.put(key, "t", "test-model", "their answer", "stop", 2, 2, 0.0, "s"))
    timer.start()
    try:
        with Engine.from_params(p, stage="s") as eng:
            (r,) = eng.run([chat(7)])
    finally:
        timer.join()
        other.close()
    assert r.ok and r.cached and r.text == "their answer" and srv.requests() == []


def test_an_answer_that_cannot_be_stored_halts_before_the_next_payment(srv, make_params, monkeypatch):
    p = make_params(srv.url, teacher={"max_concurrency": 1})
    with Engine.from_params(p, stage="s") as eng:
        commit = eng.cache.commit

        def full(rows, *a, **k):   # a commit that stores an answer fails; claims alone still land
            if rows:
                raise CacheWriteError("disk full: database or disk is full")
            return commit(rows, *a, **k)
        monkeypatch.setattr(eng.cache, "commit", full)
        with pytest.raises(CacheFullError, match=r"cannot store LLM answers \(disk full.*1 paid answer"):
            eng.run([chat(i) for i in range(5)])
    assert len(srv.requests()) == 1                                  # one paid and lost, none after it


def test_a_disk_without_room_for_the_answers_in_flight_halts_before_paying(srv, make_params, tiny_fs):
    """The guard holds room on the cache's disk for every answer in flight before it pays: on a 1 MB disk it
    cannot, so nothing is sent and the run stops with one line saying how much it wanted."""
    disk = tiny_fs("1m")
    p = make_params(srv.url, teacher={"max_concurrency": 4}, cache_path=str(disk / "cache.sqlite"))
    with Engine.from_params(p, stage="s") as eng:
        with pytest.raises(CacheFullError, match=r"disk nearly full: cannot set aside \d+\.\d MB for the answers"):
            eng.run([chat(i) for i in range(8)])
    assert srv.requests() == []


def test_a_disk_filled_by_another_writer_mid_run_still_stores_every_paid_answer(srv, make_params, tiny_fs,
                                                                                  fill_disk_when, tmp_path):
    """Another writer takes the cache disk's last free byte while 8 answers are in flight (a free-space
    reading taken before paying cannot see it coming): the guard stops paying, gives back the room it held,
    and every answer it paid for lands in it."""
    disk = tiny_fs("6m")
    cache = disk / "cache.sqlite"
    srv.configure(latency_ms=300, rules=[{"match": "question", "response": "word " * 4000}])  # 20 KB answers:
    p = make_params(srv.url, teacher={"max_concurrency": 8, "gen": {"temperature": 0.0, "max_tokens": 8000}},
                    cache_path=str(cache))                                                 # new WAL pages

    filler = fill_disk_when(lambda: len(srv.requests()) >= 8, disk / "someone-else.bin")
    try:
        with Engine.from_params(p, stage="s", failed_path=tmp_path / "failed.jsonl") as eng:
            with pytest.raises(CacheFullError) as stopped:
                eng.run([chat(i) for i in range(64)])
    finally:
        filler.join()
    paid = len(srv.requests())
    with sqlite3.connect(f"file:{cache}?mode=ro", uri=True) as conn:
        stored = conn.execute("SELECT count(*) FROM responses").fetchone()[0]
    assert "cannot store LLM answers" in str(stopped.value) and "could not be stored" not in str(stopped.value)
    assert 8 <= paid < 64 and stored == paid
    left = {f.name for f in disk.iterdir()} - {"cache.sqlite", "cache.sqlite-wal", "cache.sqlite-shm"}
    assert left == {"someone-else.bin"}                    # the room the guard held left no file behind


def test_a_closed_engine_gives_the_room_it_held_back_to_the_disk(srv, make_params, tiny_fs):
    """The room held for answers in flight is for the run only: once the engine is closed, the process (a
    notebook, a stage that goes on) holds nothing on the cache's disk beyond the cache's own files."""
    disk = tiny_fs("6m")
    p = make_params(srv.url, teacher={"max_concurrency": 4}, cache_path=str(disk / "cache.sqlite"))
    free_before = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    eng = Engine.from_params(p, stage="s")
    with eng:
        assert all(r.ok for r in eng.run([chat(i) for i in range(8)]))
    used = free_before - os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    files = sum(f.stat().st_blocks * 512 for f in disk.iterdir())
    assert len(srv.requests()) == 8 and used <= files + (64 << 10)
