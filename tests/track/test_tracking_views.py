"""What users look at: MLflow artifacts that survive moving the project, and DVC comparison views
(`make compare`, `make exp-show`) cut to the headline keys and narrow enough to read.

Artifacts: a store inside the project (the default mlflow.db) gets artifact locations relative to the
project root (`mlruns/<run>/artifacts`); rows an older version stored absolute are rewritten on open or by
`python -m distillery.track.mlflow_log relativize` (what `make ui` runs first).
"""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from distillery.core.params import load_params
from distillery.track import LAST_RUN, log_stage
from distillery.track.mlflow_log import Tracker, relative_artifact_location, relativize_artifacts

from .conftest import git

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
MAX_WIDTH = 160


def _locations(db: Path) -> tuple[list[str], list[str]]:
    con = sqlite3.connect(db)
    try:
        exps = [r[0] for r in con.execute("SELECT artifact_location FROM experiments WHERE name != 'Default'")]
        runs = [r[0] for r in con.execute("SELECT artifact_uri FROM runs")]
        return exps, runs
    finally:
        con.close()


def _read_artifact(root: Path, run_id: str, name: str) -> str:
    """Through the MLflow client, from the project root (as `make ui` serves)."""
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    assert [f.path for f in client.list_artifacts(run_id)] == [name]
    local = client.download_artifacts(run_id, name, dst_path=str(root.parent / f"dl-{run_id[:6]}"))
    return Path(local).read_text()


def test_relative_artifact_location(tmp_path):
    root = tmp_path / "proj"
    (root / "mlruns" / "abc" / "artifacts").mkdir(parents=True)
    assert relative_artifact_location(f"file://{root}/mlruns", root) == "mlruns"
    assert relative_artifact_location(str(root / "mlruns" / "0"), root) == "mlruns/0"
    assert relative_artifact_location(f"file://{root}/mlruns/abc/artifacts", root) == "mlruns/abc/artifacts"
    # a project that moved: the old absolute path's tail exists under this project's mlruns
    assert relative_artifact_location("file:///old/place/mlruns/abc/artifacts", root) == "mlruns/abc/artifacts"
    assert relative_artifact_location("/old/place/mlruns", root) == "mlruns"
    assert relative_artifact_location("/old/place/mlruns/zzz/artifacts", root) == "mlruns/zzz/artifacts"  # gone
    other = tmp_path / "other"                     # another project's artifacts, of which this one has no copy
    (other / "mlruns" / "zzz" / "artifacts").mkdir(parents=True)
    assert relative_artifact_location(f"file://{other}/mlruns/zzz/artifacts", root) is None
    assert relative_artifact_location(f"file://{other}/mlruns/abc/artifacts", root) == "mlruns/abc/artifacts"
    assert relative_artifact_location("s3://bucket/mlruns/abc", root) is None
    assert relative_artifact_location("mlruns/abc/artifacts", root) is None                 # relative already
    assert relative_artifact_location("/srv/artifacts/abc", root) is None


def test_artifacts_are_stored_relative_and_survive_moving_the_project(project, monkeypatch):
    report = project / "report.txt"
    report.write_text("the report\n")
    log_stage("dedup", {"threshold": 0.8}, {"records_out": 3}, [report], load_params(None))
    run_id = LAST_RUN["run_id"]
    exps, runs = _locations(project / "mlflow.db")
    assert exps == ["mlruns"] and runs == [f"mlruns/{run_id}/artifacts"]
    assert (project / "mlruns" / run_id / "artifacts" / "report.txt").is_file()

    moved = project.parent / "moved" / "elsewhere"
    moved.parent.mkdir()
    monkeypatch.chdir(project.parent)
    shutil.move(str(project), str(moved))
    monkeypatch.chdir(moved)
    assert _read_artifact(moved, run_id, "report.txt") == "the report\n"


def test_a_stage_run_from_a_subfolder_writes_artifacts_under_the_project_root(project, monkeypatch):
    (project / ".dvc").mkdir()                     # project_root() looks for dvc.yaml or .dvc above the cwd
    sub = project / "notebooks"
    sub.mkdir()
    (sub / "a.txt").write_text("a\n")
    monkeypatch.chdir(sub)
    log_stage("mix", {}, {"n": 1}, [sub / "a.txt"], load_params(None))
    run_id = LAST_RUN["run_id"]
    assert (project / "mlruns" / run_id / "artifacts" / "a.txt").is_file()
    assert not (sub / "mlruns").exists()


