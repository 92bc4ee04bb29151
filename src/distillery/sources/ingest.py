"""Ingest one source: read rows, adapt, normalise, write records + quarantine, count.

Streaming end to end: rows are read in blocks (a .json array is loaded whole), turned into records
(in forked workers for a large input) and written in reading order; rejects go to the quarantine with
reason, file and line.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..core.errors import InputError
from ..core.stage import progress
from ..core.io import AtomicWriter, BadLine, dumps
from ..core.parallel import OrderedPool, worker_count
from ..core.quarantine import Quarantine, StageCounter
from ..core.records import check_record, stable_id
from .adapters import ADAPTERS, Ctx, Draft, RowError
from .config import IngestDefaults, SourceSpec
from .normalize import Normalizer
from .readers import RawRow, parse_row, read_row_blocks, sha256_file, source_files

STAGE = "ingest"
BLOCK_ROWS = 2000     # rows per block handed to a worker
log = logging.getLogger("distillery.ingest")


def verify_sha256(name: str, spec: SourceSpec) -> str | None:
    """Check the pinned sha256 of a single-file source; one line on mismatch."""
    if not spec.path.is_file():
        return None
    digest = sha256_file(spec.path)
    if spec.sha256 and digest != spec.sha256:
        # both digests in full: the new pin is copied from this line
        raise InputError(f"ingest.sources.{name}.sha256: {spec.path} has sha256 {digest}, params pin "
                         f"{spec.sha256}; the file changed (update the pin or the file)")
    return digest


class RecordBuilder:
    """Draft -> record (docs/records.md): stable id, bucket, source, lineage, labels."""

    def __init__(self, name: str, spec: SourceSpec):
        self.name = name
        self.spec = spec
        self.dataset = spec.dataset or name

    def build(self, d: Draft, file: Path, rel: str, row: int, line: int) -> dict[str, Any]:
        spec = self.spec
        key_row = f"{rel}:{row}" if rel else row
        source: dict[str, Any] = {"dataset": self.dataset, "revision": spec.revision, "row": row,
                                  "file": str(file), "line": line}
        if d.upstream_id:
            source["upstream_id"] = d.upstream_id
        if spec.license:
            source["license"] = spec.license
        rec: dict[str, Any] = {"id": stable_id(self.name, key_row, d.sub), "kind": d.kind, "messages": d.messages}
        if d.kind == "preference":
            rec["chosen"], rec["rejected"] = d.chosen, d.rejected
        if spec.bucket:
            rec["bucket"] = spec.bucket
        rec["source"] = source
        rec["lineage"] = [{"stage": STAGE, "source": self.name, "adapter": spec.adapter, **d.lineage}]
        rec["scores"] = dict(d.scores)
        rec["labels"] = {**spec.labels, **d.labels}
        return rec


def _finite(obj: Any) -> Any:
    """NaN / ±Infinity as the text JSON has no number for ('NaN', 'Infinity'), so quarantine lines stay JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return json.dumps(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def encodable(obj: Any) -> Any:
    """`obj` made writable as strict UTF-8 JSON: lone surrogates (from bad escapes or bytes) become '?',
    non-finite numbers their names."""
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    except ValueError:
        obj = _finite(obj)
        text = json.dumps(obj, ensure_ascii=False)
    try:
        text.encode("utf-8")
        return obj
    except UnicodeEncodeError:
        return json.loads(text.encode("utf-8", "replace").decode("utf-8"))


@dataclass
class IngestResult:
    metrics: dict[str, Any]
    counter: StageCounter
    quarantine: Path


@dataclass
class BlockResult:
    """What one block of rows became: the records' JSONL text, counts, and the rejects in row order
    (("bad", BadLine) or ("reject", reason, record or row, line, detail))."""

    records_in: int = 0
    records_out: int = 0
    text: str = ""
    kinds: Counter = field(default_factory=Counter)
    rejects: list[tuple] = field(default_factory=list)


@dataclass
class RowWork:
    """Everything turning a row into records needs; set before a pool forks, so workers inherit it."""

    spec: SourceSpec
    ctx: Ctx
    norm: Normalizer
    builder: RecordBuilder
    max_row_bytes: int

    def block(self, job: tuple[Path, str, int, list[RawRow]]) -> BlockResult:
        """Rows of `file`, numbered from row_idx + 1, -> records and rejects, in reading order."""
        file, rel, row_idx, rows = job      # row_idx: the number of the row before the first
        adapt, ctx, res, parts = ADAPTERS[self.spec.adapter], self.ctx, BlockResult(), []
        for line, raw in rows:
            row = parse_row(raw, line, self.max_row_bytes)
            row_idx += 1
            if isinstance(row, BadLine):
                res.records_in += 1
                res.rejects.append(("bad", row))
                continue
            try:
                drafts = list(adapt(row, ctx))
            except RowError as e:
                res.records_in += 1
                res.rejects.append(("reject", e.reason, encodable(row), line, e.detail))
                continue
            except (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError) as e:
                # a shape no adapter check foresaw: quarantine it rather than stop the whole source
                res.records_in += 1
                res.rejects.append(("reject", "adapter_error", encodable(row), line, f"{type(e).__name__}: {e}"))
                continue
            uid = row.get(ctx.fields["id"]) if ctx.fields["id"] else None
            for d in drafts:
                res.records_in += 1
                if d.upstream_id is None and isinstance(uid, (str, int)):
                    d.upstream_id = str(uid)
                bad = self.norm.check(d)
                rec = self.builder.build(d, file, rel, row_idx, line)
                if not bad and (invalid := check_record(rec)) is not None:
                    bad = (invalid.reason, invalid.detail)   # what we write must be of the record model
                if bad:
                    res.rejects.append(("reject", bad[0], encodable(rec), line, bad[1]))
                    continue
                parts.append(dumps(rec))
                res.records_out += 1
                res.kinds[d.kind] += 1
        res.text = "\n".join(parts) + "\n" if parts else ""
        return res


_WORK: list[RowWork | None] = [None]     # the pool's workers read it (set before the fork)


def _work_block(job: tuple[Path, str, int, list[RawRow]]) -> BlockResult:
    work = _WORK[0]
    assert work is not None
    return work.block(job)


def ingest_source(name: str, spec: SourceSpec, defaults: IngestDefaults, output: Path, *,
                  max_row_bytes: int, counter: StageCounter | None = None) -> IngestResult:
    """Write output/records.jsonl and output/quarantine.jsonl atomically; return the counts.

    Rows are read here in blocks and adapted, normalised and checked in `defaults.workers` forked
    workers (a large input only); blocks come back in reading order, so the output is the same bytes
    whatever the number of workers."""
    digest = verify_sha256(name, spec)
    files = source_files(spec.path, spec.format)
    work = RowWork(spec, Ctx.for_spec(spec, defaults.empty_input_values), Normalizer(defaults),
                   RecordBuilder(name, spec), max_row_bytes)
    counter = counter if counter is not None else StageCounter()
    kinds: Counter[str] = Counter()
    rows_read = 0
    empty: list[str] = []
    limit = spec.limit if spec.limit is not None else float("inf")

    def jobs(file: Path, rel: str, in_file: list[int]) -> Iterator[tuple[None, tuple[Path, str, int, list[RawRow]]]]:
        """Blocks of `file` up to the row limit; in_file[0] counts its rows read so far."""
        nonlocal rows_read
        for rows in read_row_blocks(file, spec.format, max_row_bytes, BLOCK_ROWS):
            rows = rows[:max(0, int(min(limit - rows_read, len(rows))))]
            if not rows:
                return
            yield None, (file, rel, in_file[0] - 1, rows)     # the worker numbers rows from in_file[0]
            rows_read += len(rows)
            in_file[0] += len(rows)

    q_path = output / "quarantine.jsonl"
    _WORK[0] = work
    try:
        # the pool forks before the writers open: workers hold no copy of their files
        with OrderedPool(worker_count(defaults.workers, files)) as pool, \
                AtomicWriter(output / "records.jsonl") as out, Quarantine(q_path, STAGE, counter) as q:
            for file in files:
                if rows_read >= limit:
                    break
                rel = "" if file == spec.path else str(file.relative_to(spec.path))
                in_file = [0]
                bar = progress(desc=f"ingest {name}", unit="row")
                for _, res in pool.map(_work_block, jobs(file, rel, in_file)):
                    bar.update(res.records_in)
                    counter.records_in += res.records_in
                    for r in res.rejects:
                        if r[0] == "bad":
                            q.reject_bad_line(r[1], str(file))
                        else:
                            q.reject(r[1], r[2], file=str(file), line=r[3], detail=r[4], source=name)
                    out.write(res.text)
                    counter.records_out += res.records_out
                    kinds.update(res.kinds)
                bar.close()
                if not in_file[0] and rows_read < limit:
                    # exit 0 with records_in 0 is right for an empty file, but it should not pass unnoticed
                    log.warning("ingest@%s: %s holds no rows (empty file)", name, file)
                    empty.append(str(file))
    finally:
        _WORK[0] = None
    metrics = counter.as_metrics()
    metrics.update({
        "source": name, "adapter": spec.adapter, "rows_read": rows_read, "records_by_kind": dict(sorted(kinds.items())),
        "files": [str(f) for f in files], "empty_files": empty, "sha256": digest, "revision": spec.revision,
        "bucket": spec.bucket,
    })
    return IngestResult(metrics, counter, q_path)
