"""--dry-run: token and cost estimates without calling anything."""

from __future__ import annotations

import pytest

from distillery.llm import ChatRequest

from distillery.llm.engine import Engine
from distillery.models import load_tokenizer

pytestmark = pytest.mark.slow  # loads the SmolLM2 tokenizer (converted once per machine)


def test_dry_run_estimates_with_a_tokenizer_and_calls_nothing(srv, make_params, smollm2_path):
    p = make_params(srv.url, teacher={"tokenizer": str(smollm2_path), "gen": {"max_tokens": 100}})
    msgs = [[{"role": "user", "content": f"Explain topic number {i} in detail."}] for i in range(5)]
    with Engine.from_params(p, stage="distill", dry_run=True) as eng:
        est = eng.estimate([ChatRequest(teacher="t", messages=m) for m in msgs])
        res = eng.run([ChatRequest(teacher="t", messages=m) for m in msgs])
    assert srv.requests() == []
    assert {r.error for r in res} == {"dry_run"}
    tok = load_tokenizer(str(smollm2_path))
    expected_pt = sum(len(tok(tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False),
                              add_special_tokens=False)["input_ids"]) for m in msgs)
    row = est["teachers"]["t"]
    assert row["prompt_tokens"] == expected_pt
    assert row["output_tokens"] == 500 and row["output_source"] == "max_tokens"
    assert row["cost_usd"] == pytest.approx((expected_pt * 1.0 + 500 * 2.0) / 1e6)
    assert est["totals"]["to_call"] == 5 and est["budget"]["estimate_fits"] is True


def test_estimate_skips_cached_and_uses_pilot_answers(srv, make_params, smollm2_path):
    p = make_params(srv.url, teacher={"tokenizer": str(smollm2_path), "gen": {"max_tokens": 100}},
                    pilot_min_samples=3, stage_max_usd={"distill": 1e-7})
    pilot = [ChatRequest(teacher="t", messages=[{"role": "user", "content": f"pilot {i}"}]) for i in range(3)]
    with Engine.from_params(make_params(srv.url, teacher={"gen": {"max_tokens": 100}}), stage="pilot") as eng:
        eng.run(pilot)  # answers are "Test answer to: pilot i" = 5 words = 5 completion tokens
    new = [ChatRequest(teacher="t", messages=[{"role": "user", "content": "fresh one"}])]
    with Engine.from_params(p, stage="distill", dry_run=True) as eng:
        est = eng.estimate(pilot + new)
    row = est["teachers"]["t"]
    assert row["cached"] == 3 and row["to_call"] == 1
    assert row["output_source"] == "pilot (cached answers)" and row["output_tokens"] == 5
    assert est["budget"]["estimate_fits"] is False


def test_batch_teacher_estimate_uses_batch_prices(srv, make_params, smollm2_path):
    base = {"tokenizer": str(smollm2_path), "gen": {"max_tokens": 10}}
    req = [ChatRequest(teacher="t", messages=[{"role": "user", "content": "hello"}])]
    with Engine.from_params(make_params(srv.url, teacher=base), stage="d", dry_run=True) as eng:
        online = eng.estimate(req)["totals"]["cost_usd"]
    with Engine.from_params(make_params(srv.url, teacher={**base, "batch": True, "batch_discount": 0.5}),
                            stage="d", dry_run=True) as eng:
        batch = eng.estimate(req)["totals"]["cost_usd"]
    assert batch == pytest.approx(online / 2)
