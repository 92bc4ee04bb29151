"""What the generation stages share: lineage from engine results, input reading with quarantine,
sampling, and the metrics blocks (judge score stats, cost per teacher)."""

from __future__ import annotations

import contextlib
import heapq
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..core.digests import DigestSet, id_digest
from ..core.io import DEFAULT_MAX_LINE_BYTES, BadLine, input_files, parse_line
from ..core.parallel import OrderedPool, line_blocks, worker_count
from ..core.quarantine import Quarantine, StageCounter
from ..core.records import check_record, check_roles
from .routing import unit_hash
from .templates import Template


def gen_with_seed(gen: dict, seed: int) -> dict:
    """Generation params as sent: the step's params plus the project seed (reproducible sampling)."""
    return {**gen, "seed": seed}


def sample_gen(gen: dict, sample: int) -> dict:
    """Draw i > 0 of the same request gets its own seed (best-of-n answers, a resampled truncated
    turn), so the draws differ but stay reproducible."""
    return gen if sample == 0 else {**gen, "seed": gen.get("seed", 0) + 1000 * sample}


def list_cost(llm: Any, result: Any) -> float:
    """What an answer costs at the teacher's list prices, from its token usage (the same whether
    it came from the cache or a fresh call, so records stay byte-identical across reruns)."""
    if llm is None or result.teacher not in llm.teachers:
        return 0.0
    t = llm.teachers[result.teacher]
    u = result.usage or {}
    return round((u.get("prompt_tokens", 0) * t.price_input_per_1m
                  + u.get("completion_tokens", 0) * t.price_output_per_1m) / 1e6, 8)


def lineage_entry(stage: str, result: Any, gen: dict, templates: Iterable[Template | None] = (),
                  role: str = "answer", llm: Any = None, **extra: Any) -> dict[str, Any]:
    """One lineage step: who answered, with which params and templates, and the exact prompt sent."""
    tpls = [t for t in templates if t is not None]
    entry: dict[str, Any] = {
        "stage": stage,
        "role": role,
        "teacher": result.teacher,
        "model": result.model,
        "prompt": result.sent,
        "params": {"gen": gen, "templates": [t.ref for t in tpls]},
        "finish_reason": result.finish_reason,
        "usage": dict(result.usage or {}),
        "cost_usd": list_cost(llm, result),
    }
    entry.update(extra)
    return entry


def read_records(paths: list[str | Path], quarantine: Quarantine, counter: StageCounter | None = None,
                 max_line_bytes: int | None = None) -> Iterator[dict]:
    """Stream every record of the inputs (files or dirs of records.jsonl, sorted); bad lines, records
    that are not of the record model (`check_record`), invalid role sequences and a second record
    with an id already seen go to the quarantine. A rejected input line is an item the stage took:
    it is counted in the quarantine's counter (in and rejected), so in = out + rejected holds."""
    for rec, _ in read_annotated(paths, quarantine, counter, max_line_bytes):
        yield rec


_ANNOTATE: list[Callable[[dict], Any] | None] = [None]   # set in the parent before the pool forks


def _verdict(obj: dict | BadLine, annotate: Callable[[dict], Any] | None) -> tuple[str | None, Any]:
    """(reject reason or None, its detail or else the annotation) of one parsed line."""
    if isinstance(obj, BadLine):
        return obj.reason, ""
    invalid = check_record(obj)
    if invalid is not None:
        return invalid.reason, invalid.detail
    reason = check_roles(obj.get("kind", ""), obj["messages"], obj.get("chosen"), obj.get("rejected"))
    if reason:
        return reason, ""
    return None, annotate(obj) if annotate is not None else None


def _check_lines(job: tuple[list[tuple[int, bytes]], int]) -> list[tuple[BadLine | None, str | None, Any]]:
    """In a worker: (the BadLine or None, *verdict) per line. Records are not sent back: the parent parses
    the line again, which costs less than pickling the record both ways."""
    lines, max_line_bytes = job
    annotate = _ANNOTATE[0]
    out: list[tuple[BadLine | None, str | None, Any]] = []
    for ln, raw in lines:
        obj = parse_line(raw, ln, max_line_bytes)
        out.append((obj if isinstance(obj, BadLine) else None, *_verdict(obj, annotate)))
    return out


