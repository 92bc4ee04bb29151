"""Stages of one `dvc repro` agree on one run group; another invocation, or a script run alone, does not."""

import os
import subprocess
import sys
from pathlib import Path

from distillery.track.context import is_dvc_command

PRINT_KEY = "from distillery.track.context import run_group; g = run_group(); print(g.kind, g.key, g.command)"


def test_dvc_command_lines_are_recognised():
    assert is_dvc_command(["/venv/bin/python", "/venv/bin/dvc", "repro"])
    assert is_dvc_command(["dvc", "exp", "run", "-S", "dedup.threshold=0.7"])
    assert is_dvc_command(["python", "-m", "dvc", "repro", "train"])
    assert not is_dvc_command(["dvc", "plots", "show"])
    assert not is_dvc_command(["python", "scripts/dedup.py", "--input", "dvc"])


def _fake_dvc(tmp_path: Path) -> Path:
    """An executable named `dvc` that, like `dvc repro`, runs two stage commands through a shell."""
    exe = tmp_path / "bin" / "dvc"
    exe.parent.mkdir()
    exe.write_text(f"#!/bin/bash\n/bin/bash -c '{sys.executable} -c \"{PRINT_KEY}\"'\n"
                   f"/bin/bash -c '{sys.executable} -c \"{PRINT_KEY}\"'\n")
    exe.chmod(0o755)
    return exe


def _run(args, env=None) -> list[str]:
    e = {k: v for k, v in os.environ.items() if k not in ("DISTILLERY_RUN_GROUP", "DVC_EXP_NAME")}
    e.update(env or {})
    return subprocess.run(args, capture_output=True, text=True, check=True, env=e).stdout.splitlines()


def test_stages_under_one_dvc_process_share_a_group(tmp_path):
    exe = _fake_dvc(tmp_path)
    first = _run([str(exe), "repro"])
    second = _run([str(exe), "repro"])
    assert len(first) == 2 and first[0] == first[1] and first[0].startswith("dvc dvc:")
    assert first[0].endswith("dvc repro")
    assert second[0] == second[1] and second[0] != first[0]          # a new repro, a new parent


def test_standalone_and_explicit_groups(tmp_path):
    alone = _run([sys.executable, "-c", PRINT_KEY])
    assert alone[0].startswith("standalone standalone:")
    assert _run([sys.executable, "-c", PRINT_KEY], env={"DISTILLERY_RUN_GROUP": "ci-42"})[0] == \
        "env ci-42 DISTILLERY_RUN_GROUP"
    assert _run([str(_fake_dvc(tmp_path)), "plots", "show"])[0].startswith("standalone")   # not a repro
