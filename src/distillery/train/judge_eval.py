"""judge_eval: does the judge that decides what is kept agree with humans, and is it stable under a swap?

Human-labelled pairs from the shipped data (Anthropic HH chosen vs rejected; Open-Assistant sibling
replies ranked by humans) are judged pairwise through the one judge, in both orders. Per judge and set:

- agreement: per pair 1 when both orders pick the human's choice, 0 when both pick the other answer,
  0.5 for a tie or orders that disagree (chance level is 0.5), with a 95% bootstrap interval;
- strict_agreement: share of pairs where both orders pick the human's choice;
- swap_consistency: share of pairs whose two orders give the same verdict (position-bias check);
- tie_rate: consistent ties; parse_rate: single-order replies that gave a verdict.

A judge whose agreement on a set is under `judge_eval.min_agreement` is flagged.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.io import iter_jsonl
from ..core.quarantine import Quarantine
from ..generation.judge import Judge, transcript
from .config import JudgeEvalParams
from .stats_ci import single

log = logging.getLogger(__name__)

HUMAN = ("human", "")          # the answers are human-written: any judge may judge them


@dataclass
class LabelledPair:
    id: str
    messages: list[dict]      # the conversation before the two answers
    chosen: str               # the human's pick
    rejected: str


def load_pairs(path: Path, sample: int, seed: int, q: Quarantine | None = None) -> tuple[list[LabelledPair], int]:
    """A seeded sample of the preference records of an ingested file; returns (sample, pairs available).
    Unreadable lines and preference records without two answers are quarantined."""
    from ..core.records import check_roles

    if not path.exists():
        raise InputError(f"{path}: labelled set not found (run the ingest stage; judge_eval.set_paths)")
    pairs: list[LabelledPair] = []
    for line, obj in iter_jsonl(path):
        if not isinstance(obj, dict):
            if q is not None:
                q.reject_bad_line(obj, str(path))
            continue
        if obj.get("kind") != "preference":
            continue
        msgs = obj.get("messages") or []
        bad = check_roles("preference", msgs, obj.get("chosen"), obj.get("rejected"))
        if bad is not None:
            if q is not None:
                q.reject(bad, obj, file=str(path), line=line)
            continue
        pairs.append(LabelledPair(str(obj.get("id", line)), msgs, obj["chosen"]["content"],
                                  obj["rejected"]["content"]))
    rng = random.Random(seed)
    picked = rng.sample(pairs, min(sample, len(pairs)))
    return picked, len(pairs)


def pair_scores(outcome: str | None) -> tuple[float, float] | None:
    """(agreement credit, strict agreement) of one pair from its swap outcome (x = the human's choice)."""
    if outcome is None:
        return None
    return {"x": (1.0, 1.0), "y": (0.0, 0.0), "tie": (0.5, 0.0), "inconsistent": (0.5, 0.0)}[outcome]


def summarize(verdicts: list, n_boot: int, seed: int, min_agreement: float) -> dict[str, Any]:
    """Agreement (+ interval), swap consistency, tie and parse rates of one judge on one set."""
    outcomes = [v.outcome for v in verdicts]
    scored = [pair_scores(o) for o in outcomes]
    judged = [s for s in scored if s is not None]
    orders = [o for v in verdicts for o in v.orders]
    asked = 2 * len(verdicts)
    out: dict[str, Any] = {"pairs": len(verdicts), "judged": len(judged),
                           "parse_rate": round(sum(o is not None for o in orders) / asked, 6) if asked else None}
    if not judged:
        return {**out, "agreement": None, "agreement_ci": None, "strict_agreement": None, "swap_consistency": None,
                "tie_rate": None, "flagged": 1}
    agreement, ci = single([a for a, _ in judged], n_boot=n_boot, seed=seed)
    consistent = [o for o in outcomes if o is not None and o != "inconsistent"]
    return {**out, "agreement": agreement, "agreement_ci": list(ci),
            "strict_agreement": round(sum(s for _, s in judged) / len(judged), 6),
            "swap_consistency": round(len(consistent) / len(judged), 6),
            "tie_rate": round(consistent.count("tie") / len(judged), 6),
            "human_choice_wins": outcomes.count("x"), "other_wins": outcomes.count("y"),
            "ties": outcomes.count("tie"), "inconsistent": outcomes.count("inconsistent"),
            "flagged": int(agreement < min_agreement)}


def judge_params(params: Any, teacher: str):
    """The score stage's judge settings (template, guided, generation), with this one teacher."""
    return params.score.judge.model_copy(update={"teachers": [teacher], "allow_self_judge": True})


def run_judge_eval(params: Any, q: Quarantine | None = None) -> dict[str, Any]:
    """Every configured judge on every labelled set. Returns {judge: {set: summary}} plus the sample sizes."""
    from ..llm.engine import Engine

    p: JudgeEvalParams = params.judge_eval
    seed = params.project.seed
    sets = {}
    for name in p.sets:
        picked, available = load_pairs(Path(p.set_paths[name]), p.sample, seed, q)
        if not picked:
            raise InputError(f"{p.set_paths[name]}: no preference pairs for judge_eval set {name!r}")
        sets[name] = (picked, available)
    results: dict[str, dict[str, Any]] = {}
    with Engine.from_params(params, stage="judge_eval") as engine:
        for teacher in p.judges:
            judge = Judge(engine, judge_params(params, teacher), params.llm, seed, "judge_eval", key="score.judge")
            results[teacher] = {}
            for name, (picked, available) in sets.items():
                items = [(f"{name}:{lp.id}", transcript(lp.messages), lp.chosen, lp.rejected, HUMAN, HUMAN)
                         for lp in picked]
                verdicts = judge.compare(items)
                s = summarize(verdicts, p.n_boot, seed, p.min_agreement)
                s["available"] = available
                results[teacher][name] = s
                log.info("judge_eval: %s on %s: agreement %s %s, swap consistency %s, parse rate %s", teacher, name,
                         s["agreement"], s["agreement_ci"], s["swap_consistency"], s["parse_rate"])
    return results


def headline(results: dict[str, dict[str, Any]]) -> dict[str, float | int]:
    """Flat per judge x set: agreement, its interval, swap consistency, tie and parse rates, n, flagged."""
    out: dict[str, float | int] = {}
    for judge, by_set in results.items():
        for name, s in by_set.items():
            k = f"{judge}.{name}"
            ci = s.get("agreement_ci") or [None, None]
            for key, v in (("agreement", s["agreement"]), ("agreement_ci_low", ci[0]), ("agreement_ci_high", ci[1]),
                           ("swap_consistency", s["swap_consistency"]), ("tie_rate", s["tie_rate"]),
                           ("parse_rate", s["parse_rate"]), ("n", s["judged"]), ("flagged", s["flagged"])):
                if v is not None:
                    out[f"{k}.{key}"] = v
    out["flagged"] = sum(s["flagged"] for by_set in results.values() for s in by_set.values())
    return out


def table(results: dict[str, dict[str, Any]], min_agreement: float) -> str:
    rows = [["judge", "set", "n", "agreement [95% CI]", "swap consistency", "tie rate", "parse rate", "flag"]]
    for judge, by_set in results.items():
        for name, s in by_set.items():
            ag = "-" if s["agreement"] is None else \
                f"{s['agreement']:.3f} [{s['agreement_ci'][0]:.3f}, {s['agreement_ci'][1]:.3f}]"
            fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
            rows.append([judge, name, str(s["judged"]), ag, fmt(s["swap_consistency"]), fmt(s["tie_rate"]),
                         fmt(s["parse_rate"]), f"FLAGGED (< {min_agreement:g})" if s["flagged"] else "ok"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
