"""Stream record files into one bundle: sft/<format>.<type> and dpo/<format>.<type>, one row per record
per configured format and file type (.jsonl, .jsonl.gz, .parquet).

One pass over the input, every output file open at once (atomic writers, so a killed run leaves
the previous bundle in place). SFT records go only to sft/, preference records only to dpo/; a
record that cannot be exported goes to the quarantine with its reason and bundle name. Alongside
the rows it gathers provenance (sources, revisions, generation models, buckets) for the card.
Files of formats no longer configured (an earlier run's, outside DVC) are removed.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..core.io import BadLine, atomic_file, dumps, parse_line
from ..core.parallel import BLOCK_LINES, OrderedPool, line_blocks
from ..core.stage import progress
from ..core.quarantine import Quarantine
from .checks import export_problem, with_system_prompt
from .config import FILE_TYPES, ExportParams, split_format
from .formats import COLUMNS, DPO_FILES, ID_COLUMN, LATE_TYPED, SFT_FILES, Converter, Skip, file_name

GZIP_LEVEL = 3          # ~4x faster than zlib's default 6 for ~3% larger files (measured: docs/export.md)
PARQUET_BATCH = 2048    # rows per Parquet row group (rows wait in memory until then)
PARQUET_COMPRESSION = "zstd"


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

    def write(self, row: dict) -> None:
        chunk = Chunk(self.late, False)
        chunk.add(row)
        self.write_chunk(chunk.done())

    def write_chunk(self, c: DoneChunk) -> None:
        """Rows already encoded (`Chunk`), in order: those before the chunk's first typed row, that row,
        the rest. While no typed row has come, rows wait in the spill file."""
        count, pre, typed, post, _ = c
        self.count += count
        if self._spill is None:
            self._out.write(pre + (typed or b"") + post)
        elif typed is None:
            self._spill.write(pre)
        else:
            self._spill.write(pre)
            self._out.write(typed)
            self._drain()
            self._out.write(post)

    def __exit__(self, exc_type, exc, tb) -> bool | None:
        assert self._stack is not None
        if exc_type is None and self._spill is not None:
            self._drain()
        return self._stack.__exit__(exc_type, exc, tb)


# (rows, JSONL lines before the first typed row, that row's line or None, the lines after it, the row
# dicts when a Parquet file takes them)
DoneChunk = tuple[int, bytes, "bytes | None", bytes, "list[dict] | None"]


class Chunk:
    """The rows of one format from a block of records, encoded as JSONL where they are converted (a worker),
    so the parent writes a block with one call per file. `late`: formats.LATE_TYPED's columns of the format,
    whose first row with all of them non-empty goes on line 1 of a JSONL file (`JsonlSink`)."""

    def __init__(self, late: tuple[str, ...], parquet: bool):
        self.late = late
        self.lines: list[bytes] = []
        self.typed_at: int | None = None
        self.rows: list[dict] | None = [] if parquet else None

    def add(self, row: dict) -> None:
        if self.late and self.typed_at is None and all(row.get(c) for c in self.late):
            self.typed_at = len(self.lines)
        self.lines.append((dumps(row) + "\n").encode("utf-8"))
        if self.rows is not None:
            self.rows.append(row)

    def done(self) -> DoneChunk:
        k, lines = self.typed_at, self.lines
        if k is None:
            return len(lines), b"".join(lines), None, b"", self.rows
        return len(lines), b"".join(lines[:k]), lines[k], b"".join(lines[k + 1:]), self.rows


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


class ParquetSink:
    """One Parquet file with the format's declared schema, written atomically in row groups."""

    def __init__(self, path: Path, columns: dict[str, Any]):
        self.path, self.columns = path, columns
        self.count = 0
        self._rows: list[dict] = []
        self._stack: contextlib.ExitStack | None = None

    def __enter__(self) -> "ParquetSink":
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self._schema = pa.schema([(k, arrow_type(v)) for k, v in self.columns.items()])
        self._stack = contextlib.ExitStack()
        raw = self._stack.enter_context(atomic_file(self.path))
        self._writer = pq.ParquetWriter(raw, self._schema, compression=PARQUET_COMPRESSION)
        return self

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(self._pa.Table.from_pylist(self._rows, schema=self._schema))
            self._rows = []

    def write(self, row: dict) -> None:
        self._rows.append(row)
        self.count += 1
        if len(self._rows) >= PARQUET_BATCH:
            self._flush()

    def write_chunk(self, c: DoneChunk) -> None:
        """`JsonlSink.write_chunk`'s signature: the row dicts are what a Parquet file takes."""
        assert c[4] is not None
        for row in c[4]:
            self.write(row)

    def __exit__(self, exc_type, exc, tb) -> bool | None:
        assert self._stack is not None
        if exc_type is None:
            self._flush()
            self._writer.close()  # the footer; then the file is renamed into place
        return self._stack.__exit__(exc_type, exc, tb)


