"""Copy what can still be read out of a damaged cache file into a fresh one.

Why row by row: one damaged page makes any query that crosses it fail, so a plain
`INSERT ... SELECT *` copies nothing. Rows are read in rowid ranges through a fresh connection;
a range that fails is stepped over one rowid at a time (a point lookup only walks the b-tree path
to its own leaf), so only the rows on damaged pages are lost. Rows that come back with the wrong
shape are skipped rather than stored as answers.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

_KEY = re.compile(r"^[0-9a-f]{64}$")
_GIVE_UP = 2_000          # consecutive unreadable/missing rowids after which the rest is out of reach


@dataclass
class Salvaged:
    responses: int = 0
    batches: int = 0
    ledger_usd: float = 0.0
    ledger_intact: bool = True


def _num(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _response_ok(r: tuple) -> bool:
    key, teacher, model, text, finish, pt, ct, cost, created = r
    return (isinstance(key, str) and bool(_KEY.match(key)) and isinstance(teacher, str) and isinstance(model, str)
            and (text is None or isinstance(text, str)) and (finish is None or isinstance(finish, str))
            and all(_num(v) for v in (pt, ct, cost, created)))


def _upper_rowid(conn: sqlite3.Connection, table: str) -> int | None:
    try:
        row = conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()
        return int(row[0]) if row and row[0] is not None else 0
    except sqlite3.DatabaseError:
        return None


def readable_rows(conn: sqlite3.Connection, table: str, cols: str, chunk: int = 256) -> Iterator[tuple]:
    """Every row of `table` that can be read, in rowid order (rowid first in each tuple).

    Reads ranges of up to `chunk` rows; a range that fails is retried smaller, down to one row, and
    a single row that still fails is stepped over by rowid. Past the known end (max(rowid)), or after
    _GIVE_UP rowids in a row with nothing readable (a lost subtree or a truncated tail), it stops."""
    top = _upper_rowid(conn, table)
    last, size, misses = 0, chunk, 0
    q_range = f"SELECT rowid, {cols} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?"
    q_point = f"SELECT rowid, {cols} FROM {table} WHERE rowid = ?"
    while misses < _GIVE_UP:
        try:
            rows = conn.execute(q_range, (last, size)).fetchall()
        except sqlite3.DatabaseError:
            rows = None
        if rows and any(not isinstance(r[0], int) or r[0] <= last for r in rows) or \
                rows and any(a[0] >= b[0] for a, b in zip(rows, rows[1:])):
            rows = None                             # out of order: a damaged page posing as a b-tree
        if rows:
            yield from rows
            last, size, misses = rows[-1][0], min(chunk, size * 2), 0
            continue
        if rows is not None and (top is None or last >= top):
            return                                  # a clean end
        if size > 1:
            size = max(1, size // 8)                # narrow down on the damaged range
            continue
        last += 1                                   # the next row cannot be read: step over one rowid
        try:
            row = conn.execute(q_point, (last,)).fetchone()
        except sqlite3.DatabaseError:
            row = None
        if row is not None and row[0] == last:
            yield row
            misses = 0
        else:
            misses += 1
        if top is not None and last >= top:
            return


def _copy(src: sqlite3.Connection, dst: sqlite3.Connection, table: str, cols: str, n: int,
          ok: Callable[[tuple], bool]) -> list[tuple]:
    kept = [r[1:] for r in readable_rows(src, table, cols) if len(r) == n + 1 and ok(r[1:])]
    dst.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({','.join('?' * n)})", kept)
    return kept


def copy_readable_rows(damaged: Path, dst: sqlite3.Connection) -> Salvaged:
    """Salvage responses, batches and the spend ledger of `damaged` into the (fresh) `dst`."""
    out = Salvaged()
    try:  # read-only, so the copy kept as evidence is not checkpointed or changed
        src = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True, timeout=5.0)
        src.execute("SELECT 1").fetchone()
    except sqlite3.Error:
        try:
            src = sqlite3.connect(damaged, timeout=5.0)
        except sqlite3.Error:
            return out
    try:
        src.execute("PRAGMA writable_schema=ON")   # read a file shorter than its header says (truncated)
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError:
        src.close()
        return out      # not a database at all (header gone): nothing to read
    try:
        with dst:
            dst.execute("BEGIN")
            resp = _copy(src, dst, "responses", "key, teacher, model, text, finish_reason, prompt_tokens, "
                         "completion_tokens, cost_usd, created", 9, _response_ok)
            out.responses = len(resp)
            out.batches = len(_copy(src, dst, "batches", "batch_id, teacher, stage, input_file_id, keys, status, "
                                    "created", 7, lambda r: isinstance(r[0], str)))
            spend = _copy(src, dst, "spend", "stage, usd", 2,
                          lambda r: isinstance(r[0], str) and isinstance(r[1], (int, float)))
            ledger = sum(float(u) for _, u in spend)
            paid = sum(float(r[7] or 0.0) for r in resp)
            if ledger + 1e-12 < paid:
                # the ledger pages were lost: the salvaged answers' own costs are a lower bound of it
                dst.execute("DELETE FROM spend")
                dst.execute("INSERT INTO spend VALUES ('(salvaged)', ?)", (paid,))
                ledger, out.ledger_intact = paid, False
            out.ledger_usd = ledger
    except sqlite3.DatabaseError:
        out.ledger_intact = False
    finally:
        src.close()
    return out
