"""Stream record files into one bundle: sft/<format>.<type> and dpo/<format>.<type>, one row per record
per configured format and file type (.jsonl, .jsonl.gz, .parquet).

Blocks of input lines are converted by a process pool (`core.parallel`): each block comes back as one
JSONL blob (or one Arrow table) per output file, with its counts and rejects, and the parent writes
the blocks in input order, so the files are the same bytes whatever the number of workers. Every
output file is open at once (atomic writers, so a killed run leaves the previous bundle in place).
SFT records go only to sft/, preference records only to dpo/; a record that cannot be exported goes
to the quarantine with its reason and bundle name. Alongside the rows it gathers provenance
(sources, revisions, generation models, buckets) for the card. Files of formats no longer
configured (an earlier run's, outside DVC) are removed.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core.io import BadLine, atomic_file, dumps, parse_line
from ..core.parallel import OrderedPool, line_blocks
from ..core.quarantine import Quarantine
from ..core.stage import progress
from .checks import export_problem, with_system_prompt
from .config import FILE_TYPES, ExportParams, split_format
from .formats import COLUMNS, DPO_FILES, ID_COLUMN, LATE_TYPED, SFT_FILES, Converter, Skip, file_name

GZIP_LEVEL = 3          # ~4x faster than zlib's default 6 for ~3% larger files (measured: docs/export.md)
PARQUET_BATCH = 2048    # rows per Parquet row group (rows wait in memory until then)
PARQUET_COMPRESSION = "zstd"
BLOCK_LINES = 2_000     # input lines per job of the pool


class JsonlSink:
    """One JSONL file (gzipped when `gz`), written atomically; rows in input order, except that the
    first row whose `late` columns are all non-empty goes on line 1 (formats.LATE_TYPED): rows before
    it wait in an anonymous temporary file beside the output, then follow it."""

    def __init__(self, path: Path, gz: bool = False, late: tuple[str, ...] = ()):
        self.path, self.gz, self.late = path, gz, late
        self.count = 0
        self._out: Any = None
        self._spill: Any = None
        self._stack: contextlib.ExitStack | None = None

    def __enter__(self) -> "JsonlSink":
        self._stack = contextlib.ExitStack()
        out: Any = self._stack.enter_context(atomic_file(self.path))
        if self.gz:  # mtime=0 and no file name: byte-identical across runs
            out = self._stack.enter_context(gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0,
                                                          compresslevel=GZIP_LEVEL))
        self._out = out
        if self.late:
            self._spill = tempfile.TemporaryFile(dir=self.path.parent)
            self._stack.callback(self._close_spill)
        return self

    def _close_spill(self) -> None:
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def _drain(self) -> None:
        self._spill.seek(0)
        shutil.copyfileobj(self._spill, self._out, 1 << 20)
        self._close_spill()

    def put(self, data: bytes, rows: int, full: tuple[int, int] | None) -> None:
        """Append a block of `rows` encoded rows; `full` is the byte span of its first row whose late
        columns are all non-empty (None: no such row)."""
        self.count += rows
        if self._spill is None:
            self._out.write(data)
        elif full is not None:
            start, end = full
            self._out.write(data[start:end])
            self._drain()
            self._out.write(data[:start])
            self._out.write(data[end:])
        else:
            self._spill.write(data)

    def __exit__(self, exc_type, exc, tb) -> bool | None:
        assert self._stack is not None
        if exc_type is None and self._spill is not None:
            self._drain()
        return self._stack.__exit__(exc_type, exc, tb)


def arrow_type(spec: Any):
    """formats.COLUMNS notation -> a pyarrow type ("string", [T] list, {name: T} struct)."""
    import pyarrow as pa

    if spec == "string":
        return pa.string()
    if isinstance(spec, list):
        return pa.list_(arrow_type(spec[0]))
    if isinstance(spec, dict):
        return pa.struct([(k, arrow_type(v)) for k, v in spec.items()])
    raise ValueError(f"unknown column type {spec!r}")


def parquet_schema(columns: dict[str, Any]):
    import pyarrow as pa

    return pa.schema([(k, arrow_type(v)) for k, v in columns.items()])


def sink_columns(fmt: str, keep_id: bool) -> dict[str, Any]:
    return {**(ID_COLUMN if keep_id else {}), **COLUMNS[fmt]}


class ParquetSink:
    """One Parquet file with the format's declared schema, written atomically in row groups."""

    def __init__(self, path: Path, columns: dict[str, Any]):
        self.path, self.columns = path, columns
        self.count = 0
        self._pending: Any = None   # rows waiting for a full row group
        self._stack: contextlib.ExitStack | None = None

    def __enter__(self) -> "ParquetSink":
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self._schema = parquet_schema(self.columns)
        self._stack = contextlib.ExitStack()
        raw = self._stack.enter_context(atomic_file(self.path))
        self._writer = pq.ParquetWriter(raw, self._schema, compression=PARQUET_COMPRESSION)
        return self

    def put(self, table: Any) -> None:
        """Append a block's rows (an Arrow table); row groups of PARQUET_BATCH rows whatever the blocks."""
        self.count += table.num_rows
        self._pending = self._pa.concat_tables([self._pending, table]) if self._pending is not None else table
        while self._pending.num_rows >= PARQUET_BATCH:
            self._writer.write_table(self._pending.slice(0, PARQUET_BATCH).combine_chunks())
            self._pending = self._pending.slice(PARQUET_BATCH)

    def _flush(self) -> None:
        if self._pending is not None and self._pending.num_rows:
            self._writer.write_table(self._pending.combine_chunks())
        self._pending = None

    def __exit__(self, exc_type, exc, tb) -> bool | None:
        assert self._stack is not None
        if exc_type is None:
            self._flush()
            self._writer.close()  # the footer; then the file is renamed into place
        return self._stack.__exit__(exc_type, exc, tb)


