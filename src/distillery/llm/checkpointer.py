"""Checkpoints of the cache's write-ahead log, off the event loop.

Why: SQLite copies the WAL back into the database (with an fsync) inside whichever commit crosses
`wal_autocheckpoint` pages. On the engine's event loop that commit stalls every call in flight, about
20 ms each time at concurrency 64 (and it doubles the mean commit time). A thread with its own
connection checkpoints instead, every `every_s` (SQLite releases the GIL while it copies and syncs),
and the engine's connection stops checkpointing until `stop`.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from .cache_db import connect

DEFAULT_AUTOCHECKPOINT = 1000   # SQLite's default, restored on stop


class Checkpointer:
    def __init__(self, path: Path, conn: sqlite3.Connection, every_s: float = 0.5):
        self.conn = conn
        self.every_s = every_s
        self._own = connect(path)
        self._stop = threading.Event()
        conn.execute("PRAGMA wal_autocheckpoint=0")
        self._thread = threading.Thread(target=self._run, name="distillery-wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self._own.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                return   # damaged or full: the engine's own commits report it; `stop` re-enables autocheckpoints

    def pause(self) -> None:
        """No checkpoint at all from now until `stop` (the guard's last room is for answers, not for the
        database file growing by the WAL's pages)."""
        self._stop.set()
        self._thread.join()

    def stop(self) -> None:
        self.pause()
        for close in (lambda: self.conn.execute(f"PRAGMA wal_autocheckpoint={DEFAULT_AUTOCHECKPOINT}"),
                      self._own.close):
            try:
                close()
            except sqlite3.Error:
                pass
