"""The one filter mechanism: checks return a reason, rejects are written with it and counted."""

import json
from collections import Counter

import pytest

from distillery.core.errors import RejectRateError
from distillery.core.io import BadLine
from distillery.core.quarantine import Gate, Quarantine, StageCounter, apply_checks, json_entry


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


def test_entries_made_elsewhere_keep_the_record_exactly_as_read_and_are_counted(tmp_path):
    """A worker's quarantine lines (records spliced in from their input bytes, no re-serialisation) land in
    the file in the order they are handed over, between the parent's own rejects, and count once each."""
    raw = '{"id": "x1", "messages": [{"role": "user", "content": "héllo \\u2603"}], "n": 1.50}\r\n'.encode()
    qpath = tmp_path / "q.jsonl"
    with Quarantine(qpath, "dedup") as q:
        q.reject("bad_json", BadLine("bad_json", 3, "{oops", "Expecting value"), file="in.jsonl", line=3)
        batch = json_entry("dedup", "near_duplicate", raw, file="in.jsonl", line=7, duplicate_of="x0",
                           similarity=0.91)
        q.extend(batch.encode(), Counter({"near_duplicate": 1}))
        part = tmp_path / "part.q"            # a worker's share, written to a file and appended by the kernel
        part.write_text(json_entry("dedup", "exact_duplicate", b'{"id": "x2"}', file="in.jsonl", line=8,
                                   duplicate_of="x0", similarity=1.0), encoding="utf-8")
        q.extend_from_file(part, Counter({"exact_duplicate": 1}))
        q.reject("empty_text", {"id": "x3"}, file="in.jsonl", line=9)
    rows = [json.loads(line) for line in qpath.read_text().splitlines()]
    assert [r["reason"] for r in rows] == ["bad_json", "near_duplicate", "exact_duplicate", "empty_text"]
    assert rows[1] == {"reason": "near_duplicate", "stage": "dedup", "file": "in.jsonl", "line": 7,
                       "duplicate_of": "x0", "similarity": 0.91, "record": json.loads(raw)}
    assert rows[2]["record"] == {"id": "x2"} and rows[3]["record"] == {"id": "x3"}
    assert q.counts == {"bad_json": 1, "near_duplicate": 1, "exact_duplicate": 1, "empty_text": 1}
    assert q.total == 4