def open_sink(path: Path, fmt: str, file_type: str, keep_id: bool):
    if file_type == "parquet":
        return ParquetSink(path, sink_columns(fmt, keep_id))
    return JsonlSink(path, gz=file_type == "jsonl.gz", late=LATE_TYPED.get(fmt, ()))


@dataclass
class BundleResult:
    """Counts of one bundle (train, eval or a phase) and what went into it."""

    name: str
    records_in: int = 0
    by_kind: Counter = field(default_factory=Counter)
    rejects: Counter = field(default_factory=Counter)
    rows: dict[str, int] = field(default_factory=dict)           # file (relative to bundle) -> rows
    skipped: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    sources: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # dataset -> revisions
    models: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))   # model -> stages
    buckets: Counter = field(default_factory=Counter)
    safety: Counter = field(default_factory=Counter)

    @property
    def records_out(self) -> int:
        return sum(self.by_kind.values())

    def add(self, other: "BundleResult") -> None:
        """Count in a block's result (every count is a sum, so blocks add up to the whole)."""
        self.records_in += other.records_in
        for mine, theirs in ((self.by_kind, other.by_kind), (self.rejects, other.rejects),
                             (self.buckets, other.buckets), (self.safety, other.safety)):
            mine.update(theirs)
        for mine_d, theirs_d in ((self.skipped, other.skipped), (self.sources, other.sources),
                                 (self.models, other.models)):
            for k, c in theirs_d.items():
                mine_d[k].update(c)

    def metrics(self) -> dict[str, Any]:
        return {
            "records_in": self.records_in,
            "records_out": self.records_out,
            "rejected": sum(self.rejects.values()),
            "by_kind": {k: self.by_kind.get(k, 0) for k in ("sft", "preference")},
            "rejects_by_reason": dict(sorted(self.rejects.items())),
            "rows": dict(sorted(self.rows.items())),
            "skipped": {f: dict(sorted(c.items())) for f, c in sorted(self.skipped.items())},
            "by_bucket": dict(sorted(self.buckets.items())),
            "by_source": {d: sum(c.values()) for d, c in sorted(self.sources.items())},
        }

    def provenance(self) -> dict[str, Any]:
        return {
            "records": self.records_out,
            "files": dict(sorted(self.rows.items())),  # what this bundle holds: file -> rows
            "by_kind": {k: self.by_kind.get(k, 0) for k in ("sft", "preference")},
            "sources": {d: {"records": sum(c.values()), "revisions": dict(sorted(c.items()))}
                        for d, c in sorted(self.sources.items())},
            "models": {m: {"records": sum(c.values()), "stages": dict(sorted(c.items()))}
                       for m, c in sorted(self.models.items())},
            "buckets": dict(sorted(self.buckets.items())),
            "safety_labels": dict(sorted(self.safety.items())),
        }

    def observe(self, rec: dict) -> None:
        """Count what a kept record contributes to the card."""
        src = rec.get("source") if isinstance(rec.get("source"), dict) else {}
        self.sources[str(src.get("dataset") or "unknown")][str(src.get("revision") or "")] += 1
        seen: set[tuple[str, str]] = set()
        for step in rec.get("lineage") or []:
            if isinstance(step, dict) and step.get("model"):
                key = (str(step["model"]), str(step.get("stage") or ""))
                if key not in seen:  # one record counts once per model and stage
                    seen.add(key)
                    self.models[key[0]][key[1]] += 1
        self.buckets[str(rec.get("bucket") or "none")] += 1
        labels = rec.get("labels") if isinstance(rec.get("labels"), dict) else {}
        if labels.get("safety"):
            self.safety[str(labels["safety"])] += 1


