"""Helpers and fixtures for remote tests: temp git+DVC repos, a moto S3 server and an unprivileged sshd
(all on 127.0.0.1). Imported by conftest.py and the tests (importlib mode: added to sys.path there)."""

from __future__ import annotations

import getpass
import hashlib
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
SSHD = Path("/usr/sbin/sshd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra: str) -> dict:
    e = dict(os.environ)
    e["PATH"] = f"{VENV_BIN}:{e.get('PATH', '')}"
    e.update({"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
              "GIT_COMMITTER_EMAIL": "t@example.com", "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(REPO / "src")})
    e.update(extra)
    return e


def sh(cmd: list[str], cwd: Path, check: bool = True, **extra: str) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, cwd=cwd, env=env(**extra), capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def dvc(*args: str, cwd: Path, check: bool = True, **extra: str) -> subprocess.CompletedProcess:
    return sh([str(VENV_BIN / "dvc"), *args], cwd, check, **extra)


def cache_sync(*args: str, cwd: Path, check: bool = True, **extra: str) -> subprocess.CompletedProcess:
    return sh([sys.executable, "-m", "distillery.llm.cache_sync", *args], cwd, check, **extra)


def digest(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def make_llm_cache(path: Path, rows: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT)")
    con.executemany("INSERT OR IGNORE INTO responses VALUES (?, ?)", rows)
    con.commit()
    con.close()


def cache_rows(path: Path) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return sorted(con.execute("SELECT key, response FROM responses").fetchall())
    finally:
        con.close()


@pytest.fixture(scope="session")
def _template_repo(tmp_path_factory) -> Path:
    """Built once per session (git/dvc init cost seconds); each test gets its own copy."""
    repo = tmp_path_factory.mktemp("template") / "repo"
    (repo / "data" / "mix").mkdir(parents=True)
    sh(["git", "init", "-q"], repo)
    dvc("init", "-q", cwd=repo)
    shutil.copy(REPO / ".dvc" / "config", repo / ".dvc" / "config")
    shutil.copy(REPO / ".gitignore", repo / ".gitignore")
    (repo / "data" / "mix" / "production.jsonl").write_text(
        "".join(f'{{"id": "r{i}", "kind": "sft", "text": "héllo {i}"}}\n' for i in range(2000)), encoding="utf-8")
    (repo / "data" / "mix" / "blob.bin").write_bytes(os.urandom(300_000))
    dvc("add", "-q", "data/mix", cwd=repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "data v1"], repo)
    return repo


@pytest.fixture()
def dvc_repo(_template_repo, tmp_path) -> Path:
    """A git repo with DVC, the project's .dvc/config and a versioned data dir (binary + text)."""
    repo = tmp_path / "repo"
    shutil.copytree(_template_repo, repo, symlinks=True)
    return repo


def roundtrip(repo: Path, tmp_path: Path, local_cfg: list[list[str]] = (), **extra: str) -> Path:
    """push, wipe the local cache and data, pull into a fresh clone; returns the clone."""
    want = digest(repo / "data" / "mix")
    out = dvc("push", cwd=repo, **extra)
    assert "pushed" in out.stdout or "pushed" in out.stderr
    shutil.rmtree(repo / ".dvc" / "cache")
    shutil.rmtree(repo / "data" / "mix")
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    for args in local_cfg:
        dvc(*args, cwd=clone)
    dvc("pull", cwd=clone, **extra)
    assert digest(clone / "data" / "mix") == want
    assert "in sync" in dvc("status", "-c", cwd=clone, **extra).stdout
    return clone


@pytest.fixture()
def moto_s3():
    """A moto S3 server on a free 127.0.0.1 port with one bucket; yields (endpoint, env)."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket="dvc-remote")
    try:
        yield endpoint, creds
    finally:
        server.stop()


@pytest.fixture()
def sshd(tmp_path):
    """A real OpenSSH server run unprivileged on a free port, key auth only; yields (port, user, key)."""
    if not SSHD.exists():
        pytest.skip("/usr/sbin/sshd not found: install Debian openssh-server (apt-get install -y openssh-server)")
    d = tmp_path / "sshd"
    d.mkdir()
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    shutil.copy(d / "client.pub", d / "authorized_keys")
    os.chmod(d / "client", 0o600)
    try:
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation dir (needed when run as root)
    except OSError:
        pass
    port = free_port()
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-p", str(port), "-h", str(d / "host"),
                             "-o", "ListenAddress=127.0.0.1", "-o", f"AuthorizedKeysFile={d / 'authorized_keys'}",
                             "-o", f"PidFile={d / 'sshd.pid'}", "-o", "StrictModes=no",
                             "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no",
                             "-o", "UsePAM=no"],
                            stdout=subprocess.DEVNULL, stderr=open(d / "sshd.log", "wb"))
    deadline = time.time() + 15
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            pytest.fail(f"sshd exited: {(d / 'sshd.log').read_text()[-500:]}")
        time.sleep(0.1)
    try:
        yield port, getpass.getuser(), d / "client"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
