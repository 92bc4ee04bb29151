"""train_eval's judged win rate of the tuned model vs the base, through the one judge (generation/judge.py).

Each question is judged twice with the answers swapped (tuned as A, then base as A); a preference
counts only when both orders agree, so the judge's position bias cannot make a win. The prompt is
the package template prompts/judge/win_rate.j2; the engine is closed when the judging is done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from ..generation.config import GenParams, JudgeParams
from ..generation.judge import Judge, Winner, parse_verdict, swap_verdict

if TYPE_CHECKING:
    from ..core.params import Params

__all__ = ["TEMPLATE", "judge_win_rate", "parse_verdict", "win_rate", "win_rate_by_set"]

TEMPLATE = "prompts/judge/win_rate.j2"
KEY = "train_eval.judge"
TUNED, BASE = ("tuned", ""), ("base", "")   # authors: neither is a teacher, so any judge may judge
POINTS = {"x": 1.0, "y": 0.0, "tie": 0.5, "inconsistent": 0.5}


def judge_params(teacher: str) -> JudgeParams:
    """The judge train_eval uses: one teacher, greedy, free text, one re-ask, no system prompt."""
    return JudgeParams(teachers=[teacher], allow_self_judge=True, pairwise_template=TEMPLATE, system_template="",
                       parse_retries=1, guided=False, gen=GenParams(temperature=0.0, max_tokens=64))


def win_rate(verdicts: Sequence[Winner | None]) -> dict[str, float | int | None]:
    """Per-order verdicts in request order (tuned as A, then base as A, per question) -> the tuned win rate.

    A question counts only when both orders gave a verdict: a win 1, a loss 0, a tie 0.5, and orders
    that disagree (`inconsistent`, position bias) 0.5. `unparsed` counts replies with no verdict."""
    outcomes = [swap_verdict(verdicts[i], verdicts[i + 1]) for i in range(0, len(verdicts) - 1, 2)]
    judged = [o for o in outcomes if o is not None]
    wins, losses = judged.count("x"), judged.count("y")
    ties, inconsistent = judged.count("tie"), judged.count("inconsistent")
    points = wins + 0.5 * (ties + inconsistent)
    return {"win_rate": round(points / len(judged), 6) if judged else None,
            "judged": len(judged), "wins": wins, "losses": losses, "ties": ties, "inconsistent": inconsistent,
            "unparsed": sum(v is None for v in verdicts),
            "order_consistency": round(1 - inconsistent / len(judged), 6) if judged else None}


def win_rate_by_set(item_ids: Sequence[str], points: Sequence[float | None]) -> dict[str, dict]:
    """Each eval set's own win rate (the set is the item id's prefix, `mt_bench:81` -> mt_bench): the pooled
    rate can hide a set where the tuned model loses."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(k.split(":", 1)[0] for k in item_ids):
        mine = [pt for k, pt in zip(item_ids, points) if k.split(":", 1)[0] == name]
        judged = [pt for pt in mine if pt is not None]
        out[name] = {"prompts": len(mine), "judged": len(judged),
                     "win_rate": round(sum(judged) / len(judged), 6) if judged else None}
    return out


def judge_win_rate(params: Params, teacher: str, questions: Sequence[str], tuned: Sequence[str],
                   base: Sequence[str]) -> dict:
    """Judge every (question, tuned, base) in both orders through the engine (cache, budget, retries)."""
    from ..llm.engine import Engine

    items = [(i, q, t, b, TUNED, BASE) for i, (q, t, b) in enumerate(zip(questions, tuned, base))]
    with Engine.from_params(params, stage="train_eval") as engine:
        judge = Judge(engine, judge_params(teacher), params.llm, params.project.seed, "train_eval", key=KEY)
        verdicts = judge.compare(items)
    out: dict = win_rate([o for v in verdicts for o in v.orders])
    # per question: 1 tuned won in both orders, 0 base won, 0.5 tie or orders disagree, None no verdict
    out["points"] = [None if v.outcome is None else POINTS[v.outcome] for v in verdicts]
    results = [r for v in verdicts for r in v.results]
    out["judge_cost_usd"] = round(sum(r.cost_usd for r in results), 6)
    out["judge_failed"] = sum(not r.ok for r in results)
    out["judge_requests"] = len(results)
    return out
