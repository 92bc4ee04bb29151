"""Preference direction from the row's own judgment (`ingest.sources.NAME.preference`).

Judged preference sets keep the two answers in a fixed order (A/B, response_1/response_2) and say in
another field which one won: a number against a threshold, a label, or a score / rank per answer.
Taking one fixed field as `chosen` silently inverts every pair the judge decided the other way, so
the winner is decided here, per row; ties are quarantined as `preference_tie`, and the judgment is
kept in `labels.preference` (and, for per-answer scores, `scores.preference`).
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterator

from .adapters import Ctx, Draft, RowError, answer, prompt_turns, with_system
from .config import PreferenceRule

OTHER = {"first": "second", "second": "first"}


def number(row: dict, key: str) -> float:
    """A judgment number: JSON numbers, or numeric text (CSV); NaN/Infinity cannot decide anything."""
    if key not in row or row[key] is None or row[key] == "":
        raise RowError("missing_field", f"judgment field {key!r} is missing")
    v = row[key]
    if isinstance(v, str):
        try:
            v = float(v.strip())
        except ValueError:
            raise RowError("wrong_type", f"judgment field {key!r} should be a number, got {row[key]!r}") from None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RowError("wrong_type", f"judgment field {key!r} should be a number, got {type(v).__name__}")
    if not math.isfinite(v):
        raise RowError("non_finite_number", f"judgment field {key!r} is {json.dumps(v)}")
    return v


def decide(row: dict, rule: PreferenceRule) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(winner 'first'|'second', labels.preference, scores.preference or {}); a tie raises `preference_tie`."""
    if rule.rule == "threshold":
        v = number(row, rule.field)
        judgment = {"rule": "threshold", "field": rule.field, "value": row[rule.field],
                    "threshold": rule.threshold, "above": rule.above}
        if abs(v - rule.threshold) <= rule.margin:
            raise RowError("preference_tie", f"{rule.field}={row[rule.field]!r} is at the threshold "
                                             f"{rule.threshold} (margin {rule.margin})")
        return (rule.above if v > rule.threshold else OTHER[rule.above]), judgment, {}
    if rule.rule == "label":
        if rule.field not in row or row[rule.field] is None:
            raise RowError("missing_field", f"judgment field {rule.field!r} is missing")
        raw = row[rule.field]
        if isinstance(raw, (dict, list)):
            raise RowError("wrong_type", f"judgment field {rule.field!r} should be a label, got {type(raw).__name__}")
        if isinstance(raw, float) and not math.isfinite(raw):
            raise RowError("non_finite_number", f"judgment field {rule.field!r} is {json.dumps(raw)}")
        outcome = rule.outcome(raw)
        if outcome == "tie":
            raise RowError("preference_tie", f"{rule.field}={raw!r} is a tie")
        if outcome is None:
            raise RowError("preference_unknown_label", f"{rule.field}={raw!r} is in none of first_wins "
                                                       f"{rule.first_wins}, second_wins {rule.second_wins}, "
                                                       f"ties {rule.ties}")
        return outcome, {"rule": "label", "field": rule.field, "value": raw}, {}
    a, b = (number(row, f) for f in rule.score_fields)
    judgment = {"rule": rule.rule, "field": list(rule.score_fields),
                "value": [row[f] for f in rule.score_fields]}
    if abs(a - b) <= rule.margin:
        raise RowError("preference_tie", f"{rule.score_fields[0]}={a:g} and {rule.score_fields[1]}={b:g} "
                                         f"(margin {rule.margin})")
    winner = "first" if (a > b) == (rule.rule == "higher") else "second"
    won, lost = (a, b) if winner == "first" else (b, a)
    return winner, judgment, {"mode": rule.rule, "margin": abs(a - b), "chosen": won, "rejected": lost}


def judged_pair(row: dict, ctx: Ctx, rule: PreferenceRule) -> Iterator[Draft]:
    """One preference record whose chosen answer is the judgment's winner."""
    winner, judgment, scores = decide(row, rule)
    msgs = with_system(row, ctx, prompt_turns(row, ctx))
    answers = {side: answer(row.get(getattr(rule, side)), ctx, getattr(rule, side)) for side in ("first", "second")}
    d = Draft("0", "preference", msgs, chosen=answers[winner], rejected=answers[OTHER[winner]])
    d.labels["preference"] = {**judgment, "winner": winner}
    if scores:
        d.scores["preference"] = scores
    yield d
