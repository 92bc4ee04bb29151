"""Eval sizes from a time budget: loss floors always, greedy generation with what is left.

The plan uses a cost model from params (CPU seconds per loss item, per greedy answer, per judge call,
measured on the shipped CPU machine), not the clock of this run, so the same params give the same eval
sizes on any machine and per-item scores stay comparable across commits. The run's real CPU seconds
are reported beside the plan so the cost model can be re-measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .config import EvalSetParams


@dataclass
class EvalPlan:
    loss_items: int
    gsm8k_em: int
    win_rate: int
    planned_cpu_s: float
    budget_s: float
    over_budget: bool

    def as_dict(self) -> dict:
        return asdict(self)


def plan(e: EvalSetParams, loss_items: int, gsm8k_available: int, win_prompts_max: int, judge_on: bool) -> EvalPlan:
    """Sizes of the generation sets. Both models are evaluated, so every cost counts twice; a win-rate
    item costs two answers (base, tuned) and two judge calls (both orders). Whatever the loss floors leave
    is split evenly between GSM8K exact match and the win rate (all to exact match when no judge is set)."""
    loss_cost = 2 * loss_items * e.loss_item_cpu_s
    left = max(0.0, e.time_budget_s - loss_cost)
    em_cost = 2 * e.gen_item_cpu_s
    win_cost = 2 * e.gen_item_cpu_s + 2 * e.judge_item_cpu_s
    em_max = min(e.gsm8k_em_limit, gsm8k_available)
    win_max = win_prompts_max if judge_on else 0
    em_share = left / 2 if win_max else left
    em = min(em_max, int(em_share // em_cost))
    win = min(win_max, int((left - em * em_cost) // win_cost)) if win_max else 0
    em = min(em_max, em + int((left - em * em_cost - win * win_cost) // em_cost))  # what the win rate left
    planned = round(loss_cost + em * em_cost + win * win_cost, 1)
    return EvalPlan(loss_items, em, win, planned, e.time_budget_s, loss_cost > e.time_budget_s)
