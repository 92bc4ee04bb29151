"""Which schemas the local guided decoder takes over (the rest are generated freely and parsed)."""

import pytest

from distillery.llm.guided import GuidedField, guided_fields


def test_closed_value_flat_objects_are_guided():
    schema = {"type": "object", "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 3},
        "winner": {"enum": ["A", "B", "tie"]},
        "ok": {"type": "boolean"}}}
    assert guided_fields(schema) == [GuidedField("score", ("1", "2", "3")),
                                     GuidedField("winner", ('"A"', '"B"', '"tie"')),
                                     GuidedField("ok", ("true", "false"))]


def test_open_or_nested_schemas_are_not():
    for schema in (None, {"type": "array"}, {"type": "object", "properties": {}},
                   {"type": "object", "properties": {"text": {"type": "string"}}},
                   {"type": "object", "properties": {"n": {"type": "integer"}}},                   # unbounded
                   {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 10**6}}},
                   {"type": "object", "properties": {"o": {"type": "object", "properties": {}}}}):
        assert guided_fields(schema) is None, schema


EXPECTED = {"type": "number", "minimum": 1, "maximum": 10, "x-guided": "expected"}


def test_expected_number_fields_are_guided_over_their_integers():
    [f] = guided_fields({"type": "object", "properties": {"s": EXPECTED}})
    assert f.values == tuple(str(v) for v in range(1, 11)) and f.expected
    assert guided_fields({"type": "object", "properties": {"s": {**EXPECTED, "x-guided": None}}}) is None


def _nodes(trie: dict, seq: tuple[int, ...]) -> list[dict]:
    out, node = [trie], trie
    for t in seq:
        node = node[t]
        out.append(node)
    return out


def _brute_force(model, tok, prefix: list[int], step) -> dict[str, float]:
    """P(value) by one full forward pass per value sequence (no cache), each branching trie node's
    softmax restricted to its children, as the guided decoder defines it."""
    import torch

    out = {}
    for seq, value in step.value_of.items():
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([prefix + list(seq)])).logits[0]
        p, node = 1.0, step.trie
        for i, t in enumerate(seq):
            allowed = list(node)
            if len(allowed) > 1:
                row = logits[len(prefix) + i - 1, torch.tensor(allowed)].float()
                p *= float(torch.softmax(row, -1)[allowed.index(t)])
            node = node[t]
        out[value] = p
    return out


@pytest.mark.slow
def test_expected_score_is_the_probability_weighted_mean(smollm2_path):
    """The decoder's expected score (KV cache, cropped forks) equals the brute-force mean over 1..10,
    for both fields of a two-field schema (the second conditioned on the first's most probable value)."""
    import json

    from distillery.llm.config import TeacherParams
    from distillery.llm.guided import decode, plan
    from distillery.llm.provider_local import load

    model, tok = load(TeacherParams(name="local", provider="local", model=str(smollm2_path), device="cpu"))
    steps = plan(tok, guided_fields({"type": "object", "properties": {"clarity": EXPECTED, "overall": EXPECTED}}))
    assert any(len(n) > 1 for s in steps[0].value_of for n in _nodes(steps[0].trie, s)[2:])  # " 1" -> "," | "0"
    for q in ("Rate this answer to 'What is 2+2?': '4.' Reply as JSON.",
              "Rate this answer to 'Name a colour.': 'I like turtles, and the sea is big.' Reply as JSON."):
        prompt = tok(tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                             tokenize=False), add_special_tokens=False)["input_ids"]
        text, n_out = decode(model, tok, prompt, steps)
        got = json.loads(text)
        prefix = prompt + steps[0].literal_ids
        for st, key in zip(steps, ("clarity", "overall")):
            dist = _brute_force(model, tok, prefix, st)
            assert abs(sum(dist.values()) - 1) < 1e-4
            want = sum(p * int(v) for v, p in dist.items())
            assert 1 <= got[key] <= 10 and abs(got[key] - want) <= 0.005 + 1e-3, (key, got[key], want, dist)
            mode = max(dist, key=dist.__getitem__)
            prefix = prefix + [i for s, v in st.value_of.items() if v == mode for i in s] + \
                (steps[1].literal_ids if st is steps[0] else [])
        assert n_out > 0
