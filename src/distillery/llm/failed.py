"""The failed-requests file: one JSON line per request that came back ok=False, rewritten atomically.

Each line names the reason code, the request's tag, teacher, and what was sent, so a user can see
what failed and rerun only that (completed responses are cached).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core.io import write_jsonl
from .secrets import redact
from .types import ChatRequest, ChatResult


class FailedLog:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows: list[dict] = []
        self._dirty = False

    def add(self, req: ChatRequest, res: ChatResult) -> None:
        self.rows.append({"tag": req.tag, "teacher": res.teacher, "model": res.model, "error": res.error,
                          "detail": redact(res.detail), "truncated": res.truncated, "attempts": res.attempts,
                          "sent": res.sent, "text": res.text})
        self._dirty = True

    def flush(self) -> None:
        if self._dirty or not self.path.exists():
            write_jsonl(self.path, self.rows)
            self._dirty = False
