"""Eval arithmetic: preference accuracy / reward margin, win rate in both orders, loss harness tokens."""

from __future__ import annotations

import pytest

from distillery.train.data import Example
from distillery.train.evaluate import preference_metrics
from distillery.train.judge import parse_verdict, win_rate
from distillery.train.pipeline import delta


def test_preference_accuracy_and_reward_margin():
    base = [(-10.0, -12.0), (-8.0, -6.0)]
    tuned = [(-9.0, -14.0), (-6.0, -6.5)]
    b = preference_metrics(base, None, beta=0.1)
    assert b["pref_accuracy"] == 0.5 and b["reward_margin"] == 0.0 and b["logp_margin"] == 0.0
    t = preference_metrics(tuned, base, beta=0.1)
    assert t["pref_accuracy"] == 1.0
    # beta * ((c - c_ref) - (r - r_ref)): pair 1: 0.1*(1 - -2) = 0.3; pair 2: 0.1*(2 - -0.5) = 0.25
    assert t["reward_margin"] == pytest.approx(0.275)
    assert preference_metrics([None], None, 0.1)["pairs"] == 0


def test_win_rate_counts_both_orders_and_cancels_position_bias():
    # q1: tuned wins in both orders; q2: judge always says "A" (position bias) -> inconsistent, half a win
    r = win_rate(["A", "B", "A", "A"])
    assert r["win_rate"] == 0.75 and r["order_consistency"] == 0.5
    assert (r["judged"], r["wins"], r["inconsistent"]) == (2, 1, 1)
    assert win_rate(["tie", "tie"])["win_rate"] == 0.5
    # a question counts only when both orders gave a verdict
    assert win_rate([None, "B"])["win_rate"] is None and win_rate([None, "B"])["unparsed"] == 1


@pytest.mark.parametrize("reply,want", [("A", "A"), ("b.", "B"), ("Answer A is better", "A"), ("Tie", "tie"),
                                        ("Both are fine", None)])
def test_parse_verdict(reply, want):
    assert parse_verdict(reply) == want


def test_delta_only_for_numbers_in_both():
    assert delta({"loss": 2.0, "em": None}, {"loss": 1.5, "em": 0.5, "win_rate": 0.6}) == {"loss": -0.5}


def test_loss_harness_scores_only_the_completion_tokens(smollm2_path):
    from transformers import AutoTokenizer

    from distillery.train.evaluate import encode

    tok = AutoTokenizer.from_pretrained(smollm2_path)
    ex = Example([{"role": "user", "content": "What is 2 plus 2?"}], "2 + 2 = 4.")
    ids, start = encode(tok, ex, 512)
    assert tok.decode(ids[start:]).startswith("2 + 2 = 4.<|im_end|>")
    assert tok.decode(ids[:start]).endswith("<|im_start|>assistant\n")
    # a window the prompt alone fills: the prompt loses its start and the answer is still scored
    cut, cut_start = encode(tok, ex, start)
    assert len(cut) == start and cut[cut_start:] == ids[start:start + len(cut) - cut_start]
    assert cut[:cut_start] == ids[start - cut_start:start] and cut_start >= start // 2
    # a long answer keeps the whole prompt (it fits in half the window) and loses its end
    long_ex = Example(ex.prompt, "2 + 2 = 4. " * 80)
    long_ids, long_start = encode(tok, long_ex, 128)
    assert long_start == start and len(long_ids) == 128 and long_ids[:start] == ids[:start]
    assert encode(tok, Example(ex.prompt, ""), 512) is not None  # the end-of-turn token is still an answer token


@pytest.mark.slow
def test_bf16_mixed_eval_is_used_when_asked_and_tells_the_float32_story(mini_inputs, smollm2_path):
    """`train_eval.dtype: bfloat16` scores under bf16 autocast (the scores move), and each held-out item's loss
    stays within 0.05 nats of float32's: the mixed-precision eval ranks models as float32 does."""
    from distillery.core.params import load_params
    from distillery.models import load_causal_lm, load_tokenizer
    from distillery.train.pipeline import evaluate_model, load_inputs

    m = mini_inputs
    tok = load_tokenizer(smollm2_path)
    model = load_causal_lm(smollm2_path, device="cpu")
    scores = {}
    for dtype in ("float32", "bfloat16"):
        p = load_params(m["params"], [f"train_eval.dtype={dtype}", "train_eval.eval.gsm8k_em_limit=0"]).train_eval
        inp = load_inputs(p, m["mix"], m["export"])
        items, _ = evaluate_model(model, tok, inp, p)
        scores[dtype] = {k: v for k, v, _ in items["heldout_loss"]}
    fp, bf = scores["float32"], scores["bfloat16"]
    assert fp.keys() == bf.keys() and len(fp) == 12
    assert fp != bf
    assert max(abs(fp[k] - bf[k]) for k in fp) < 0.05
