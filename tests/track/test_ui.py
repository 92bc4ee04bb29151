"""`make ui`: the MLflow UI on 127.0.0.1 serves the runs distillery logged (checked over its REST API)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from distillery.core.params import load_params
from distillery.track import LAST_RUN, log_stage

VENV_BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, body: dict | None = None, timeout: float = 10) -> bytes:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


@pytest.mark.slow
def test_ui_serves_logged_runs(project, monkeypatch):
    monkeypatch.setenv("DISTILLERY_RUN_GROUP", "ui-test")
    params = load_params(None)
    log_stage("dedup", {"threshold": 0.8}, {"records_in": 50, "records_out": 42}, [], params)
    parent_id = LAST_RUN["parent_run_id"]

    port = _free_port()
    # the command `make ui` runs (Makefile: mlflow ui --host 127.0.0.1 --port $PORT --backend-store-uri ...),
    # with one worker instead of four to spare a 2-core CI machine
    cmd = [str(VENV_BIN / "mlflow"), "ui", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{project / 'mlflow.db'}", "--workers", "1"]
    log = open(project / "ui.log", "wb")
    proc = subprocess.Popen(cmd, cwd=project, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env=dict(os.environ, MLFLOW_ENABLE_TELEMETRY="false"))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300   # 12-25 s idle; minutes on a loaded machine
        while True:
            try:
                if _get(f"{base}/health", timeout=2).strip() == b"OK":
                    break
            except OSError:
                pass
            assert proc.poll() is None, (project / "ui.log").read_text()[-2000:]
            assert time.time() < deadline, "mlflow ui did not answer /health"
            time.sleep(1)
        exp = json.loads(_get(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=distillery"))
        exp_id = exp["experiment"]["experiment_id"]
        found = json.loads(_get(f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": [exp_id]}))
        runs = {r["info"]["run_id"]: r for r in found["runs"]}
        assert parent_id in runs
        child = next(r for r in runs.values() if r["info"]["run_name"] == "dedup")
        tags = {t["key"]: t["value"] for t in child["data"]["tags"]}
        metrics = {m["key"]: m["value"] for m in child["data"]["metrics"]}
        assert tags["mlflow.parentRunId"] == parent_id and metrics["records_out"] == 42
        assert b"<html" in _get(f"{base}/").lower()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
