"""Pure parts of the generation stages: routing, judge parsing, pairs, heuristics, completion."""

from collections import Counter

import pytest

from distillery.generation.completion import copied_exemplar, pick_exemplars, trim_completion
from distillery.generation.config import HeuristicParams, IdentityParams, RequiredPattern
from distillery.generation.heuristics import (HeuristicScorer, find_identity_leak, identity_leak_pattern,
                                              repeated_trigram_ratio)
from distillery.generation.judge import combine_orders, parse_scores, parse_winner
from distillery.generation.pairs import Candidate, dpo_to_sft, pick_pairs, teacher_rank_scores
from distillery.generation.routing import route

DIMS = ["helpfulness", "accuracy", "clarity", "completeness"]


def test_routing_proportions_match_weights_and_are_stable():
    weights = {"big": 0.6, "mid": 0.3, "small": 0.1}
    ids = [f"rec-{i}" for i in range(6000)]
    counts = Counter(route(i, 42, weights)[0] for i in ids)
    for name, w in weights.items():
        assert abs(counts[name] / len(ids) - w) < 0.025, (name, counts)
    # same id + seed -> same teacher, regardless of the order records arrive in
    assert [route(i, 42, weights) for i in reversed(ids)] == [route(i, 42, weights) for i in ids][::-1]
    # another seed reshuffles
    assert sum(route(i, 7, weights) != route(i, 42, weights) for i in ids[:500]) > 100


def test_routing_several_distinct_teachers_and_exclusion():
    weights = {"a": 1.0, "b": 1.0, "c": 0.0}
    for i in range(200):
        two = route(f"x{i}", 1, weights, k=2)
        assert sorted(two) == ["a", "b"]          # weight 0 never chosen
        assert route(f"x{i}", 1, weights, exclude={"a"}) == ["b"]


@pytest.mark.parametrize("text", [
    '{"helpfulness": 8, "accuracy": 7, "clarity": 9, "completeness": 6, "overall": 7.5}',
    'Sure! Here is my rating:\n```json\n{"Helpfulness": "8", "accuracy": "7/10", "Clarity": 9, '
    '"completeness": 6, "overall": 7.5}\n```\nHope it helps',
    "Helpfulness: 8\nAccuracy: 7/10\nClarity: 9\nCompleteness: 6\nOverall: 7.5",
])
def test_judge_parses_messy_answers(text):
    scores, reason = parse_scores(text, DIMS)
    assert reason == ""
    assert scores == {"helpfulness": 8, "accuracy": 7, "clarity": 9, "completeness": 6, "overall": 7.5}


def test_judge_overall_defaults_to_mean_and_rejects_bad_answers():
    s, _ = parse_scores('{"helpfulness": 8, "accuracy": 6, "clarity": 8, "completeness": 6}', DIMS)
    assert s["overall"] == 7
    assert parse_scores("I think it is quite good.", DIMS) == (None, "judge_no_scores")
    assert parse_scores('{"helpfulness": 8}', DIMS)[1] == "judge_missing_dimension"
    assert parse_scores('{"helpfulness": 80, "accuracy": 6, "clarity": 8, "completeness": 6}', DIMS)[1] \
        == "judge_score_out_of_range"


def test_pairwise_needs_agreement_in_both_orders():
    assert parse_winner('{"winner": "A"}') == "A"
    assert parse_winner("After thought, winner: B.") == "B"
    assert parse_winner("both fine") is None
    assert combine_orders("A", "B") == "x"      # x won as A and as B
    assert combine_orders("B", "A") == "y"
    assert combine_orders("A", "A") == "tie"    # position bias: always "A" -> no preference
    assert combine_orders("A", None) is None


def _cand(text, teacher, score, rid):
    return Candidate({"id": rid}, text, teacher, score)


def test_pairs_drop_ties_and_identical_answers():
    a, b, c = _cand("Paris.", "t1", 8, "1"), _cand("Lyon.", "t2", 7.5, "2"), _cand(" paris. ", "t3", 3, "3")
    assert pick_pairs([a, b], 1.0) == "tie"                     # margin 0.5 < 1.0
    assert pick_pairs([a, _cand("Lyon.", "t2", 8, "2")], 0.0) == "tie"   # equal scores never pair
    assert pick_pairs([a, c], 1.0) == "identical_answers"       # same text after normalisation
    [(chosen, rejected, margin)] = pick_pairs([a, b, _cand("Rome.", "t4", 2, "4")], 1.0)
    assert (chosen.answer, rejected.answer, margin) == ("Paris.", "Rome.", 6)
    assert pick_pairs([a], 1.0) == "too_few_answers"
    assert pick_pairs([a, _cand("x", "t9", None, "9")], 1.0) == "unscored"


def test_every_pair_of_four_answers_over_the_margin_widest_first():
    # four sampled answers scored 8, 7.5, 3 (the same text as the 8) and 2
    cands = [_cand("Paris.", "t", 8, "1"), _cand("Lyon.", "t", 7.5, "2"), _cand(" paris. ", "t", 3, "3"),
             _cand("Rome.", "t", 2, "4")]
    got = [(c.record["id"], r.record["id"], m) for c, r, m in pick_pairs(cands, 1.5, limit=0)]
    # of the 6 pairs, 1-3 is one text twice, 1-2 (0.5) and 3-4 (1.0) are under the margin
    assert got == [("1", "4", 6), ("2", "4", 5.5), ("2", "3", 4.5)]
    assert [(c.record["id"], r.record["id"]) for c, r, _ in pick_pairs(cands, 1.5, limit=2)] == [("1", "4"), ("2", "4")]
    assert [(c.record["id"], r.record["id"]) for c, r, _ in pick_pairs(cands, 1.5)] == [("1", "4")]


