"""Pairwise win rate of the tuned model vs the base, judged by a teacher in both orders.

Judging each pair twice with the answers swapped cancels the judge's position bias: a win in
one order and a loss in the other counts as a tie.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

JUDGE_PROMPT = """You compare two assistant answers to the same user request.

[User request]
{question}

[Answer A]
{a}

[Answer B]
{b}

Which answer is more helpful, correct and clear? Reply with exactly one of: A, B, TIE."""

_VERDICT = re.compile(r"\b(TIE|A|B)\b")


def parse_verdict(text: str | None) -> str | None:
    """'A', 'B', 'TIE' (first one named in the reply) or None when the reply names none."""
    m = _VERDICT.search((text or "").upper())
    return m.group(1) if m else None


def judge_requests(teacher: str, questions: Sequence[str], tuned: Sequence[str], base: Sequence[str]) -> list:
    """Two requests per question: tuned as A, then base as A."""
    from ..llm import ChatRequest

    reqs = []
    for q, t, b in zip(questions, tuned, base):
        for a, bb, order in ((t, b, "tuned_first"), (b, t, "base_first")):
            reqs.append(ChatRequest(teacher=teacher, tag=f"train_eval.win_rate.{order}", gen={"temperature": 0},
                                    messages=[{"role": "user", "content": JUDGE_PROMPT.format(question=q, a=a, b=bb)}]))
    return reqs


def win_rate(verdicts: Sequence[str | None]) -> dict[str, Any]:
    """Verdicts in request order (tuned_first, base_first per question) -> tuned win rate.

    Per order: tuned win 1, tie 0.5, loss 0; unparseable replies are left out and counted."""
    points: list[float] = []
    consistent = 0
    pairs = 0
    for i in range(0, len(verdicts) - 1, 2):
        first, second = verdicts[i], verdicts[i + 1]
        tuned_pts = []
        if first is not None:
            tuned_pts.append({"A": 1.0, "B": 0.0, "TIE": 0.5}[first])
        if second is not None:
            tuned_pts.append({"A": 0.0, "B": 1.0, "TIE": 0.5}[second])
        points.extend(tuned_pts)
        if len(tuned_pts) == 2:
            pairs += 1
            consistent += tuned_pts[0] == tuned_pts[1]
    return {"win_rate": round(sum(points) / len(points), 6) if points else None,
            "judged": len(points), "unparsed": sum(v is None for v in verdicts),
            "order_consistency": round(consistent / pairs, 6) if pairs else None}


def judge_win_rate(params: Any, teacher: str, questions: Sequence[str], tuned: Sequence[str],
                   base: Sequence[str]) -> dict[str, Any]:
    """Run the judge through the shared LLM engine (cache, budget, retries) and score the verdicts."""
    from ..llm.engine import Engine

    engine = Engine.from_params(params, stage="train_eval")
    results = engine.run(judge_requests(teacher, questions, tuned, base))
    verdicts = [parse_verdict(r.text) if r.ok else None for r in results]
    out = win_rate(verdicts)
    out["judge_cost_usd"] = round(sum(r.cost_usd for r in results), 6)
    out["judge_failed"] = sum(not r.ok for r in results)
    return out
