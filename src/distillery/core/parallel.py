"""An ordered process-parallel map over blocks of JSONL lines.

Why: the per-record stages (score's heuristics, stats' token counts) spend their CPU in Python per
record. Forked workers give every core a share of it while the parent keeps everything that has an
order or a state (writers, quarantine, counters, ids seen), and takes results back in input order, so
the outputs are the same bytes whatever the number of workers. Workers are forked when the pool is
made, so what they need (a tokenizer, compiled rules) is set up in the parent before it, never loaded
twice, and nothing is pickled but the lines and the results.
"""

from __future__ import annotations

import gzip
import multiprocessing as mp
import os
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

from .errors import InputError
from .io import UTF8_BOM, BadLine, iter_line_blocks, parse_line, split_lines

POOL_MIN_BYTES = 2 << 20     # smaller inputs are handled in the parent (a pool costs more than it saves)
BLOCK_LINES = 2_000          # lines per job of `record_rows`

C = TypeVar("C")
A = TypeVar("A")
R = TypeVar("R")


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker_count(requested: int, files: list[Path]) -> int:
    """`requested` workers (0: every usable core), or 1 when the input is too small to be worth a pool."""
    if sum(f.stat().st_size for f in files) < POOL_MIN_BYTES:
        return 1
    return requested or usable_cores()


def line_blocks(files: list[Path], lines_per_block: int) -> Iterator[tuple[int, list[tuple[int, bytes]]]]:
    """(file number, [(line number, raw line)] of its non-blank lines), `lines_per_block` lines at a time.
    Lines and numbers as `core.io.iter_jsonl` reads them (a BOM opening a file is not data)."""
    for f_no, path in enumerate(files):
        blocks = iter_line_blocks(path, lines_per_block)
        while True:
            try:
                first, blob = next(blocks)
            except StopIteration:
                break
            except (OSError, EOFError, gzip.BadGzipFile) as e:
                raise InputError(f"{path}: unreadable ({e})") from e
            lines = split_lines(blob)
            if first == 1 and lines and lines[0].startswith(UTF8_BOM):
                lines[0] = lines[0][len(UTF8_BOM):]
            yield f_no, [(ln, raw) for ln, raw in enumerate(lines, start=first) if raw.strip()]


class _Done:
    """A result computed in the parent, shaped like the pool's promise of one."""

    def __init__(self, value: Any):
        self.value = value

    def get(self) -> Any:
        return self.value


class OrderedPool:
    """`map(fn, jobs)`: fn(arg) for every (context, arg) job, back as (context, result) in job order; in
    `workers` forked processes (at most `ahead` jobs per worker in flight), or in this process for one.
    An empty arg (a block with nothing left to do) is run in the parent: no round trip for no work."""

    def __init__(self, workers: int, ahead: int = 2, initializer: Callable[..., None] | None = None,
                 initargs: tuple = ()):
        """`initializer(*initargs)` runs in each worker once, for per-run state too large to send with
        every job (dedup's settings and eval index); with one worker the caller has it in this process."""
        self.workers = workers
        self.ahead = ahead
        self.pool = mp.get_context("fork").Pool(workers, initializer, initargs) if workers > 1 else None

    def map(self, fn: Callable[[A], R], jobs: Iterable[tuple[C, A]]) -> Iterator[tuple[C, R]]:
        if self.pool is None:
            for ctx, arg in jobs:
                yield ctx, fn(arg)
            return
        pending: deque[tuple[C, Any]] = deque()
        for ctx, arg in jobs:
            pending.append((ctx, self.pool.apply_async(fn, (arg,)) if arg else _Done(fn(arg))))
            if len(pending) > self.ahead * self.workers:
                done, res = pending.popleft()
                yield done, res.get()
        while pending:
            done, res = pending.popleft()
            yield done, res.get()

    def imap(self, fn: Callable[[A], R], args: Iterable[A]) -> Iterator[R]:
        """fn(arg) for every arg, in order (`map` without contexts)."""
        for _, r in self.map(fn, ((None, a) for a in args)):
            yield r

    def __enter__(self) -> OrderedPool:
        return self

    def __exit__(self, et: type[BaseException] | None, *_: Any) -> None:
        if self.pool is None:
            return
        if et is not None:
            self.pool.terminate()
        self.pool.close()
        self.pool.join()


def _block_rows(job: tuple[Callable[..., Any], tuple, list[tuple[int, bytes]]]) -> list[Any]:
    """In a worker: fn(line, record, *extra) of every line of a block (an unreadable line as {}), Nones left out."""
    fn, extra, lines = job
    out = []
    for ln, raw in lines:
        obj = parse_line(raw, ln)
        row = fn(ln, {} if isinstance(obj, BadLine) else obj, *extra)
        if row is not None:
            out.append(row)
    return out


def record_rows(path: Path, fn: Callable[..., Any], pool: OrderedPool, *extra: Any) -> Iterator[Any]:
    """fn(line, record, *extra) of every non-blank line of `path` (an unreadable line as {}), None results
    left out, in file order: the lines are parsed and turned into rows by `pool`'s workers, so a stage that
    only needs a few fields of each record (validate's flat tables, stats' bucket index) does not parse
    them all in one process. `fn` must be a module-level function (it is pickled by name)."""
    jobs = ((None, (fn, extra, lines)) for _, lines in line_blocks([path], BLOCK_LINES))
    for _, rows in pool.map(_block_rows, jobs):
        yield from rows
