"""Role-sequence rules (docs/records.md): optional system first, then user/assistant alternation."""

import pytest

from distillery.core.records import Record, check_roles, prompt_messages, response_text, stable_id


def msgs(*roles):
    return [{"role": r, "content": f"{r} text"} for r in roles]


A = {"role": "assistant", "content": "a"}


@pytest.mark.parametrize("kind,roles,chosen,expected", [
    ("sft", ("user", "assistant"), None, None),
    ("sft", ("system", "user", "assistant", "user", "assistant"), None, None),
    ("sft", (), None, "empty_conversation"),
    ("sft", ("assistant", "user"), None, "role_order"),
    ("sft", ("user", "user", "assistant"), None, "role_order"),
    ("sft", ("user", "system", "assistant"), None, "system_not_first"),
    ("sft", ("user",), None, "sft_must_end_with_assistant"),
    ("sft", ("system",), None, "no_user_turn"),
    ("sft", ("user", "bot"), None, "unknown_role"),
    ("preference", ("system", "user"), A, None),
    ("preference", ("user", "assistant"), A, "prompt_must_end_with_user"),
    ("preference", ("user",), None, "missing_chosen"),
    ("preference", ("user",), {"role": "user", "content": "x"}, "chosen_not_assistant"),
])
def test_check_roles(kind, roles, chosen, expected):
    assert check_roles(kind, msgs(*roles), chosen, A) == expected


def test_record_model_round_trip_keeps_added_fields():
    d = {"id": "x", "kind": "sft", "messages": msgs("user", "assistant"), "source": {"dataset": "d", "row": 3},
         "extra_field": {"kept": True}}
    r = Record.model_validate(d)
    assert r.to_dict()["extra_field"] == {"kept": True}


def test_prompt_and_response_views():
    sft = {"kind": "sft", "messages": msgs("system", "user", "assistant")}
    assert [m["role"] for m in prompt_messages(sft)] == ["system", "user"]
    assert response_text(sft) == "assistant text"
    pref = {"kind": "preference", "messages": msgs("user"), "chosen": {"role": "assistant", "content": "c"}}
    assert response_text(pref) == "c" and prompt_messages(pref) == msgs("user")


def test_stable_id_is_stable_and_separates_parts():
    assert stable_id("a", 1) == stable_id("a", 1)
    assert stable_id("ab", "c") != stable_id("a", "bc")
