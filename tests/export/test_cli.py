"""scripts/export.py as a user runs it: options, one-line errors, reject-rate threshold, metrics file."""

from __future__ import annotations

import json

from distillery.core.io import read_stage_metrics

import pytest

from .conftest import bad_records, good_records, write_lines


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch):
    monkeypatch.setenv("DISTILLERY_TRACKING", "0")  # MLflow logging is the tracking area's test


def test_help_explains_every_option(run_script):
    r = run_script("export", "--help")
    assert r.returncode == 0
    for opt in ("--input", "--output", "--eval / --no-eval", "--phases / --no-phases", "--system-prompt",
                "--system-prompt-mode", "--no-id", "--max-reject-rate", "--params", "--set"):
        assert opt in r.stdout, opt
    r = run_script("card", "--help")
    assert r.returncode == 0 and all(o in r.stdout for o in ("--export", "--metrics", "--mix", "--output"))


def test_missing_input_is_one_line(tmp_path, run_script):
    r = run_script("export", "--input", tmp_path / "nope.jsonl", "--output", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'nope.jsonl'}: input not found"
    assert "Traceback" not in r.stderr


def test_bad_param_is_one_line(tmp_path, run_script):
    src = write_lines(tmp_path / "in.jsonl", good_records())
    r = run_script("export", "--input", src, "--output", tmp_path / "out", "--set", "export.sft_formats=[csv]",
                   cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "export.sft_formats[0]" in r.stderr.strip().splitlines()[-1]


def test_reject_rate_over_threshold_fails_with_reason(tmp_path, run_script):
    src = write_lines(tmp_path / "in.jsonl", good_records() + bad_records())
    args = ["--input", src, "--output", tmp_path / "out", "--metrics", tmp_path / "m" / "export.json"]
    r = run_script("export", *args, cwd=tmp_path)
    assert r.returncode == 3 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "export: reject rate 60.0% (6/10) exceeds project.max_reject_rate=5.0%" in last
    assert str(tmp_path / "out" / "quarantine.jsonl") in last
    m = read_stage_metrics(tmp_path / "m" / "export.json")
    assert m["rejected"] == 6 and m["rejects_by_reason"]["malformed_json"] == 1
    r = run_script("export", *args, "--max-reject-rate", "0.7", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_huge_record_is_quarantined_not_crashing(tmp_path, run_script):
    big = good_records()[0] | {"id": "huge"}
    big["messages"][1]["content"] = "x" * (5 * 1024 * 1024)
    src = write_lines(tmp_path / "in.jsonl", good_records() * 10 + [big])
    r = run_script("export", "--input", src, "--output", tmp_path / "out", "--set",
                   f"project.max_reject_rate=0.05", "--metrics", tmp_path / "m" / "export.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    m = read_stage_metrics(tmp_path / "m" / "export.json")
    assert m["rejects_by_reason"] == {"record_too_large": 1} and m["records_out"] == 40
    q = [json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert q[0]["reason"] == "record_too_large" and q[0]["line"] == 41


def test_formats_and_file_types_from_the_command_line(tmp_path, run_script):
    src = write_lines(tmp_path / "in.jsonl", good_records())
    out = tmp_path / "out"
    r = run_script("export", "--input", src, "--output", out, "--set", "export.sft_formats=[messages,sharegpt.parquet]",
                   "--set", "export.dpo_formats=[messages_pair.jsonl.gz]", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "sft").iterdir()) == ["messages.jsonl", "sharegpt.parquet"]
    assert sorted(p.name for p in (out / "dpo").iterdir()) == ["messages_pair.jsonl.gz"]
    # dpo/trl.jsonl is what stats, validate and train_eval read: leaving it out is said, not silent
    assert "export.dpo_formats has no `trl`" in r.stderr and "train_eval" in r.stderr
    r = run_script("export", "--input", src, "--output", out, "--set", "export.sft_formats=[messages.csv]",
                   cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "export.sft_formats[0]: unknown format 'messages.csv'" in last and ".parquet" in last
