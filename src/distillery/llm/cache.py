"""Response cache: SQLite in WAL mode, one row per completed response, committed at once.

Why SQLite: many readers, one writer, crash-safe commits (kill -9 loses nothing committed), and a
single file that `cache_sync` can share through the DVC remote. The key is a hash of everything
that decides the answer (endpoint, model, messages or prompt, generation params, schema), so a
rerun after a crash or an unrelated params change never pays twice. A file that is not a usable
database is moved aside and rebuilt with a warning.

The same file keeps the spend ledger (paid USD per stage, for the overall budget) and the ids of
submitted OpenAI batches (so a restart resumes them instead of paying again).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_DDL = """
CREATE TABLE IF NOT EXISTS responses (
  key TEXT PRIMARY KEY, teacher TEXT, model TEXT, text TEXT, finish_reason TEXT,
  prompt_tokens INTEGER, completion_tokens INTEGER, cost_usd REAL, created REAL);
CREATE TABLE IF NOT EXISTS spend (stage TEXT PRIMARY KEY, usd REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
  batch_id TEXT PRIMARY KEY, teacher TEXT, stage TEXT, input_file_id TEXT, keys TEXT,
  status TEXT, created REAL);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT);
"""


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def request_key(base_url: str, model: str, payload: Any, gen: dict, schema: Any) -> str:
    """sha256 of what decides an answer. `payload` is the messages list or the prompt string."""
    blob = canonical({"u": base_url, "m": model, "p": payload, "g": gen, "s": schema})
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """A SQLite response cache. Use from one thread; every put is its own committed transaction."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = self._open()
        except sqlite3.DatabaseError as e:
            self.conn = self._rebuild(e)

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.executescript(_DDL)
            row = conn.execute("SELECT v FROM meta WHERE k='schema_version'").fetchone()
            if row is None:
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"schema version {row[0]} != {SCHEMA_VERSION}")
            conn.execute("SELECT key, text, finish_reason, prompt_tokens FROM responses LIMIT 1").fetchall()
        except Exception:
            conn.close()
            raise
        return conn

    def _rebuild(self, err: Exception) -> sqlite3.Connection:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                os.replace(p, Path(str(aside) + suffix))
        log.warning("response cache %s is unusable (%s); moved it to %s and started a new one",
                    self.path, str(err).splitlines()[0][:120], aside.name)
        return self._open()

    # responses ---------------------------------------------------------------------------------
    def get_many(self, keys: Iterable[str]) -> dict[str, dict]:
        """Bulk lookup (chunks of 500 keys): a fully cached rerun is one query per chunk."""
        keys = list(keys)
        out: dict[str, dict] = {}
        cols = "key, teacher, model, text, finish_reason, prompt_tokens, completion_tokens, cost_usd"
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = f"SELECT {cols} FROM responses WHERE key IN ({','.join('?' * len(chunk))})"
            for row in self.conn.execute(q, chunk):
                out[row[0]] = {"teacher": row[1], "model": row[2], "text": row[3], "finish_reason": row[4],
                               "prompt_tokens": row[5], "completion_tokens": row[6], "cost_usd": row[7]}
        return out

    def get(self, key: str) -> dict | None:
        return self.get_many([key]).get(key)

    def put(self, key: str, teacher: str, model: str, text: str | None, finish_reason: str | None,
            prompt_tokens: int, completion_tokens: int, cost_usd: float, stage: str | None = None) -> None:
        """Store one completed response and add its cost to the stage's ledger, in one commit."""
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?,?,?,?)",
                              (key, teacher, model, text, finish_reason, prompt_tokens, completion_tokens,
                               cost_usd, time.time()))
            if stage is not None and cost_usd:
                self.conn.execute("INSERT INTO spend VALUES (?, ?) ON CONFLICT(stage) DO UPDATE "
                                  "SET usd = usd + excluded.usd", (stage, cost_usd))

    def completion_token_stats(self, teacher: str, model: str, limit: int = 1000) -> list[int]:
        rows = self.conn.execute("SELECT completion_tokens FROM responses WHERE teacher=? AND model=? "
                                 "ORDER BY created DESC LIMIT ?", (teacher, model, limit)).fetchall()
        return [r[0] for r in rows if r[0] is not None]

    def __len__(self) -> int:
        return self.conn.execute("SELECT count(*) FROM responses").fetchone()[0]

    # spend ledger ------------------------------------------------------------------------------
    def spend(self) -> dict[str, float]:
        return {s: u for s, u in self.conn.execute("SELECT stage, usd FROM spend ORDER BY stage")}

    def total_spend(self) -> float:
        return float(self.conn.execute("SELECT coalesce(sum(usd), 0) FROM spend").fetchone()[0])

    # batches -----------------------------------------------------------------------------------
    def add_batch(self, batch_id: str, teacher: str, stage: str, input_file_id: str, keys: list[str]) -> None:
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("INSERT OR REPLACE INTO batches VALUES (?,?,?,?,?,?,?)",
                              (batch_id, teacher, stage, input_file_id, json.dumps(keys), "submitted",
                               time.time()))

    def open_batches(self, teacher: str) -> list[tuple[str, list[str]]]:
        rows = self.conn.execute("SELECT batch_id, keys FROM batches WHERE teacher=? AND status='submitted' "
                                 "ORDER BY created", (teacher,)).fetchall()
        return [(b, json.loads(k)) for b, k in rows]

    def set_batch_status(self, batch_id: str, status: str) -> None:
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("UPDATE batches SET status=? WHERE batch_id=?", (status, batch_id))

    # sharing (used by cache_sync) ------------------------------------------------------------
    def snapshot(self, dest: str | os.PathLike) -> Path:
        """A consistent single-file copy (SQLite online backup; safe while another run writes)."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        if tmp.exists():
            tmp.unlink()
        out = sqlite3.connect(tmp)
        try:
            self.conn.backup(out)
        finally:
            out.close()
        os.replace(tmp, dest)
        return dest

    def merge_from(self, other: str | os.PathLike) -> int:
        """Add the responses of another cache file (a pulled copy) that this one lacks; returns how many.
        Spend and batch rows stay local (they describe this machine's runs)."""
        before = len(self)
        try:
            src = ResponseCache.__new__(ResponseCache)
            src.path = Path(other)
            src.conn = src._open()
        except sqlite3.DatabaseError as e:
            log.warning("cannot merge %s: %s", other, str(e).splitlines()[0][:120])
            return 0
        src.close()
        self.conn.execute("ATTACH DATABASE ? AS other", (str(other),))
        try:
            with self.conn:
                self.conn.execute("BEGIN")
                self.conn.execute("INSERT OR IGNORE INTO responses SELECT * FROM other.responses")
        finally:
            self.conn.execute("DETACH DATABASE other")
        return len(self) - before

    def close(self) -> None:
        try:
            self.conn.close()
        except sqlite3.Error:
            pass
