"""Shared test setup: everything offline, telemetry off, one prepared SmolLM2 per machine."""

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

for k, v in {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
    "DVC_NO_ANALYTICS": "1", "GX_ANALYTICS_ENABLED": "false", "MLFLOW_ENABLE_TELEMETRY": "false",
    "DO_NOT_TRACK": "1", "RAY_USAGE_STATS_ENABLED": "0", "TOKENIZERS_PARALLELISM": "false",
    "DISTILLERY_PROGRESS": "0", "DISTILLERY_TRACKING": "0",
}.items():
    os.environ.setdefault(k, v)

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("DISTILLERY_MODEL_CACHE", str(REPO / ".cache" / "models"))
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct as safetensors, converted once per machine (~20 s the first time)."""
    from distillery.models import resolve_model_path

    return Path(resolve_model_path("smollm2"))


@pytest.fixture()
def run_script(repo_root):
    """Run `python scripts/<name>.py ARGS` in a cwd; returns CompletedProcess (text)."""
    import subprocess

    def _run(name: str, *args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600):
        e = dict(os.environ)
        e["PATH"] = f"{VENV_BIN}:{e.get('PATH', '')}"
        if env:
            e.update(env)
        return subprocess.run([sys.executable, str(repo_root / "scripts" / f"{name}.py"), *map(str, args)],
                              cwd=cwd or repo_root, env=e, capture_output=True, text=True, timeout=timeout)

    return _run


@pytest.fixture(autouse=True)
def _keep_mlflow_uri():
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; one test calling it must not redirect every
    later test's runs to its store."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


# Headless Chromium with the network off, for every HTML report test: a dead proxy for every URL (loopback
# included) and no DNS. Not --no-proxy-server: it overrides these.
NETWORK_OFF = ["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
               "--host-resolver-rules=MAP * ~NOTFOUND"]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Chromium from PATH; .ci/run installs it, so in CI (CI set) a missing one fails instead of skipping."""
    found = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium not found on PATH (.ci/run installs the Debian package)")
    pytest.skip("chromium not installed (apt-get install chromium; .ci/run does it in CI)")


@pytest.fixture(scope="session")
def browse(chromium):
    """browse(page, profile, *flags): open `page` in headless Chromium, network off; the finished process."""
    def _browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
        r = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            f"--user-data-dir={profile}", *NETWORK_OFF, *args, page.as_uri()],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        return r
    return _browse


@pytest.fixture()
def tiny_fs(tmp_path):
    """Mount a tmpfs of `size` (and options) under tmp_path; unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def mount(size: str, *opts: str) -> Path:
        d = tmp_path / f"fs{len(mounted)}"
        d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join((f"size={size}",) + opts), "tmpfs", str(d)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounted.append(d)
        return d

    yield mount
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


@pytest.fixture()
def fill_disk_when():
    """`fill_disk_when(ready, path)`: a thread that waits (up to 30 s) until `ready()` is true, then writes `path`
    until its disk is full: another writer taking the last free byte while a run goes on. Joined after the test."""
    threads: list[threading.Thread] = []

    def start(ready, path: Path) -> threading.Thread:
        def fill() -> None:
            deadline = time.monotonic() + 30
            while not ready() and time.monotonic() < deadline:
                time.sleep(0.005)
            with open(path, "wb", buffering=0) as f, contextlib.suppress(OSError):   # ENOSPC ends it: disk full
                while True:
                    f.write(b"\0" * 4096)
        th = threading.Thread(target=fill, daemon=True)
        th.start()
        threads.append(th)
        return th

    yield start
    for th in threads:
        th.join()
