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
    assert all(r.ok and not r.cached and r.detail == "dry_run" and r.text for r in res)  # stand-in answers
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
    assert row["output_source"] == "max_tokens" and row["output_tokens"] == 100     # the bound
    assert row["expected_output_source"] == "pilot (cached answers)"
    assert row["expected_cost_usd"] == pytest.approx(row["cost_usd"] - (100 - 5) * 2.0 / 1e6)
    assert est["budget"]["estimate_fits"] is False


def test_estimate_counts_a_repeated_request_once_and_embedded_stand_ins_at_max_tokens(srv, make_params,
                                                                                       smollm2_path):
    p = make_params(srv.url, teacher={"tokenizer": str(smollm2_path), "gen": {"max_tokens": 100}})
    first = ChatRequest(teacher="t", messages=[{"role": "user", "content": "Write a story."}])
    with Engine.from_params(p, stage="distill", dry_run=True) as eng:
        (ans,) = eng.run([first])
        follow = ChatRequest(teacher="t", messages=[*first.messages, {"role": "assistant", "content": ans.text},
                                                    {"role": "user", "content": "Shorter."}])
        eng.run([first, follow])                 # the repeat would come from the cache in a real run
        est = eng.dry_run_estimate()
    row = est["teachers"]["t"]
    assert row["requests"] == 3 and row["to_call"] == 2
    tok = load_tokenizer(str(smollm2_path))
    bare = len(tok(tok.apply_chat_template(follow.messages, add_generation_prompt=True, tokenize=False),
                   add_special_tokens=False)["input_ids"])
    first_pt = len(tok(tok.apply_chat_template(first.messages, add_generation_prompt=True, tokenize=False),
                       add_special_tokens=False)["input_ids"])
    assert row["prompt_tokens"] == first_pt + bare + 100   # the stand-in in the follow-up counts max_tokens


def test_batch_teacher_estimate_uses_batch_prices(srv, make_params, smollm2_path):
    base = {"tokenizer": str(smollm2_path), "gen": {"max_tokens": 10}}
    req = [ChatRequest(teacher="t", messages=[{"role": "user", "content": "hello"}])]
    with Engine.from_params(make_params(srv.url, teacher=base), stage="d", dry_run=True) as eng:
        online = eng.estimate(req)["totals"]["cost_usd"]
    with Engine.from_params(make_params(srv.url, teacher={**base, "batch": True, "batch_discount": 0.5}),
                            stage="d", dry_run=True) as eng:
        batch = eng.estimate(req)["totals"]["cost_usd"]
    assert batch == pytest.approx(online / 2)