def test_teacher_rank_strong_vs_weak():
    cands = [_cand("weak answer", "small", None, "1"), _cand("strong answer", "big", None, "2")]
    teacher_rank_scores(cands, ["big", "small"])
    [(chosen, rejected, _)] = pick_pairs(cands, 1.0)
    assert (chosen.teacher, rejected.teacher) == ("big", "small")


def test_dpo_to_sft_injects_or_replaces_identity():
    pair = {"id": "p1", "kind": "preference", "source": {"dataset": "d"},
            "messages": [{"role": "system", "content": "You are ChatGPT."}, {"role": "user", "content": "Hi"}],
            "chosen": {"role": "assistant", "content": "Hello!"}, "rejected": {"role": "assistant", "content": "Go"}}
    sft = dpo_to_sft(pair, "You are Atlas.", "replace")
    assert sft["kind"] == "sft" and "chosen" not in sft
    assert sft["messages"] == [{"role": "system", "content": "You are Atlas."}, {"role": "user", "content": "Hi"},
                               {"role": "assistant", "content": "Hello!"}]
    kept = dpo_to_sft(pair, "You are Atlas.", "inject")
    assert kept["messages"][0]["content"] == "You are ChatGPT."
    no_sys = dict(pair, messages=[{"role": "user", "content": "Hi"}])
    assert dpo_to_sft(no_sys, "You are Atlas.", "inject")["messages"][0] == {"role": "system",
                                                                             "content": "You are Atlas."}
    assert pair["messages"][0]["content"] == "You are ChatGPT."    # input untouched


def test_identity_leaks_flagged_but_denials_are_not():
    pat = identity_leak_pattern(IdentityParams(name="Atlas"))
    assert find_identity_leak("Hi! I am ChatGPT, how can I help?", pat)
    assert find_identity_leak("I was developed by OpenAI.", pat)
    assert find_identity_leak("As an OpenAI model I can't browse.", pat)
    assert not find_identity_leak("I am Atlas, built on Llama 3.2 3B. I am NOT a GPT model or an OpenAI product.",
                                  pat)
    assert not find_identity_leak("You can call the OpenAI API from Python.", pat)
    assert identity_leak_pattern(IdentityParams(check=False)) is None


def _rec(answer, bucket="instruction", lineage=None):
    return {"id": "r", "kind": "sft", "bucket": bucket, "lineage": lineage or [],
            "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": answer}]}


def test_heuristics_reasons():
    h = HeuristicScorer(HeuristicParams(min_response_words=2, max_response_words=50,
                                        required=[RequiredPattern(pattern=r"pro tip", stages=["multiturn"])]),
                        IdentityParams(), ["distill", "multiturn"])
    r = lambda rec: h.reason(h.flags(rec))  # noqa: E731
    assert r(_rec("A fine and complete answer.")) is None
    assert r(_rec("   ")) == "empty_response"
    assert r(_rec("ok")) == "too_short"
    assert r(_rec("word " * 60)) == "too_long"
    assert r(_rec(" ".join(["the cat sat on the mat"] * 7))) == "repetition"
    assert r(_rec("I'm sorry, but I can't help with that request.")) == "refusal"
    assert r(_rec("I'm sorry, but I can't help with that request.", bucket="red_team")) is None
    assert r(_rec("As an AI language model, I have no opinions here.")) == "ai_disclaimer"
    assert r(_rec("Sure. I am ChatGPT and here is the answer.")) == "identity_leak"
    assert r(_rec("Code:\n```python\nprint(1)\n")) == "unbalanced_code_fence"
    assert r(_rec("A fine answer here.", lineage=[{"stage": "distill", "finish_reason": "length"}])) == "truncated"
    assert r(_rec("A fine answer here.", lineage=[{"stage": "multiturn"}])) == "missing_required_pattern"
    assert r(_rec("A fine answer. Pro Tip: save often.", lineage=[{"stage": "multiturn"}])) is None
    assert r(_rec("A fine answer here.", lineage=[{"stage": "distill"}])) is None   # rule is for multiturn only
    assert repeated_trigram_ratio("a b c d e f g h i j") == 0.0


POOL = [{"prompt": "Name a primary color:", "completion": "Blue"},
        {"prompt": "Here is a fact about dogs:", "completion": "Dogs are loyal and friendly companions to humans."},
        {"prompt": "Write a short sentence about winter:",
         "completion": "Snow blankets the quiet landscape in pristine white."},
        {"prompt": "Complete this sentence: The sun rises in the", "completion": "east"}]


def test_exemplar_rotation_is_deterministic_and_varies():
    picks = [tuple(e["prompt"] for e in pick_exemplars(POOL, 2, f"id{i}", 42)) for i in range(40)]
    assert picks == [tuple(e["prompt"] for e in pick_exemplars(POOL, 2, f"id{i}", 42)) for i in range(40)]
    assert len(set(picks)) > 5


def test_completion_trimming_and_copy_detection():
    stops = ["\n\n"]
    prompts = [e["prompt"] for e in POOL]
    assert trim_completion("Gravity pulls things down.\n\nName a primary color:\nRed", stops, prompts, 800) == (
        "Gravity pulls things down.", True)
    assert trim_completion("Gravity pulls.\nName a primary color:\nRed", [], prompts, 800)[0] == "Gravity pulls."
    long = "One sentence here. " * 20
    cut, trimmed = trim_completion(long, stops, prompts, 100)
    assert trimmed and len(cut) <= 100 and cut.endswith(".")
    assert copied_exemplar("Dogs are loyal and friendly companions to humans.", POOL, 0.8)
    assert copied_exemplar("blue", POOL, 0.8) == "Name a primary color:"
    assert not copied_exemplar("Gravity is the force that attracts masses to each other.", POOL, 0.8)
