"""MLflow tells the truth about a stage run: FAILED with its error, its real start/end times, only the
outputs it wrote, its headline metrics on the parent, a run by hand as its own top-level run, and the
deferred (spooled) path logs exactly what the direct path logs. Real MLflow, sqlite store in tmp_path."""

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from distillery.core.params import load_params
from distillery.track import LAST_RUN, context, log_stage, spool
from distillery.track.context import RunGroup, output_hashes

from .conftest import SECRET

T0 = 1_700_000_000.1234          # a stage that started long before it was logged


def _client(root: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def _runs(root: Path, experiment: str = "distillery"):
    client = _client(root)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


def test_failed_stage_is_failed_with_its_error_and_metrics(project, monkeypatch):
    monkeypatch.setenv("DISTILLERY_RUN_GROUP", "gate")
    params = load_params(None)
    err = f"dedup: 41% of records rejected (> reject gate 20%) key {SECRET}"
    rid = log_stage("dedup", {}, {"records_in": 100, "rejects": {"near_dup": 41}}, [], params,
                    status="FAILED", error=err)
    client = _client(project)
    run = client.get_run(rid)
    assert run.info.status == "FAILED"
    assert run.data.tags["distillery.error"].startswith("dedup: 41% of records rejected")
    assert SECRET not in run.data.tags["distillery.error"]
    assert run.data.metrics["records_in"] == 100 and run.data.metrics["rejects.near_dup"] == 41
    parent = client.get_run(LAST_RUN["parent_run_id"])
    assert parent.info.status == "FAILED" and "dedup: 41%" in parent.data.tags["distillery.error.dedup"]

    # the same group runs the stage again and it passes: the parent no longer reports the failure
    log_stage("dedup", {}, {"records_in": 100}, [], params)
    parent = client.get_run(LAST_RUN["parent_run_id"])
    assert parent.info.status == "FINISHED" and "distillery.error.dedup" not in parent.data.tags
    assert client.get_run(rid).info.status == "FAILED"      # the failed run stays failed
    with pytest.raises(ValueError):
        log_stage("dedup", {}, {}, [], params, status="DONE")


def test_run_times_are_the_stage_times(project, monkeypatch):
    monkeypatch.setenv("DISTILLERY_RUN_GROUP", "times")
    params = load_params(None)
    a = log_stage("train_eval", {}, {"loss": 0.5}, [], params, started=T0, ended=T0 + 5400.25)
    b = log_stage("report", {}, {"n": 1}, [], params, started=T0 + 5401.0, ended=T0 + 5402.5)
    client = _client(project)
    for rid, start, end in ((a, T0, T0 + 5400.25), (b, T0 + 5401.0, T0 + 5402.5)):
        info = client.get_run(rid).info
        assert abs(info.start_time - start * 1000) <= 1 and abs(info.end_time - end * 1000) <= 1
    parent = client.get_run(LAST_RUN["parent_run_id"]).info
    assert abs(parent.start_time - T0 * 1000) <= 1 and abs(parent.end_time - (T0 + 5402.5) * 1000) <= 1


def test_parent_output_tags_list_only_what_this_run_wrote(project, monkeypatch):
    from dvc_data.hashfile.hash import file_md5

    monkeypatch.setenv("DISTILLERY_RUN_GROUP", "outs")
    (project / "dvc.lock").write_text("schema: '2.0'\nstages:\n  old:\n    outs:\n    - path: data/old.jsonl\n"
                                      "      md5: 0123456789abcdef0123456789abcdef\n")
    data = project / "data"
    (data / "shards").mkdir(parents=True)
    (data / "dedup.jsonl").write_text('{"id": 1}\n')
    (data / "shards" / "0.jsonl").write_text("x\n")
    (data / "untouched.jsonl").write_text("y\n")
    params = load_params(None)
    log_stage("dedup", {}, {"n": 1}, [], params, outputs=[Path("data/dedup.jsonl"), data / "shards", data / "gone"])
    client = _client(project)
    parent = client.get_run(LAST_RUN["parent_run_id"]).data.tags
    outs = {k: v for k, v in parent.items() if k.startswith("dvc.out.")}
    assert set(outs) == {"dvc.out.data/dedup.jsonl", "dvc.out.data/shards"}   # not dvc.lock's, not missing ones
    assert outs["dvc.out.data/dedup.jsonl"] == file_md5(str(data / "dedup.jsonl"))   # DVC's own md5
    assert outs["dvc.out.data/shards"].startswith("dirstat:")
    assert client.get_run(LAST_RUN["run_id"]).data.tags["dvc.out.data/dedup.jsonl"] == outs["dvc.out.data/dedup.jsonl"]

    log_stage("mix", {}, {"n": 1}, [], params, outputs=[data / "untouched.jsonl"])
    parent = client.get_run(LAST_RUN["parent_run_id"]).data.tags
    assert {k for k in parent if k.startswith("dvc.out.")} == {"dvc.out.data/dedup.jsonl", "dvc.out.data/shards",
                                                               "dvc.out.data/untouched.jsonl"}


def test_directory_digest_is_stable_and_follows_changes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "out"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "a.txt").write_text("a")
    first = output_hashes(tmp_path, [d])
    assert first == output_hashes(tmp_path, [Path("out")]) and first["dvc.out.out"].startswith("dirstat:")
    (d / "b.txt").write_text("b")
    assert output_hashes(tmp_path, [d]) != first
    assert output_hashes(tmp_path, [d / "b.txt"]) == {"dvc.out.out/b.txt": hashlib.md5(b"b").hexdigest()}