def read_annotated(paths: list[str | Path], quarantine: Quarantine, counter: StageCounter | None = None,
                   max_line_bytes: int | None = None, annotate: Callable[[dict], Any] | None = None,
                   workers: int = 1, block_lines: int = 2000) -> Iterator[tuple[dict, Any]]:
    """`read_records` yielding (record, annotate(record)). With `workers` != 1 (0: every core) a large
    input is checked and annotated in forked workers, `annotate` included (set it up before); the
    quarantine, the counts and the duplicate-id check stay here, in input order, so the output is the
    same whatever the number of workers."""
    files = input_files(paths)
    n = 1 if workers == 1 else worker_count(workers, files)
    limit = max_line_bytes or DEFAULT_MAX_LINE_BYTES
    seen = DigestSet()                                   # 16 bytes an id, not a set of id strings

    def checked(pool: OrderedPool) -> Iterator[tuple[int, list[tuple[int, bytes]], list[tuple[Any, str | None, Any]]]]:
        """(file number, lines, (record or BadLine, *verdict) per line), block by block."""
        blocks = line_blocks(files, block_lines)
        if n == 1:
            for f_no, lines in blocks:
                objs = [parse_line(raw, ln, limit) for ln, raw in lines]
                yield f_no, lines, [(o, *_verdict(o, annotate)) for o in objs]
            return
        for (f_no, lines), results in pool.map(_check_lines, (((f_no, lines), (lines, limit)) for f_no, lines in blocks)):
            yield f_no, lines, [(bad if bad is not None else parse_line(raw, ln, limit), reason, extra)
                                for (ln, raw), (bad, reason, extra) in zip(lines, results)]

    _ANNOTATE[0] = annotate
    try:
        with OrderedPool(n) as pool:
            for f_no, lines, results in checked(pool):
                f = str(files[f_no])
                good = [j for j, r in enumerate(results) if r[1] is None]
                first = seen.first_seen(id_digest(results[j][0]["id"]) for j in good)
                duplicate = {j for j, is_first in zip(good, first) if not is_first}
                for j, ((ln, _), (obj, reason, extra)) in enumerate(zip(lines, results)):
                    if counter is not None:
                        counter.records_in += 1
                    if j in duplicate:
                        reason, extra = "duplicate_id", ""
                    if reason is not None:
                        if counter is not quarantine.counter:
                            quarantine.counter.records_in += 1
                        if isinstance(obj, BadLine):
                            quarantine.reject_bad_line(obj, f)
                        else:
                            quarantine.reject(reason, obj, file=f, line=ln, detail=extra)
                        continue
                    yield obj, extra
    finally:
        _ANNOTATE[0] = None


