"""Opening the response-cache database: schema, integrity check, and salvage of a damaged file.

Why a check on open: SQLite opens a file with a damaged page happily and fails only when a query
reaches that page ("database disk image is malformed"), i.e. in the middle of a paid run. So
`open_cache_db` runs `PRAGMA quick_check` first. A damaged file is moved aside
(`<name>.corrupt-<time>`), a fresh database is created, and every row that can still be read is
copied into it (`salvage.copy_readable_rows`), so paid answers and the spend ledger survive. Errors
that are not damage (no permission, read-only, disk full) are not "fixed" by moving the file: they
stop with one line.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from ..core.errors import OutputError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

DDL = """
CREATE TABLE IF NOT EXISTS responses (
  key TEXT PRIMARY KEY, teacher TEXT, model TEXT, text TEXT, finish_reason TEXT,
  prompt_tokens INTEGER, completion_tokens INTEGER, cost_usd REAL, created REAL);
CREATE TABLE IF NOT EXISTS spend (stage TEXT PRIMARY KEY, usd REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
  batch_id TEXT PRIMARY KEY, teacher TEXT, stage TEXT, input_file_id TEXT, keys TEXT,
  status TEXT, created REAL);
CREATE TABLE IF NOT EXISTS reservations (
  key TEXT PRIMARY KEY, owner TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
  stage TEXT, usd REAL NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT);
"""

# primary result codes that mean "this file is damaged" (extended codes keep them in the low byte)
_DAMAGE = {11, 26}           # SQLITE_CORRUPT, SQLITE_NOTADB
_SHORT_READ = 522            # SQLITE_IOERR_SHORT_READ: a truncated file


class CacheDamaged(sqlite3.DatabaseError):
    """The file is a damaged or foreign database (what `open_cache_db` repairs by salvage)."""


def is_damage(e: BaseException) -> bool:
    if isinstance(e, CacheDamaged):
        return True
    code = getattr(e, "sqlite_errorcode", None)
    if code is None:
        return isinstance(e, sqlite3.DatabaseError) and "malformed" in str(e)
    return (code & 0xFF) in _DAMAGE or code == _SHORT_READ


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _prepare(path: Path) -> sqlite3.Connection:
    """Connect, check integrity, create the tables. Raises CacheDamaged or sqlite3 errors."""
    conn = connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA cache_size=-65536")   # up to 64 MB of pages: a 50k-answer rerun stays in memory
        problems = [r[0] for r in conn.execute("PRAGMA quick_check(3)").fetchall()]
        if problems != ["ok"]:
            raise CacheDamaged("quick_check: " + "; ".join(str(p) for p in problems)[:200])
        conn.executescript(DDL)
        row = conn.execute("SELECT v FROM meta WHERE k='schema_version'").fetchone()
        if row is None:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise CacheDamaged(f"schema version {row[0]} != {SCHEMA_VERSION}")
    except BaseException:
        conn.close()
        raise
    return conn


def move_aside(path: Path) -> Path:
    """Rename the file (and its -wal/-shm, so the copy stays readable) to `<name>.corrupt-<time>`."""
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(path) + suffix)
        if p.exists():
            os.replace(p, Path(str(aside) + suffix))
    return aside


def _unusable(path: Path, e: BaseException) -> OutputError:
    first = (str(e).splitlines() or [type(e).__name__])[0][:160]
    return OutputError(f"{path}: cannot use the LLM response cache: {first}")


def _prepare_when_free(path: Path, wait_s: float = 30.0) -> sqlite3.Connection:
    """`_prepare`, tried again while another process holds the file: two processes creating the same new
    cache race for the switch to WAL mode, and SQLite answers the loser "database is locked" at once,
    without waiting on the busy timeout (seen in ~1 of 6 two-process runs)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return _prepare(path)
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def open_cache_db(path: Path) -> sqlite3.Connection:
    """A ready connection to the cache at `path`; a damaged file is set aside and salvaged (one log line)."""
    from .salvage import copy_readable_rows

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _prepare_when_free(path)
    except sqlite3.DatabaseError as e:
        if not is_damage(e):
            raise _unusable(path, e) from None
        why = (str(e).splitlines() or ["damaged"])[0][:120]
    aside = move_aside(path)
    try:
        conn = _prepare(path)
    except sqlite3.DatabaseError as e:
        raise _unusable(path, e) from None
    got = copy_readable_rows(aside, conn)
    log.warning("response cache %s is damaged (%s): moved it to %s; salvaged %d responses, %d batches and "
                "the spend ledger ($%.6f%s) into a new cache", path, why, aside.name, got.responses, got.batches,
                got.ledger_usd, "" if got.ledger_intact else ", rebuilt from the salvaged answers' costs")
    return conn
