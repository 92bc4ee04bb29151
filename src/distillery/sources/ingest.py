"""Ingest one source: read rows, adapt, normalise, write records + quarantine, count.

Streaming end to end: rows are read one at a time (a .json array is loaded whole), turned into
records and written at once; rejects go to the quarantine with reason, file and line.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.stage import progress
from ..core.io import AtomicWriter, BadLine
from ..core.quarantine import Quarantine, StageCounter
from ..core.records import check_record, stable_id
from .adapters import ADAPTERS, Ctx, Draft, RowError
from .config import IngestDefaults, SourceSpec
from .normalize import Normalizer
from .readers import read_rows, sha256_file, source_files

STAGE = "ingest"
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


def ingest_source(name: str, spec: SourceSpec, defaults: IngestDefaults, output: Path, *,
                  max_row_bytes: int, counter: StageCounter | None = None) -> IngestResult:
    """Write output/records.jsonl and output/quarantine.jsonl atomically; return the counts."""
    digest = verify_sha256(name, spec)
    files = source_files(spec.path, spec.format)
    ctx = Ctx.for_spec(spec, defaults.empty_input_values)
    adapt = ADAPTERS[spec.adapter]
    norm = Normalizer(defaults)
    builder = RecordBuilder(name, spec)
    counter = counter if counter is not None else StageCounter()
    kinds: Counter[str] = Counter()
    rows_read = 0
    empty: list[str] = []
    q_path = output / "quarantine.jsonl"
    with AtomicWriter(output / "records.jsonl") as out, Quarantine(q_path, STAGE, counter) as q:
        for file in files:
            rel = "" if file == spec.path else str(file.relative_to(spec.path))
            rows = progress(read_rows(file, spec.format, max_row_bytes), desc=f"ingest {name}", unit="row")
            row_idx = -1
            for row_idx, (line, row) in enumerate(rows):
                if spec.limit is not None and rows_read >= spec.limit:
                    break
                rows_read += 1
                if isinstance(row, BadLine):
                    counter.records_in += 1
                    q.reject_bad_line(row, str(file))
                    continue
                try:
                    drafts = list(adapt(row, ctx))
                except RowError as e:
                    counter.records_in += 1
                    q.reject(e.reason, encodable(row), file=str(file), line=line, detail=e.detail, source=name)
                    continue
                except (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError) as e:
                    # a shape no adapter check foresaw: quarantine it rather than stop the whole source
                    counter.records_in += 1
                    q.reject("adapter_error", encodable(row), file=str(file), line=line,
                             detail=f"{type(e).__name__}: {e}", source=name)
                    continue
                uid = row.get(ctx.fields["id"]) if ctx.fields["id"] else None
                for d in drafts:
                    counter.records_in += 1
                    if d.upstream_id is None and isinstance(uid, (str, int)):
                        d.upstream_id = str(uid)
                    bad = norm.check(d)
                    rec = builder.build(d, file, rel, row_idx, line)
                    if not bad and (invalid := check_record(rec)) is not None:
                        bad = (invalid.reason, invalid.detail)   # what we write must be of the record model
                    if bad:
                        q.reject(bad[0], encodable(rec), file=str(file), line=line, detail=bad[1], source=name)
                        continue
                    out.write_record(rec)
                    counter.records_out += 1
                    kinds[d.kind] += 1
            if row_idx < 0 and not (spec.limit is not None and rows_read >= spec.limit):
                # exit 0 with records_in 0 is right for an empty file, but it should not pass unnoticed
                log.warning("ingest@%s: %s holds no rows (empty file)", name, file)
                empty.append(str(file))
            if spec.limit is not None and rows_read >= spec.limit:
                break
    metrics = counter.as_metrics()
    metrics.update({
        "source": name, "adapter": spec.adapter, "rows_read": rows_read, "records_by_kind": dict(sorted(kinds.items())),
        "files": [str(f) for f in files], "empty_files": empty, "sha256": digest, "revision": spec.revision,
        "bucket": spec.bucket,
    })
    return IngestResult(metrics, counter, q_path)
