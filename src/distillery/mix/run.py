"""The mix stage: bucket every record, hold out eval ids, sample the production mix and phases.

Two streaming passes keep memory to one small tuple per input record plus the sampled records:
pass 1 reads, checks and buckets every record; sampling then works on ids only; pass 2 re-reads
the files, streams eval records straight to disk and keeps only the records some mix needs.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..core.errors import DistilleryError, ParamsError
from ..core.io import AtomicWriter, BadLine, input_files, iter_jsonl, write_json
from ..core.quarantine import Gate, Quarantine, StageCounter
from ..core.records import check_record, check_roles
from ..core.stage import progress
from .buckets import BucketAssigner, record_texts
from .config import BucketsParams, MixParams, PhaseParams
from .sample import PhasePlan, plan_phase, pool_ids, select, shuffle_order
from .split import is_eval

log = logging.getLogger(__name__)
PRODUCTION = "production"


def mix_problem(rec: dict) -> str | None:
    """Reason code when a record cannot be mixed: not of the record model, or a broken role order."""
    invalid = check_record(rec)
    if invalid is not None:
        return invalid.reason
    return check_roles(rec["kind"], rec["messages"], rec.get("chosen"), rec.get("rejected"))


def validate_manifest(buckets: BucketsParams, mix: MixParams) -> None:
    """Every bucket the mix names must be known (cross-section check, one line per problem)."""
    names = set(buckets.names)
    where = [(f"mix.production.weights.{b}", b) for b in mix.production.weights]
    for p, ph in mix.phases.items():
        where += [(f"mix.phases.{p}.weights.{b}", b) for b in ph.weights]
    where += [(f"mix.buckets.{b}", b) for b in mix.buckets]
    for key, b in where:
        if b not in names:
            raise ParamsError(f"{key}: unknown bucket {b!r} (add it to buckets.extra)")


@dataclass
class Pass1:
    buckets: dict[str, str] = field(default_factory=dict)       # id -> bucket
    how: Counter = field(default_factory=Counter)                # assignment method -> count
    eval_ids: set[str] = field(default_factory=set)


def _good_records(files: list[Path], max_line_bytes: int, quarantine: Quarantine | None,
                  counter: StageCounter | None, desc: str) -> Iterator[dict]:
    """Records that pass `mix_problem`, first occurrence of each id only, in file order."""
    seen: set[str] = set()
    bar = progress(desc=desc)
    for f in files:
        for lineno, obj in iter_jsonl(f, max_line_bytes):
            bar.update(1)
            if counter is not None:
                counter.records_in += 1
            reason = obj.reason if isinstance(obj, BadLine) else mix_problem(obj)
            if reason is None and obj["id"] in seen:
                reason = "duplicate_id"
            if reason:
                if quarantine is not None:
                    if isinstance(obj, BadLine):
                        quarantine.reject_bad_line(obj, str(f))
                    else:
                        quarantine.reject(reason, obj, file=str(f), line=lineno)
                continue
            seen.add(obj["id"])
            yield obj
    bar.close()


def bucket_pass(files: list[Path], bparams: BucketsParams, mix: MixParams, max_line_bytes: int,
                quarantine: Quarantine, counter: StageCounter) -> Pass1:
    assigner = BucketAssigner(bparams)
    names = set(bparams.names)
    out = Pass1()
    pending: list[tuple[str, str, str]] = []                     # (id, prompt text, fallback bucket)
    for rec in _good_records(files, max_line_bytes, quarantine, counter, "mix: bucket"):
        bucket, how = assigner.assign(rec)
        if bucket is not None and bucket not in names:
            quarantine.reject("unknown_bucket", rec, detail=f"bucket {bucket!r} is not in the buckets list")
            continue
        rid = rec["id"]
        if bucket is None or how == "refine":
            fallback = bucket or bparams.default
            if bparams.embedding.enabled:
                pending.append((rid, record_texts(rec)[0], fallback))
                continue
            bucket, how = fallback, how or "default"
        out.buckets[rid] = bucket
        out.how[how.split("[")[0]] += 1
    if pending:
        from .embed import CentroidClassifier

        clf = CentroidClassifier(bparams.embedding)
        bs = 256
        for i in progress(range(0, len(pending), bs), desc="mix: embed", unit="batch"):
            chunk = pending[i:i + bs]
            for (rid, _, fallback), b in zip(chunk, clf.predict([t for _, t, _ in chunk])):
                out.buckets[rid] = b or fallback
                out.how["embedding" if b else "fallback"] += 1
    for rid in out.buckets:
        if is_eval(rid, mix.eval_fraction, mix.eval_salt):
            out.eval_ids.add(rid)
    return out


def plan_all(p1: Pass1, mix: MixParams, seed: int) -> tuple[dict[str, PhasePlan], dict[str, list[tuple[str, int]]],
                                                            dict[str, int]]:
    """Plans and the chosen (id, copy) list of every mix, production first."""
    by_bucket: dict[str, list[str]] = defaultdict(list)
    for rid, b in p1.buckets.items():
        if rid not in p1.eval_ids:
            by_bucket[b].append(rid)
    pools = {}
    for b, ids in sorted(by_bucket.items()):
        pol = mix.buckets.get(b)
        pools[b] = pool_ids(np.array(sorted(ids), dtype=object), pol.cap if pol else None, seed)
    sizes = {b: len(v) for b, v in by_bucket.items()}
    mixes: dict[str, PhaseParams] = {PRODUCTION: mix.production, **mix.phases}
    plans, chosen = {}, {}
    for name, ph in mixes.items():
        plan = plan_phase(name, ph, sizes, mix.buckets, mix.redistribute_shortfall)
        picks: list[tuple[str, int]] = []
        for b, bp in plan.buckets.items():
            got = select(pools.get(b, np.array([], dtype=object)), bp.realised, seed, name)
            bp.repeats = sum(1 for _, c in got if c > 0)
            picks.extend(got)
        plans[name] = plan
        chosen[name] = shuffle_order(picks, seed, name)
    return plans, chosen, sizes


def composition(plans: dict[str, PhasePlan]) -> dict[str, Any]:
    """The realised-vs-target table of every mix (data/mix/composition.json)."""
    out: dict[str, Any] = {}
    for name, plan in plans.items():
        total = plan.realised
        rows = {}
        for b, bp in plan.buckets.items():
            rows[b] = {"weight": round(bp.weight, 6), "target": bp.target, "available": bp.available,
                       "limit": bp.limit, "realised": bp.realised, "repeats": bp.repeats,
                       "target_share": round(bp.target / plan.size, 6),
                       "realised_share": round(bp.realised / total, 6) if total else 0.0, "short": bp.short}
        out[name] = {"size": plan.size, "realised": total, "short_buckets": sorted(b for b, r in rows.items()
                                                                                   if r["short"]),
                     "buckets": rows}
    return out


def plot_rows(comp: dict[str, Any]) -> list[dict[str, Any]]:
    """Long-format rows for the dvc bar plot: one target and one realised bar per phase/bucket."""
    rows = []
    for name, c in comp.items():
        for b, r in c["buckets"].items():
            for series, share in (("target", r["target_share"]), ("realised", r["realised_share"])):
                rows.append({"label": f"{name} / {b} / {series}", "phase": name, "bucket": b, "series": series,
                             "share": share, "count": r["target"] if series == "target" else r["realised"]})
    return rows


def _copy_for(rec: dict, copy_no: int, phase: str) -> dict:
    out = copy.copy(rec)
    out["lineage"] = list(rec.get("lineage") or []) + [{"stage": "mix", "phase": phase, "copy": copy_no}]
    if copy_no:
        out["id"] = f"{rec['id']}~r{copy_no}"
        out["mix_copy_of"] = rec["id"]
    return out


def run_mix(inputs: list[str | Path], output: str | Path, bparams: BucketsParams, mix: MixParams, seed: int,
            max_line_bytes: int, gate: Gate, plots_dir: str | Path | None, *,
            counter: StageCounter | None = None) -> dict[str, Any]:
    """Run the whole stage; returns the metrics dict. The gate is checked after pass 1, before any writing."""
    validate_manifest(bparams, mix)
    files = input_files(inputs)
    if not files:
        raise DistilleryError(f"{', '.join(map(str, inputs))}: no records.jsonl found")
    out = Path(output)
    counter = counter if counter is not None else StageCounter()
    assigner = BucketAssigner(bparams)
    with Quarantine(out / "quarantine.jsonl", "mix", counter) as q:
        p1 = bucket_pass(files, bparams, mix, max_line_bytes, q, counter)
    gate.check("mix", counter, out / "quarantine.jsonl")
    plans, chosen, sizes = plan_all(p1, mix, seed)
    comp = composition(plans)
    short = {n: c["short_buckets"] for n, c in comp.items() if c["short_buckets"]}
    for n, bs in short.items():
        log.warning("mix %s: short buckets %s (realised < target)", n, ", ".join(bs))
    if mix.strict and short:
        n, bs = next(iter(short.items()))
        b = bs[0]
        r = comp[n]["buckets"][b]
        raise DistilleryError(f"mix.strict: phase {n!r} bucket {b!r} has {r['realised']} of its {r['target']} "
                              f"target records ({r['available']} available); lower the weight or allow upsampling")
    needed = {rid for picks in chosen.values() for rid, _ in picks}
    kept: dict[str, dict] = {}
    with AtomicWriter(out / "eval.jsonl") as ev:
        for rec in _good_records(files, max_line_bytes, None, None, "mix: write"):
            rid = rec["id"]
            b = p1.buckets.get(rid)
            if b is None:
                continue
            assigner.finalize(rec, b)
            if rid in p1.eval_ids:
                ev.write_record(_copy_for(rec, 0, "eval"))
            elif rid in needed:
                kept[rid] = rec
    counts = {}
    for name, picks in chosen.items():
        path = out / f"{PRODUCTION}.jsonl" if name == PRODUCTION else out / "phases" / f"{name}.jsonl"
        with AtomicWriter(path) as w:
            for rid, c in picks:
                w.write_record(_copy_for(kept[rid], c, name))
        counts[name] = w.count
    write_json(out / "composition.json", comp)
    if plots_dir is not None:
        write_json(Path(plots_dir) / "mix_composition.json", plot_rows(comp))
    counter.records_out = counts[PRODUCTION]
    metrics = counter.as_metrics()
    metrics.update({
        "eval_records": ev.count, "bucketed_by": dict(sorted(p1.how.items())),
        "pool": dict(sorted(sizes.items())), "production_records": counts[PRODUCTION],
        "phases": {n: {"size": c["size"], "realised": c["realised"], "short_buckets": len(c["short_buckets"]),
                       "share": {b: {"target": r["target_share"], "realised": r["realised_share"]}
                                 for b, r in c["buckets"].items()}}
                   for n, c in comp.items()},
    })
    return metrics
