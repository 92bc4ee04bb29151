"""Tolerant structured-output parsing."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from distillery.llm.parsing import ParseFailure, extract_json, parse_structured, repair_messages


class Score(BaseModel):
    overall: float
    helpfulness: int


@pytest.mark.parametrize("text", [
    '{"overall": 8.5, "helpfulness": 9}',
    'Here you go:\n```json\n{"overall": 8.5, "helpfulness": 9}\n```\nThanks',
    'Sure. {"overall": 8.5, "helpfulness": 9,} hope that helps',
    '[{"overall": 8.5, "helpfulness": 9}]',
    'Rating {"note": "a } inside a string"} then {"overall": 8.5, "helpfulness": 9}',
])
def test_parse_tolerates_common_wrappings(text):
    assert parse_structured(text, Score) == Score(overall=8.5, helpfulness=9)


def test_json_schema_dict_validation_reason():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert parse_structured('{"n": 3}', schema) == {"n": 3}
    with pytest.raises(ParseFailure, match="n"):
        parse_structured('{"n": "three"}', schema)


def test_no_json_at_all():
    with pytest.raises(ParseFailure, match="no JSON"):
        extract_json("I cannot answer that.")


def test_pydantic_failure_names_the_field():
    with pytest.raises(ParseFailure, match="helpfulness"):
        parse_structured('{"overall": 1}', Score)


def test_repair_turn_shows_answer_problem_and_schema():
    msgs = repair_messages([{"role": "user", "content": "rate"}], "bad", "overall: missing", Score)
    assert msgs[1] == {"role": "assistant", "content": "bad"}
    assert "overall: missing" in msgs[2]["content"] and '"helpfulness"' in msgs[2]["content"]
