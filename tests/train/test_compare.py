"""`distillery compare REV_A REV_B` on two real commits of a small git + DVC pipeline that differ in one
param: the per-item file is a DVC out (read at each revision from the DVC cache), the verdict is right,
and the table goes to a Markdown file and to MLflow as a tagged comparison run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent

# A tiny stand-in for train_eval that writes per-item scores in train_eval's format. `better` items of
# 100 GSM8K-style questions flip from wrong to right in the tuned model; the held-out loss moves by `shift`.
STAGE = textwrap.dedent("""
    import json, os, random, yaml
    p = yaml.safe_load(open("toy.yaml"))["toy"]
    rng = random.Random(0)
    rows = []
    for i in range(100):
        base = float(rng.random() < 0.3)
        rows.append({"metric": "gsm8k_em", "item": f"gsm8k:{i}", "weight": 1, "base": base,
                     "tuned": 1.0 if i < p["better"] else base})
    for i in range(80):
        nll = 1.0 + rng.random()
        rows.append({"metric": "heldout_loss", "item": f"r{i}", "weight": 10 + i % 7, "base": nll,
                     "tuned": nll + p["shift"] + rng.gauss(0, 0.05)})
    os.makedirs("data/train_eval", exist_ok=True)
    with open("data/train_eval/items.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\\n" for r in rows)
""")


def _sh(cwd: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}", "DISTILLERY_TRACKING": "0"}
    p = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"{args}: {p.stdout[-2000:]}{p.stderr[-2000:]}"
    return p.stdout


def _commit(proj: Path, better: int, shift: float, msg: str) -> str:
    (proj / "toy.yaml").write_text(f"toy: {{better: {better}, shift: {shift}}}\n")
    _sh(proj, "dvc", "repro", "-q")
    _sh(proj, "git", "add", "-A")
    _sh(proj, "git", "commit", "-qm", msg)
    return _sh(proj, "git", "rev-parse", "--short", "HEAD").strip()


@pytest.fixture()
def two_commits(tmp_path) -> tuple[Path, str, str, str]:
    proj = tmp_path / "proj"
    proj.mkdir()
    _sh(proj, "git", "init", "-q")
    _sh(proj, "git", "config", "user.email", "t@example.com")
    _sh(proj, "git", "config", "user.name", "t")
    _sh(proj, "dvc", "init", "-q")
    (proj / "stage.py").write_text(STAGE)
    (proj / "dvc.yaml").write_text("stages:\n  train_eval:\n    cmd: python stage.py\n    deps: [stage.py]\n"
                                   "    params: [{toy.yaml: [toy]}]\n    outs: [data/train_eval]\n")
    (proj / "params.yaml").write_text("tracking: {defer: false}\n")
    a = _commit(proj, 0, 0.0, "baseline data")
    b = _commit(proj, 25, -0.2, "better data")       # one param section changed: toy
    c = _commit(proj, 0, 0.0, "back to baseline")
    return proj, a, b, c


def _compare(proj: Path, *args: str, tracking: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    env["DISTILLERY_TRACKING"] = "1" if tracking else "0"
    env.pop("MLFLOW_TRACKING_URI", None)    # the project's own mlflow.db, whatever the caller's shell points at
    return subprocess.run([sys.executable, "-c", "from distillery.cli import main; main()", "compare", *args],
                          cwd=proj, env=env, capture_output=True, text=True, timeout=300)


def test_compare_calls_a_real_improvement_better_and_identical_data_noise(two_commits):
    proj, a, b, c = two_commits
    # the working tree holds commit c's file: B's scores can only come from the DVC cache at that revision
    p = _compare(proj, a, b, "--output", "reports/compare.md", tracking=True)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = {ln.split()[0]: ln for ln in p.stdout.splitlines() if ln.startswith(("gsm8k_em", "heldout_loss"))}
    assert lines["gsm8k_em"].rstrip().endswith("better")            # +25 items right, paired
    assert lines["heldout_loss"].rstrip().endswith("better")        # loss down 0.2: lower is better
    details = json.loads((proj / "reports/compare.json").read_text())
    em = details["evals"]["gsm8k_em"]
    assert em["n"] == 100 and em["delta"] > 0.15 and em["delta_ci"][0] > 0 and em["verdict"] == "better"
    assert details["evals"]["heldout_loss"]["delta"] == pytest.approx(-0.2, abs=0.02)
    assert details["paired_items"]["gsm8k_em"] == {"a": 100, "b": 100, "paired": 100}
    md = (proj / "reports/compare.md").read_text()
    assert f"`{b}` (B) vs `{a}` (A)" in md and "| gsm8k_em | 100 |" in md
    # the reverse direction is worse; the same data at two commits is within noise
    rev = _compare(proj, b, c, "--output", "reports/rev.md")
    assert rev.returncode == 0 and all(ln.rstrip().endswith("WORSE") for ln in rev.stdout.splitlines()
                                       if ln.startswith(("gsm8k_em", "heldout_loss")))
    same = _compare(proj, a, c, "--output", "reports/same.md")
    assert same.returncode == 0 and "| gsm8k_em | 100 |" in (proj / "reports/same.md").read_text()
    assert all("within noise" in ln for ln in same.stdout.splitlines() if ln.startswith(("gsm8k_em", "heldout")))
    # MLflow: one comparison run, tagged, with the flat figures
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{proj / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("distillery").experiment_id],
                              filter_string="tags.`distillery.compare` = '1'")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["distillery.compare.rev_a"] == a and run.data.tags["distillery.compare.rev_b"] == b
    assert run.data.metrics["gsm8k_em_verdict"] == 1 and run.data.metrics["gsm8k_em_delta"] == em["delta"]


def test_compare_names_the_revision_it_cannot_read(two_commits):
    proj, a, _, _ = two_commits
    p = _compare(proj, a, "no-such-rev")
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "data/train_eval/items.jsonl at no-such-rev" in p.stderr
