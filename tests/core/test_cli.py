"""`distillery <stage>` is the same command as `python scripts/<stage>.py`, and the group stays cheap."""

from __future__ import annotations

import os
import subprocess
import sys
from multiprocessing.pool import ThreadPool
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.stem for p in (REPO / "scripts").glob("*.py"))
DISTILLERY = Path(sys.prefix) / "bin" / "distillery"


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "100", "DISTILLERY_TRACKING": "0"}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def entry_point() -> str:
    if not DISTILLERY.exists():
        pytest.fail(f"{DISTILLERY} missing: run `uv pip install --no-deps -e .` in the venv")
    return str(DISTILLERY)


def test_stage_help_matches_script_help(entry_point):
    cmds = [c for s in SCRIPTS for c in ([entry_point, s, "--help"], [sys.executable, f"scripts/{s}.py", "--help"])]
    with ThreadPool(4) as pool:
        out = pool.map(_run, cmds)
    for i, stage in enumerate(SCRIPTS):
        via_cli, via_script = out[2 * i], out[2 * i + 1]
        assert via_script.returncode == 0, via_script.stderr[-2000:]
        assert via_script.stdout.startswith(f"Usage: distillery {stage} ["), stage
        assert (via_cli.returncode, via_cli.stdout, via_cli.stderr) == (0, via_script.stdout, via_script.stderr), stage


def test_group_help_lists_every_stage_without_importing_them(entry_point):
    r = _run([entry_point, "--help"])
    assert r.returncode == 0 and r.stderr == ""
    listed = r.stdout.split("Stages:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in listed] == SCRIPTS
    assert next(line for line in listed if line.split()[0] == "distill").split(None, 1)[1].startswith("Distil answers")
    code = ("import sys; from distillery.cli import cli; cli.main(['--help'], standalone_mode=False);"
            "heavy = {'torch', 'transformers', 'great_expectations', 'distillery.commands.distill'} & set(sys.modules);"
            "assert not heavy, heavy")
    r = _run([sys.executable, "-c", code])
    assert r.returncode == 0, r.stderr[-2000:]


def test_version(entry_point):
    from importlib.metadata import version

    r = _run([entry_point, "--version"])
    assert r.returncode == 0 and r.stdout.strip() == f"distillery, version {version('distillery')}"


@pytest.mark.parametrize("stage, hint", [("nope", "stages: card, "), ("distil", "did you mean 'distill'?")])
def test_unknown_stage_is_one_line(entry_point, stage, hint):
    r = _run([entry_point, stage, "--input", "x"])
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"error: unknown stage '{stage}'; ")
    assert hint in r.stderr and "Traceback" not in r.stderr
