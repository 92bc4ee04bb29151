"""Stream record files into one bundle: sft/*.jsonl and dpo/*.jsonl, one row per record per format.

One pass over the input, every output file open at once (atomic writers, so a killed run leaves
the previous bundle in place). SFT records go only to sft/, preference records only to dpo/; a
record that cannot be exported goes to the quarantine with its reason and bundle name. Alongside
the rows it gathers provenance (sources, revisions, generation models, buckets) for the card.
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..core.stage import progress
from ..core.io import AtomicWriter, BadLine, iter_jsonl
from ..core.quarantine import Quarantine
from .checks import export_problem, with_system_prompt
from .config import ExportParams
from .formats import DPO_FILES, SFT_FILES, Skip, file_name


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


def formats_of(params: ExportParams) -> dict[str, dict[str, Callable]]:
    """kind -> {file name inside the bundle: converter}, in params order."""
    return {
        "sft": {file_name("sft", f): SFT_FILES[f] for f in params.sft_formats},
        "preference": {file_name("preference", f): DPO_FILES[f] for f in params.dpo_formats},
    }


def export_bundle(name: str, inputs: Iterable[Path], out_dir: Path, params: ExportParams,
                  quarantine: Quarantine, max_line_bytes: int,
                  tick: Callable[[int], None] | None = None) -> BundleResult:
    """Write every configured file of one bundle under `out_dir`; return its counts."""
    res = BundleResult(name)
    convs = formats_of(params)
    with contextlib.ExitStack() as stack:
        writers = {kind: {rel: stack.enter_context(AtomicWriter(out_dir / rel)) for rel in files}
                   for kind, files in convs.items()}
        for path in inputs:
            for lineno, obj in progress(iter_jsonl(path, max_line_bytes), desc=f"export {name}: {path.name}"):
                res.records_in += 1
                if tick:
                    tick(1)
                if isinstance(obj, BadLine):
                    res.rejects[obj.reason] += 1
                    quarantine.reject(obj.reason, obj, file=str(path), line=lineno, detail=obj.detail, bundle=name)
                    continue
                rec = with_system_prompt(obj, params.system_prompt, params.system_prompt_mode)
                reason = export_problem(rec, params.keep_id)
                if reason:
                    res.rejects[reason] += 1
                    quarantine.reject(reason, obj, file=str(path), line=lineno, bundle=name)
                    continue
                kind = rec["kind"]
                res.by_kind[kind] += 1
                res.observe(rec)
                for rel, conv in convs[kind].items():
                    row = conv(rec)
                    if isinstance(row, Skip):
                        res.skipped[rel][row.reason] += 1
                        continue
                    if params.keep_id:
                        row = {"id": rec["id"], **row}
                    writers[kind][rel].write_record(row)
        for files in writers.values():
            for rel, w in files.items():
                res.rows[rel] = w.count
    return res
