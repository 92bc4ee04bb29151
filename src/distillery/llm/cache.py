"""Response cache: SQLite in WAL mode, one row per completed response, committed at once.

Why SQLite: many readers, one writer, crash-safe commits (kill -9 loses nothing committed), and a
single file that `cache_sync` can share through the DVC remote. The key is a hash of everything
that decides the answer (endpoint, model, messages or prompt, generation params, schema), so a
rerun after a crash or an unrelated params change never pays twice. Opening checks the file's
integrity; a damaged one is moved aside and its readable rows salvaged (`cache_db`).

The same file keeps the spend ledger (paid USD per stage, for the overall budget), the in-flight
reservations that stop two processes paying for the same request (`reservations`), and the ids of
submitted OpenAI batches (so a restart resumes them instead of paying again).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from json.encoder import encode_basestring as _enc  # what json.dumps(ensure_ascii=False) uses for a str
from pathlib import Path
from itertools import chain
from typing import Any, Iterable, Sequence

import orjson

from . import reservations as rsv
from .cache_db import connect, open_cache_db
from .checkpointer import Checkpointer
from .outcome import Outcome
from .reservations import Claim, Owner

# (key, teacher, model, text, finish_reason, prompt_tokens, completion_tokens, cost_usd)
AnswerRow = tuple[str, str, str, 'str | None', 'str | None', int, int, float]

log = logging.getLogger(__name__)

LOOKUP_CHUNK = 4000         # keys per `IN (...)` query (SQLite's default limit is 32766 variables)
SCAN_RATIO = 1.5            # read the whole table when it holds at most this many rows per wanted key
_WRITE_FAILURES = {13: "disk full", 8: "read-only", 10: "I/O error", 14: "cannot open", 3: "no permission"}


class CacheWriteError(sqlite3.OperationalError):
    """A row could not be written (disk full, read-only, I/O error): paid answers would be lost."""


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def payload_json(payload: Any) -> str:
    """canonical(payload), written directly for the usual shapes (a prompt string; messages that are
    exactly {role, content} text pairs) — byte for byte what json.dumps gives, at a fraction of its cost."""
    if type(payload) is str:
        return _enc(payload)
    if type(payload) is list and all(type(m) is dict and len(m) == 2 and type(m.get("role")) is str
                                     and type(m.get("content")) is str for m in payload):
        return "[" + ",".join('{"content":' + _enc(m["content"]) + ',"role":' + _enc(m["role"]) + "}"
                              for m in payload) + "]"
    return canonical(payload)


def key_from_parts(url_json: str, model_json: str, payload_js: str, gen_json: str, schema_json: str) -> str:
    """sha256 of canonical({"u", "m", "p", "g", "s"}) assembled from its parts' canonical JSON (sorted keys)."""
    blob = f'{{"g":{gen_json},"m":{model_json},"p":{payload_js},"s":{schema_json},"u":{url_json}}}'
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def key_frame(url_json: str, model_json: str, gen_json: str, schema_json: str) -> tuple[bytes, bytes]:
    """The bytes before and after the payload in `key_from_parts`' blob, so a bulk pass over many requests
    of one teacher/gen/schema hashes `before + payload + after` without rebuilding the rest each time."""
    return (f'{{"g":{gen_json},"m":{model_json},"p":'.encode(), f',"s":{schema_json},"u":{url_json}}}'.encode())


def payload_utf8(payload: list[dict[str, str]] | str) -> bytes | None:
    """`payload_json(payload)` as UTF-8 bytes via orjson, for a prompt string or {role, content} string
    pairs (sorted keys; byte for byte what json.dumps gives for str values), or None when a string cannot
    be encoded (a lone surrogate: the slow path decides)."""
    try:
        return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None


def request_key(base_url: str, model: str, payload: Any, gen: dict, schema: Any) -> str:
    """sha256 of what decides an answer. `payload` is the messages list or the prompt string."""
    return key_from_parts(canonical(base_url), canonical(model), payload_json(payload), canonical(gen),
                          canonical(schema))


