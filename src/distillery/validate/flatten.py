"""Flattened views of exports and mixes, in an on-disk SQLite table per suite: Great Expectations cannot
address nested lists, and a whole pandas frame of a large export does not fit in memory.

One row per exported line with scalar columns (role sequence string, turn counts, empty turns,
character lengths, bucket and judge score joined from the mix by id). A line that is not valid
JSON or has no usable messages still gets a row, with role sequence `<invalid>`, so the suite
names it instead of the loader crashing.

Files are read line by line and inserted `chunk_rows` rows at a time; the bucket and score of an
exported id are joined in SQL from a table of the mix records (first file wins: production, eval,
then the phases), so no per-id dict is kept in memory either. The mix files are read once, for that
index and for the mix suites' table together. The suites then run on the tables
through GX's SQL execution engine (the queries run in SQLite, the counts and the first failing rows
come back).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import xxhash

from ..core.memory import give_back_freed_memory
from ..core.parallel import OrderedPool, record_rows
from ..mix.config import MixParams
from ..mix.files import phase_files, record_files
from ..mix.split import is_eval
from .config import ValidateParams

INVALID = "<invalid>"
CHUNK_ROWS = ValidateParams.model_fields["chunk_rows"].default   # one default: the params'


def _msgs(v: Any) -> list[dict] | None:
    if isinstance(v, dict):
        v = [v]
    if isinstance(v, str):
        return None
    if not isinstance(v, list) or not all(isinstance(m, dict) for m in v):
        return None
    return v


def _roles(msgs: list[dict] | None) -> str:
    return INVALID if msgs is None else ",".join(str(m.get("role")) for m in msgs)


def _empty(msgs: list[dict] | None) -> int:
    return 0 if msgs is None else sum(1 for m in msgs if not str(m.get("content") or "").strip())


def _chars(msgs: list[dict] | None) -> int:
    return 0 if msgs is None else sum(len(str(m.get("content") or "")) for m in msgs)


def _key(msgs: list[dict] | None) -> str:
    if msgs is None:
        return ""
    blob = json.dumps([[m.get("role"), m.get("content")] for m in msgs], ensure_ascii=False)
    return xxhash.xxh3_64_hexdigest(blob.encode("utf-8", "surrogatepass"))


def judge_score(rec: dict) -> float | None:
    s = ((rec.get("scores") or {}).get("judge") or {}).get("overall")
    return float(s) if isinstance(s, (int, float)) and not isinstance(s, bool) else None


def _text(v: Any) -> str | None:
    """A bucket value as SQLite text: strings as they are, anything else (wrong type) as its JSON."""
    if v is None or isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False)


# Columns of each suite table: (name, SQL type). BOOLEAN columns hold 0/1; GX compares them with False/True.
SFT_COLUMNS = [("row", "INTEGER"), ("id", "TEXT"), ("role_seq", "TEXT"), ("user_turns", "INTEGER"),
               ("assistant_turns", "INTEGER"), ("empty_turns", "INTEGER"), ("chars", "INTEGER"), ("bucket", "TEXT"),
               ("score", "REAL"), ("conversation", "TEXT")]
DPO_COLUMNS = [("row", "INTEGER"), ("id", "TEXT"), ("prompt_roles", "TEXT"), ("prompt_user_turns", "INTEGER"),
               ("chosen_roles", "TEXT"), ("rejected_roles", "TEXT"), ("empty_turns", "INTEGER"),
               ("chosen_chars", "INTEGER"), ("rejected_chars", "INTEGER"), ("chosen_equals_rejected", "BOOLEAN"),
               ("bucket", "TEXT"), ("score", "REAL")]
MIX_RECORD_COLUMNS = [("phase", "TEXT"), ("row", "INTEGER"), ("id", "TEXT"), ("bucket", "TEXT"),
                      ("in_eval_split", "BOOLEAN")]
MIX_ROW_COLUMNS = [("index_id", "TEXT"), ("index_bucket", "TEXT"), ("index_score", "REAL"), *MIX_RECORD_COLUMNS]
MIX_SHARE_COLUMNS = [("phase", "TEXT"), ("bucket", "TEXT"), ("row", "TEXT"), ("id", "TEXT"), ("count", "INTEGER"),
                     ("target", "INTEGER"), ("limit", "INTEGER"), ("saturated", "BOOLEAN"), ("share_gap", "REAL"),
                     ("shortfall", "REAL")]
BOOLEAN_COLUMNS = {n for cols in (SFT_COLUMNS, DPO_COLUMNS, MIX_RECORD_COLUMNS, MIX_SHARE_COLUMNS)
                   for n, t in cols if t == "BOOLEAN"}


def sft_row(line: int, raw: dict) -> tuple:
    """(row, id, lookup id, own bucket, role_seq, user_turns, assistant_turns, empty_turns, chars, conversation)."""
    msgs = _msgs(raw.get("messages"))
    roles = [m.get("role") for m in msgs or []]
    rid = raw.get("id")
    return (line, str(rid or ""), rid if isinstance(rid, str) else None,
            raw["bucket"] if isinstance(raw.get("bucket"), str) else None, _roles(msgs),
            roles.count("user"), roles.count("assistant"), _empty(msgs), _chars(msgs), _key(msgs))


def dpo_row(line: int, raw: dict) -> tuple:
    """(row, id, lookup id, own bucket, prompt_roles, prompt_user_turns, chosen_roles, rejected_roles,
    empty_turns, chosen_chars, rejected_chars, chosen_equals_rejected)."""
    prompt, chosen, rejected = _msgs(raw.get("prompt")), _msgs(raw.get("chosen")), _msgs(raw.get("rejected"))
    ck, rk = _key(chosen), _key(rejected)
    rid = raw.get("id")
    return (line, str(rid or ""), rid if isinstance(rid, str) else None,
            raw["bucket"] if isinstance(raw.get("bucket"), str) else None, _roles(prompt),
            [m.get("role") for m in prompt or []].count("user"), _roles(chosen), _roles(rejected),
            _empty(prompt) + _empty(chosen) + _empty(rejected), _chars(chosen), _chars(rejected),
            bool(ck) and ck == rk)


def mix_record_row(line: int, rec: dict, phase: str, eval_fraction: float, eval_salt: str) -> tuple:
    """phase, row, id, bucket, held-out flag of one record of a mix file."""
    rid = str(rec.get("mix_copy_of") or rec.get("id") or "")
    return (phase, line, str(rec.get("id") or ""), str(rec.get("bucket") or ""),
            bool(rid) and is_eval(rid, eval_fraction, eval_salt))


def mix_row(line: int, rec: dict, phase: str | None, eval_fraction: float, eval_salt: str) -> tuple:
    """Both views of one record of a mix file, from one parse: (id, bucket, judge score) for the index the
    exports are joined with (id None when it is not a string; exports drop bucket and score), then
    `mix_record_row` (all None for the eval file, which is not a mix)."""
    rid = rec.get("id")
    index = (rid, _text(rec.get("bucket")), judge_score(rec)) if isinstance(rid, str) else (None, None, None)
    if phase is None:
        return (*index, None, None, None, None, None)
    return (*index, *mix_record_row(line, rec, phase, eval_fraction, eval_salt))


def mix_shares(counts: dict[tuple[str, str], int], composition: dict[str, Any], mix: MixParams) -> list[tuple]:
    """One row per (phase, bucket of the manifest) comparing the files with the manifest.

    A bucket is saturated when it gave every record it could (count >= its limit from composition.json,
    i.e. its capped pool, times max_repeat when upsampling). `share_gap`: for unsaturated buckets, the
    gap between the realised share and the manifest weight, both renormalised over the unsaturated
    buckets of the phase (0 for saturated ones). `shortfall`: how far the count falls below
    min(target, limit), as a fraction of the phase size (composition.json's size: a mix whose size is
    null follows the data).
    """
    from ..mix.sample import largest_remainder

    manifest = {"production": mix.production, **mix.phases}
    rows = []
    for phase, ph in manifest.items():
        weights = {b: w for b, w in ph.weights.items() if w > 0}
        comp_phase = composition.get(phase) or {}
        size = comp_phase.get("size", ph.size)
        if size is None:                                         # no composition.json: what the files hold
            size = sum(n for (p, _), n in counts.items() if p == phase)
        size = int(size)
        targets = largest_remainder(weights, size)
        comp = comp_phase.get("buckets") or {}
        per = {}
        for b, w in weights.items():
            limit = int((comp.get(b) or {}).get("limit", targets[b]))
            n = int(counts.get((phase, b), 0))
            per[b] = {"weight": w, "target": targets[b], "limit": limit, "count": n, "saturated": n >= limit}
        open_w = sum(v["weight"] for v in per.values() if not v["saturated"])
        open_n = sum(v["count"] for v in per.values() if not v["saturated"])
        for b, v in sorted(per.items()):
            gap = 0.0
            if not v["saturated"] and open_w > 0 and open_n > 0:
                gap = abs(v["count"] / open_n - v["weight"] / open_w)
            rows.append((phase, b, f"{phase}/{b}", f"{phase}/{b}", v["count"], v["target"], v["limit"],
                         v["saturated"], round(gap, 6),
                         round(max(0, min(v["target"], v["limit"]) - v["count"]) / size, 6) if size else 0.0))
        extra = {b for (p, b) in counts if p == phase} - set(weights)
        for b in sorted(extra):
            rows.append((phase, b, f"{phase}/{b}", f"{phase}/{b}", int(counts[(phase, b)]), 0, 0, True, 1.0, 0.0))
    return rows


@dataclass
class Table:
    """A flattened suite table: its name, row count, which optional columns carry data, and its file."""

    name: str
    rows: int
    has: dict[str, bool]
    path: Path | None = None

    def duplicate_rows(self, columns: list[str], n: int) -> list[dict[str, Any]]:
        """The first `n` rows (row, id and `columns`) whose `columns` values occur more than once, in row order:
        what GX's SQL engine does not return for a compound uniqueness expectation."""
        if self.path is None:
            return []
        cols = ", ".join(f'"{c}"' for c in columns)
        con = sqlite3.connect(self.path)
        try:
            cur = con.execute(f'SELECT "row", "id", {cols} FROM "{self.name}" WHERE ({cols}) IN '
                              f'(SELECT {cols} FROM "{self.name}" GROUP BY {cols} HAVING COUNT(*) > 1) '
                              f"ORDER BY rowid LIMIT ?", (n,))
            return [dict(zip(["row", "id", *columns], r)) for r in cur]
        finally:
            con.close()


