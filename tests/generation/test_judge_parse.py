"""The one judge-answer parser (generation/judge_parse.py), pinned on a table of real-looking replies."""

from __future__ import annotations

import pytest

from distillery.generation.judge_parse import as_score, find_json_objects, parse_scores, parse_verdict

VERDICTS = [
    # bare tokens
    ("A", "A"),
    ("B", "B"),
    ("b.", "B"),
    ("  a  ", "A"),
    ("Tie", "tie"),
    ("tie.", "tie"),
    ("TIE", "tie"),
    ("**B**", "B"),
    ("[[A]]", "A"),
    ("[[B]]", "B"),
    ("Answer: A", "A"),
    ("Response B", "B"),
    # the upper-cased article bug: "a" in "As a judge" is no verdict
    ("As a judge, I prefer B.", "B"),
    ("As a judge I would choose a different wording, but I prefer A.", "A"),
    # JSON, with prose, fences, Unicode quotes, other keys
    ('{"winner": "A"}', "A"),
    ('Sure! {"winner": "B"} hope this helps', "B"),
    ('```json\n{"winner": "tie"}\n```', "tie"),
    ("{\u201cwinner\u201d: \u201cA\u201d}", "A"),
    ("\u201cwinner\u201d: \u201cB\u201d", "B"),
    ('{"reasoning": "both fine", "verdict": "Answer B"}', "B"),
    ("{'winner': 'A'}", "A"),
    # statements
    ("Assistant A is better", "A"),
    ("b is better", "B"),
    ("I think Response B is much better than Response A.", "B"),
    ("Answer A is better than answer B.", "A"),
    ("Both responses are good, but B is slightly better.", "B"),
    ("A is worse than B.", "B"),
    ("Assistant B wins.", "B"),
    ("I'd go with A", "A"),
    ("A is not better; B is clearer and correct. I prefer B.", "B"),
    # the verdict stated last decides
    ("A is verbose, but B is correct. Final verdict: B", "B"),
    ("B looks better at first, but on reflection A is better.", "A"),
    ("B is better. Final answer: A", "A"),
    ("After comparing both carefully:\nB", "B"),
    ("[[A]] ... actually, no: [[B]]", "B"),
    ("The winner is Response A.", "A"),
    # ties
    ("It's a tie", "tie"),
    ("Both are equally good", "tie"),
    ("Both answers are equally helpful and correct.", "tie"),
    ("There is no clear winner here.", "tie"),
    ("[[C]]", "tie"),
    ("Verdict: tie", "tie"),
    ("A is shorter and B is longer, but they are on par.", "tie"),
    # unparsed
    ("Neither", None),
    ("Neither answer is correct.", None),
    ("Both are fine", None),
    ("asdfgh qwerty", None),
    ("", None),
    (None, None),
    ("I would choose a different approach.", None),
    ("Assistant A says one thing, Assistant B another.", None),
    ("A is not better.", None),
    ('{"winner": null}', None),
]


@pytest.mark.parametrize("reply,want", VERDICTS, ids=[repr(r)[:40] for r, _ in VERDICTS])
def test_parse_verdict_table(reply, want):
    assert parse_verdict(reply) == want


DIMS = ["helpfulness", "accuracy"]

SCORES = [
    ('{"helpfulness": 8, "accuracy": 6, "overall": 7}', {"helpfulness": 8, "accuracy": 6, "overall": 7}, ""),
    ('{"helpfulness": 8, "accuracy": 6}', {"helpfulness": 8, "accuracy": 6, "overall": 7}, ""),      # mean
    ('{"Helpfulness": "7/10", "ACCURACY": "9 out of 10", "overall": "8"}',
     {"helpfulness": 7, "accuracy": 9, "overall": 8}, ""),                                          # strings
    ('Here you go:\n```json\n{"helpfulness": 8, "accuracy": 6, "overall": 7,}\n```',
     {"helpfulness": 8, "accuracy": 6, "overall": 7}, ""),                                          # trailing comma
    ("{\u201chelpfulness\u201d: 8, \u201caccuracy\u201d: 6}", {"helpfulness": 8, "accuracy": 6, "overall": 7}, ""),
    ('{"scores": {"helpfulness": {"score": 5}, "accuracy": 5.5}}',
     {"helpfulness": 5, "accuracy": 5.5, "overall": 5.25}, ""),                                    # nested
    ("**Helpfulness**: 8/10\n- Accuracy: 6\nOverall = 7", {"helpfulness": 8, "accuracy": 6, "overall": 7}, ""),
    # out of range: rejected, never clamped
    ('{"helpfulness": 80, "accuracy": 6}', None, "judge_score_out_of_range"),
    ('{"helpfulness": 0, "accuracy": 6, "overall": 3}', None, "judge_score_out_of_range"),
    ('{"helpfulness": 8, "accuracy": 6, "overall": 11}', None, "judge_score_out_of_range"),
    ('{"helpfulness": -2, "accuracy": 6}', None, "judge_score_out_of_range"),
    # missing or unusable
    ('{"helpfulness": 8}', None, "judge_missing_dimension"),
    ('{"helpfulness": "4/5", "accuracy": 6}', None, "judge_missing_dimension"),                    # other scale
    ('{"helpfulness": true, "accuracy": 6}', None, "judge_missing_dimension"),
    ("It is a pretty good answer.", None, "judge_no_scores"),
    (None, None, "judge_no_scores"),
]


@pytest.mark.parametrize("reply,scores,reason", SCORES, ids=[repr(r)[:40] for r, _, _ in SCORES])
def test_parse_scores_table(reply, scores, reason):
    assert parse_scores(reply, DIMS) == (scores, reason)


def test_require_overall_and_custom_range():
    assert parse_scores('{"helpfulness": 8, "accuracy": 6}', DIMS, require_overall=True)[0] is None
    assert parse_scores('{"helpfulness": 4, "accuracy": 5}', DIMS, low=1, high=5)[0] == \
        {"helpfulness": 4, "accuracy": 5, "overall": 4.5}


@pytest.mark.parametrize("value,want", [(7, 7.0), (7.5, 7.5), ("7", 7.0), (" 7 / 10 ", 7.0), ("7 out of 10", 7.0),
                                        ({"rating": "6"}, 6.0), (True, None), ("seven", None), ([7], None)])
def test_as_score(value, want):
    assert as_score(value) == want


def test_find_json_objects_uses_one_extractor_for_every_caller():
    # the multiturn persona check reads its verdict through this too
    assert find_json_objects('Sure: {"consistent": true, "score": 8} done') == [{"consistent": True, "score": 8}]
    assert find_json_objects("no json") == []
