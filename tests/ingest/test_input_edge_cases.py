"""Edge cases real files have: a UTF-8 BOM on JSON lines, NaN/Infinity where text belongs, empty
files, and a changed file whose new sha256 pin must be copyable from the error line."""

import gzip
import hashlib
import json

from distillery.core.io import read_stage_metrics

BOM = b"\xef\xbb\xbf"


def _line(i: int) -> bytes:
    return json.dumps({"instruction": f"Say {i}.", "output": f"{i}!"}).encode() + b"\n"


def test_utf8_bom_on_jsonl_is_not_data(ingest_cli, tmp_path, jsonl):
    d = tmp_path / "bom"
    d.mkdir()
    (d / "a.jsonl").write_bytes(BOM + _line(1) + _line(2))
    (d / "b.jsonl.gz").write_bytes(gzip.compress(BOM + _line(3)))
    (d / "c.jsonl").write_bytes(BOM + b"\n" + _line(4))              # a BOM alone on a blank first line
    (d / "d.jsonl").write_bytes(BOM + b'{"instruction": "broken\n' + _line(5))
    p = ingest_cli("--input", "bom", "--adapter", "alpaca", "--output", "out", "--max-reject-rate", "0.5")
    assert p.returncode == 0, p.stderr
    recs = jsonl(tmp_path / "out/records.jsonl")
    assert [(r["messages"][1]["content"], r["source"]["line"]) for r in recs] == [
        ("1!", 1), ("2!", 2), ("3!", 1), ("4!", 2), ("5!", 2)]
    (q,) = jsonl(tmp_path / "out/quarantine.jsonl")                 # a bad first line stays bad
    assert (q["reason"], q["line"], q["file"].endswith("d.jsonl")) == ("malformed_json", 1, True)


def _refuse(constant: str):
    raise ValueError(f"{constant} is not strict JSON")


def test_non_finite_numbers_in_text_fields_are_rejected(ingest_cli, tmp_path, jsonl):
    user = {"role": "user", "content": "What is 0/0?"}
    lines = ['{"messages": [%s, {"role": "assistant", "content": %s}]}' % (json.dumps(user), v)
             for v in ("NaN", "Infinity", "-Infinity", "42", '"undefined"')]
    (tmp_path / "n.jsonl").write_text("\n".join(lines) + "\n")
    p = ingest_cli("--input", "n.jsonl", "--adapter", "openai_messages", "--output", "out", "--max-reject-rate", "1")
    assert p.returncode == 0, p.stderr
    assert [r["messages"][1]["content"] for r in jsonl(tmp_path / "out/records.jsonl")] == ["42", "undefined"]
    q = [json.loads(x, parse_constant=_refuse) for x in (tmp_path / "out/quarantine.jsonl").read_text().splitlines()]
    assert [(e["reason"], e["line"]) for e in q] == [("non_finite_number", 1), ("non_finite_number", 2),
                                                     ("non_finite_number", 3)]
    assert "NaN" in q[0]["detail"] and q[2]["record"]["messages"][1]["content"] == "-Infinity"
    assert read_stage_metrics(tmp_path / "out/metrics.json")["rejects_by_reason"] == {"non_finite_number": 3}


def test_empty_file_warns_and_counts_zero(ingest_cli, tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    p = ingest_cli("--input", "empty.jsonl", "--adapter", "alpaca", "--output", "out")
    assert p.returncode == 0, p.stderr
    warnings = [ln for ln in p.stderr.splitlines() if " WARNING " in ln]
    assert len(warnings) == 1 and "empty.jsonl holds no rows (empty file)" in warnings[0]
    m = read_stage_metrics(tmp_path / "out/metrics.json")
    assert (m["records_in"], m["records_out"], m["rows_read"], m["empty_files"]) == (0, 0, 0, ["empty.jsonl"])
    assert (tmp_path / "out/records.jsonl").read_bytes() == b""


def test_empty_files_of_every_format_in_a_directory(ingest_cli, tmp_path, jsonl):
    d = tmp_path / "src"
    d.mkdir()
    for name in ("a.json", "b.csv", "c.parquet", "d.jsonl.gz"):
        (d / name).write_bytes(b"")
    (d / "e.json").write_text("[]\n")
    (d / "f.csv").write_text("instruction,output\n")
    (d / "g.jsonl").write_bytes(b"\n\n")
    (d / "h.jsonl").write_bytes(_line(1))
    p = ingest_cli("--input", "src", "--adapter", "alpaca", "--output", "out")
    assert p.returncode == 0, p.stderr
    assert sum(" WARNING " in ln for ln in p.stderr.splitlines()) == 7
    m = read_stage_metrics(tmp_path / "out/metrics.json")
    assert m["records_out"] == 1 and [f.rsplit("/", 1)[1] for f in m["empty_files"]] == [
        "a.json", "b.csv", "c.parquet", "d.jsonl.gz", "e.json", "f.csv", "g.jsonl"]


def test_sha256_mismatch_prints_both_full_digests(ingest_inproc, tmp_path):
    (tmp_path / "a.jsonl").write_bytes(_line(1))
    actual = hashlib.sha256(_line(1)).hexdigest()
    pin = "ab" * 32
    r = ingest_inproc("--source", "a", "--output", "out",
                      params={"ingest": {"sources": {"a": {"path": "a.jsonl", "adapter": "alpaca", "sha256": pin}}}})
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"has sha256 {actual}," in r.stderr and f"pin {pin};" in r.stderr
