"""Deferred MLflow logging under `dvc repro`.

Importing mlflow and opening its store costs 5–20 s of wall time per process on a 2-core machine,
and a pipeline has ~20 stage processes. Under dvc, a stage therefore only drops its (already
flattened, already redacted) payload into `.cache/tracking/spool/<run group>/`, and one background
flusher per machine logs every payload in a single process, in order, while the pipeline goes on.
The `report` stage waits for the spool to drain, so when `dvc repro` returns, everything is logged.
A payload left by a crashed flusher is logged by the next one (`python -m distillery.track.spool`).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..core.io import pid_alive

log = logging.getLogger("distillery.track")

SPOOL_DIR = Path(".cache") / "tracking" / "spool"


def spool_root(root: Path) -> Path:
    return root / SPOOL_DIR


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[:150]


def spool_payload(root: Path, payload: dict[str, Any]) -> Path:
    """Write one stage's payload atomically; ordered by time so the flusher logs in stage order."""
    from ..core.io import write_json

    d = spool_root(root) / _safe(payload["group"]["key"])
    path = d / f"{time.time_ns():020d}-{_safe(payload['metrics_name'])}.json"
    write_json(path, payload)
    return path


def pending(root: Path) -> list[Path]:
    base = spool_root(root)
    if not base.is_dir():
        return []
    return sorted((p for p in base.glob("*/*.json") if p.parent.name != "failed"), key=lambda p: p.name)


def start_flusher(root: Path, watch_pid: int | None) -> None:
    """Start a detached flusher (it exits at once if another one already holds the lock)."""
    cmd = [sys.executable, "-m", "distillery.track.spool", "--root", str(root)]
    if watch_pid:
        cmd += ["--watch-pid", str(watch_pid)]
    log_path = spool_root(root) / "flusher.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                         cwd=root, env=dict(os.environ))


def _lock(root: Path):
    from filelock import FileLock

    spool_root(root).mkdir(parents=True, exist_ok=True)
    return FileLock(str(spool_root(root) / ".flusher.lock"))


def flush(root: Path) -> int:
    """Log every pending payload (oldest first); returns how many were logged."""
    from . import log_payload

    n = 0
    for path in pending(root):
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            log.warning("tracking: unreadable spool file %s (%s); removed", path, e)
            path.unlink(missing_ok=True)
            continue
        try:
            log_payload(payload)
        except Exception as e:  # noqa: BLE001 - one bad log must not block the others
            failed = path.parent.parent / "failed" / path.name
            failed.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, failed)
            log.warning("tracking: %s not logged to MLflow (%s: %s); payload kept in %s",
                        payload.get("metrics_name"), type(e).__name__, str(e).splitlines()[0][:200], failed)
            continue
        path.unlink(missing_ok=True)
        n += 1
    return n


def run_flusher(root: Path, watch_pid: int | None, idle_exit_s: float = 2.0) -> None:
    """Hold the lock and drain the spool until the watched dvc process is gone and nothing is left."""
    from filelock import Timeout

    lock = _lock(root)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return
    try:
        idle_since = time.time()
        while True:
            if flush(root):
                idle_since = time.time()
            elif not pid_alive(watch_pid) and time.time() - idle_since >= idle_exit_s:
                if not pending(root):
                    return
            time.sleep(0.3)
    finally:
        lock.release()


def wait_drained(root: Path, timeout_s: float = 600.0) -> None:
    """Block until the spool is empty: flush here if no flusher is running, else wait for it."""
    from filelock import Timeout

    deadline = time.time() + timeout_s
    while pending(root) and time.time() < deadline:
        lock = _lock(root)
        try:
            lock.acquire(timeout=0)
        except Timeout:          # a flusher is at work: let it finish
            time.sleep(0.3)
            continue
        try:
            flush(root)
        finally:
            lock.release()
    if pending(root):
        log.warning("tracking: %d stage logs still pending after %.0fs; run `python -m distillery.track.spool`",
                    len(pending(root)), timeout_s)


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Log spooled stage payloads to MLflow (see module docstring).")
    ap.add_argument("--root", default=".", help="project root holding .cache/tracking/spool")
    ap.add_argument("--watch-pid", type=int, default=None, help="keep draining while this process lives")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_flusher(Path(a.root).resolve(), a.watch_pid)


if __name__ == "__main__":
    main()
