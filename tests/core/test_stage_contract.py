"""The stage contract, through the real stage scripts: bad records are quarantined (never a traceback),
every line is accounted for, metrics land where --metrics says (a standalone run never touches
metrics/), the gate fires, a full disk gives one line, and a killed run's temp files are cleaned up."""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_records.jsonl"
EXPECTED = json.loads(CORPUS.with_name("bad_records.expected.json").read_text())
N_LINES = len(EXPECTED)
BAD_LINES = {int(k): v for k, v in EXPECTED.items() if v != "ok"}


def _read_jsonl(p: Path) -> list[dict]:
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()] if p.exists() else []


def _assert_one_line_error(r: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in r.stderr, r.stderr[-3000:]


def _quarantined_lines(q: Path) -> dict[int, str]:
    return {e["line"]: e["reason"] for e in _read_jsonl(q) if "line" in e}


@pytest.fixture()
def project(tmp_path):
    """An empty project folder (a params.yaml with defaults and a relaxed gate: the corpus is mostly bad)."""
    (tmp_path / "params.yaml").write_text("project:\n  max_reject_rate: 1.0\ndedup:\n  decontaminate:\n"
                                          "    enabled: false\n", encoding="utf-8")
    return tmp_path


def test_bad_record_corpus_through_record_stages(project, run_script):
    """dedup, mix, export and stats each get the whole corpus: exit 0, no traceback, every bad line is
    quarantined with the record check's reason and file:line, and in = out + quarantined."""
    runs = {
        "dedup": ["--input", CORPUS, "--output", project / "dedup"],
        "mix": ["--input", CORPUS, "--output", project / "mix"],
        "export": ["--input", CORPUS, "--output", project / "export", "--no-eval", "--no-phases"],
        "stats": ["--input", CORPUS, "--output", project / "stats"],
    }
    with ThreadPoolExecutor(4) as pool:
        done = dict(zip(runs, pool.map(lambda kv: run_script(kv[0], "--params", "params.yaml", *kv[1], cwd=project),
                                       runs.items())))
    for stage, r in done.items():
        _assert_one_line_error(r)
        assert r.returncode == 0, (stage, r.stderr[-2000:])
        m = json.loads((project / stage / "metrics.json").read_text())
        assert m["records_in"] == N_LINES, (stage, m)
    # the record stages quarantine each bad line under the record check's reason
    for stage in ("dedup", "mix", "export"):
        q = _quarantined_lines(project / stage / "quarantine.jsonl")
        for line, reason in BAD_LINES.items():
            assert q.get(line) == reason, (stage, line, q.get(line), reason)
        m = json.loads((project / stage / "metrics.json").read_text())
        extra = {line: reason for line, reason in q.items() if line not in BAD_LINES}
        if stage == "dedup":   # duplicates are removed on purpose, not rejects: the gate counts bad input only
            assert set(extra.values()) <= {"exact_duplicate", "near_duplicate"}, extra
            assert m["rejected"] == len(BAD_LINES), m
            continue
        assert set(extra.values()) <= ({"duplicate_id"} if stage == "mix" else set()), (stage, extra)
        assert m["rejected"] == len(BAD_LINES) + len(extra), (stage, m)
    # dedup: every good line is either kept or removed as a duplicate (quarantined with duplicate_of)
    kept = _read_jsonl(project / "dedup" / "records.jsonl")
    dups = [e for e in _read_jsonl(project / "dedup" / "quarantine.jsonl") if e.get("duplicate_of")]
    assert len(kept) + len(dups) + len(BAD_LINES) == N_LINES
    # stats quarantines what it cannot measure and measures the rest
    ms = json.loads((project / "stats" / "metrics.json").read_text())
    assert ms["records_out"] + ms["rejected"] == N_LINES


def test_standalone_run_leaves_pipeline_metrics_alone(project, run_script):
    """Without --metrics a stage writes OUTPUT/metrics.json (+ details) and never creates metrics/."""
    r = run_script("dedup", "--params", "params.yaml", "--input", CORPUS, "--output", project / "out", cwd=project)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not (project / "metrics").exists()
    headline = json.loads((project / "out" / "metrics.json").read_text())
    details = json.loads((project / "out" / "metrics.details.json").read_text())
    assert all(isinstance(v, (int, float)) for v in headline.values()), headline
    assert {"records_in", "records_out", "reject_rate", "max_reject_rate", "wall_s"} <= set(headline)
    assert details["rejects_by_reason"] and details["gate"] == "project.max_reject_rate"
    assert (project / "out" / "plots" / "dedup_similarity.csv").exists()
    # with --metrics, the metrics go exactly there and the plots beside them
    r = run_script("dedup", "--params", "params.yaml", "--input", CORPUS, "--output", project / "out2",
                   "--metrics", project / "m" / "dedup.json", cwd=project)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (project / "m" / "dedup.json").exists() and (project / "m" / "dedup.details.json").exists()
    assert (project / "m" / "plots" / "dedup_similarity.csv").exists()
    assert not (project / "out2" / "metrics.json").exists()


def test_gate_uses_project_rate_and_exits_3(tmp_path, run_script):
    """No stage default above the project's 5%: the corpus (most lines bad) stops dedup with exit 3,
    one line naming the key, and the metrics still say what happened."""
    r = run_script("dedup", "--no-decontaminate", "--input", CORPUS, "--output", tmp_path / "out", cwd=tmp_path)
    _assert_one_line_error(r)
    assert r.returncode == 3
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: dedup: reject rate") and "project.max_reject_rate=5.0%" in last
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["max_reject_rate"] == 0.05 and m["reject_rate"] > 0.05
    # the stage's own key wins when set
    r = run_script("dedup", "--no-decontaminate", "--input", CORPUS, "--output", tmp_path / "out", "--set", "dedup.max_reject_rate=0.99",
                   cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((tmp_path / "out" / "metrics.details.json").read_text())
    assert d["gate"] == "dedup.max_reject_rate"


def test_gate_failure_is_a_failed_mlflow_run(tmp_path, run_script):
    """A stage over its gate is logged FAILED with its one-line error."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    r = run_script("dedup", "--no-decontaminate", "--input", CORPUS, "--output", tmp_path / "out", "--set", f"tracking.tracking_uri={uri}",
                   "--set", "tracking.defer=false", cwd=tmp_path, env={"DISTILLERY_TRACKING": "1"})
    assert r.returncode == 3, r.stderr[-2000:]
    client = mlflow.MlflowClient(tracking_uri=uri)
    exps = client.search_experiments()
    runs = [run for e in exps for run in client.search_runs([e.experiment_id])]
    stage_runs = [run for run in runs if run.data.tags.get("mlflow.runName", "").startswith("dedup")]
    assert stage_runs, [run.data.tags for run in runs]
    assert stage_runs[0].info.status == "FAILED"
    assert "reject rate" in stage_runs[0].data.tags.get("distillery.error", "")


def test_stale_temp_files_of_a_killed_run_are_removed(tmp_path, run_script):
    out = tmp_path / "out"
    out.mkdir()
    dead = out / ".records.jsonl.999999999-abcd.tmp"     # pid that cannot exist
    legacy = out / ".quarantine.jsonl.k3j4h5.tmp"        # old naming, no pid
    unrelated = out / "notes.tmp"
    for p in (dead, legacy, unrelated):
        p.write_text("half a file")
    r = run_script("dedup", "--no-decontaminate", "--input", CORPUS, "--output", out, "--set", "dedup.max_reject_rate=1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not dead.exists() and not legacy.exists() and unrelated.exists()


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                        capture_output=True).returncode == 0
    return ok


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs (CI runs as root)")
def test_disk_full_is_one_line_and_keeps_the_old_output(tmp_path, run_script):
    """ENOSPC on the output: one line naming the path, exit 2, the previous output intact, no temp file."""
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "64k"):
        pytest.fail("mount -t tmpfs failed although running as root")
    try:
        out = disk / "out"
        out.mkdir()
        (out / "records.jsonl").write_text("previous output\n")
        big = tmp_path / "big.jsonl"
        line = json.loads(CORPUS.read_text().splitlines()[0])
        with big.open("w") as f:
            for i in range(2000):
                f.write(json.dumps({**line, "id": f"r{i}",
                                    "messages": [{"role": "user", "content": f"question {i} " * 20},
                                                 {"role": "assistant", "content": f"answer {i} " * 20}]}) + "\n")
        r = run_script("export", "--input", big, "--output", out, "--no-eval", "--no-phases", cwd=tmp_path)
        _assert_one_line_error(r)
        assert r.returncode == 2, r.stderr[-2000:]
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and str(out) in last and "No space left" in last, last
        assert (out / "records.jsonl").read_text() == "previous output\n"
        assert not [p for p in out.rglob("*.tmp")]
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_bom_prefixed_jsonl_is_read_by_every_record_stage(project, run_script):
    """A UTF-8 BOM before the first line (Windows tools) is not data: the first record is kept everywhere."""
    good = [int(line) for line, reason in EXPECTED.items() if reason == "ok"]
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    src = project / "bom.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines[i - 1] for i in good[:3]).encode() + b"\n")
    for stage in ("dedup", "mix", "export"):
        r = run_script(stage, "--params", "params.yaml", "--input", src, "--output", project / f"bom-{stage}",
                       *(["--no-eval", "--no-phases"] if stage == "export" else []), cwd=project)
        assert r.returncode == 0, (stage, r.stderr[-2000:])
        assert not _quarantined_lines(project / f"bom-{stage}" / "quarantine.jsonl"), stage
