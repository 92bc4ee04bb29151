"""The ordered process pool: records checked and annotated in workers come back as one process reads them."""

from __future__ import annotations

from pathlib import Path

from distillery.core import parallel
from distillery.core.quarantine import Quarantine, StageCounter
from distillery.generation.common import read_annotated

BAD = Path(__file__).resolve().parents[1] / "data" / "bad_records.jsonl"


def _words(rec: dict) -> int:
    """An annotation computed in the worker (as score's heuristics are)."""
    return sum(len(str(m.get("content", "")).split()) for m in rec["messages"])


def _read(tmp_path: Path, name: str, workers: int) -> tuple[list, bytes, dict]:
    counter = StageCounter()
    with Quarantine(tmp_path / name / "quarantine.jsonl", "t", counter) as q:
        got = list(read_annotated([tmp_path / "in" / "a.jsonl", tmp_path / "in" / "b.jsonl"], q, counter, 4000, _words, workers=workers, block_lines=3))
    return got, (tmp_path / name / "quarantine.jsonl").read_bytes(), counter.as_metrics()


def test_workers_give_the_records_annotations_and_quarantine_of_one_process(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel, "POOL_MIN_BYTES", 0)      # a pool even for this small input
    lines = BAD.read_bytes().splitlines()
    good = lines[:5]                                         # the corpus opens with 5 good records
    (tmp_path / "in").mkdir()
    # a BOM, every bad shape of the shared corpus, blank lines, and ids seen before in other blocks
    (tmp_path / "in" / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n\n  \n" + b"\n".join(good))
    (tmp_path / "in" / "b.jsonl").write_bytes(b"\n".join(good + [b'{"id": "' + b"x" * 5000 + b'"}']) + b"\n")
    one = _read(tmp_path, "one", 1)
    two = _read(tmp_path, "two", 2)
    assert one == two
    records, quarantined, counts = one
    assert records and all(n == _words(r) for r, n in records)
    assert b"duplicate_id" in quarantined and b"record_too_large" in quarantined
    assert len(records) == 4 and counts["records_in"] == len(records) + counts["rejected"]