@dataclass(frozen=True)
class Target:
    """One configured format of a kind and the files (one per file type) its rows go to."""

    fmt: str
    convert: Converter
    files: tuple[tuple[str, str], ...]  # (file inside the bundle, file type)


def formats_of(params: ExportParams) -> dict[str, list[Target]]:
    """kind -> the configured formats, in params order, each with its files."""
    out: dict[str, list[Target]] = {}
    for kind, entries, table in (("sft", params.sft_formats, SFT_FILES),
                                 ("preference", params.dpo_formats, DPO_FILES)):
        types: dict[str, list[str]] = {}
        for e in entries:
            fmt, ft = split_format(e)
            types.setdefault(fmt, []).append(ft)
        out[kind] = [Target(fmt, table[fmt], tuple((file_name(kind, fmt, ft), ft) for ft in fts))
                     for fmt, fts in types.items()]
    return out


def known_files() -> list[str]:
    """Every file a bundle can hold, whatever the params."""
    return [file_name(kind, fmt, ft) for kind, table in (("sft", SFT_FILES), ("preference", DPO_FILES))
            for fmt in table for ft in FILE_TYPES]


def remove_unconfigured(out_dir: Path, keep: set[str]) -> None:
    """Delete an earlier run's files of formats this run does not write, so the folder (and the card,
    which lists what is there) holds only what was asked for. DVC removes its outs itself."""
    for rel in known_files():
        if rel not in keep and (out_dir / rel).is_file():
            (out_dir / rel).unlink()


@dataclass
class Block:
    """What one block of input lines gives a bundle: its counts, its rejects, and per output file the
    encoded rows (JSONL bytes, or an Arrow table for Parquet) with the span of the first full row."""

    res: BundleResult
    rejects: list[tuple[str, Any, int, str]]                    # (reason, record or BadLine, line, detail)
    data: dict[str, Any]
    rows: dict[str, int]
    full: dict[str, tuple[int, int]]


_X: dict[str, Any] = {}    # the run's settings, set before the pool forks (`convert_block` reads them)


def set_up(params: ExportParams, max_line_bytes: int) -> None:
    targets = formats_of(params)
    types = {rel: (t.fmt, ft) for ts in targets.values() for t in ts for rel, ft in t.files}
    _X.update(params=params, max_line_bytes=max_line_bytes, targets=targets, files=list(types),
              late={rel: LATE_TYPED[fmt] for rel, (fmt, ft) in types.items() if ft != "parquet" and fmt in LATE_TYPED},
              schemas={rel: parquet_schema(sink_columns(fmt, params.keep_id))
                       for rel, (fmt, ft) in types.items() if ft == "parquet"})


