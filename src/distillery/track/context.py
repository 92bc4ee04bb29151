"""Where a stage runs: project root, the `dvc repro` it belongs to, git commit, DVC output hashes.

The run group is what makes all stages of one `dvc repro` / `dvc exp run` children of ONE parent
run: each stage is a separate process, so they agree on a key derived from the invoking dvc
process (pid + start time, unique per boot). DISTILLERY_RUN_GROUP overrides it. A script run by
hand (no dvc ancestor, no DISTILLERY_RUN_GROUP) is kind "standalone": logged as a top-level run with
no parent, so it can never land under the parent of an earlier `dvc repro`.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_DVC_COMMANDS = {"repro", "exp", "experiments", "run", "queue"}


def project_root(start: Path | None = None) -> Path:
    """DVC_ROOT (set by dvc for every stage), else the nearest folder with dvc.yaml or .dvc, else cwd."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    cur = (start or Path.cwd()).resolve()
    for d in (cur, *cur.parents):
        if (d / "dvc.yaml").is_file() or (d / ".dvc").is_dir():
            return d
    return cur


@dataclass
class Proc:
    pid: int
    ppid: int
    start: str          # start time (clock ticks since boot, or psutil epoch seconds)
    cmdline: list[str] = field(default_factory=list)


def _proc(pid: int) -> Proc | None:
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            p = psutil.Process(pid)
            with p.oneshot():
                return Proc(pid, p.ppid(), f"{p.create_time():.2f}", p.cmdline())
        except (psutil.Error, OSError):
            return None
    try:  # /proc fallback (Linux)
        stat = Path(f"/proc/{pid}/stat").read_text()
        rest = stat[stat.rindex(")") + 2:].split()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        return Proc(pid, int(rest[1]), rest[19], [c.decode(errors="replace") for c in cmd if c])
    except (OSError, ValueError, IndexError):
        return None


def is_dvc_command(cmdline: list[str]) -> bool:
    """`dvc repro`, `dvc exp run`, `python -m dvc repro`, `/venv/bin/python /venv/bin/dvc repro`."""
    for i, arg in enumerate(cmdline[:4]):
        name = os.path.basename(arg)
        if name == "dvc" or (arg == "dvc" and i > 0 and cmdline[i - 1] == "-m"):
            return any(a in _DVC_COMMANDS for a in cmdline[i + 1:i + 3])
    return False


def find_dvc_ancestor(pid: int | None = None, max_depth: int = 32) -> Proc | None:
    """The nearest ancestor process that is a dvc repro / exp run (None outside dvc)."""
    p = _proc(pid or os.getpid())
    for _ in range(max_depth):
        if p is None or p.ppid <= 1:
            return None
        p = _proc(p.ppid)
        if p is not None and is_dvc_command(p.cmdline):
            return p
    return None


@dataclass
class RunGroup:
    key: str
    kind: str           # "env" | "dvc" | "standalone"
    command: str
    pid: int | None = None   # the dvc process (kind "dvc"): the spool flusher drains while it lives


def run_group() -> RunGroup:
    explicit = os.environ.get("DISTILLERY_RUN_GROUP")
    if explicit:
        return RunGroup(explicit, "env", "DISTILLERY_RUN_GROUP")
    host = socket.gethostname()
    dvc = find_dvc_ancestor()
    if dvc is not None:
        args = dvc.cmdline[next(i for i, a in enumerate(dvc.cmdline) if os.path.basename(a) == "dvc") + 1:]
        exp = os.environ.get("DVC_EXP_NAME", "")   # a queue worker runs many experiments: one parent each
        return RunGroup(f"dvc:{host}:{dvc.pid}:{dvc.start}:{exp}", "dvc", "dvc " + " ".join(args), dvc.pid)
    me = _proc(os.getpid())
    start = me.start if me else "0"
    return RunGroup(f"standalone:{host}:{os.getpid()}:{start}", "standalone", "standalone")


def git_info(root: Path) -> dict[str, str]:
    """Commit, branch and dirty flag of the project (empty outside git)."""
    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    info = {"git.commit": commit, "git.dirty": "true" if status else "false"}
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    if branch:
        info["git.branch"] = branch
    return info


def dvc_lock_hashes(root: Path) -> dict[str, str]:
    """{"dvc.out.<path>": md5} for every output recorded in dvc.lock (what `dvc repro` has locked).
    For reports only: MLflow's output tags come from `output_hashes` (what a run itself wrote)."""
    lock = root / "dvc.lock"
    if not lock.is_file():
        return {}
    try:
        data: Any = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    out: dict[str, str] = {}
    for _stage, entry in sorted((data.get("stages") or {}).items()):
        for o in (entry or {}).get("outs") or []:
            digest = o.get("md5") or o.get("hash") or o.get("etag")
            if o.get("path") and digest:
                out[f"dvc.out.{o['path']}"] = str(digest)
    return out


def output_hashes(root: Path, outputs: list[Path]) -> dict[str, str]:
    """{"dvc.out.<path>": value} for the outputs a stage run wrote, computed in the stage process
    (dvc.lock is written only after the stage exits). <path>: relative to the project root, absolute
    outside it (a relative output is taken from the cwd, like artifacts). value: for a file its md5
    hex digest (what DVC 3 records as `md5` in dvc.lock); for a folder `dirstat:<md5 of the sorted
    "relpath<TAB>size<TAB>mtime_ns" lines of its files>`, cheap (no file is read) and stable while
    the folder is unchanged, but NOT DVC's `.dir` hash. A missing output is left out."""
    out: dict[str, str] = {}
    for o in outputs:
        p = Path(o).resolve()
        if p.is_file():
            digest = hashlib.md5()
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            value = digest.hexdigest()
        elif p.is_dir():
            stats = ((f.relative_to(p).as_posix(), f.stat()) for f in p.rglob("*") if f.is_file())
            lines = "".join(sorted(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\n" for rel, st in stats))
            value = "dirstat:" + hashlib.md5(lines.encode()).hexdigest()
        else:
            continue
        rel = p.relative_to(root.resolve()).as_posix() if p.is_relative_to(root.resolve()) else str(p)
        out[f"dvc.out.{rel}"] = value
    return out


def dvc_env() -> dict[str, str]:
    """What dvc tells a stage about itself (stage name, experiment name, baseline commit)."""
    names = {"DVC_STAGE": "dvc.stage", "DVC_EXP_NAME": "dvc.exp_name", "DVC_EXP_BASELINE_REV": "dvc.exp_baseline"}
    return {tag: os.environ[env] for env, tag in names.items() if os.environ.get(env)}
