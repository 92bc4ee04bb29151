"""In-flight reservations in the cache database: one paid call per request, across processes.

Why in the database: two runs sharing a cache (two shells, DVC plus a by-hand rerun, Ray workers)
only see each other through that file. Before a paid call, a process claims the request's cache key
in the same transaction that checks the cache and the overall budget (`max_usd`): the ledger plus
every live reservation plus this request's worst case must fit. Another process that wants the
same key finds the claim and waits for the answer instead of paying again. A claim whose process
is gone (a dead pid on this host; on another host, one older than the wait limit) is stale and
may be taken over. Storing the answer removes the claim in the same commit as the ledger update.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from enum import Enum

from ..core.io import pid_alive

EPS = 1e-12


class Claim(str, Enum):
    MINE = "mine"          # claimed: call the provider
    HAVE = "have"          # the answer is in the cache now
    BUSY = "busy"          # another live process is calling it: wait for its answer
    WAIT = "wait"          # the overall budget is held by in-flight calls that may settle lower
    REFUSED = "refused"    # cannot fit the overall budget even if nothing more is spent


@dataclass
class Owner:
    """Who holds a reservation: one per open cache (two engines in one process are distinct)."""

    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    stale_after_s: float = 900.0     # reservations of another host older than this are stale

    def live(self, token: str, pid: int, host: str, created: float) -> bool:
        if token == self.token:
            return True
        if host != self.host:
            return time.time() - created < self.stale_after_s
        return pid_alive(pid)


def _live_held(conn: sqlite3.Connection, me: Owner) -> float:
    """USD held by live reservations (stale ones are removed on the way)."""
    held = 0.0
    rows = conn.execute("SELECT owner, pid, host, max(created), sum(usd) FROM reservations GROUP BY owner").fetchall()
    for token, pid, host, created, usd in rows:
        if me.live(token, pid, host, created):
            held += float(usd or 0.0)
        else:
            conn.execute("DELETE FROM reservations WHERE owner=?", (token,))
    return held


def claim_in(conn: sqlite3.Connection, me: Owner, key: str, stage: str, worst_usd: float,
             max_usd: float | None, refresh: bool = False) -> Claim:
    """Claim `key` for a paid call inside the caller's write transaction (`BEGIN IMMEDIATE`), atomically
    with the cache and overall-budget checks (`refresh`: a stored answer does not count, the caller wants
    a new one). `ResponseCache.commit` makes several in order, each seeing the ones before it."""
    if not refresh and conn.execute("SELECT 1 FROM responses WHERE key=?", (key,)).fetchone():
        return Claim.HAVE
    row = conn.execute("SELECT owner, pid, host, created FROM reservations WHERE key=?", (key,)).fetchone()
    if row is not None:
        if row[0] == me.token:
            return Claim.MINE
        if me.live(*row):
            return Claim.BUSY
        conn.execute("DELETE FROM reservations WHERE key=?", (key,))
    if max_usd is not None:
        spent = float(conn.execute("SELECT coalesce(sum(usd), 0) FROM spend").fetchone()[0])
        if spent + worst_usd > max_usd + EPS:
            return Claim.REFUSED
        if spent + _live_held(conn, me) + worst_usd > max_usd + EPS:
            return Claim.WAIT
    conn.execute("INSERT INTO reservations VALUES (?,?,?,?,?,?,?)",
                 (key, me.token, me.pid, me.host, stage, worst_usd, time.time()))
    return Claim.MINE


def held_elsewhere(conn: sqlite3.Connection, me: Owner, key: str) -> bool:
    """True while another live process holds a reservation for `key`."""
    row = conn.execute("SELECT owner, pid, host, created FROM reservations WHERE key=?", (key,)).fetchone()
    return row is not None and row[0] != me.token and me.live(*row)


def release(conn: sqlite3.Connection, me: Owner, key: str) -> None:
    """Drop this owner's claim on `key` (call inside the caller's transaction, or alone)."""
    conn.execute("DELETE FROM reservations WHERE key=? AND owner=?", (key, me.token))


def release_all(conn: sqlite3.Connection, me: Owner) -> None:
    conn.execute("DELETE FROM reservations WHERE owner=?", (me.token,))
