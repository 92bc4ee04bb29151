"""train_eval's judged win rate goes through the one judge (generation/judge.py) and the real LLM engine,
against an OpenAI-compatible judge on 127.0.0.1: both orders, position-swap consistency, engine closed."""

from __future__ import annotations

import json

import pytest

from distillery.core.params import load_params
from distillery.generation import judge as gjudge
from distillery.generation.templates import load_template
from distillery.testing.testserver import TestServer
from distillery.train import judge as tjudge
from distillery.train.judge import judge_win_rate, win_rate


def _params(tmp_path, url: str):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(json.dumps({
        "llm": {"cache_path": str(tmp_path / "cache.sqlite"), "progress": False, "default_teacher": "judge",
                "teachers": {"judge": {"provider": "openai", "base_url": url, "model": "judge-1", "max_retries": 0,
                                       "gen": {"temperature": 0.0, "max_tokens": 4}}}},
        "train_eval": {"judge": {"teacher": "judge"}}}))
    return load_params(params_file)


def test_win_rate_judges_both_orders_through_the_one_judge(tmp_path, monkeypatch):
    compared, closed = [], []
    real_compare = gjudge.Judge.compare
    monkeypatch.setattr(gjudge.Judge, "compare", lambda self, items: compared.append(len(items))
                        or real_compare(self, items))
    from distillery.llm.engine import Engine

    real_close = Engine.close
    monkeypatch.setattr(Engine, "close", lambda self: closed.append(self.stage) or real_close(self))
    # q1: tuned GOOD -> wins in both orders; q2: base GOOD -> loses in both orders;
    # q3: the judge always says "A" (position bias) -> inconsistent, scored as a tie
    rules = [{"match": r"Q3\?", "response": "Answer: A"},
             {"match": r"\[Answer A\]\nGOOD", "response": "As a judge, I prefer A."},
             {"match": r"\[Answer B\]\nGOOD", "response": "[[B]]"}]
    with TestServer(latency_ms=0, rules=rules) as srv:
        out = judge_win_rate(_params(tmp_path, srv.url), "judge", ["Q1?", "Q2?", "Q3?"],
                             tuned=["GOOD tuned 1", "meh tuned 2", "tuned 3"],
                             base=["meh base 1", "GOOD base 2", "base 3"])
        sent = srv.requests()
    assert compared == [3] and closed == ["train_eval"]
    assert (out["wins"], out["losses"], out["ties"], out["inconsistent"]) == (1, 1, 0, 1)
    assert out["judged"] == 3 and out["unparsed"] == 0 and out["judge_failed"] == 0 and out["judge_requests"] == 6
    assert out["win_rate"] == 0.5 and out["order_consistency"] == pytest.approx(2 / 3, abs=1e-6)
    # both orders were asked, with the package template and no system prompt
    assert len(sent) == 6
    tpl = load_template(tjudge.TEMPLATE)
    first = sent[0]["body"]["messages"]
    assert [m["role"] for m in first] == ["user"]
    assert first[0]["content"] == tpl.render(prompt="Q1?", answer_a="GOOD tuned 1", answer_b="meh base 1",
                                             dimensions={})
    users = [r["body"]["messages"][-1]["content"] for r in sent]
    assert any("[Answer A]\nGOOD tuned 1" in u for u in users) and any("[Answer B]\nGOOD tuned 1" in u for u in users)


def test_unparsed_reply_is_reasked_once_then_counted(tmp_path):
    rules = [{"match": "could not be parsed", "response": "Neither"}, {"match": "Which answer", "response": "hmm"}]
    with TestServer(latency_ms=0, rules=rules) as srv:
        out = judge_win_rate(_params(tmp_path, srv.url), "judge", ["Q?"], tuned=["t"], base=["b"])
        sent = srv.requests()
    assert len(sent) == 4                      # two orders, each asked and re-asked once
    assert out["win_rate"] is None and out["judged"] == 0 and out["unparsed"] == 2


@pytest.mark.parametrize("verdicts,want", [
    (["A", "B"], {"wins": 1, "win_rate": 1.0, "order_consistency": 1.0}),
    (["B", "A"], {"losses": 1, "win_rate": 0.0}),
    (["tie", "tie"], {"ties": 1, "win_rate": 0.5, "order_consistency": 1.0}),
    (["A", "A", "A", "B"], {"inconsistent": 1, "wins": 1, "win_rate": 0.75, "order_consistency": 0.5}),
    (["A", "tie"], {"inconsistent": 1, "win_rate": 0.5}),
    ([None, "B"], {"judged": 0, "unparsed": 1, "win_rate": None, "order_consistency": None}),
])
def test_win_rate_counts_a_question_only_when_both_orders_agree(verdicts, want):
    out = win_rate(verdicts)
    assert {k: out[k] for k in want} == want


def test_each_eval_set_gets_its_own_win_rate():
    """Pooled 0.5 hides that the tuned model wins MT-Bench and loses WizardLM; unjudged prompts are counted apart."""
    from distillery.train.judge import win_rate_by_set

    ids = ["mt_bench:81", "wizardlm:1", "mt_bench:82", "wizardlm:2", "mt_bench:83"]
    assert win_rate_by_set(ids, [1.0, 0.0, 1.0, 0.0, None]) == {
        "mt_bench": {"prompts": 3, "judged": 2, "win_rate": 1.0},
        "wizardlm": {"prompts": 2, "judged": 2, "win_rate": 0.0}}
    assert win_rate_by_set(["wizardlm:1"], [None]) == {"wizardlm": {"prompts": 1, "judged": 0, "win_rate": None}}
