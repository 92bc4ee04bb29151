"""Paired bootstrap intervals and verdicts: a real effect is called, noise is not, direction respected."""

from __future__ import annotations

import numpy as np
import pytest

from distillery.train.budget import plan
from distillery.train.config import EvalSetParams
from distillery.train.results import compare_revs, compare_rows, item_rows, markdown, parse_rows, table
from distillery.train.stats_ci import paired, single, verdict


def test_paired_interval_calls_a_consistent_improvement_that_an_unpaired_view_would_miss():
    rng = np.random.default_rng(1)
    difficulty = rng.normal(2.0, 1.0, 200)        # item difficulty varies far more than the effect
    base = difficulty + rng.normal(0, 0.02, 200)
    tuned = difficulty - 0.05 + rng.normal(0, 0.02, 200)
    p = paired("heldout_loss", base, tuned, seed=3)
    assert p.delta == pytest.approx(float(tuned.mean() - base.mean()), abs=1e-6)
    assert p.delta_ci[1] < 0 and p.verdict == 1 and p.verdict_name == "better"   # lower loss is better
    # each side's own interval is wide (difficulty), and they overlap: only pairing sees the effect
    assert p.a_ci[0] < p.b_ci[1]
    # the same seed gives the same interval; the interval contains the point estimate
    assert paired("heldout_loss", base, tuned, seed=3).delta_ci == p.delta_ci
    assert p.delta_ci[0] <= p.delta <= p.delta_ci[1]


def test_noise_is_within_noise_and_direction_follows_the_metric():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 2, 100).astype(float)
    b = a.copy()
    flip = rng.choice(100, 6, replace=False)
    b[flip[:3]] = 1 - b[flip[:3]]                  # three items flip each way: a net zero change
    b[flip[3:]] = 1 - b[flip[3:]]
    assert paired("pref_accuracy", a, b, seed=0).verdict == 0
    assert verdict("gsm8k_em", (0.01, 0.2)) == 1 and verdict("gsm8k_em", (-0.2, -0.01)) == -1
    assert verdict("mt_bench_ref_loss", (0.01, 0.2)) == -1 and verdict("heldout_ppl", (-0.3, -0.1)) == 1
    assert verdict("win_rate", (-0.1, 0.2)) == 0


def test_token_weighted_mean_matches_the_loss_harness():
    # per-token NLL 1.0 over 10 tokens and 3.0 over 30 tokens -> token-weighted loss 2.5
    p = paired("heldout_loss", [1.0, 3.0], [1.0, 2.0], weights=[10, 30])
    assert p.a == pytest.approx(2.5) and p.b == pytest.approx(1.75)
    with pytest.raises(ValueError):
        paired("x", [1.0], [1.0, 2.0])
    assert paired("x", [], []) is None
    mean, ci = single([1, 1, 0, 1])
    assert mean == 0.75 and 0 <= ci[0] <= 0.75 <= ci[1] <= 1


def test_item_rows_pair_items_by_id_and_round_trip_through_the_file_format():
    base = {"heldout_loss": [("r1", 2.0, 5), ("r2", 1.0, 5), ("r3", 9.0, 1)], "win_rate": [("q1", 0.5, 1)]}
    tuned = {"heldout_loss": [("r1", 1.5, 5), ("r2", 0.5, 5)], "win_rate": [("q1", 1.0, 1)]}
    rows = item_rows(base, tuned)
    assert [(r["metric"], r["item"]) for r in rows] == [("heldout_loss", "r1"), ("heldout_loss", "r2"),
                                                        ("win_rate", "q1")]
    text = "".join(__import__("json").dumps(r) + "\n" for r in rows)
    assert parse_rows(text, "x.jsonl") == [{**r, "weight": float(r["weight"])} for r in rows]
    res = compare_rows(rows, 500, 0)
    assert [r.metric for r in res] == ["heldout_loss", "win_rate"] and res[0].delta == pytest.approx(-0.5)
    out = table(res)
    assert "heldout_loss" in out and "[95% CI]" in out and "better" in out
    assert markdown(res).startswith("| metric | n |")


def test_bad_item_file_line_is_one_error_naming_the_line():
    from distillery.core.errors import InputError

    with pytest.raises(InputError, match=r"items.jsonl:2: not a per-item score row"):
        parse_rows('{"metric": "a", "item": "1", "weight": 1, "base": 0, "tuned": 1}\n{"metric": "a"}\n',
                   "items.jsonl")


def test_compare_revs_pairs_only_shared_items_and_counts_each_side():
    a = [{"metric": "gsm8k_em", "item": f"g{i}", "weight": 1.0, "base": 0.0, "tuned": 0.0} for i in range(60)]
    b = [{"metric": "gsm8k_em", "item": f"g{i}", "weight": 1.0, "base": 0.0, "tuned": 1.0 if i < 30 else 0.0}
         for i in range(10, 70)]
    res, counts = compare_revs(a, b, 500, 0)
    assert counts["gsm8k_em"] == {"a": 60, "b": 60, "paired": 50}
    assert res[0].n == 50 and res[0].b == pytest.approx(20 / 50) and res[0].verdict == 1


def test_budget_gives_generation_what_the_loss_floors_leave_and_is_deterministic():
    e = EvalSetParams(time_budget_s=300, loss_item_cpu_s=0.1, gen_item_cpu_s=2.0, judge_item_cpu_s=2.0,
                      gsm8k_em_limit=200)
    # 500 loss items x 2 models x 0.1 s = 100 s; 200 s left, half each: EM 25 (4 s each), win 12 (8 s each),
    # and the 4 s the win rate left buy one more EM item
    p = plan(e, 500, 1319, 80, judge_on=True)
    assert (p.gsm8k_em, p.win_rate, p.over_budget) == (26, 12, False) and p.planned_cpu_s <= 300
    assert plan(e, 500, 1319, 80, judge_on=False).gsm8k_em == 50
    over = plan(e, 2000, 1319, 80, judge_on=True)
    assert (over.gsm8k_em, over.win_rate, over.over_budget) == (0, 0, True)
