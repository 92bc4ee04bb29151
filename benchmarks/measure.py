"""Run a command and measure it from outside: wall time, CPU of the children, peak RSS of its process
tree (and of its largest process), and the machine's load while it ran. Shared by the benchmarks."""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from dataclasses import dataclass

import psutil


@dataclass
class Measured:
    returncode: int
    log: str
    wall: float
    cpu: float              # user + sys seconds of the command and its children
    peak_tree_mb: float
    peak_one_mb: float
    load_start: float
    load_peak: float


def run_measured(cmd: list[str], *, env: dict, cwd: str | os.PathLike | None = None,
                 interval: float = 0.05) -> Measured:
    """Run `cmd` (stdout and stderr together in `log`), sampling its process tree every `interval` s."""
    peak_tree = peak_one = 0
    load0 = os.getloadavg()[0]
    loads = [load0]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ps = psutil.Process(proc.pid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree, peak_one
        while not done.is_set():
            try:
                rss = [ps.memory_info().rss] + [c.memory_info().rss for c in ps.children(recursive=True)]
                peak_tree, peak_one = max(peak_tree, sum(rss)), max(peak_one, max(rss))
            except psutil.Error:  # the process ended between two samples
                pass
            loads.append(os.getloadavg()[0])
            time.sleep(interval)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    log = proc.communicate()[0]
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    done.set()
    th.join()
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return Measured(proc.returncode, log, wall, cpu, peak_tree / 2**20, peak_one / 2**20, load0, max(loads))
