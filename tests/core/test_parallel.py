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


def test_a_repeated_id_is_rejected_after_its_first_record_within_a_block_and_across_blocks(tmp_path, monkeypatch):
    """The first record of an id wins, as a set of id strings would decide, whatever the blocks and workers."""
    monkeypatch.setattr(parallel, "POOL_MIN_BYTES", 0)
    first = BAD.read_bytes().splitlines()[0]
    import json

    base = json.loads(first)
    ids = ["a", "b", "a", "c", "b", "a", "d", "é", "é"]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "r.jsonl").write_text("".join(json.dumps({**base, "id": i}) + "\n" for i in ids))
    for workers, block in ((1, 2), (2, 2), (1, 100), (2, 3)):
        counter = StageCounter()
        out = tmp_path / f"q{workers}-{block}.jsonl"
        with Quarantine(out, "t", counter) as q:
            kept = [r["id"] for r, _ in read_annotated([tmp_path / "in" / "r.jsonl"], q, counter, 4000,
                                                       workers=workers, block_lines=block)]
        assert kept == ["a", "b", "c", "d", "é"], (workers, block)
        rejected = [json.loads(line) for line in out.read_text().splitlines()]
        assert [(e["reason"], e["line"]) for e in rejected] == [("duplicate_id", n) for n in (3, 5, 6, 9)]
