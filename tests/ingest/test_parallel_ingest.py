"""A large source is adapted in forked workers; what it writes must not depend on how many."""

import json

import pytest

from distillery.core.parallel import POOL_MIN_BYTES
from distillery.sources import ingest as ingest_mod
from distillery.sources.config import IngestDefaults, SourceSpec
from distillery.sources.ingest import ingest_source

PAD = "lorem ipsum dolor sit amet " * 12


def messy_lines(n: int, salt: str) -> list[str]:
    """Good alpaca rows with, every so often, each kind of bad row and blank lines."""
    out = []
    for i in range(n):
        if i % 97 == 5:
            out.append("{not json")                                      # malformed_json
        elif i % 89 == 7:
            out.append(json.dumps({"instruction": "", "output": "x"}))   # empty turn
        elif i % 83 == 11:
            out.append(json.dumps([1, 2]))                               # not an object
        elif i % 79 == 13:
            out.append("   ")                                            # blank: not a row
        else:
            out.append(json.dumps({"instruction": f"{salt} question {i}: {PAD}", "output": f"answer {i} {PAD}"}))
    return out


def run(tmp_path, spec: dict, workers: int, tag: str):
    out = tmp_path / f"out_{tag}"
    res = ingest_source("t", SourceSpec.model_validate({"adapter": "alpaca", **spec}),
                        IngestDefaults(workers=workers), out, max_row_bytes=1 << 20)
    return res, (out / "records.jsonl").read_bytes(), (out / "quarantine.jsonl").read_bytes()


@pytest.mark.parametrize("limit", [None, 7_777])
def test_workers_write_the_same_bytes_as_one_process(tmp_path, monkeypatch, limit):
    monkeypatch.setattr(ingest_mod, "BLOCK_ROWS", 500)      # many blocks, so order across them is tested
    d = tmp_path / "shards"
    d.mkdir()
    (d / "a.jsonl").write_text("\ufeff" + "\n".join(messy_lines(4_000, "a")) + "\n", encoding="utf-8")
    (d / "b.jsonl").write_text("\n".join(messy_lines(5_000, "b")), encoding="utf-8")   # no final newline
    (d / "c.jsonl").write_text("", encoding="utf-8")
    assert sum(f.stat().st_size for f in d.iterdir()) > POOL_MIN_BYTES   # big enough to get a pool
    one = run(tmp_path, {"path": d, "limit": limit}, 1, "one")
    two = run(tmp_path, {"path": d, "limit": limit}, 2, "two")
    assert one[1] == two[1] and one[2] == two[2]
    assert one[0].metrics == two[0].metrics
    m = two[0].metrics
    recs = [json.loads(x) for x in two[1].splitlines()]
    quarantined = [json.loads(x) for x in two[2].splitlines()]
    # every row read is a record or a quarantine entry; rows are numbered across blocks and files
    assert m["records_in"] == len(recs) + len(quarantined) == m["rows_read"]
    assert {q["reason"] for q in quarantined} >= {"malformed_json", "not_an_object"}
    a_rows = [r["source"]["row"] for r in recs if r["source"]["file"].endswith("a.jsonl")]
    assert a_rows == sorted(a_rows) and a_rows[0] == 0
    if limit is None:
        assert m["empty_files"] == [str(d / "c.jsonl")]
        assert recs[-1]["messages"][0]["content"].startswith("b question 4999:")
    else:
        assert m["rows_read"] == limit and m["empty_files"] == []