def hash_sample(records: Iterable[dict], n: int, seed: int, salt: str, why_not: Any,
                skipped: Counter) -> list[dict]:
    """The n eligible records with the smallest hash of (seed, salt, id): a uniform sample that does not
    depend on input order, kept in a bounded heap (input of any size). n=0 keeps every eligible record.
    `why_not(rec)` returns None for eligible records or a reason that is counted in `skipped`."""
    heap: list[tuple[float, str, dict]] = []
    for rec in records:
        why = why_not(rec)
        if why:
            skipped[why] += 1
            continue
        item = (-unit_hash(seed, salt, rec["id"]), rec["id"], rec)
        if not n or len(heap) < n:
            heapq.heappush(heap, item)
        elif item[0] > heap[0][0]:
            heapq.heapreplace(heap, item)
    return [r for _, _, r in sorted(heap, key=lambda t: (-t[0], t[1]))]


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    vs = sorted(values)
    return {"count": len(vs), "mean": round(statistics.fmean(vs), 4), "min": vs[0], "max": vs[-1],
            "p50": vs[len(vs) // 2]}


class JudgeStats:
    """Judge scores per dimension, per teacher and per bucket (metrics) and histogram bins (plots)."""

    def __init__(self) -> None:
        self.by_dim: dict[str, list[float]] = defaultdict(list)
        self.by_teacher: dict[str, list[float]] = defaultdict(list)
        self.by_bucket: dict[str, list[float]] = defaultdict(list)

    def add(self, scores: dict[str, float], teacher: str, bucket: str | None) -> None:
        for d, s in scores.items():
            if isinstance(s, (int, float)) and not isinstance(s, bool):
                self.by_dim[d].append(float(s))
        if "overall" in scores:
            self.by_teacher[teacher or "human"].append(float(scores["overall"]))
            self.by_bucket[bucket or "none"].append(float(scores["overall"]))

    def as_metrics(self) -> dict[str, Any]:
        return {"per_dimension": {k: summary(v) for k, v in sorted(self.by_dim.items())},
                "per_teacher": {k: summary(v) for k, v in sorted(self.by_teacher.items())},
                "per_bucket": {k: summary(v) for k, v in sorted(self.by_bucket.items())}}

    def histogram_rows(self) -> list[dict[str, Any]]:
        """One row per integer score bin 1..10 with the count per dimension (dvc plots data)."""
        dims = sorted(self.by_dim)
        rows = []
        for b in range(1, 11):
            row: dict[str, Any] = {"score": b}
            for d in dims:
                row[d] = sum(1 for s in self.by_dim[d] if min(10, max(1, int(round(s)))) == b)
            rows.append(row)
        return rows


def cost_by_teacher(engine_metrics: dict[str, Any]) -> dict[str, Any]:
    """The per-teacher part of engine.metrics() (requests, tokens, cost), as metrics."""
    teachers = engine_metrics.get("teachers") or engine_metrics.get("per_teacher") or {}
    return teachers if isinstance(teachers, dict) else {}


@contextlib.contextmanager
def dry_run_dir() -> Iterator[Path]:
    """A throw-away output folder for --dry-run (the stage's real outputs stay untouched), removed after."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="distillery-dry-run-") as d:
        yield Path(d)


def print_dry_run(engine: Any, stage: str) -> None:
    """Print the estimate of every request the stage would send: the stage ran to its end on stand-in
    answers (no call made), so later batches and later steps are counted too."""
    import json

    import click

    est = engine.dry_run_estimate()
    est = {"stage": stage, "dry_run": True,
           "note": "every request the stage would send (built on stand-in answers); cost_usd is an upper bound "
                   "(output = max_tokens); failover, retries after failures and parse repairs are not included",
           **est}
    click.echo(json.dumps(est, indent=2, sort_keys=True))


def account_llm(engine: Any, counter: StageCounter) -> dict[str, Any]:
    """The LLM part of a stage's metrics, and its failed units in the stage's counter.

    Stages quarantine the unit of a failed request (`teacher_failed`); a failed unit they did not
    (a pilot prompt, a step that drops its unit) is counted here as a `request_failed` reject, so
    in = out + quarantined holds with every failed and refused request inside it, and the stage's
    one gate (`run.finish`) sees them."""
    from ..llm.accounting import LLMAccount

    m = engine.metrics()
    failed_log = getattr(engine, "failed", None)
    acct = LLMAccount.from_metrics(m, failed_log.by_reason() if failed_log is not None else None)
    unaccounted = max(0, acct.delivery_failures() - counter.rejects.get("teacher_failed", 0))
    if unaccounted:
        counter.records_in += unaccounted
        counter.rejects["request_failed"] += unaccounted
    teachers = cost_by_teacher(m)
    out: dict[str, Any] = dict(acct.headline())
    out["cost"] = teachers
    out["llm"] = {**acct.details(), "failed_not_quarantined": unaccounted,
                  "failed_requests_path": m.get("failed_requests_path")}
    out["summary"] = acct.summary_line()
    return out


def run_llm_stage(run: Any, name: str, output: str | Path, work: Any, *, refresh: bool, dry_run: bool,
                  artifacts: Iterable[str] = ("records.jsonl",), extra_artifacts: Iterable[Path] = (),
                  log_params: dict | None = None) -> None:
    """The life every LLM stage shares: an engine (local or Ray), the stage's `work(out, engine, counter)`,
    then one summary line on stderr (ok, failed by reason, refused by budget, spent of cap), the LLM
    figures in the metrics (headline `cost_usd`, `cap_usd`, `refused`, `failed`; breakdown under `llm`)
    and `run.finish` (metrics, MLflow, the reject-rate gate, which counts failed and refused units).
    --dry-run: the estimate is printed, nothing is called, no output or temp folder is left."""
    import click

    from ..distributed.generate import make_engine

    if dry_run:
        with dry_run_dir() as tmp:
            with make_engine(run.params, name, refresh=refresh, dry_run=True,
                             failed_path=tmp / "failed_requests.jsonl") as engine:
                work(tmp, engine, StageCounter())
                print_dry_run(engine, name)
        return
    out = Path(output)
    with make_engine(run.params, name, refresh=refresh, dry_run=False,
                     failed_path=out / "failed_requests.jsonl") as engine:
        metrics = work(out, engine, run.counter)
        metrics.update(account_llm(engine, run.counter))
    click.echo(metrics.pop("summary"), err=True)
    run.finish(metrics, [out / a for a in artifacts] + list(extra_artifacts), log_params=log_params,
               outputs=[out], quarantine_path=out / "quarantine.jsonl")