def test_parent_metrics_are_the_flat_headline_only(project, monkeypatch):
    monkeypatch.setenv("DISTILLERY_RUN_GROUP", "headline")
    metrics = {"records_out": 90, "reject_rate": 0.1, "gate_ok": True, "teacher": "gpt",
               "rejects": {"too_long": 3}, "buckets": [0.5, 0.5], "nan": float("nan")}
    log_stage("mix", {}, metrics, [], load_params(None))
    client = _client(project)
    parent = client.get_run(LAST_RUN["parent_run_id"]).data.metrics
    assert parent == {"mix.records_out": 90, "mix.reject_rate": 0.1, "mix.gate_ok": 1.0}
    child = client.get_run(LAST_RUN["run_id"]).data.metrics
    assert child["rejects.too_long"] == 3 and child["buckets.1"] == 0.5     # the child keeps the breakdown


def test_standalone_run_is_top_level(project):
    rid = log_stage("export", {}, {"n": 1}, [], load_params(None), started=T0, ended=T0 + 2)
    (run,) = _runs(project)
    assert run.info.run_id == rid and run.info.run_name == "export (standalone)"
    assert "mlflow.parentRunId" not in run.data.tags and run.data.tags["distillery.standalone"] == "true"


STAGE = """
import sys, time
from distillery.core.params import load_params
from distillery.track import log_stage
log_stage(sys.argv[1], {}, {"n": 1}, [], load_params(None), started=time.time() - 1)
"""


def test_script_run_by_hand_after_a_repro_is_not_attached_to_its_parent(project, tmp_path):
    (project / "stage.py").write_text(STAGE)
    exe = tmp_path / "bin" / "dvc"          # like `dvc repro`: runs the stage through a shell
    exe.parent.mkdir()
    exe.write_text(f"#!/bin/bash\n/bin/bash -c '{sys.executable} stage.py piped'\n")
    exe.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("DISTILLERY_RUN_GROUP", "DVC_EXP_NAME")}
    subprocess.run([str(exe), "repro"], cwd=project, env=env, check=True, timeout=120)
    spool.wait_drained(project, timeout_s=300)    # the stage spooled; the real flusher logs it
    log_stage("by_hand", {}, {"n": 2}, [], load_params(None))   # this process has no dvc above it

    runs = {r.info.run_name: r for r in _runs(project)}
    piped, by_hand = runs["piped"], runs["by_hand (standalone)"]
    parent = runs[next(n for n in runs if n.startswith("dvc repro"))]
    assert piped.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert "mlflow.parentRunId" not in by_hand.data.tags and by_hand.data.tags["distillery.standalone"] == "true"
    assert len(runs) == 3


def _log_group(project, monkeypatch, key: str, defer: bool) -> None:
    """Two stages of one dvc group (one fails), through the spool when defer else directly."""
    monkeypatch.setattr(context, "run_group", lambda: RunGroup(key, "dvc", "dvc repro", None))
    monkeypatch.setattr(spool, "start_flusher", lambda root, pid: None)   # flushed below, in this process
    params = load_params(None, [f"tracking.defer={str(defer).lower()}"])
    log_stage("ingest", {"n": 3}, {"records_out": 3, "by_source": {"a": 3}}, [], params,
              outputs=[project / "ingest.jsonl"], started=T0, ended=T0 + 10)
    log_stage("dedup", {"threshold": 0.8}, {"records_out": 1}, [], params, status="FAILED",
              error="dedup: reject gate broken", outputs=[project / "dedup.jsonl"], started=T0 + 11, ended=T0 + 12)
    if defer:
        assert len(spool.pending(project)) == 2
        spool.flush(project)


def _summary(project, key: str) -> dict:
    runs = _runs(project)
    parent = next(r for r in runs if r.data.tags.get("distillery.run_group") == key)
    kids = sorted((r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id),
                  key=lambda r: r.info.start_time)
    keep = lambda tags: {k: v for k, v in tags.items() if k.startswith(("dvc.out.", "distillery.error", "git."))}
    return {"parent": (parent.info.status, parent.info.start_time, parent.info.end_time, parent.data.metrics,
                       keep(parent.data.tags)),
            "kids": [(k.info.run_name, k.info.status, k.info.start_time, k.info.end_time, k.data.metrics,
                      k.data.params, keep(k.data.tags)) for k in kids]}


def test_deferred_path_logs_what_the_direct_path_logs(project, monkeypatch):
    (project / "ingest.jsonl").write_text("a\nb\nc\n")
    (project / "dedup.jsonl").write_text("a\n")
    _log_group(project, monkeypatch, "dvc:h:1:1:", defer=False)
    time.sleep(0.01)
    _log_group(project, monkeypatch, "dvc:h:2:2:", defer=True)
    direct, deferred = _summary(project, "dvc:h:1:1:"), _summary(project, "dvc:h:2:2:")
    assert deferred == direct
    status, start, end, metrics, tags = direct["parent"]
    assert status == "FAILED" and abs(start - T0 * 1000) <= 1 and abs(end - (T0 + 12) * 1000) <= 1
    assert metrics == {"ingest.records_out": 3, "dedup.records_out": 1}
    assert tags["distillery.error.dedup"] == "dedup: reject gate broken" and "dvc.out.dedup.jsonl" in tags
    assert [k[:2] for k in direct["kids"]] == [("ingest", "FINISHED"), ("dedup", "FAILED")]
