"""scripts/dedup.py as a user runs it: options, params, one-line errors, outputs and metrics."""

import json

from distillery.core.io import read_stage_metrics

import pytest

from .helpers import edit, read, rec, text, write


def test_help_explains_every_option(run_script):
    r = run_script("dedup", "--help")
    assert r.returncode == 0
    for opt in ("--input", "--output", "--key", "--threshold", "--num-perm", "--shingle-size", "--bands", "--rows",
                "--workers", "--cross-source", "--decontaminate", "--semantic", "--params", "--set"):
        assert opt in r.stdout


@pytest.mark.slow
def test_runs_outside_dvc_on_any_file(run_script, tmp_path):
    base = [text(i) for i in range(20)]
    records = [rec(f"a{i}", t) for i, t in enumerate(base)] + [rec("dup", base[3]), rec("near", edit(base[4], 1))]
    src = write(tmp_path / "some.jsonl", records)
    r = run_script("dedup", "--input", src, "--output", tmp_path / "out", "--no-decontaminate", "--workers", "2",
                   cwd=tmp_path, env={"DISTILLERY_TRACKING": "0"})
    assert r.returncode == 0, r.stderr
    assert len(read(tmp_path / "out/records.jsonl")) == 20
    m = read_stage_metrics(tmp_path / "out/metrics.json")
    assert (m["records_in"], m["records_out"], m["exact_duplicates"], m["near_duplicates"]) == (22, 20, 1, 1)
    for k in ("clusters", "largest_cluster", "contaminated", "wall_s", "timings_s"):
        assert k in m
    assert (tmp_path / "out/plots/dedup_similarity.csv").exists()
    assert "dedup: 22 in, 20 out" in r.stderr


def test_bad_params_and_missing_input_are_one_line(run_script, tmp_path):
    src = write(tmp_path / "in.jsonl", [rec("a", text(1))])
    r = run_script("dedup", "--input", src, "--output", tmp_path / "o", "--set", "dedup.bands=4", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "dedup: set both bands and rows, or neither" in r.stderr
    r = run_script("dedup", "--input", tmp_path / "nope", "--output", tmp_path / "o", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "nope: input not found" in r.stderr
    r = run_script("dedup", "--input", src, "--output", tmp_path / "o", cwd=tmp_path)  # default eval files absent
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "dedup.decontaminate.sets[gsm8k_test].path: eval set file not found" in r.stderr


def test_reject_rate_over_threshold_fails_the_stage(run_script, tmp_path):
    src = write(tmp_path / "in.jsonl", [rec("a", text(1)), "garbage", "more garbage"])
    r = run_script("dedup", "--input", src, "--output", tmp_path / "o", "--no-decontaminate", "--workers", "1",
                   cwd=tmp_path, env={"DISTILLERY_TRACKING": "0"})
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert "reject rate 66.7%" in r.stderr and "malformed_json=2" in r.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_a_full_spill_disk_is_one_line_naming_the_file(run_script, tmp_path, tiny_fs, workers):
    """Shingle sets and the parent's table spill to dedup.tmp_dir: when it fills, the stage stops with one line
    naming the file it could not write (numpy's own writer said only "N requested and M written"), exit 2."""
    disk = tiny_fs("64k")
    src = write(tmp_path / "in.jsonl", [rec(f"r{i}", text(i)) for i in range(300)])
    r = run_script("dedup", "--input", src, "--output", tmp_path / "out", "--no-decontaminate", "--set",
                   f"dedup.tmp_dir={disk}", "--set", f"dedup.workers={workers}", "--set", "dedup.batch_size=64",
                   cwd=tmp_path, env={"DISTILLERY_TRACKING": "0"})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {disk}/") and last.endswith("cannot write: No space left on device"), last
    assert not (tmp_path / "out" / "records.jsonl").exists() and not list(disk.iterdir())