def test_absolute_locations_of_an_older_version_are_made_relative(project, monkeypatch):
    """Runs logged before this change (absolute file:// locations) in a project that then moved."""
    uri = f"sqlite:///{project / 'mlflow.db'}"
    old = Tracker(uri, "distillery", (project / "mlruns").as_uri())        # the old behaviour: no root
    run_id = old.child_run(None, "score", {})
    (project / "r.txt").write_text("old run\n")
    old.log_artifacts(run_id, [project / "r.txt"], 50, [])
    old.finish(run_id)
    exps, runs = _locations(project / "mlflow.db")
    assert exps == [(project / "mlruns").as_uri()] and runs[0].startswith("file:///")

    moved = project.parent / "moved"
    monkeypatch.chdir(project.parent)
    shutil.move(str(project), str(moved))
    r = subprocess.run([sys.executable, "-m", "distillery.track.mlflow_log", "relativize", "sqlite:///mlflow.db"],
                       cwd=moved, capture_output=True, text=True, timeout=120)
    # the experiment, the run and MLflow's Default experiment (its old folder is gone too)
    assert r.returncode == 0 and "3 artifact location(s) made relative" in r.stdout, r.stdout + r.stderr
    assert _locations(moved / "mlflow.db") == (["mlruns"], [f"mlruns/{run_id}/artifacts"])
    assert relativize_artifacts(moved / "mlflow.db", moved) == 0            # idempotent, no write
    monkeypatch.chdir(moved)
    assert _read_artifact(moved, run_id, "r.txt") == "old run\n"


def test_an_absolute_artifact_location_from_params_is_left_alone(project, tmp_path):
    """tracking.artifact_location: /some/share/mlruns (maybe not mounted right now) is never rewritten."""
    share = (tmp_path / "share-not-mounted" / "mlruns").as_uri()
    uri = f"sqlite:///{project / 'mlflow.db'}"
    Tracker(uri, "distillery", share, root=project)
    Tracker(uri, "distillery", share, root=project)       # a second open must not rewrite it either
    assert _locations(project / "mlflow.db")[0] == [share]
    (project / "params.yaml").write_text(f"tracking:\n  artifact_location: {share}\n")
    r = subprocess.run([sys.executable, "-m", "distillery.track.mlflow_log", "relativize"], cwd=project,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout == "" and _locations(project / "mlflow.db")[0] == [share]


def test_a_store_outside_the_project_keeps_absolute_locations(project, tmp_path, monkeypatch):
    outside = tmp_path / "shared" / "mlflow.db"
    outside.parent.mkdir()
    shutil.copy(project / "mlflow.db", outside)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{outside}")
    log_stage("dedup", {}, {"n": 1}, [], load_params(None))
    exps, _ = _locations(outside)
    assert exps == [(project / "mlruns").as_uri()]


# --- DVC views -------------------------------------------------------------------------------------------

SAMPLE_HEADLINE = {   # the shape of metrics/<stage>.json: flat headline figures
    "metrics/dedup.json": {"bad_input": 0, "candidate_pairs": 657, "clusters": 128, "contaminated": 2,
                           "contamination_hits": 2, "exact_duplicates": 0, "largest_cluster": 16,
                           "max_reject_rate": 0.05, "near_duplicates": 194, "records_in": 3736, "records_out": 3540,
                           "records_per_s": 459.6, "reject_rate": 0.0, "rejected": 0, "semantic_duplicates": 0,
                           "verified_pairs": 340, "wall_s": 8.877},
    "metrics/ingest/self_instruct.json": {"max_reject_rate": 0.05, "records_in": 175, "records_out": 175,
                                          "reject_rate": 0.0, "rejected": 0, "rows_read": 175, "wall_s": 0.05},
}


def _headline_files() -> dict[str, dict]:
    """The repo's flat headline metrics files (real key names) when there are some, else the sample."""
    found = {}
    for f in sorted((REPO / "metrics").rglob("*.json")):
        if f.name.endswith(".details.json") or "plots" in f.parts:
            continue
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data and not any(isinstance(v, (dict, list)) for v in data.values()):
            found[f.relative_to(REPO).as_posix()] = data
    return found if len(found) >= 2 else SAMPLE_HEADLINE


def _bumped(data: dict) -> dict:
    """Every number changed (the worst case for a diff), with long decimals."""
    return {k: (v + 1234567.123456789 if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
            for k, v in data.items()}


def _run(cmd: list[str], cwd: Path, **extra) -> str:
    e = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", DVC_NO_ANALYTICS="1", **extra)
    r = subprocess.run(cmd, cwd=cwd, env=e, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def _make(target: str, cwd: Path, *args: str) -> str:
    return _run(["make", "-s", "-f", str(REPO / "Makefile"), "-o", str(VENV_BIN.parent / ".installed"),
                 f"VENV={VENV_BIN.parent}", *args, target], cwd)


@pytest.fixture()
def metrics_project(tmp_path) -> tuple[Path, dict]:
    """A git + DVC project: params.yaml, one stage writing the headline files; v1 committed, v2 in the workspace."""
    files = _headline_files()
    root = tmp_path / "proj"
    root.mkdir()
    git(root, "init", "-q")
    _run([str(VENV_BIN / "dvc"), "init", "-q"], root)
    (root / "src").mkdir()
    (root / "data").mkdir()
    (root / "src" / "gen.py").write_text(
        "import json, pathlib, yaml\n"
        "p = yaml.safe_load(open('params.yaml'))\n"
        "for path, data in json.load(open('data/headline.json')).items():\n"
        "    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)\n"
        "    pathlib.Path(path).write_text(json.dumps(data, indent=2))\n")
    outs = [{path: {"cache": False}} for path in files]
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"gen": {
        "cmd": "python src/gen.py", "deps": ["src/gen.py", "data/headline.json"], "params": ["dedup.threshold"],
        "metrics": outs}}}, sort_keys=False))
    (root / "params.yaml").write_text("dedup:\n  threshold: 0.8\n  shingle: 5\n")
    (root / "data" / "headline.json").write_text(json.dumps(files))
    _run([str(VENV_BIN / "dvc"), "repro", "-q"], root)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "v1")
    (root / "params.yaml").write_text("dedup:\n  threshold: 0.7\n  shingle: 5\n")
    (root / "data" / "headline.json").write_text(json.dumps({p: _bumped(d) for p, d in files.items()}))
    _run([str(VENV_BIN / "dvc"), "repro", "-q"], root)
    return root, files


