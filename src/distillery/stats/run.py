"""The stats stage: token lengths of every exported row, per kind and bucket, and max_length.

Parts measured per row: SFT `full` (whole conversation), `prompt` (everything before the final
assistant turn plus the generation prompt) and `completion` (full - prompt); DPO `prompt`,
`chosen` and `rejected` (prompt + that answer) and their completions.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.io import AtomicWriter, BadLine, input_files, write_json
from ..core.quarantine import Quarantine, StageCounter
from ..core.stage import progress
from .config import StatsParams
from .lengths import TemplateLengths
from .rows import BucketLookup, Row, iter_rows
from .summary import describe, histogram, recommend_max_length

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
    """Lengths collected per (kind, part) and per (kind, bucket, part)."""

    def __init__(self) -> None:
        self.overall: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.by_bucket: dict[tuple[str, str, str], list[int]] = defaultdict(list)

    def add(self, kind: str, bucket: str, part: str, n: int) -> None:
        self.overall[(kind, part)].append(n)
        self.by_bucket[(kind, bucket, part)].append(n)

    def full_lengths(self) -> list[int]:
        return [n for kind, parts in FULL_PARTS.items() for part in parts for n in self.overall.get((kind, part), [])]


def measure_batch(meter: TemplateLengths, rows: list[Row]) -> list[dict[str, int]]:
    """Token counts of each row's parts (one tokenizer call per part across the batch)."""
    prompts = meter.lengths([r.prompt for r in rows], generation_prompt=True)
    out = [{"prompt": p} for p in prompts]
    n_answers = max(len(r.answers) for r in rows)
    names = {1: ("full",), 2: ("chosen", "rejected")}
    for i in range(n_answers):
        idx = [j for j, r in enumerate(rows) if len(r.answers) > i]
        fulls = meter.lengths([rows[j].prompt + rows[j].answers[i] for j in idx])
        for j, n in zip(idx, fulls):
            name = names[len(rows[j].answers)][i]
            out[j][name] = n
            comp = "completion" if name == "full" else f"{name}_completion"
            out[j][comp] = max(0, n - out[j]["prompt"])
    return out


def run_stats(inputs: list[str | Path], output: str | Path, params: StatsParams, mix_dir: str | Path | None,
              max_line_bytes: int, plots_dir: str | Path | None, *, counter: StageCounter | None = None) -> dict[str, Any]:
    files = find_inputs(inputs, params)
    out = Path(output)
    lookup = BucketLookup(mix_dir)
    meter = TemplateLengths(params.tokenizer, params.chat_template)
    table = LengthTable()
    counter = counter if counter is not None else StageCounter()
    unknown_buckets = 0
    with Quarantine(out / "quarantine.jsonl", "stats", counter) as q, AtomicWriter(out / "lengths.jsonl") as lw:
        bar = progress(desc="stats: tokenise")
        for f in files:
            batch: list[tuple[int, Row, object]] = []

            def flush() -> None:
                nonlocal unknown_buckets
                if not batch:
                    return
                rows = [r for _, r, _ in batch]
                try:
                    measured = measure_batch(meter, rows)
                except Exception:  # a template rejected some row: find it, measure the rest
                    keep = []
                    for item in batch:
                        err = meter.try_render(item[1].prompt + item[1].answers[0], False)
                        if err:
                            q.reject("template_error", item[2], file=str(f), line=item[0], detail=err)
                        else:
                            keep.append(item)
                    batch[:] = keep
                    measured = measure_batch(meter, [r for _, r, _ in batch]) if batch else []
                for (line, row, _), m in zip(batch, measured):
                    bucket = lookup.bucket(row)
                    if bucket is None:
                        unknown_buckets += 1
                        bucket = params.unknown_bucket
                    for part, n in m.items():
                        table.add(row.kind, bucket, part, n)
                    lw.write_record({"file": str(f), "line": line, "id": row.id, "kind": row.kind,
                                     "bucket": bucket, **m})
                    counter.records_out += 1
                bar.update(len(batch))
                batch.clear()

            for line, row, raw in iter_rows(f, max_line_bytes):
                counter.records_in += 1
                if isinstance(row, str):
                    if isinstance(raw, BadLine):
                        q.reject_bad_line(raw, str(f))
                    else:
                        q.reject(row, raw, file=str(f), line=line)
                    continue
                batch.append((line, row, raw))
                if len(batch) >= params.batch_size:
                    flush()
            flush()
        bar.close()
    if not counter.records_out:
        raise InputError(f"{', '.join(map(str, files))}: no measurable SFT/DPO rows")
    return summarise(table, params, counter, unknown_buckets, files, out, plots_dir)


def summarise(table: LengthTable, params: StatsParams, counter: StageCounter, unknown_buckets: int,
              files: list[Path], out: Path, plots_dir: str | Path | None) -> dict[str, Any]:
    cands = params.candidate_max_lengths
    overall: dict[str, dict[str, Any]] = defaultdict(dict)
    for (kind, part), vals in sorted(table.overall.items()):
        overall[kind][part] = describe(vals, cands if part in FULL_PARTS[kind] else ())
    by_bucket: dict[str, dict[str, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    for (kind, bucket, part), vals in sorted(table.by_bucket.items()):
        by_bucket[bucket][kind][part] = describe(vals, cands if part in FULL_PARTS[kind] else ())
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
        for kind, parts in FULL_PARTS.items():
            for part in parts:
                name = f"stats_tokens_{kind}.json" if part == "full" else f"stats_tokens_{kind}_{part}.json"
                write_json(Path(plots_dir) / name, histogram(table.overall.get((kind, part), []),
                                                              params.histogram_bin))
    return metrics
