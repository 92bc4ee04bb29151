"""The one filter mechanism: checks return a reason, rejects are written with it and counted."""

import json

import pytest

from distillery.core.errors import RejectRateError
from distillery.core.quarantine import Gate, Quarantine, StageCounter, apply_checks


def test_apply_checks_quarantines_with_first_reason_and_counts(tmp_path):
    recs = [{"id": str(i), "n": i} for i in range(10)]
    checks = [lambda r: "odd" if r["n"] % 2 else None, lambda r: "big" if r["n"] > 6 else None]
    counter = StageCounter()
    qpath = tmp_path / "q.jsonl"
    with Quarantine(qpath, "test", counter) as q:
        kept = list(apply_checks(recs, checks, q, counter))
    assert q.counts is counter.rejects, "one count: the quarantine counts into the stage's counter"
    assert [r["n"] for r in kept] == [0, 2, 4, 6]
    rows = [json.loads(x) for x in qpath.read_text().splitlines()]
    assert [(r["reason"], r["record"]["n"]) for r in rows] == [
        ("odd", 1), ("odd", 3), ("odd", 5), ("odd", 7), ("big", 8), ("odd", 9)]
    m = counter.as_metrics()
    assert m == {"records_in": 10, "records_out": 4, "rejected": 6, "reject_rate": 0.6,
                 "rejects_by_reason": {"big": 1, "odd": 5}}


def test_reject_rate_over_threshold_stops_with_one_line(tmp_path):
    c = StageCounter()
    c.records_in, c.records_out = 100, 90
    c.rejects.update({"empty_turn": 7, "role_order": 3})
    with pytest.raises(RejectRateError, match=r"ingest: reject rate 10.0% \(10/100\) exceeds ingest.max_reject_rate=5.0%"
                                              r"; top reasons: empty_turn=7, role_order=3"):
        Gate(0.05, "ingest.max_reject_rate").check("ingest", c, tmp_path / "q.jsonl")
    Gate(0.2, "ingest.max_reject_rate").check("ingest", c, tmp_path / "q.jsonl")


def test_reject_json_keeps_the_record_exactly_as_read(tmp_path):
    """Records quarantined from their input bytes (no re-serialisation) are the same JSON objects."""
    raw = '{"id": "x1", "messages": [{"role": "user", "content": "héllo \\u2603"}], "n": 1.50}\r\n'.encode()
    qpath = tmp_path / "q.jsonl"
    with Quarantine(qpath, "dedup") as q:
        q.reject_json("near_duplicate", raw, file="in.jsonl", line=7, duplicate_of="x0", similarity=0.91)
    row = json.loads(qpath.read_text())
    assert row == {"reason": "near_duplicate", "stage": "dedup", "file": "in.jsonl", "line": 7,
                   "duplicate_of": "x0", "similarity": 0.91, "record": json.loads(raw)}
    assert q.counts == {"near_duplicate": 1}
