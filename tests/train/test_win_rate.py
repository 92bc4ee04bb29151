"""Pairwise win rate through the real LLM engine against an OpenAI-compatible judge on 127.0.0.1."""

from __future__ import annotations

import json

from distillery.testing.testserver import TestServer
from distillery.core.params import load_params
from distillery.train.judge import judge_win_rate


def test_win_rate_judges_both_orders_through_the_engine(tmp_path):
    rules = [{"match": r"\[Answer A\]\nGOOD", "response": "A"}, {"match": r"\[Answer B\]\nGOOD", "response": "B"}]
    with TestServer(latency_ms=0, rules=rules) as srv:
        params_file = tmp_path / "params.yaml"
        params_file.write_text(json.dumps({
            "llm": {"cache_path": str(tmp_path / "cache.sqlite"), "progress": False, "default_teacher": "judge",
                    "teachers": {"judge": {"provider": "openai", "base_url": srv.url, "model": "judge-1",
                                           "gen": {"temperature": 0.0, "max_tokens": 4}}}},
            "train_eval": {"judge": {"teacher": "judge"}}}))
        params = load_params(params_file)
        out = judge_win_rate(params, "judge", ["Q1?", "Q2?"], tuned=["GOOD tuned 1", "meh tuned 2"],
                             base=["meh base 1", "GOOD base 2"])
        sent = [r for r in srv.requests() if r.get("path", "").endswith("/chat/completions")] or srv.requests()
    # q1: tuned wins in both orders; q2: base wins in both orders
    assert out["win_rate"] == 0.5 and out["order_consistency"] == 1.0 and out["judged"] == 4
    assert out["unparsed"] == 0 and out["judge_failed"] == 0
    assert len(sent) == 4
    bodies = json.dumps(sent)
    assert "GOOD tuned 1" in bodies and "GOOD base 2" in bodies