def _write_failure(e: sqlite3.Error) -> CacheWriteError | None:
    code = getattr(e, "sqlite_errorcode", None)
    why = _WRITE_FAILURES.get((code or 0) & 0xFF)
    if why is None and "disk is full" in str(e):
        why = "disk full"
    return CacheWriteError(f"{why}: {str(e).splitlines()[0][:120]}") if why else None


class ResponseCache:
    """A SQLite response cache, used from one thread (its checkpointer has a connection of its own); every
    `commit` (answers, then claims) is one transaction."""

    def __init__(self, path: str | os.PathLike, *, stale_after_s: float = 900.0):
        self.path = Path(path)
        self.conn = open_cache_db(self.path)
        self.owner = Owner(stale_after_s=stale_after_s)
        self.checkpointer = Checkpointer(self.path, self.conn)

    def _write(self, fn: Any, *args: Any) -> Any:
        """Run a write; a full disk or read-only file becomes CacheWriteError (the engine stops on it)."""
        try:
            return fn(*args)
        except sqlite3.OperationalError as e:
            err = _write_failure(e)
            if err is None:
                raise
            raise err from None

    # responses ---------------------------------------------------------------------------------
    def _select(self, cols: str, keys: set[str]) -> Iterable[tuple]:
        """Rows (`key` first, then `cols`) that hold the stored keys among `keys`, and possibly others: the
        caller keeps those in `keys`. When the wanted keys are most of the table, one sequential read beats
        a B-tree probe per key (a fully cached rerun: a probe plus its row cost about twice a scanned row);
        otherwise one `IN (...)` query per LOOKUP_CHUNK keys."""
        if not keys:
            return ()
        top = self.conn.execute("SELECT max(rowid) FROM responses").fetchone()[0] or 0  # >= the row count
        if top <= SCAN_RATIO * len(keys):
            return self.conn.execute(f"SELECT key, {cols} FROM responses")
        ks = list(keys)
        full = f"SELECT key, {cols} FROM responses WHERE key IN ({','.join('?' * LOOKUP_CHUNK)})"
        parts = []
        for i in range(0, len(ks), LOOKUP_CHUNK):
            chunk = ks[i:i + LOOKUP_CHUNK]
            q = full if len(chunk) == LOOKUP_CHUNK else \
                f"SELECT key, {cols} FROM responses WHERE key IN ({','.join('?' * len(chunk))})"
            parts.append(self.conn.execute(q, chunk).fetchall())
        return chain.from_iterable(parts)

    def get_many(self, keys: Iterable[str]) -> dict[str, dict]:
        """Bulk lookup (see `_select`): a fully cached rerun costs a few queries, not one per request."""
        want = set(keys)
        cols = "teacher, model, text, finish_reason, prompt_tokens, completion_tokens, cost_usd"
        return {k: {"teacher": t, "model": m, "text": text, "finish_reason": fr, "prompt_tokens": pt,
                    "completion_tokens": ct, "cost_usd": c}
                for k, t, m, text, fr, pt, ct, c in self._select(cols, want) if k in want}

    def lookup(self, keys: Iterable[str]) -> dict[str, Outcome]:
        """`get_many` as Outcomes (what the engine's rounds use)."""
        want = set(keys)
        cols = "text, finish_reason, prompt_tokens, completion_tokens, model"
        return {k: Outcome(text, fr, pt, ct, m) for k, text, fr, pt, ct, m in self._select(cols, want) if k in want}

    def answers(self, keys: set[str]) -> dict[str, tuple[str, str | None, str | None, int, int]]:
        """key -> (key, text, finish_reason, prompt_tokens, completion_tokens) of the stored keys among
        `keys`: the bulk cached pass's lookup, which builds nothing per row beyond SQLite's own tuple."""
        return {r[0]: r for r in self._select("text, finish_reason, prompt_tokens, completion_tokens", keys)
                if r[0] in keys}

    def get(self, key: str) -> dict | None:
        return self.get_many([key]).get(key)

    def put(self, key: str, teacher: str, model: str, text: str | None, finish_reason: str | None,
            prompt_tokens: int, completion_tokens: int, cost_usd: float, stage: str | None = None) -> None:
        """Store one completed response, add its cost to the stage's ledger and drop this process's
        reservation for it, in one commit. Raises CacheWriteError when it cannot be stored."""
        self.commit([(key, teacher, model, text, finish_reason, prompt_tokens, completion_tokens, cost_usd)], stage)

    def put_many(self, rows: list[AnswerRow], stage: str | None = None) -> None:
        """`put` for several answers in one commit: rows of (key, teacher, model, text, finish_reason,
        prompt_tokens, completion_tokens, cost_usd)."""
        self.commit(rows, stage)

    def commit(self, rows: list[AnswerRow], stage: str | None, wanted: Sequence[tuple[str, float]] = (),
               max_usd: float | None = None, refresh: bool = False) -> list[Claim]:
        """Store answers, then claim `wanted` (key, worst_usd) in order, in one transaction: a worker
        that got an answer claims its next request in the same commit, and a claim is never made
        unless the answers before it are stored. Raises CacheWriteError when it cannot be written."""
        return self._write(self._commit, rows, stage, wanted, max_usd, refresh)

    def _commit(self, rows: list[AnswerRow], stage: str | None, wanted: Sequence[tuple[str, float]],
                max_usd: float | None, refresh: bool) -> list[Claim]:
        conn = self.conn
        with conn:
            conn.execute("BEGIN IMMEDIATE" if wanted else "BEGIN")
            if rows:
                now = time.time()
                usd = sum(r[7] for r in rows)
                conn.executemany("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?,?,?,?)",
                                 [(*r, now) for r in rows])
                if stage is not None and usd:
                    conn.execute("INSERT INTO spend VALUES (?, ?) ON CONFLICT(stage) DO UPDATE "
                                 "SET usd = usd + excluded.usd", (stage, usd))
                conn.executemany("DELETE FROM reservations WHERE key=? AND owner=?",
                                 [(r[0], self.owner.token) for r in rows])
            return [rsv.claim_in(conn, self.owner, key, stage or "", worst, max_usd, refresh)
                    for key, worst in wanted]

    # in-flight reservations (see reservations.py) ----------------------------------------------
    def claim(self, key: str, stage: str, worst_usd: float, max_usd: float | None, refresh: bool = False) -> Claim:
        """Claim a paid call for `key` (atomic with the cache and overall-budget checks)."""
        return self.commit([], stage, [(key, worst_usd)], max_usd, refresh)[0]

    def claim_many(self, wanted: list[tuple[str, float]], stage: str, max_usd: float | None,
                   refresh: bool = False) -> list[Claim]:
        """`claim` for several (key, worst_usd) in one transaction (one commit)."""
        return self.commit([], stage, wanted, max_usd, refresh)

    def held_elsewhere(self, key: str) -> bool:
        return rsv.held_elsewhere(self.conn, self.owner, key)

    def release(self, key: str) -> None:
        """Give up this process's claim on `key` (its call failed: another process may try)."""
        try:
            rsv.release(self.conn, self.owner, key)
        except sqlite3.OperationalError:
            pass  # a claim left behind goes stale with this process

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
            src = connect(Path(other))
            try:
                if [r[0] for r in src.execute("PRAGMA quick_check(1)")] != ["ok"]:
                    raise sqlite3.DatabaseError("damaged file")
                src.execute("SELECT key, text, finish_reason, prompt_tokens FROM responses LIMIT 1").fetchall()
            finally:
                src.close()
        except sqlite3.DatabaseError as e:
            log.warning("cannot merge %s: %s", other, str(e).splitlines()[0][:120])
            return 0
        self.conn.execute("ATTACH DATABASE ? AS other", (str(other),))
        try:
            with self.conn:
                self.conn.execute("BEGIN")
                self.conn.execute("INSERT OR IGNORE INTO responses SELECT * FROM other.responses")
        finally:
            self.conn.execute("DETACH DATABASE other")
        return len(self) - before

    def close(self) -> None:
        self.checkpointer.stop()
        try:
            rsv.release_all(self.conn, self.owner)
        except sqlite3.Error:
            pass
        try:
            self.conn.close()
        except sqlite3.Error:
            pass
