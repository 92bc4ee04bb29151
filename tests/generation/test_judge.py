"""The judge service over the real engine and the OpenAI-compatible test server: pairwise in both orders
with position-swap consistency, and ONE repair loop (the engine's when a schema is enforced, else the judge's)."""

from __future__ import annotations

import pytest

from distillery.generation.judge import Judge, combine_orders, rubric_schema, swap_verdict

GOOD = '{"helpfulness": 9, "accuracy": 9, "clarity": 8, "completeness": 9, "overall": 9}'
ENGINE_REPAIR = "could not be used"      # llm.parsing.repair_messages
JUDGE_REASK = "could not be parsed"      # generation.judge.RETRY_MESSAGE / VERDICT_RETRY_MESSAGE


def _judge(params, engine_for, stage="score"):
    return Judge(engine_for(params, stage), params.score.judge, params.llm, params.project.seed, stage)


@pytest.mark.parametrize("first,second,outcome,combined", [
    ("A", "B", "x", "x"), ("B", "A", "y", "y"), ("tie", "tie", "tie", "tie"),
    ("A", "A", "inconsistent", "tie"), ("B", "B", "inconsistent", "tie"), ("A", "tie", "inconsistent", "tie"),
    ("A", None, None, None), (None, None, None, None),
])
def test_position_swap_table(first, second, outcome, combined):
    assert swap_verdict(first, second) == outcome
    assert combine_orders(first, second) == combined


def test_pairwise_asks_both_orders_and_reports_consistency(gen_params, engine_for, server):
    rules = [{"match": "REQUEST:\\s*biased", "response": '{"winner": "A"}'},              # always position A
             {"match": "REQUEST:\\s*even", "response": "It's a tie"},
             {"match": "ANSWER A:\\s*strong", "response": "Final verdict: A"},            # prefers "strong"
             {"match": "ANSWER B:\\s*strong", "response": "As a judge, I prefer B."},
             {"match": "REQUEST:\\s*mute", "response": "Neither"}]
    params = gen_params(rules=rules, score__judge__parse_retries=0)
    judge = _judge(params, engine_for, "preferences")
    items = [("k1", "fair", "strong x", "weak y", ("big", "big-model"), ("small", "small-model")),
             ("k2", "fair", "weak x", "strong y", ("big", "big-model"), ("small", "small-model")),
             ("k3", "biased", "x", "y", ("big", "big-model"), ("small", "small-model")),
             ("k4", "even", "x", "y", ("big", "big-model"), ("small", "small-model")),
             ("k5", "mute", "x", "y", ("big", "big-model"), ("small", "small-model")),
             ("k6", "fair", "x", "y", ("judge", "judge-model"), ("small", "small-model"))]   # judge wrote x
    v = judge.compare(items)
    assert [x.outcome for x in v] == ["x", "y", "inconsistent", "tie", None, None]
    assert [x.orders for x in v[:5]] == [("A", "B"), ("B", "A"), ("A", "A"), ("tie", "tie"), (None, None)]
    assert v[0].scores == {"x": 1.0, "y": 0.0} and v[1].scores == {"x": 0.0, "y": 1.0}
    assert v[2].scores == v[3].scores == {"x": 0.5, "y": 0.5}
    assert v[4].scores is None and v[4].reason == "judge_no_winner"
    assert v[5].reason == "judge_refused_self" and not v[5].results
    # two requests per judged item, the answers swapped, each stored in the lineage with its order
    sent = [r["body"]["messages"][-1]["content"] for r in server.requests()]
    assert len(sent) == 10
    assert any("ANSWER A:\nstrong x" in s for s in sent) and any("ANSWER B:\nstrong x" in s for s in sent)
    assert [s["order"] for s in v[0].lineage] == ["xy", "yx"]


def test_free_text_judge_reasks_itself(gen_params, engine_for, server):
    rules = [{"match": JUDGE_REASK, "response": "Sure! " + GOOD},
             {"match": "Rate the ANSWER", "response": "A pretty good answer."}]
    params = gen_params(rules=rules, score__judge__parse_retries=2)
    [v] = _judge(params, engine_for).score([("r1", "Explain recursion", "It calls itself.", ("big", "big-model"))])
    assert v.scores and v.scores["overall"] == 9 and len(v.results) == 2
    sent = server.requests()
    assert len(sent) == 2 and "response_format" not in sent[0]["body"]
    assert ENGINE_REPAIR not in sent[1]["body"]["messages"][-1]["content"]


def test_guided_judge_leaves_repair_to_the_engine(gen_params, engine_for, server):
    """With the schema sent, the engine validates and repairs; the judge must not re-ask on top."""
    rules = [{"match": ENGINE_REPAIR, "response": "Still a pretty good answer."},
             {"match": "Rate the ANSWER", "response": "A pretty good answer."}]
    params = gen_params(rules=rules, score__judge__guided=True, score__judge__parse_retries=3,
                        llm__max_parse_retries=1)
    [v] = _judge(params, engine_for).score([("r1", "Explain recursion", "It calls itself.", ("big", "big-model"))])
    sent = [r["body"]["messages"] for r in server.requests()]
    assert len(sent) == 2                                    # the call + ONE engine repair, no judge re-ask
    assert ENGINE_REPAIR in sent[1][-1]["content"] and not any(JUDGE_REASK in m["content"] for m in sent[1])
    assert v.scores is None and v.reason == "judge_no_scores" and len(v.results) == 1
    assert v.results[0].error == "parse_error"


def test_guided_judge_gets_a_complete_rubric_from_the_engine_repair(gen_params, engine_for, server):
    rules = [{"match": ENGINE_REPAIR, "response": GOOD},
             {"match": "Rate the ANSWER", "response": '{"helpfulness": 9}'}]   # parses, misses keys
    params = gen_params(rules=rules, score__judge__guided=True)
    [v] = _judge(params, engine_for).score([("r1", "Explain recursion", "It calls itself.", ("big", "big-model"))])
    assert v.scores and v.scores["overall"] == 9 and len(v.results) == 1
    assert [s["attempt"] for s in v.lineage] == [1]
    assert len(server.requests()) == 2
    assert rubric_schema(["a"])["required"] == ["a", "overall"]


def test_guided_pairwise_is_not_reasked_either(gen_params, engine_for, server):
    params = gen_params(rules=[{"match": "Which answer", "response": "hmm"}], score__judge__guided=True,
                        score__judge__parse_retries=2, llm__max_parse_retries=0)
    [v] = _judge(params, engine_for, "preferences").compare(
        [("k", "q", "x", "y", ("big", "big-model"), ("small", "small-model"))])
    assert v.outcome is None and len(server.requests()) == 2


def test_out_of_range_rubric_is_rejected_not_clamped(gen_params, engine_for, server):
    bad = '{"helpfulness": 12, "accuracy": 9, "clarity": 8, "completeness": 9, "overall": 11}'
    params = gen_params(rules=[{"match": "Rate the ANSWER", "response": bad}], score__judge__parse_retries=0)
    [v] = _judge(params, engine_for).score([("r1", "q", "a", ("big", "big-model"))])
    assert v.scores is None and v.reason == "judge_score_out_of_range"