def open_sink(path: Path, fmt: str, file_type: str, keep_id: bool):
    if file_type == "parquet":
        return ParquetSink(path, {**(ID_COLUMN if keep_id else {}), **COLUMNS[fmt]})
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

    def merge(self, part: BundleResult) -> None:
        """Add the counts of a block (`convert_block`); every output of them is sorted, so order is moot."""
        self.records_in += part.records_in
        self.by_kind.update(part.by_kind)
        self.rejects.update(part.rejects)
        self.buckets.update(part.buckets)
        self.safety.update(part.safety)
        for mine, theirs in ((self.skipped, part.skipped), (self.sources, part.sources), (self.models, part.models)):
            for k, c in theirs.items():
                mine[k].update(c)

    def observe(self, seen: Observation) -> None:
        """Count what a kept record contributes to the card."""
        dataset, revision, models, bucket, safety = seen
        self.sources[dataset][revision] += 1
        for model, stage in models:
            self.models[model][stage] += 1
        self.buckets[bucket] += 1
        if safety:
            self.safety[safety] += 1


# (dataset, revision, distinct (model, stage) of its lineage, bucket, safety label or "")
Observation = tuple[str, str, list[tuple[str, str]], str, str]


def observation(rec: dict) -> Observation:
    """What a kept record contributes to the card (worked out where the record is parsed)."""
    src = rec.get("source") if isinstance(rec.get("source"), dict) else {}
    models: list[tuple[str, str]] = []
    for step in rec.get("lineage") or []:
        if isinstance(step, dict) and step.get("model"):
            key = (str(step["model"]), str(step.get("stage") or ""))
            if key not in models:  # one record counts once per model and stage
                models.append(key)
    labels = rec.get("labels") if isinstance(rec.get("labels"), dict) else {}
    return (str(src.get("dataset") or "unknown"), str(src.get("revision") or ""), models,
            str(rec.get("bucket") or "none"), str(labels["safety"]) if labels.get("safety") else "")


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


def convert_block(job: tuple[ExportParams, int, list[tuple[int, bytes]]]
                  ) -> tuple[list[tuple[int, str, Any, dict]], BundleResult, dict[tuple[str, str], DoneChunk]]:
    """Parse, check and convert a block of lines (in a worker): (the rejects in order, as (line, reason,
    record or BadLine, extra quarantine fields), the block's counts, each format's rows as a `Chunk`). The
    parent writes them in input order, so the files are the same bytes with any number of workers."""
    params, limit, lines = job
    targets = formats_of(params)
    part = BundleResult("")
    rejects: list[tuple[int, str, Any, dict]] = []
    chunks: dict[tuple[str, str], Chunk] = {}
    for ln, raw in lines:
        part.records_in += 1
        obj = parse_line(raw, ln, limit)
        if isinstance(obj, BadLine):
            part.rejects[obj.reason] += 1
            rejects.append((ln, obj.reason, obj, {"detail": obj.detail}))
            continue
        rec = with_system_prompt(obj, params.system_prompt, params.system_prompt_mode)
        reason = export_problem(rec, params.keep_id)
        if reason:
            part.rejects[reason] += 1
            rejects.append((ln, reason, obj, {}))
            continue
        kind = rec["kind"]
        part.by_kind[kind] += 1
        part.observe(observation(rec))
        for t in targets[kind]:
            row = t.convert(rec)
            if isinstance(row, Skip):
                for rel, _ in t.files:
                    part.skipped[rel][row.reason] += 1
                continue
            if params.keep_id:
                row = {"id": rec["id"], **row}
            c = chunks.get((kind, t.fmt))
            if c is None:
                c = chunks[(kind, t.fmt)] = Chunk(LATE_TYPED.get(t.fmt, ()), any(ft == "parquet" for _, ft in t.files))
            c.add(row)
    return rejects, part, {k: c.done() for k, c in chunks.items()}


def export_bundle(name: str, inputs: Iterable[Path], out_dir: Path, params: ExportParams,
                  quarantine: Quarantine, max_line_bytes: int, pool: OrderedPool,
                  tick: Callable[[int], None] | None = None) -> BundleResult:
    """Write every configured file of one bundle under `out_dir`; return its counts. Blocks of lines are
    converted by `pool`'s workers (`convert_block`); this process writes and counts them in input order."""
    res = BundleResult(name)
    targets = formats_of(params)
    files = {(kind, t.fmt): t.files for kind, ts in targets.items() for t in ts}
    remove_unconfigured(out_dir, {rel for ts in targets.values() for t in ts for rel, _ in t.files})
    for d in ("sft", "dpo"):  # both folders exist (DVC outs) even when a kind has no formats
        (out_dir / d).mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        sinks = {rel: stack.enter_context(open_sink(out_dir / rel, t.fmt, ft, params.keep_id))
                 for ts in targets.values() for t in ts for rel, ft in t.files}
        for path in inputs:
            bar = progress(desc=f"export {name}: {path.name}", unit="rec")
            jobs = ((None, (params, max_line_bytes, lines)) for _, lines in line_blocks([path], BLOCK_LINES))
            for _, (rejects, part, chunks) in pool.map(convert_block, jobs):
                for ln, reason, obj, extra in rejects:
                    quarantine.reject(reason, obj, file=str(path), line=ln, bundle=name, **extra)
                res.merge(part)
                bar.update(part.records_in)
                if tick:
                    tick(part.records_in)
                for key, chunk in chunks.items():
                    for rel, _ in files[key]:
                        sinks[rel].write_chunk(chunk)
            bar.close()
        for rel, sink in sinks.items():
            res.rows[rel] = sink.count
    return res
