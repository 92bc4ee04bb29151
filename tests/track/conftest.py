"""Helpers for tracking tests: a throwaway git project and its own MLflow sqlite store."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SECRET = "sk-distillery-test-SECRET-9f8e7d6c5b4a"


def git(cwd: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com")
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """An initialised, empty MLflow sqlite DB (creating one runs ~40 migrations: ~10 s on a slow disk),
    copied by tests that need a fresh store."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture()
def project(tmp_path, monkeypatch, empty_store):
    """An empty git project (one commit) as cwd, tracking into <project>/mlflow.db, a fake key in env."""
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copy(empty_store, root / "mlflow.db")
    git(root, "init", "-q")
    (root / "README.md").write_text("x\n")
    git(root, "add", "README.md")
    git(root, "commit", "-qm", "init")
    monkeypatch.chdir(root)
    for k in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_STAGE", "DISTILLERY_RUN_GROUP", "DISTILLERY_TRACKING"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("FAKE_TEACHER_API_KEY", SECRET)
    return root


def all_bytes_under(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())
