"""A cache that cannot take more answers (full disk, read-only) stops the stage with one line, exit 2,
before it pays for a request whose answer would be lost. The cache lives on a tiny tmpfs (root only)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _distill(tmp_path: Path, inp: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "distill.py"), "--params", "params.yaml",
                           "--input", str(inp), "--output", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_full_disk_stops_before_paying_for_an_answer_it_cannot_store(gen_params, gh, server, tmp_path, tiny_fs):
    small = tiny_fs("2m")
    cache = small / "responses.sqlite"
    gen_params(distill__sample=300, distill__max_reject_rate=1.0, llm__cache_path=str(cache))
    recs = [gh.sft(i, f"Explain topic {i} in two sentences. " + "Context words. " * 30) for i in range(300)]
    inp = gh.write_records(tmp_path / "in" / "records.jsonl", recs).parent
    server.reset()
    r = _distill(tmp_path, inp, tmp_path / "out")
    assert r.returncode == 2, r.stderr[-2000:]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "cannot store LLM answers" in errors[0] and str(cache) in errors[0]
    assert "Traceback" not in r.stderr
    paid = len(server.requests())
    with sqlite3.connect(f"file:{cache}?mode=ro", uri=True) as conn:
        stored = conn.execute("SELECT count(*) FROM responses").fetchone()[0]
    assert 0 < paid < 300 and stored == paid        # every paid answer landed; the rest was never sent


def test_read_only_cache_is_one_line_and_pays_nothing(gen_params, gh, server, tmp_path, tiny_fs):
    ro = tiny_fs("1m", "ro")
    gen_params(distill__sample=5, llm__cache_path=str(ro / "responses.sqlite"))
    inp = gh.write_records(tmp_path / "in" / "records.jsonl", [gh.sft(i, f"Explain {i}.") for i in range(5)]).parent
    server.reset()
    r = _distill(tmp_path, inp, tmp_path / "out")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")][0].count("responses.sqlite") == 1
    assert server.requests() == []
