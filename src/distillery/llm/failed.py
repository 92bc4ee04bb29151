"""The failed-requests file: one JSON line per unit of work whose request failed in the latest run.

Why "latest run" and "unit": the file is what a user reads to see what is still missing, so it is
rewritten from scratch by every run (a clean rerun leaves it empty), and a failure that a later
request of the same unit resolved (a retry, a failover teacher) is dropped. A unit is the request's
`tag` when it has one, else the request itself (its cache key); a unit that failed twice (two
teachers) keeps one line with its last reason and the earlier attempts.

A line holds what decides the failure, never how this run came by it: a truncated answer served from
the cache and the same answer just paid for give the same line (the number of calls this run made is
in `ChatResult.attempts` and the engine's metrics). The file is part of a stage's DVC outputs, so a
rerun on a warm cache leaves it byte-identical and reruns nothing downstream.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from ..core.io import write_jsonl
from .secrets import redact
from .types import ChatRequest, ChatResult


def unit_of(req: ChatRequest, key: str | None = None) -> str:
    return f"tag:{req.tag}" if req.tag else f"key:{key or id(req)}"


class FailedLog:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._rows: dict[str, dict] = {}
        self._dirty = True   # the first flush always rewrites: the file describes this run only

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def rows(self) -> list[dict]:
        return list(self._rows.values())

    def add(self, req: ChatRequest, res: ChatResult, key: str | None = None) -> None:
        unit = unit_of(req, key)
        earlier = self._rows.pop(unit, None)
        row = {"tag": req.tag, "teacher": res.teacher, "model": res.model, "error": res.error,
               "detail": redact(res.detail), "truncated": res.truncated, "sent": res.sent, "text": res.text}
        if earlier is not None:
            row["earlier"] = earlier.pop("earlier", []) + [
                {"teacher": earlier["teacher"], "error": earlier["error"], "detail": earlier["detail"]}]
        self._rows[unit] = row
        self._dirty = True

    def resolve(self, req: ChatRequest, key: str | None = None) -> None:
        """A later request of the same unit succeeded: its failure is no longer outstanding."""
        if self._rows.pop(unit_of(req, key), None) is not None:
            self._dirty = True

    def by_reason(self) -> Counter[str]:
        return Counter(str(r["error"]) for r in self._rows.values())

    def flush(self) -> None:
        if self._dirty:
            write_jsonl(self.path, self.rows)
            self._dirty = False
