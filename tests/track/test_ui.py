"""`make ui`: the MLflow UI on 127.0.0.1 serves the runs distillery logged and their artifacts after the project
folder moved (artifact paths are relative to the project root), prints a link to the Model training view, and
stops on ONE signal: Ctrl-C in a terminal (SIGINT to the whole foreground group) or one SIGTERM to make.
Checked over the REST API; the Makefile target itself is run, in the moved project, with the repo's venv."""

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest

from distillery.core.params import load_params
from distillery.track import LAST_RUN, log_stage

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
STOP_WITHIN_S = 15          # uvicorn's own shutdown; the Makefile's SIGKILL fallback comes later (UI_STOP_GRACE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, body: dict | None = None, timeout: float = 10) -> bytes:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def _page_text(chromium: str, url: str, profile: Path) -> str:
    """The visible text of the page after its scripts ran (headless Chromium, --dump-dom)."""
    r = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                        "--virtual-time-budget=30000", "--dump-dom", url], capture_output=True, text=True, timeout=180)
    dom = re.sub(r"<script.*?</script>|<style.*?</style>", "", r.stdout, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))


def _alive(procs: list[psutil.Process]) -> list[str]:
    left = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return left


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm-to-make"])
def test_make_ui_serves_moved_artifacts_and_stops_on_one_signal(project, monkeypatch, how):
    monkeypatch.setenv("DISTILLERY_RUN_GROUP", "ui-test")
    (project / "report.txt").write_text("dedup report\n")
    params = load_params(None)
    log_stage("dedup", {"threshold": 0.8}, {"records_in": 50, "records_out": 42}, [project / "report.txt"], params)
    parent_id, child_id = LAST_RUN["parent_run_id"], LAST_RUN["run_id"]

    moved = project.parent / "moved-project"          # a moved (or copied) project keeps its artifacts
    monkeypatch.chdir(project.parent)
    shutil.move(str(project), str(moved))

    port = _free_port()
    # WORKERS=1 spares a 2-core CI machine (MLflow starts 4 uvicorn workers by default)
    cmd = ["make", "-s", "-f", str(REPO / "Makefile"), "-o", str(VENV_BIN.parent / ".installed"),
           f"VENV={VENV_BIN.parent}", "UI_STOP_GRACE=30", "ui"]
    env = dict(os.environ, PORT=str(port), WORKERS="1", MLFLOW_ENABLE_TELEMETRY="false")
    env.pop("MLFLOW_TRACKING_URI", None)
    log = open(moved / "ui.log", "wb")
    # a terminal's Ctrl-C reaches a shell that can trap it; a SIGINT this process ignores would be inherited by make
    # and its shell (which cannot trap an ignored signal), so the child starts with the default disposition
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(cmd, cwd=moved, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    finally:
        signal.signal(signal.SIGINT, previous)
    base = f"http://127.0.0.1:{port}"
    tree: list[psutil.Process] = []
    try:
        deadline = time.time() + 300   # 12-25 s idle; minutes on a loaded machine
        while True:
            try:
                if _get(f"{base}/health", timeout=2).strip() == b"OK":
                    break
            except OSError:
                pass
            assert proc.poll() is None, (moved / "ui.log").read_text()[-2000:]
            assert time.time() < deadline, "make ui did not answer /health"
            time.sleep(1)
        exp = json.loads(_get(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=distillery"))
        exp_id = exp["experiment"]["experiment_id"]
        assert exp["experiment"]["artifact_location"] == "mlruns"
        found = json.loads(_get(f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": [exp_id]}))
        runs = {r["info"]["run_id"]: r for r in found["runs"]}
        assert parent_id in runs
        child = runs[child_id]
        tags = {t["key"]: t["value"] for t in child["data"]["tags"]}
        metrics = {m["key"]: m["value"] for m in child["data"]["metrics"]}
        assert tags["mlflow.parentRunId"] == parent_id and metrics["records_out"] == 42
        # the artifact, logged before the move, through the endpoints the UI's artifact view uses
        listed = json.loads(_get(f"{base}/ajax-api/2.0/mlflow/artifacts/list?run_id={child_id}"))
        assert [f["path"] for f in listed["files"]] == ["report.txt"]
        q = urllib.parse.urlencode({"run_uuid": child_id, "path": "report.txt"})
        assert _get(f"{base}/get-artifact?{q}") == b"dedup report\n"
        assert b"<html" in _get(f"{base}/").lower()
        printed = (moved / "ui.log").read_text()
        link = re.search(rf"http://127\.0\.0\.1:{port}/#/experiments/{exp_id}/runs\?workflowType=machine_learning",
                         printed)
        assert link, printed[-2000:]
        browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
        if how == "ctrl-c" and browser:
            # MLflow 3.17 ignores the experiment's mlflow.experimentKind tag: without workflowType it opens
            # the GenAI overview ("No data available"); the printed link opens the runs table
            text = _page_text(browser, link.group(0), moved / "chrome-profile")
            assert "group ui-test" in text and "No data available" not in text, text[:2000]
            text = _page_text(browser, f"{base}/#/experiments/{exp_id}", moved / "chrome-profile-2")
            assert "No data available" in text and "group ui-test" not in text, text[:2000]

        tree = psutil.Process(proc.pid).children(recursive=True)
        assert any("mlflow" in " ".join(p.cmdline()) for p in tree)
        started = time.time()
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)       # what the terminal sends to the foreground group
        else:
            proc.send_signal(signal.SIGTERM)         # e.g. `kill <make pid>`, or a supervisor stopping it
        try:
            proc.wait(timeout=STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"make ui still running {STOP_WITHIN_S} s after one {how}: {_alive(tree)}")
        deadline = time.time() + 5
        while _alive(tree) and time.time() < deadline:
            time.sleep(0.2)
        assert _alive(tree) == [], f"left behind after one {how}"
        assert time.time() - started < STOP_WITHIN_S + 5
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for p in tree:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        proc.wait(timeout=30)
        log.close()
