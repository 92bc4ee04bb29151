"""The export stage end to end: find the inputs, write each bundle, register them, count everything.

Input is a record file, or a directory: the mix stage's (`production.jsonl` -> the train bundle,
`eval.jsonl` -> eval/, `phases/<name>.jsonl` -> phases/<name>/) or any other (every records.jsonl
below it -> the train bundle). The eval/ and phases/ folders are always created so the DVC outs
exist whatever the params say.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core.errors import InputError
from ..core.io import input_files, write_json, write_text
from ..core.parallel import OrderedPool, worker_count
from ..core.quarantine import Quarantine, StageCounter
from ..mix.files import EVAL_FILE, PHASES_DIR, PRODUCTION_FILE
from .bundle import BundleResult, export_bundle, set_up
from .config import ExportParams, split_format
from .registry import axolotl_yaml, dataset_info, trl_snippet

log = logging.getLogger(__name__)

# files later stages read by default (their params name them): a run that leaves one out says so
PIPELINE_READS = {
    ("sft_formats", "messages"): "sft/messages.jsonl is read by stats (stats.sft_files) and validate "
                                 "(validate.sft_file)",
    ("dpo_formats", "trl"): "dpo/trl.jsonl is read by stats (stats.dpo_files), validate (validate.dpo_file) "
                            "and train_eval (its DPO step)",
}
PROVENANCE = "provenance.json"
DATASET_INFO = "dataset_info.json"
QUARANTINE = "quarantine.jsonl"
CONFIGS = "configs"


@dataclass
class Plan:
    """Bundle dir (relative to the output, "" = train) -> the files that feed it."""

    bundles: dict[str, list[Path]] = field(default_factory=dict)
    phases: list[str] = field(default_factory=list)


def _phase_name(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", path.name.removesuffix(".gz").removesuffix(".jsonl"))


def plan_bundles(inputs: list[str | Path], params: ExportParams) -> Plan:
    """Which input files go into which bundle."""
    if not inputs:
        raise InputError("export: no --input given")
    plan = Plan()
    if len(inputs) == 1 and Path(inputs[0]).is_dir() and (Path(inputs[0]) / PRODUCTION_FILE).exists():
        mix = Path(inputs[0])
        plan.bundles[""] = [mix / PRODUCTION_FILE]
        if params.eval and (mix / EVAL_FILE).exists():
            plan.bundles["eval"] = [mix / EVAL_FILE]
        if params.phases and (mix / PHASES_DIR).is_dir():
            for f in sorted((mix / PHASES_DIR).glob("*.jsonl")):
                name = _phase_name(f)
                plan.phases.append(name)
                plan.bundles[f"phases/{name}"] = [f]
        return plan
    files = input_files(inputs)
    if not files:
        raise InputError(f"export: no records.jsonl found under {', '.join(map(str, inputs))}")
    plan.bundles[""] = files
    return plan


def _remove_stale_phases(phases_dir: Path, keep: list[str]) -> None:
    """Drop phase bundles of an earlier run that this run does not write (outside DVC, which cleans outs)."""
    if phases_dir.is_dir():
        for d in sorted(phases_dir.iterdir()):
            if d.is_dir() and d.name not in keep and ((d / "sft").is_dir() or (d / "dpo").is_dir()):
                shutil.rmtree(d)


def warn_pipeline_files(params: ExportParams) -> list[str]:
    """Warn (and return the lines) when a file the later stages read by default is not configured."""
    lines = []
    for (key, entry), what in PIPELINE_READS.items():
        if (entry, "jsonl") not in {split_format(e) for e in getattr(params, key)}:
            lines.append(f"export.{key} has no `{entry}`: {what}; those stages will miss it unless their "
                         f"params point at another file")
    for line in lines:
        log.warning(line)
    return lines


def run_export(inputs: list[str | Path], out_dir: str | Path, params: ExportParams, *,
               max_line_bytes: int, quarantine_path: str | Path | None = None,
               tick: Callable[[int], None] | None = None, counter: StageCounter | None = None) -> dict[str, Any]:
    """Write the whole bundle under `out_dir`; count into `counter`; return the stage metrics."""
    counter = counter if counter is not None else StageCounter()
    out = Path(out_dir)
    plan = plan_bundles(inputs, params)
    warn_pipeline_files(params)
    results: dict[str, BundleResult] = {}
    qpath = Path(quarantine_path) if quarantine_path else out / QUARANTINE
    plan.bundles.setdefault("eval", [])  # always written (empty files when off) so the layout is fixed
    _remove_stale_phases(out / PHASES_DIR, plan.phases)
    set_up(params, max_line_bytes)   # before the pool forks: its workers convert with these settings
    workers = worker_count(params.workers, [f for files in plan.bundles.values() for f in files])
    with OrderedPool(workers) as pool, Quarantine(qpath, "export", counter) as q:
        for bundle_dir, files in plan.bundles.items():
            name = bundle_dir or "train"
            results[bundle_dir] = export_bundle(name, files, out / bundle_dir, params, q, pool, tick)
    rows = {d: r.rows for d, r in results.items()}
    write_json(out / DATASET_INFO, dataset_info(params.dataset_prefix, rows))
    write_json(out / "phases" / "index.json", {"phases": plan.phases})
    write_json(out / PROVENANCE, {(d or "train"): r.provenance() for d, r in results.items()})
    train_rows, eval_rows = rows.get("", {}), rows.get("eval", {})
    write_text(out / CONFIGS / "axolotl_datasets.yaml", axolotl_yaml(str(out), train_rows, eval_rows))
    write_text(out / CONFIGS / "trl_load.py", trl_snippet(str(out), train_rows, eval_rows))
    counter.records_in = sum(r.records_in for r in results.values())
    counter.records_out = sum(r.records_out for r in results.values())
    return metrics(results, q.counts)


def metrics(results: dict[str, BundleResult], rejects) -> dict[str, Any]:
    """metrics/export.json: totals, rows per file (path under data/export), kinds and rejects by reason."""
    records_in = sum(r.records_in for r in results.values())
    rejected = sum(rejects.values())
    files: dict[str, int] = {}
    for d, r in results.items():
        for rel, n in r.rows.items():
            files[f"{d}/{rel}" if d else rel] = n
    by_kind: dict[str, int] = {"sft": 0, "preference": 0}
    for r in results.values():
        for k, n in r.by_kind.items():
            by_kind[k] += n
    return {
        "records_in": records_in,
        "records_out": sum(r.records_out for r in results.values()),
        "rejected": rejected,
        "reject_rate": round(rejected / records_in, 6) if records_in else 0.0,
        "rejects_by_reason": dict(sorted(rejects.items())),
        "by_kind": by_kind,
        "files": dict(sorted(files.items())),
        "bundles": {(d or "train"): r.metrics() for d, r in sorted(results.items())},
    }
