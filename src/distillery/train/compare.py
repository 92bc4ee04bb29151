"""Dataset A/B across commits: the per-item train_eval scores of two revisions, paired on shared items.

Each revision's per-item file (a DVC out of train_eval) is read at that revision through DVC (the
local cache or a remote), falling back to `git show` when the file is committed to git. The tuned
model of REV_B is compared with the tuned model of REV_A on the items both scored: benchmark items
are the same in every commit; held-out items change when the mix changes, so only shared ones count.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import InputError
from .results import compare_revs, markdown, parse_rows, table
from .stats_ci import Paired


@dataclass
class Comparison:
    rev_a: str
    rev_b: str
    results: list[Paired]
    counts: dict[str, dict[str, int]]

    def flat(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {}
        for r in self.results:
            out.update(r.flat("a", "b"))
        return out

    def text(self) -> str:
        return table(self.results, f"A {self.rev_a}", f"B {self.rev_b}")

    def markdown(self) -> str:
        head = (f"Dataset A/B: tuned model of `{self.rev_b}` (B) vs `{self.rev_a}` (A), paired on the eval items "
                "both scored; 95% paired bootstrap intervals; a verdict only when the interval excludes 0.\n\n")
        return head + markdown(self.results, "A", "B") + "\n"


def read_at_rev(path: str, rev: str, repo: str | Path = ".") -> str:
    """The text of `path` at git revision `rev`: through DVC when it is a DVC out, else from git."""
    import dvc.api
    from dvc.exceptions import DvcException

    try:
        with dvc.api.open(path, repo=str(repo), rev=rev, mode="r", encoding="utf-8") as fh:
            return fh.read()
    except (DvcException, FileNotFoundError, OSError) as e:
        dvc_error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    git = subprocess.run(["git", "-C", str(repo), "show", f"{rev}:{path}"], capture_output=True, text=True)
    if git.returncode == 0:
        return git.stdout
    raise InputError(f"{path} at {rev}: not readable through DVC ({dvc_error}) nor git; did train_eval run and "
                     f"`dvc commit`/`git commit` at that revision (and is the DVC cache or remote reachable)?")


def compare(rev_a: str, rev_b: str, items_path: str, repo: str | Path = ".", n_boot: int = 2000, seed: int = 0
            ) -> Comparison:
    rows_a = parse_rows(read_at_rev(items_path, rev_a, repo), f"{items_path}@{rev_a}")
    rows_b = parse_rows(read_at_rev(items_path, rev_b, repo), f"{items_path}@{rev_b}")
    results, counts = compare_revs(rows_a, rows_b, n_boot, seed)
    if not results:
        raise InputError(f"{items_path}: {rev_a} and {rev_b} share no scored eval items")
    return Comparison(rev_a, rev_b, results, counts)
