"""score: heuristics on every record, the LLM judge on generated records (by lineage) and on at most
`judge.max_records` others. Records failing a heuristic, unscored by the judge (when configured to
quarantine), or at/below the keep threshold go to the quarantine with their reason.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

from ..core.io import AtomicWriter
from ..core.quarantine import StageCounter
from .common import JudgeStats, read_annotated
from .config import ScoreParams
from .heuristics import HeuristicScorer, generated_by, record_teacher
from ..dedup.keys import exact_hash
from .judge import Judge, Verdict, record_prompt_answer
from .step import Reject, Sink

STAGE = "score"


def run_score(params: Any, inputs: list[str | Path], output: str | Path, engine: Any,
              plots_path: str | Path | None = None, *, counter: StageCounter | None = None) -> dict[str, Any]:
    p: ScoreParams = params.score
    out = Path(output)
    scorer = HeuristicScorer(p.heuristics, p.identity, p.generated_stages)
    judge = Judge(engine, p.judge, params.llm, params.project.seed, STAGE)
    for t in p.judge.teachers:
        params.llm.teacher(t)
    counter = counter if counter is not None else StageCounter()
    stats = JudgeStats()
    flags_seen: Counter[str] = Counter()
    judged: Counter[str] = Counter()
    others_judged = 0

    clusters: dict[tuple[int, int, str, str], tuple[str, Verdict] | None] = {}

    def apply(rec: dict, v: Verdict, copied_from: str = "") -> None:
        """Put one verdict on a record (scores, lineage) and set its reject reason."""
        if not copied_from:
            judged["asked" if v.reason != "judge_refused_self" else "refused_self"] += 1
        if v.lineage:
            rec.setdefault("lineage", []).extend(v.lineage)
        extra = {"copied_from": copied_from} if copied_from else {}
        if v.scores:
            judged["scored"] += 1
            rec["scores"]["judge"] = {**v.scores, "judge": v.judge, **extra}
            stats.add(v.scores, record_teacher(rec)[0], rec.get("bucket"))
            if not v.scores["overall"] > p.judge.keep_above:
                rec["_reason"] = "judge_below_threshold"
        elif v.reason == "judge_refused_self":
            rec["scores"]["judge"] = {"skipped": v.reason, **extra}
        else:
            judged["unparsed"] += 1
            rec["scores"]["judge"] = {"error": v.reason, "judge": v.judge, **extra}
            if p.judge.on_parse_failure == "quarantine":
                rec["_reason"] = "judge_unparsed"

    with Sink(out, STAGE, counter) as sink:
        chunk: list[dict] = []

        def flush() -> None:
            nonlocal others_judged
            to_judge, copies = [], []
            for rec in chunk:
                stage = generated_by(rec, p.generated_stages)
                if rec["_reason"] is None and (stage or others_judged < p.judge.max_records):
                    if not stage:
                        others_judged += 1
                    prompt, answer = record_prompt_answer(rec)
                    key = cluster_key(prompt, answer, record_teacher(rec))
                    if key in clusters:   # a near-duplicate of a record judged (or being judged): copy
                        copies.append((rec, key))
                        continue
                    clusters[key] = None
                    to_judge.append((rec, key, (rec["id"], prompt, answer, record_teacher(rec))))
            verdicts = judge.score([item for _, _, item in to_judge]) if to_judge else []
            for (rec, key, _), v in zip(to_judge, verdicts):
                clusters[key] = (rec["id"], v)
                apply(rec, v)
            for rec, key in copies:
                done = clusters[key]
                assert done is not None   # its representative was judged above or in an earlier chunk
                rep, v = done
                judged["copied" if v.results else "copied_unasked"] += 1
                apply(rec, v, copied_from=rep)
            for rec in chunk:
                reason = rec.pop("_reason")
                heur = rec["scores"].get("heuristic", {})
                if reason:   # read_records counted it in already
                    sink.reject(Reject(reason, str(heur[reason]) if reason in heur else ""), rec, taken=False)
                else:
                    sink.keep(rec, taken=False)
            chunk.clear()

        for rec, flags in read_annotated(inputs, sink.quarantine, counter, params.project.max_line_bytes,
                                         scorer.flags, workers=p.workers):
            for k in flags:
                if k not in ("words", "repeated_trigram_ratio"):
                    flags_seen[k] += 1
            rec.setdefault("scores", {})["heuristic"] = flags
            rec["_reason"] = scorer.reason(flags)
            chunk.append(rec)
            if len(chunk) >= p.judge.batch_size:
                flush()
        flush()

    rows = stats.histogram_rows()
    if plots_path is not None:
        write_histogram(plots_path, rows)
    metrics = counter.as_metrics()
    metrics.update({"judge": {**stats.as_metrics(), "calls": dict(sorted(judged.items())),
                              "keep_above": p.judge.keep_above},
                    "heuristic_flags": dict(sorted(flags_seen.items()))})
    overall = stats.by_dim.get("overall") or []
    metrics["judge_mean_overall"] = round(sum(overall) / len(overall), 4) if overall else 0.0
    metrics["judged"] = len(overall)
    metrics["judge_calls_saved"] = judged["copied"]
    return metrics


def cluster_key(prompt: str, answer: str, author: tuple[str, str]) -> tuple[int, int, str, str]:
    """Records with the same normalised prompt + answer (dedup's exact key) and the same author are
    one cluster: the judge sees the same text, so one verdict serves them all (self-judging is decided
    by the author, hence part of the key)."""
    hi, lo = exact_hash(prompt + "\n" + answer, "judge")
    return hi, lo, author[0], author[1]


def write_histogram(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """metrics/plots/judge_scores.csv: score bin 1..10 x count per dimension (dvc plots)."""
    buf = io.StringIO()
    cols = list(rows[0]) if rows else ["score"]
    wr = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    wr.writeheader()
    wr.writerows(rows)
    with AtomicWriter(path) as w:
        w.write(buf.getvalue())
