"""The same rows as .json, .jsonl, .jsonl.gz, .csv and .parquet give the same records."""

import csv
import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillery.sources.config import IngestDefaults, SourceSpec
from distillery.sources.ingest import ingest_source
from distillery.sources.readers import detect_format

ROWS = [
    {"instruction": "Write a haiku about rain.", "input": "", "output": "Soft rain on the roof\nwhispers..."},
    {"instruction": "Add the numbers.", "input": "2, 3", "output": "5"},
    {"instruction": "Caf\u0065\u0301 means?", "input": "<noinput>", "output": "Coffee  shop,\tin French."},
]


def write(path, fmt):
    if fmt == "json":
        path.write_text(json.dumps(ROWS), encoding="utf-8")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    elif fmt == "jsonl.gz":
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in ROWS)
    elif fmt == "csv":
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(ROWS[0]))
            w.writeheader()
            w.writerows(ROWS)
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(ROWS), path, row_group_size=2)


def run(tmp_path, path, **spec):
    s = SourceSpec.model_validate({"path": path, "adapter": "alpaca", **spec})
    res = ingest_source("t", s, IngestDefaults(), tmp_path / f"out_{path.name}", max_row_bytes=1 << 20)
    lines = (tmp_path / f"out_{path.name}" / "records.jsonl").read_text(encoding="utf-8").splitlines()
    return res, [json.loads(x) for x in lines]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "jsonl.gz", "csv", "parquet"])
def test_each_format_reads_the_same_messages(tmp_path, fmt):
    path = tmp_path / f"rows.{fmt}"
    write(path, fmt)
    assert detect_format(path) == fmt
    res, recs = run(tmp_path, path)
    assert res.metrics["records_out"] == 3 and res.metrics["rejected"] == 0
    assert [r["messages"] for r in recs] == [
        [{"role": "user", "content": "Write a haiku about rain."},
         {"role": "assistant", "content": "Soft rain on the roof\nwhispers..."}],
        [{"role": "user", "content": "Add the numbers.\n\n2, 3"}, {"role": "assistant", "content": "5"}],
        # NFC folds e + combining accent; "<noinput>" counts as no input; runs of spaces collapse
        [{"role": "user", "content": "Caf\u00e9 means?"}, {"role": "assistant", "content": "Coffee shop, in French."}],
    ]
    assert [r["source"]["row"] for r in recs] == [0, 1, 2]


def test_ids_do_not_depend_on_the_format(tmp_path):
    ids = []
    for fmt in ("jsonl", "parquet"):
        path = tmp_path / f"rows.{fmt}"
        write(path, fmt)
        ids.append([r["id"] for r in run(tmp_path, path)[1]])
    assert ids[0] == ids[1] and len(set(ids[0])) == 3


def test_directory_source_reads_every_file_sorted_and_limit_takes_first_rows(tmp_path):
    d = tmp_path / "shards"
    d.mkdir()
    write(d / "b.jsonl", "jsonl")
    write(d / "a.csv", "csv")
    (d / "notes.txt").write_text("ignored")
    res, recs = run(tmp_path, d)
    assert res.metrics["files"] == [str(d / "a.csv"), str(d / "b.jsonl")]
    assert len(recs) == 6 and len({r["id"] for r in recs}) == 6
    res, recs = run(tmp_path, d, limit=4)
    assert [(r["source"]["file"].rsplit("/", 1)[1], r["source"]["row"]) for r in recs] == [
        ("a.csv", 0), ("a.csv", 1), ("a.csv", 2), ("b.jsonl", 0)]


def test_explicit_format_overrides_the_suffix(tmp_path):
    path = tmp_path / "rows.data"
    write(path, "jsonl")
    res, recs = run(tmp_path, path, format="jsonl")
    assert len(recs) == 3
