"""Measured rows remembered across runs, so a rerun after a mix change tokenises only new rows.

Key: xxh3-128 of the row's line (surrounding whitespace and a first-line BOM aside), seeded with the
hash of everything else a measurement depends on (the tokenizer file, the chat template, the tokens
the template is given, and CACHE_VERSION for this code). The line fixes the row's id, kind, own
bucket and conversations, so a hit needs no parse, render or tokenisation; the bucket found in the
mix is looked up afresh every run, since a mix change can move a row. Value: the row's
[kind, id, own bucket, first-user key, counts] as JSON. The file is SQLite at `stats.cache_path`,
outside the DVC outs so it survives `dvc repro` deleting data/stats; delete it to start afresh.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import orjson
import xxhash

CACHE_VERSION = 1
log = logging.getLogger(__name__)


def open_cache(path: str | Path, identity: str) -> "LengthCache | None":
    """The cache, or None (and a warning) when its file cannot be opened: it only saves time."""
    try:
        return LengthCache(path, identity)
    except (OSError, sqlite3.Error) as e:
        log.warning("stats: length cache %s unusable (%s); measuring every row", path, e)
        return None


class LengthCache:
    """Row line -> measured row, in one SQLite table."""

    def __init__(self, path: str | Path, identity: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.seed = xxhash.xxh3_64_intdigest(f"{CACHE_VERSION}\n{identity}".encode("utf-8", "surrogatepass"))
        self.db = sqlite3.connect(self.path, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS rows (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
        self.hits = self.misses = 0
        self._pending: list[tuple[bytes, bytes]] = []

    def key(self, raw: bytes) -> bytes:
        return xxhash.xxh3_128_digest(raw.strip(), self.seed)

    def get_many(self, keys: list[bytes]) -> dict[bytes, tuple]:
        """The remembered rows among `keys`: key -> (kind, id, bucket, first-user key, counts)."""
        found: dict[bytes, tuple] = {}
        for i in range(0, len(keys), 900):     # under SQLite's bound-parameter limit
            chunk = keys[i:i + 900]
            q = f"SELECT key, value FROM rows WHERE key IN ({','.join('?' * len(chunk))})"
            for k, v in self.db.execute(q, chunk):
                kind, rid, bucket, fu, counts = orjson.loads(v)
                found[k] = (kind, rid, bucket, fu, tuple(counts))
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put(self, key: bytes, row: tuple) -> None:
        try:
            self._pending.append((key, orjson.dumps(list(row))))
        except orjson.JSONEncodeError:   # an id holding a lone surrogate: measured again next time
            return
        if len(self._pending) >= 20_000:
            self.flush()

    def flush(self) -> None:
        """Write what was measured; a full disk or a locked file costs the next run time, not this run."""
        if self._pending:
            try:
                with self.db:
                    self.db.executemany("INSERT OR REPLACE INTO rows VALUES (?, ?)", self._pending)
            except sqlite3.Error as e:
                log.warning("stats: length cache %s not updated (%s)", self.path, e)
            self._pending.clear()

    def close(self) -> None:
        self.flush()
        self.db.close()
