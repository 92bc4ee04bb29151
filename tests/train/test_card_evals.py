"""The dataset card says what the eval numbers mean: sizes, intervals, verdicts, judge agreement + flag."""

from __future__ import annotations

import json

from distillery.export.card import build_card
from distillery.export.config import CardParams
from distillery.train.results import compare_rows


def test_card_shows_intervals_verdicts_sizes_and_the_flagged_judge(tmp_path):
    m = tmp_path / "metrics"
    m.mkdir()
    rows = [{"metric": "heldout_loss", "item": f"r{i}", "weight": 10, "base": 2.0 + i % 3 * 0.1,
             "tuned": 1.8 + i % 3 * 0.1} for i in range(30)]
    rows += [{"metric": "gsm8k_em", "item": f"g{i}", "weight": 1, "base": float(i % 2), "tuned": float(i % 2)}
             for i in range(20)]
    res = compare_rows(rows, 500, 0)
    head = {k: v for r in res for k, v in r.flat().items()}
    (m / "train_eval.json").write_text(json.dumps(head))
    (m / "train_eval.details.json").write_text(json.dumps({
        "evals": {r.metric: r.details() for r in res}, "eval_sizes": {r.metric: r.n for r in res},
        "eval_plan": {"budget_s": 300, "planned_cpu_s": 280.0, "eval_cpu_s": 301.5,
                      "topped_up": {"heldout": 12, "pairs": 40}},
        "train": {"sft_steps": 16, "sft_records": 500, "dpo": "ran", "seed": 42, "precision": "bf16-mixed"}}))
    (m / "judge_eval.json").write_text(json.dumps({"flagged": 1}))
    (m / "judge_eval.details.json").write_text(json.dumps({
        "min_agreement": 0.6, "flagged_judges": ["local-smollm2 on hh"],
        "results": {"local-smollm2": {"hh": {"judged": 24, "agreement": 0.52, "agreement_ci": [0.4, 0.63],
                                             "swap_consistency": 0.2, "tie_rate": 0.0, "parse_rate": 0.9,
                                             "flagged": 1}}}}))
    (m / "compare.md").write_text("Dataset A/B: ...\n\n| metric | n | A | B | delta | verdict |\n")
    text = build_card(tmp_path / "export", m, None, {}, CardParams())
    assert "| heldout_loss | 30 | 2.1000 [" in text and "| -0.2000 [-0.2000, -0.2000] | better |" in text
    assert "| gsm8k_em | 20 |" in text and "within noise" in text
    assert "Eval sizes (items): heldout_loss 30, gsm8k_em 20." in text
    assert "measured 301.5" in text and "12 SFT, 40 pairs" in text
    assert "DPO ran, seed 42, bf16 mixed precision (train and eval;" in text
    assert "### Dataset A/B (`distillery compare`)" in text
    assert "| local-smollm2 | hh | 24 | 0.520 [0.4000, 0.6300] | 0.200 | 0.000 | 0.900 | **FLAGGED** (< 0.6) |" in text
    assert "**Flagged**: local-smollm2 on hh" in text


def test_card_without_eval_metrics_says_not_run(tmp_path):
    text = build_card(tmp_path / "export", tmp_path / "metrics", None, {}, CardParams())
    assert "Not run (no `metrics/train_eval.json`)" in text and "Not run (no `metrics/judge_eval.json`)" in text
