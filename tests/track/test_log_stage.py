"""log_stage against a real MLflow sqlite store: parent/child runs, tags, params, metrics, artifacts,
no secret anywhere, and tracking failures that warn instead of failing the stage."""

import logging
import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from distillery.core.errors import DistilleryError
from distillery.core.params import load_params
from distillery.track import LAST_RUN, log_stage

from .conftest import SECRET, all_bytes_under, git

STAGE_PARAMS = {"threshold": 0.8, "teachers": {"gpt": {"model": "gpt-4o-mini", "api_key_env": "FAKE_TEACHER_API_KEY",
                                                       "base_url": "https://api.example.com/v1"}}}
STAGE_METRICS = {"records_in": 120, "records_out": 100, "rejects": {"too_long": 15, "empty": 5},
                 "judge": {"overall": {"mean": 7.4, "p50": 8.0}}, "dedup_rate": 0.125,
                 "cost": {"gpt": {"cost_usd": 0.0123, "requests": 40}}, "note": "strings are not metrics"}


def _client(root: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def test_stages_of_one_group_share_a_parent_run(project, monkeypatch):
    monkeypatch.setenv("DISTILLERY_RUN_GROUP", "repro-1")
    report = project / "report.html"
    report.write_text(f"<p>report for key env FAKE_TEACHER_API_KEY</p>")
    params = load_params(None)
    a = log_stage("score", STAGE_PARAMS, STAGE_METRICS, [report], params)
    parent_a = LAST_RUN["parent_run_id"]
    b = log_stage("dedup", {"threshold": 0.7}, {"records_in": 100}, [], params)
    assert a and b and a != b and LAST_RUN["parent_run_id"] == parent_a

    client = _client(project)
    exp = client.get_experiment_by_name("distillery")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    parent = client.get_run(parent_a)
    assert set(runs) == {"score", "dedup", parent.info.run_name}
    for child in (runs["score"], runs["dedup"]):
        assert child.data.tags["mlflow.parentRunId"] == parent_a
    head = git(project, "rev-parse", "HEAD").strip()
    assert parent.data.tags["git.commit"] == head and parent.data.tags["git.dirty"] in ("true", "false")
    assert runs["score"].data.tags["git.commit"] == head

    score = runs["score"].data
    assert score.params["threshold"] == "0.8"
    assert score.params["teachers.gpt.api_key_env"] == "FAKE_TEACHER_API_KEY"
    assert score.metrics["rejects.too_long"] == 15 and score.metrics["judge.overall.mean"] == 7.4
    assert score.metrics["cost.gpt.cost_usd"] == pytest.approx(0.0123) and "note" not in score.metrics
    assert parent.data.metrics["score.records_out"] == 100 and parent.data.metrics["dedup.records_in"] == 100
    # the parent gets each stage's headline (top-level numbers) only, never nested breakdowns
    assert {k for k in parent.data.metrics if k.startswith("score.")} == {"score.records_in", "score.records_out",
                                                                         "score.dedup_rate"}
    arts = [f.path for f in client.list_artifacts(a)]
    assert arts == ["report.html"]
    assert parent.info.status == "FINISHED" and runs["score"].info.status == "FINISHED"


def test_no_secret_value_reaches_the_store_or_artifacts(project, monkeypatch):
    monkeypatch.setenv("DISTILLERY_RUN_GROUP", "repro-secret")
    leaky = project / "leaky.txt"
    leaky.write_text(f"oops {SECRET}\n")
    clean = project / "clean.txt"
    clean.write_text("fine\n")
    params = dict(STAGE_PARAMS, api_key=SECRET, header=f"Bearer {SECRET}")
    log_stage("distill", params, dict(STAGE_METRICS, **{SECRET: 1}), [leaky, clean], load_params(None))
    assert (project / "mlflow.db").exists() and (project / "mlruns").is_dir()
    store = (project / "mlflow.db").read_bytes() + all_bytes_under(project / "mlruns")
    assert SECRET.encode() not in store
    assert b"fine" in store                       # the clean artifact was uploaded, the leaky one skipped


def test_standalone_stages_are_top_level_runs(project):
    params = load_params(None)
    first = log_stage("mix", {}, {"n": 1}, [], params)
    assert LAST_RUN["parent_run_id"] == first     # the top-level run is the run itself
    second = log_stage("export", {}, {"n": 2}, [], params)
    client = _client(project)
    runs = client.search_runs([client.get_experiment_by_name("distillery").experiment_id])
    assert {r.info.run_id for r in runs} == {first, second}   # no parent run was created
    for r in runs:
        assert "mlflow.parentRunId" not in r.data.tags
        assert r.data.tags["distillery.standalone"] == "true" and r.data.tags["distillery.kind"] == "standalone"


def test_env_tracking_uri_wins_over_params(project, monkeypatch, tmp_path, empty_store):
    other = tmp_path / "other.db"
    shutil.copy(empty_store, other)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other}")
    params = load_params(None, ["tracking.tracking_uri=sqlite:///" + str(tmp_path / "params.db"),
                                "tracking.experiment=exp-x"])
    assert log_stage("mix", {}, {"n": 1}, [], params)
    assert not (tmp_path / "params.db").exists()
    assert MlflowClient(tracking_uri=f"sqlite:///{other}").get_experiment_by_name("exp-x") is not None
    assert _client(project).get_experiment_by_name("exp-x") is None


def test_tracking_failure_is_a_warning_unless_strict(project, caplog):
    params = load_params(None, ["tracking.tracking_uri=nosuchscheme://x"])
    with caplog.at_level(logging.WARNING, logger="distillery.track"):
        assert log_stage("mix", {}, {"n": 1}, [], params) is None
    assert "mix not logged to MLflow" in caplog.text
    strict = load_params(None, ["tracking.tracking_uri=nosuchscheme://x", "tracking.strict=true"])
    with pytest.raises(DistilleryError, match="tracking: mix"):
        log_stage("mix", {}, {"n": 1}, [], strict)


def test_tracking_can_be_switched_off(project, monkeypatch):
    assert log_stage("mix", {}, {"n": 1}, [], load_params(None, ["tracking.enabled=false"])) is None
    monkeypatch.setenv("DISTILLERY_TRACKING", "0")
    assert log_stage("mix", {}, {"n": 1}, [], load_params(None)) is None
    assert _client(project).get_experiment_by_name("distillery") is None