class FlatStore:
    """The SQLite file holding every flattened table (on disk: memory stays flat in the number of rows)."""

    def __init__(self, path: Path, chunk_rows: int = CHUNK_ROWS, pool: OrderedPool | None = None):
        self.path = Path(path)
        self.chunk_rows = chunk_rows
        self.pool = pool or OrderedPool(1)
        self.con = sqlite3.connect(self.path)
        self.con.execute("PRAGMA journal_mode=OFF")
        self.con.execute("PRAGMA synchronous=OFF")
        self.con.execute("PRAGMA temp_store=FILE")

    def close(self) -> None:
        self.con.close()

    def _create(self, name: str, cols: list[tuple[str, str]]) -> None:
        self.con.execute(f'DROP TABLE IF EXISTS "{name}"')
        self.con.execute(f'CREATE TABLE "{name}" (' + ", ".join(f'"{c}" {t}' for c, t in cols) + ")")

    def insert(self, name: str, cols: list[tuple[str, str]] | int, rows: Iterable[tuple]) -> int:
        """Insert rows `chunk_rows` at a time; returns how many."""
        width = cols if isinstance(cols, int) else len(cols)
        sql = f'INSERT INTO "{name}" VALUES (' + ", ".join("?" * width) + ")"
        n, chunk = 0, []
        for r in rows:
            chunk.append(r)
            if len(chunk) >= self.chunk_rows:
                self.con.executemany(sql, chunk)
                n += len(chunk)
                chunk = []
                give_back_freed_memory()   # the chunk's rows: at 1.2M records the process kept ~25 MB more
        if chunk:
            self.con.executemany(sql, chunk)
            n += len(chunk)
        self.con.commit()
        return n

    def load_mix(self, mix_dir: Path | None, mix: MixParams, records: bool) -> None:
        """Read every record file of the mix once (production, eval, then the phases) into `mixinfo` (id ->
        bucket, judge score: the first file of an id wins) and, with `records`, `mix_records`. Rows are
        appended in file order and the index is built by one GROUP BY: inserting a million random ids into
        a keyed table one by one cost twice as much."""
        phases = {f: name for name, f in phase_files(mix_dir)} if mix_dir is not None and records else {}
        rows = (r for f in record_files(mix_dir)
                for r in record_rows(f, mix_row, self.pool, phases.get(f), mix.eval_fraction, mix.eval_salt))
        self._create("mixrows", MIX_ROW_COLUMNS)
        self.insert("mixrows", MIX_ROW_COLUMNS, rows)
        self.con.execute("DROP TABLE IF EXISTS mixinfo")
        self.con.execute("CREATE TABLE mixinfo (id TEXT PRIMARY KEY, bucket TEXT, score REAL) WITHOUT ROWID")
        # SQLite gives bare columns the values of the row min() picks: the first row of each id
        self.con.execute("INSERT INTO mixinfo SELECT index_id, index_bucket, index_score FROM (SELECT index_id, "
                         "index_bucket, index_score, MIN(rowid) FROM mixrows WHERE index_id IS NOT NULL "
                         "GROUP BY index_id)")
        if records:
            self._create("mix_records", MIX_RECORD_COLUMNS)
            self.con.execute('INSERT INTO mix_records SELECT phase, "row", id, bucket, in_eval_split FROM mixrows '
                             "WHERE phase IS NOT NULL ORDER BY rowid")
        self.con.execute("DROP TABLE mixrows")
        self.con.commit()

    def _export_table(self, name: str, cols: list[tuple[str, str]], rows: Iterable[tuple]) -> Table:
        """Raw rows (with lookup id and own bucket) -> the suite table with bucket and score joined by id."""
        raw_cols = [c for c in cols if c[0] not in ("bucket", "score")]
        staged = [raw_cols[0], raw_cols[1], ("lookup_id", "TEXT"), ("own_bucket", "TEXT"), *raw_cols[2:]]
        self._create(f"{name}_raw", staged)
        self.insert(f"{name}_raw", staged, rows)
        self._create(name, cols)
        select = []
        for c, _ in cols:
            if c == "bucket":
                select.append("COALESCE(r.own_bucket, m.bucket, '')")
            elif c == "score":
                select.append("m.score")
            else:
                select.append(f'r."{c}"')
        self.con.execute(f'INSERT INTO "{name}" SELECT ' + ", ".join(select) + f' FROM "{name}_raw" r '
                         "LEFT JOIN mixinfo m ON m.id = r.lookup_id ORDER BY r.rowid")
        self.con.execute(f'DROP TABLE "{name}_raw"')
        self.con.commit()
        return self.table(name)

    def sft(self, path: Path) -> Table:
        return self._export_table("sft", SFT_COLUMNS, record_rows(path, sft_row, self.pool))

    def dpo(self, path: Path) -> Table:
        return self._export_table("dpo", DPO_COLUMNS, record_rows(path, dpo_row, self.pool))

    def mix_shares(self, composition: dict[str, Any], mix: MixParams) -> Table:
        counts = {(p, b): n for p, b, n in
                  self.con.execute("SELECT phase, bucket, COUNT(*) FROM mix_records GROUP BY phase, bucket")}
        self._create("mix_shares", MIX_SHARE_COLUMNS)
        self.insert("mix_shares", MIX_SHARE_COLUMNS, mix_shares(counts, composition, mix))
        return self.table("mix_shares")

    def table(self, name: str) -> Table:
        cols = {r[1] for r in self.con.execute(f'PRAGMA table_info("{name}")')}
        n = self.con.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]
        has = {}
        for c, cond in (("score", "score IS NOT NULL"), ("bucket", "bucket != ''"), ("id", "id != ''")):
            has[c] = c in cols and bool(self.con.execute(f'SELECT EXISTS(SELECT 1 FROM "{name}" WHERE {cond})')
                                        .fetchone()[0])
        return Table(name, n, has, self.path)

    def frame(self, name: str):
        """The whole table as a pandas frame (tests and small tables only), booleans as bool."""
        import pandas as pd

        df = pd.read_sql_query(f'SELECT * FROM "{name}"', self.con)
        for c in BOOLEAN_COLUMNS & set(df.columns):
            df[c] = df[c].astype(bool)
        if "score" in df:
            df["score"] = pd.to_numeric(df["score"], errors="coerce").astype("float64")
        return df
