"""The stats stage: token lengths of every exported row, per kind and bucket, and max_length.

Parts measured per row: SFT `full` (whole conversation), `prompt` (everything before the final
assistant turn plus the generation prompt) and `completion` (full - prompt); DPO `prompt`,
`chosen` and `rejected` (prompt + that answer) and their completions.

The parent streams each file in blocks of lines, answers the rows it measured before from the
length cache, hands the rest to a process pool (every core) and takes the results back in input
order; it keeps only exact length histograms, so memory does not grow with the number of rows.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..core.errors import InputError
from ..core.io import AtomicWriter, BadLine, input_files, write_json
from ..core.parallel import OrderedPool, line_blocks, worker_count
from ..core.quarantine import Quarantine, StageCounter
from ..core.stage import progress
from .cache import LengthCache, open_cache
from .config import StatsParams
from .lengths import TemplateLengths, parts
from .rows import BucketLookup
from .summary import Hist, describe, histogram, recommend_max_length
from .work import REJECT, init_worker, measure_lines

log = logging.getLogger(__name__)
FULL_PARTS = {"sft": ("full",), "dpo": ("chosen", "rejected")}


def find_inputs(inputs: list[str | Path], params: StatsParams) -> list[Path]:
    """Export folders contribute their configured SFT/DPO files (else every records.jsonl below);
    files are taken as they are."""
    out: list[Path] = []
    for p in map(Path, inputs):
        if p.is_dir():
            found = [p / f for f in (*params.sft_files, *params.dpo_files) if (p / f).exists()]
            out.extend(found or input_files([p]))
        elif p.exists():
            out.append(p)
        else:
            raise InputError(f"{p}: input not found")
    if not out:
        raise InputError(f"{', '.join(map(str, inputs))}: no SFT/DPO files found "
                         f"(looked for {', '.join(params.sft_files + params.dpo_files)})")
    return out


class LengthTable:
    """Length histograms per (kind, part) and per (kind, bucket, part)."""

    def __init__(self) -> None:
        self.overall: dict[tuple[str, str], Hist] = defaultdict(Hist)
        self.by_bucket: dict[tuple[str, str, str], Hist] = defaultdict(Hist)

    def add_batch(self, rows: list[tuple[str, str, dict[str, int]]]) -> None:
        """(kind, bucket, parts) of a batch of rows."""
        per: dict[tuple[str, str, str], list[int]] = defaultdict(list)
        for kind, bucket, m in rows:
            for part, n in m.items():
                per[(kind, bucket, part)].append(n)
        for (kind, bucket, part), vals in per.items():
            counts = np.bincount(np.array(vals, np.int64))
            self.by_bucket[(kind, bucket, part)].merge_counts(counts)
            self.overall[(kind, part)].merge_counts(counts)

    def full_lengths(self) -> Hist:
        h = Hist()
        for kind, names in FULL_PARTS.items():
            for part in names:
                if (kind, part) in self.overall:
                    h.merge(self.overall[(kind, part)])
        return h


class Sink:
    """Takes measured batches back in input order: quarantine, lengths.jsonl, histograms, cache."""

    def __init__(self, files: list[Path], params: StatsParams, lookup: BucketLookup, counter: StageCounter,
                 q: Quarantine, lw: AtomicWriter, cache: LengthCache | None, max_line_bytes: int):
        self.files, self.params, self.lookup, self.counter = files, params, lookup, counter
        self.q, self.lw, self.cache, self.max_line_bytes = q, lw, cache, max_line_bytes
        self.table = LengthTable()
        self.unknown = self.from_cache = 0

    def take(self, f_no: int, lines: list[tuple[int, bytes]], keys: list[bytes] | None,
             hits: dict[bytes, tuple], computed: list[tuple]) -> None:
        file = str(self.files[f_no])
        todo = iter(computed)
        good: list[tuple] = []
        for i, (ln, raw) in enumerate(lines):
            hit = hits.get(keys[i]) if keys is not None else None
            r = (ln, *hit) if hit is not None else next(todo)
            self.counter.records_in += 1
            if r[1] == REJECT:
                _, _, reason, obj, detail = r
                if isinstance(obj, BadLine) and reason == obj.reason:
                    self.q.reject_bad_line(obj, file)
                else:
                    self.q.reject(reason, obj, file=file, line=ln, detail=detail)
                continue
            if hit is not None:
                self.from_cache += 1
            elif self.cache is not None and len(raw) <= self.max_line_bytes:
                self.cache.put(keys[i], r[1:])
            good.append(r)
        buckets = self.lookup.buckets([r[3] for r in good], [r[2] for r in good], [r[4] for r in good])
        rows = []
        for (ln, kind, rid, _, _, counts), bucket in zip(good, buckets):
            if bucket is None:
                self.unknown += 1
                bucket = self.params.unknown_bucket
            m = parts(kind, counts)
            rows.append((kind, bucket, m))
            self.lw.write_record({"file": file, "line": ln, "id": rid, "kind": kind, "bucket": bucket, **m})
        self.counter.records_out += len(good)
        self.table.add_batch(rows)


def _lookup_cache(cache: LengthCache | None, lines: list[tuple[int, bytes]], max_line_bytes: int
                  ) -> tuple[list[bytes] | None, dict[bytes, tuple], list[tuple[int, bytes]]]:
    """(keys, remembered rows, lines still to measure). A line over the size limit is measured (and
    rejected) whatever a run with a higher limit remembered."""
    if cache is None:
        return None, {}, lines
    keys = [cache.key(raw) for _, raw in lines]
    hits = cache.get_many(keys)
    for k, (_, raw) in zip(keys, lines):
        if len(raw) > max_line_bytes:
            hits.pop(k, None)
    return keys, hits, [ln_raw for k, ln_raw in zip(keys, lines) if k not in hits]


def run_stats(inputs: list[str | Path], output: str | Path, params: StatsParams, mix_dir: str | Path | None,
              max_line_bytes: int, plots_dir: str | Path | None, *, counter: StageCounter | None = None) -> dict[str, Any]:
    files = find_inputs(inputs, params)
    out = Path(output)
    workers = worker_count(params.workers, files)
    if workers > 1:   # one tokenizer thread per worker process; and no warning when they fork
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    meter = TemplateLengths(params.tokenizer, params.chat_template, fast=params.fast_count)
    counter = counter if counter is not None else StageCounter()
    init_worker(meter, max_line_bytes)
    cache = None
    with OrderedPool(workers) as pool:   # forked before any SQLite handle
        lookup = BucketLookup(mix_dir, pool)
        try:
            cache = open_cache(params.cache_path, meter.identity()) if params.cache_path else None
            with Quarantine(out / "quarantine.jsonl", "stats", counter) as q, \
                    AtomicWriter(out / "lengths.jsonl") as lw:
                sink = Sink(files, params, lookup, counter, q, lw, cache, max_line_bytes)
                bar = progress(desc="stats: tokenise")

                def jobs() -> Iterator[tuple[tuple, list[tuple[int, bytes]]]]:
                    """The lines the cache does not answer go to the workers (an empty list: no work)."""
                    for f_no, lines in line_blocks(files, params.batch_size):
                        keys, hits, todo = _lookup_cache(cache, lines, max_line_bytes)
                        yield (f_no, lines, keys, hits), todo

                for (f_no, lines, keys, hits), measured in pool.map(measure_lines, jobs()):
                    sink.take(f_no, lines, keys, hits, measured)
                    bar.update(len(lines))
                bar.close()
        finally:
            if cache is not None:
                cache.close()
    if not counter.records_out:
        raise InputError(f"{', '.join(map(str, files))}: no measurable SFT/DPO rows")
    log.info("stats: %d rows from the length cache, %d tokenised (%d workers, %s counter)", sink.from_cache,
             counter.records_out - sink.from_cache, workers, meter.counter.mode)
    metrics = summarise(sink.table, params, counter, sink.unknown, files, out, plots_dir)
    metrics["run"] = {"workers": workers, "counter": meter.counter.mode, "cache_path": params.cache_path,
                      "rows_from_cache": sink.from_cache, "rows_tokenised": counter.records_out - sink.from_cache}
    return metrics


def summarise(table: LengthTable, params: StatsParams, counter: StageCounter, unknown_buckets: int,
              files: list[Path], out: Path, plots_dir: str | Path | None) -> dict[str, Any]:
    cands = params.candidate_max_lengths
    overall: dict[str, dict[str, Any]] = defaultdict(dict)
    for (kind, part), h in sorted(table.overall.items()):
        overall[kind][part] = describe(h, cands if part in FULL_PARTS[kind] else ())
    by_bucket: dict[str, dict[str, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    for (kind, bucket, part), h in sorted(table.by_bucket.items()):
        by_bucket[bucket][kind][part] = describe(h, cands if part in FULL_PARTS[kind] else ())
    full = table.full_lengths()
    rec = recommend_max_length(full, params.percentile, params.round_to)
    all_full = describe(full, cands)
    metrics = counter.as_metrics()
    metrics.update({
        "recommended_max_length": rec, "recommended_from": f"p{params.percentile:g} of full sequences, "
                                                          f"rounded up to a multiple of {params.round_to}",
        "tokenizer": params.tokenizer, "token_p99": all_full.get("p99", 0), "token_max": all_full.get("max", 0),
        "truncated_share": all_full.get("truncated_share", {}), "rows_without_bucket": unknown_buckets,
        "inputs": [str(f) for f in files],
        "overall": {k: dict(v) for k, v in overall.items()},
        "by_bucket": {b: {k: dict(v) for k, v in kinds.items()} for b, kinds in by_bucket.items()},
    })
    write_json(out / "summary.json", metrics)
    if plots_dir is not None:
        for kind, names in FULL_PARTS.items():
            for part in names:
                name = f"stats_tokens_{kind}.json" if part == "full" else f"stats_tokens_{kind}_{part}.json"
                write_json(Path(plots_dir) / name, histogram(table.overall.get((kind, part), Hist()),
                                                              params.histogram_bin))
    return metrics