def convert_block(lines: list[tuple[int, bytes]]) -> Block:
    """Check and convert one block of lines (in a pool worker, or inline): a pure function of the lines
    and the settings, so the bundle does not depend on how the input was cut or on the worker count."""
    params: ExportParams = _X["params"]
    targets: dict[str, list[Target]] = _X["targets"]
    late: dict[str, tuple[str, ...]] = _X["late"]
    schemas: dict[str, Any] = _X["schemas"]
    res, rejects = BundleResult(""), []
    parts: dict[str, list] = {rel: [] for rel in _X["files"]}
    size = dict.fromkeys(parts, 0)
    full: dict[str, tuple[int, int]] = {}
    for ln, raw in lines:
        obj = parse_line(raw, ln, _X["max_line_bytes"])
        res.records_in += 1
        if isinstance(obj, BadLine):
            res.rejects[obj.reason] += 1
            rejects.append((obj.reason, obj, ln, obj.detail))
            continue
        rec = with_system_prompt(obj, params.system_prompt, params.system_prompt_mode)
        reason = export_problem(rec, params.keep_id)
        if reason:
            res.rejects[reason] += 1
            rejects.append((reason, obj, ln, ""))
            continue
        kind = rec["kind"]
        res.by_kind[kind] += 1
        res.observe(rec)
        for t in targets[kind]:
            row = t.convert(rec)
            if isinstance(row, Skip):
                for rel, _ in t.files:
                    res.skipped[rel][row.reason] += 1
                continue
            if params.keep_id:
                row = {"id": rec["id"], **row}
            line = None
            for rel, ft in t.files:
                if ft == "parquet":
                    parts[rel].append(row)
                    continue
                if line is None:
                    line = (dumps(row) + "\n").encode("utf-8")
                if rel in late and rel not in full and all(row.get(c) for c in late[rel]):
                    full[rel] = (size[rel], size[rel] + len(line))
                parts[rel].append(line)
                size[rel] += len(line)
    data: dict[str, Any] = {}
    for rel, got in parts.items():
        if rel in schemas:
            import pyarrow as pa

            data[rel] = pa.Table.from_pylist(got, schema=schemas[rel])
        else:
            data[rel] = b"".join(got)
    return Block(res, rejects, data, {rel: len(p) for rel, p in parts.items()}, full)


def export_bundle(name: str, inputs: list[Path], out_dir: Path, params: ExportParams, quarantine: Quarantine,
                  pool: OrderedPool, tick: Callable[[int], None] | None = None) -> BundleResult:
    """Write every configured file of one bundle under `out_dir` from `pool`'s converted blocks (the
    settings given to `set_up` before the pool was made); return its counts."""
    res = BundleResult(name)
    targets = formats_of(params)
    remove_unconfigured(out_dir, {rel for ts in targets.values() for t in ts for rel, _ in t.files})
    for d in ("sft", "dpo"):  # both folders exist (DVC outs) even when a kind has no formats
        (out_dir / d).mkdir(parents=True, exist_ok=True)
    bar = progress(desc=f"export {name}")
    with contextlib.ExitStack() as stack:
        sinks = {rel: stack.enter_context(open_sink(out_dir / rel, t.fmt, ft, params.keep_id))
                 for ts in targets.values() for t in ts for rel, ft in t.files}
        for f_no, blk in pool.map(convert_block, line_blocks(inputs, BLOCK_LINES)):
            res.add(blk.res)
            for reason, obj, ln, detail in blk.rejects:
                quarantine.reject(reason, obj, file=str(inputs[f_no]), line=ln, detail=detail, bundle=name)
            for rel, sink in sinks.items():
                if isinstance(sink, ParquetSink):
                    sink.put(blk.data[rel])
                else:
                    sink.put(blk.data[rel], blk.rows[rel], blk.full.get(rel))
            bar.update(blk.res.records_in)
            if tick:
                tick(blk.res.records_in)
        for rel, sink in sinks.items():
            res.rows[rel] = sink.count
    bar.close()
    return res
