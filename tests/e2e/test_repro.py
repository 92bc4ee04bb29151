"""The newcomer's path, end to end: `dvc repro` of the whole pipeline, offline, on the shipped samples
(shrunk so CI stays fast), then the DVC guarantees users rely on: nothing reruns when nothing changed,
and changing one source's params invalidates only that source and what depends on it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from distillery.core.io import read_stage_metrics

VENV_BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow

SHRINK = {
    "ingest.sources.code_alpaca.limit": 150,
    "ingest.sources.gsm8k.limit": 150,
    "ingest.sources.hh_harmless.limit": 120,
    "ingest.sources.oasst.limit": 200,
    "mix.production.size": 300,
    "train_eval.steps": 4,
    "train_eval.dpo_steps": 2,
    "train_eval.eval.heldout_limit": 16,
    "train_eval.eval.pairs_limit": 8,
    "train_eval.eval.gsm8k_ref_limit": 8,
    "train_eval.eval.mt_bench_limit": 4,
    "train_eval.eval.truthfulqa_limit": 8,
    "train_eval.eval.gsm8k_em_limit": 2,
    "train_eval.eval.max_new_tokens": 32,
    "train_eval.eval.n_boot": 500,
    "judge_eval.sample": 2,
}


def _set(d: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


def _copy_project(src: Path, dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=src, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, files):
        s = src / rel
        if s.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, dst / rel)


def _run(cmd, cwd, env, timeout=2700):
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory, repo_root):
    proj = tmp_path_factory.mktemp("e2e") / "project"
    proj.mkdir()
    _copy_project(repo_root, proj)
    params = yaml.safe_load((proj / "params.yaml").read_text())
    for k, v in SHRINK.items():
        _set(params, k, v)
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}", DISTILLERY_TRACKING="1",
               MLFLOW_TRACKING_URI=f"sqlite:///{proj}/mlflow.db", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    env.pop("DVC_EXP_NAME", None)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=proj, env=env, check=True)
    return proj, env


# the whole offline pipeline with the shipped generation sizes: ~45-50 min on 2 cores (generation ~36 min,
# README "What the offline run produces"), so past the suite's 900 s
@pytest.mark.timeout(4500)
def test_repro_builds_the_export_bundle_offline(project):
    proj, env = project
    rc, out = _run(["dvc", "repro"], proj, env, timeout=4200)
    assert rc == 0, out[-6000:]
    assert "Traceback" not in out
    for rel in ("data/export/sft/messages.jsonl", "data/export/dpo/trl.jsonl", "data/export/dataset_info.json",
                "data/export/README.md", "reports/validation", "reports/viewer/index.html"):
        assert (proj / rel).exists(), rel
    rows = [json.loads(x) for x in (proj / "data/export/sft/messages.jsonl").read_text().splitlines()]
    assert len(rows) > 100 and all(r["messages"][-1]["role"] == "assistant" for r in rows)
    for stage in ("prompt_dedup", "distill", "multiturn", "scenarios", "completion", "preferences", "score", "dedup",
                  "mix", "export", "stats", "validate", "train_eval"):
        m = json.loads((proj / "metrics" / f"{stage}.json").read_text())
        # the headline DVC shows: flat numbers, a couple of dozen at most, with the gate that was applied
        assert m and all(isinstance(v, (int, float)) for v in m.values()), (stage, m)
        # (train_eval: six figures per eval metric, base/tuned/delta/interval/verdict)
        assert len(m) <= (64 if stage == "train_eval" else 24) and "max_reject_rate" in m, (stage, sorted(m))
        assert (proj / "metrics" / f"{stage}.details.json").exists(), stage
    # generated records carry the exact prompt sent in their lineage
    distilled = [json.loads(x) for x in (proj / "data/distill/records.jsonl").read_text().splitlines()]
    assert distilled and all(any(step.get("prompt") for step in r["lineage"] if step["stage"] == "distill")
                             for r in distilled)
    te = read_stage_metrics(proj / "metrics/train_eval.json")
    assert {"heldout_loss_base", "heldout_loss_tuned", "heldout_loss_delta", "heldout_loss_delta_ci_low",
            "heldout_loss_delta_ci_high", "heldout_loss_verdict"} <= set(te)
    assert te["heldout_loss_delta_ci_low"] <= te["heldout_loss_delta"] <= te["heldout_loss_delta_ci_high"]
    # MLflow: one parent run for this repro, children per stage
    # a client of its own: mlflow.set_tracking_uri would also export MLFLOW_TRACKING_URI to every later
    # test's subprocesses in this pytest process
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    stages = {r.data.tags.get("distillery.stage") for r in runs}
    assert {"dedup", "mix", "export"} <= stages


# What the offline default must produce with the shipped params (issue 14; README "What the offline run
# produces"). Each floor is read from the stage's metrics, so a regression in a template, a gen setting or
# the local provider fails CI instead of shipping an export with no generated data in it. Each is the
# issue's floor.
FLOORS = {"distill": 200, "completion": 50, "multiturn": 20, "scenarios": 10}
# the 100: 126 in the run behind the lock (80 prompts x 4 answers, every pair over min_margin: 48
# prompts paired, 30 tied, 2 with one answer left)
MIN_JUDGED_PAIRS = 100
MIN_JUDGE_PARSE_RATE = 0.95


def _parse_rate(calls: dict) -> tuple[float, int]:
    """Share of judge verdicts that parsed, over every verdict asked for (cache hits included)."""
    asked = calls.get("asked", sum(calls.values()))
    return (calls.get("scored", 0) / asked if asked else 0.0), asked


def test_offline_default_meets_the_generation_floors(project):
    proj, _ = project
    m = {s: read_stage_metrics(proj / "metrics" / f"{s}.json")
         for s in ("prompt_dedup", *FLOORS, "preferences", "score")}
    for stage, floor in FLOORS.items():
        assert m[stage]["records_out"] >= floor, (stage, m[stage]["records_out"], m[stage].get("rejects_by_reason"))
    # the teachers only saw unique, uncontaminated prompts
    pd = m["prompt_dedup"]
    assert pd["unique_prompts"] == pd["prompts_in"] - pd["duplicates_skipped"] - pd["contaminated_skipped"] \
        - pd["bad_input"]
    assert m["distill"]["input_records"] == pd["unique_prompts"]
    # max_tokens and stop sequences leave truncation a minority outcome (truncated answers are still rejected):
    # at most a quarter. Distill and multiturn redraw a looping answer (resample_truncated), so an answer or a
    # conversation is lost only when every draw looped: each such reject stands for that many truncated requests.
    params = yaml.safe_load((proj / "params.yaml").read_text())
    redraws = {"distill": params["distill"]["resample_truncated"],
               "multiturn": params["synthesize"]["multiturn"]["resample_truncated"]}
    for stage in FLOORS:
        rejects = m[stage].get("rejects_by_reason") or {}
        truncated = sum(v for k, v in rejects.items() if "truncat" in k)
        if stage in redraws:
            cost = json.loads((proj / f"metrics/{stage}.details.json").read_text())["cost"]["local-smollm2"]
            assert truncated * (1 + redraws[stage]) <= cost["failed_by_reason"].get("truncated", 0), (rejects, cost)
            assert truncated <= 0.25 * cost["requests"], (stage, rejects, cost["requests"])
        else:
            assert truncated <= 0.25 * m[stage]["records_in"], (stage, rejects)
    # multi-turn conversations have exactly the turn count they were planned with
    convs = [json.loads(x) for x in (proj / "data/synth/multiturn/records.jsonl").read_text().splitlines()]
    assert len(convs) >= FLOORS["multiturn"]
    for c in convs:
        users = [x for x in c["messages"] if x["role"] == "user"]
        assert len(users) == c["labels"]["turns"] and c["messages"][-1]["role"] == "assistant", c["id"]
    # the guided judge's verdicts parse
    for stage in ("preferences", "score"):
        rate, asked = _parse_rate(m[stage]["judge"]["calls"])
        assert asked and rate >= MIN_JUDGE_PARSE_RATE, (stage, m[stage]["judge"]["calls"])


def test_offline_default_yields_judged_dpo_pairs(project):
    proj, _ = project
    m = read_stage_metrics(proj / "metrics/preferences.json")
    assert m["outputs"].get("pairs", 0) >= MIN_JUDGED_PAIRS, m["outputs"]
    judged = {}
    for line in (proj / "data/mix/production.jsonl").read_text().splitlines():
        r = json.loads(line)
        pref = (r.get("scores") or {}).get("preference")
        if r.get("kind") == "preference" and pref and pref.get("mode") == "judge":
            judged[r["id"]] = pref
    dpo_ids = {json.loads(x)["id"] for x in (proj / "data/export/dpo/trl.jsonl").read_text().splitlines()}
    exported = [judged[i] for i in dpo_ids if i in judged]
    assert exported, "no judged pair reached the DPO export"
    min_margin = yaml.safe_load((proj / "params.yaml").read_text())["preferences"]["min_margin"]
    assert all(p["margin"] >= min_margin and p["chosen"] - p["rejected"] == pytest.approx(p["margin"], abs=0.011)
               for p in exported)


def test_second_repro_does_nothing(project):
    proj, env = project
    rc, out = _run(["dvc", "repro"], proj, env)
    assert rc == 0, out[-3000:]
    assert "Running stage" not in out
    assert "Data and pipelines are up to date" in out


def test_metrics_diff_fits_160_columns_and_standalone_runs_touch_nothing(project, tmp_path):
    """`dvc metrics diff` of the whole pipeline (every row, against the commit) fits a 160-column terminal,
    and a stage run by hand inside the project changes neither `git status` nor `dvc status`."""
    proj, env = project
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "repro"]):
        subprocess.run(cmd, cwd=proj, env=env, check=True)
    rc, out = _run(["dvc", "metrics", "diff", "HEAD", "--all"], proj, dict(env, COLUMNS="160"))
    assert rc == 0, out
    widest = max(len(line) for line in out.splitlines())
    assert widest <= 160, widest
    assert out.count("\n") < 300
    before = [_run(c, proj, env)[1] for c in (["git", "status", "--porcelain"], ["dvc", "status", "--json"])]
    rc, out = _run([sys.executable, "scripts/dedup.py", "--input", "data/score", "--output", str(tmp_path / "y"),
                    "--no-decontaminate"], proj, env)
    assert rc == 0, out[-3000:]
    after = [_run(c, proj, env)[1] for c in (["git", "status", "--porcelain"], ["dvc", "status", "--json"])]
    assert after == before
    assert (tmp_path / "y" / "metrics.json").exists()


def test_changing_one_source_invalidates_only_it_and_its_dependants(project):
    proj, env = project
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["ingest"]["sources"]["gsm8k"]["limit"] = 140
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    rc, out = _run(["dvc", "status", "--json"], proj, env)
    assert rc == 0, out
    changed = set(json.loads(out))
    assert "ingest@gsm8k" in changed
    assert not {"ingest@oasst", "ingest@code_alpaca", "ingest@hh_harmless", "ingest@self_instruct"} & changed
    rc, out = _run(["dvc", "repro", "-s", "ingest@gsm8k"], proj, env)
    assert rc == 0, out[-3000:]
    assert "Running stage 'ingest@gsm8k'" in out and "ingest@oasst" not in out
