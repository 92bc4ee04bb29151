"""Which schemas the local guided decoder takes over (the rest are generated freely and parsed)."""

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
