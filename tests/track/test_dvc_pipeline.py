"""End to end in a throwaway git+DVC repo: `dvc repro` logs one MLflow parent per repro with a
child per stage, the report stage tags the parent with dvc.lock hashes, and `dvc metrics diff`
between two commits shows the metric a params change moved."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from .conftest import SECRET, all_bytes_under, git

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

TOY = '''
import click
from distillery.core.stage import stage_options, stage_run

@click.command()
@stage_options
def main(params_path, overrides):
    with stage_run("toy", params_path, overrides) as run:
        seed = run.params.project.seed
        run.counter.records_in = run.counter.records_out = seed * 10
        run.finish({"too_long": seed % 7, "rejects": {"too_long": seed % 7}},
                   log_params={"seed": seed, "teacher_key_env": "FAKE_TEACHER_API_KEY"})

main()
'''

DVC_YAML = {
    "stages": {
        "toy": {"cmd": "python toy.py --metrics metrics/toy.json", "deps": ["toy.py"], "params": ["project.seed"],
                "outs": [{"metrics/toy.details.json": {"cache": False}}],
                "metrics": [{"metrics/toy.json": {"cache": False}}]},
        "report": {"cmd": f"python {REPO / 'scripts' / 'report.py'} --metrics-dir metrics --card README.md "
                          "--no-plots --output reports/tracking.json",
                   "deps": ["metrics", "README.md"], "outs": [{"reports/tracking.json": {"cache": False}}]},
    }
}


def _dvc(root: Path, *args: str) -> str:
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", DVC_NO_ANALYTICS="1")
    r = subprocess.run([str(VENV_BIN / "dvc"), *args], cwd=root, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, f"dvc {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


@pytest.mark.slow
def test_repro_tracking_and_metrics_diff(project, monkeypatch):
    root = project
    (root / "toy.py").write_text(TOY)
    (root / "params.yaml").write_text("project:\n  seed: 8\ntracking:\n  experiment: toy\n")
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    (root / ".gitignore").write_text("mlflow.db\nmlruns/\nreports/\n")
    _dvc(root, "init", "-q")
    init_commit = git(root, "rev-parse", "HEAD").strip()
    _dvc(root, "repro")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "seed 8")
    first_commit = git(root, "rev-parse", "HEAD").strip()

    (root / "params.yaml").write_text("project:\n  seed: 9\ntracking:\n  experiment: toy\n")
    _dvc(root, "repro")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "seed 9")

    diff = json.loads(_dvc(root, "metrics", "diff", "HEAD~1", "HEAD", "--json"))
    assert diff["metrics/toy.json"]["records_out"] == {"old": 80, "new": 90, "diff": 10}
    assert diff["metrics/toy.json"]["too_long"] == {"old": 1, "new": 2, "diff": 1}
    assert not any(k.startswith("rejects") for k in diff["metrics/toy.json"]), "breakdowns stay in the details file"

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("toy")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 2, "one parent run per dvc repro"
    for parent in parents:
        kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert sorted(k.info.run_name for k in kids) == ["report", "toy"]
        assert parent.data.tags["distillery.kind"] == "dvc" and parent.info.run_name.startswith("dvc repro")
    # each parent names the commit the workspace was on when `dvc repro` ran, and that it was dirty
    assert parents[0].data.tags["git.commit"] == init_commit
    assert parents[1].data.tags["git.commit"] == first_commit and parents[1].data.tags["git.dirty"] == "true"
    assert parents[0].data.metrics["toy.records_out"] == 80 and parents[1].data.metrics["toy.records_out"] == 90

    # the report stage saw dvc.lock with the toy stage's output of this repro
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    toy_md5 = lock["stages"]["toy"]["outs"][0]["md5"]
    assert parents[1].data.tags["dvc.out.metrics/toy.details.json"] == toy_md5
    assert parents[1].data.tags["dvc.out.metrics/toy.json"] == next(
        o["md5"] for o in lock["stages"]["toy"]["outs"] if o["path"] == "metrics/toy.json")
    tracked = json.loads((root / "reports" / "tracking.json").read_text())
    assert tracked["mlflow"]["parent_run_id"] == parents[1].info.run_id
    toy_run = next(r for r in runs if r.info.run_name == "toy")
    assert toy_run.data.tags["dvc.stage"] == "toy" and toy_run.data.params["seed"] == "8"
    report_run = next(r for r in runs if r.info.run_name == "report"
                      and r.data.tags["mlflow.parentRunId"] == parents[1].info.run_id)
    arts = {f.path for f in client.list_artifacts(report_run.info.run_id)}
    assert {"toy.json", "README.md"} <= arts

    store = (root / "mlflow.db").read_bytes() + all_bytes_under(root / "mlruns")
    assert SECRET.encode() not in store