def test_metrics_diff_of_headline_files_fits_160_columns(metrics_project):
    root, files = metrics_project
    for fmt in ([], ["--md"]):
        out = _run([str(VENV_BIN / "dvc"), "metrics", "diff", "HEAD", *fmt], root)
        widths = [len(line) for line in out.splitlines()]
        n_numbers = sum(isinstance(v, (int, float)) for d in files.values() for v in d.values())
        assert len(out.splitlines()) >= n_numbers, out        # every number changed: one row each
        assert max(widths) <= MAX_WIDTH, f"{max(widths)} columns:\n{out}"


def test_make_compare_shows_changed_headline_keys_without_timings(metrics_project):
    root, files = metrics_project
    out = _make("compare", root)
    assert "## params: HEAD -> workspace" in out and "dedup.threshold" in out and "shingle" not in out
    rows = [line for line in out.split("## metrics")[1].splitlines() if line.startswith("| metrics/")]
    keys = {row.split("|")[2].strip() for row in rows}
    assert "records_out" in keys and not {"wall_s", "records_per_s"} & keys
    assert max(len(line) for line in out.splitlines()) <= MAX_WIDTH, out

    only = _make("compare", root, "KEYS=^(records_out|reject_rate)$$", "A=HEAD", "B=")
    keys = {row.split("|")[2].strip() for row in only.splitlines() if row.startswith("| metrics/")}
    assert keys == {"records_out", "reject_rate"} & {k for d in files.values() for k in d}

    git(root, "add", "-A")
    git(root, "commit", "-qm", "v2")
    between = _make("compare", root, "A=HEAD~1", "B=HEAD")
    assert "## metrics: HEAD~1 -> HEAD" in between and "| records_out" in between.replace("  ", " ")


def test_make_exp_show_drops_dependency_hashes_timings_and_unchanged_columns(metrics_project):
    root, files = metrics_project
    out = _make("exp-show", root)
    header = out.splitlines()[0]
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert "threshold" in " ".join(cols) and not any("shingle" in c for c in cols)      # changed params only
    assert any(c.endswith("records_out") for c in cols)
    assert not any(re.search(r"(wall_s|records_per_s)$|^(src|data)/", c) for c in cols), cols

    narrow = _make("exp-show", root, "COLS=.*records_out$$|dedup\\.threshold$$")
    cols = [c.strip() for c in narrow.splitlines()[0].strip("|").split("|")]
    assert cols[:2] == ["Experiment", "Created"] and "dedup.threshold" in cols[2:]
    assert all(c.endswith("records_out") for c in cols[2:] if c != "dedup.threshold"), cols
    assert len(cols) == 3 + sum("records_out" in d for d in files.values()), cols
