"""Schema-guided decoding for local models: answers that always parse, from any model size.

A 135M model asked for rubric JSON mostly rambles (and gets truncated), so offline judge scores were
mostly parse failures. For a flat object whose every property has a small closed set of values
(integers with minimum/maximum, enums, booleans) the JSON text is fixed except for the values, so the
decoder writes the fixed text itself and lets the model choose only among the allowed value tokens:
a greedy walk over a token trie of `<value><terminator>` per property, one incremental forward pass
per step (KV cache). This is what vLLM calls guided decoding, restricted to the schemas judges use.
Any other schema returns None from `guided_fields`, and the request is generated freely and parsed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_MAX_CHOICES = 101


@dataclass(frozen=True)
class GuidedField:
    name: str
    values: tuple[str, ...]     # JSON texts of the allowed values


def guided_fields(schema: dict | None) -> list[GuidedField] | None:
    """The properties of a flat object schema with closed value sets, in order; None when the schema
    has any other kind of property (so the caller generates freely)."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return None
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        return None
    fields = []
    for name, p in props.items():
        if not isinstance(p, dict):
            return None
        if isinstance(p.get("enum"), list) and p["enum"]:
            values = [json.dumps(v, ensure_ascii=False) for v in p["enum"]]
        elif p.get("type") == "boolean":
            values = ["true", "false"]
        elif p.get("type") == "integer" and isinstance(p.get("minimum"), int) and isinstance(p.get("maximum"), int) \
                and 0 <= p["maximum"] - p["minimum"] < _MAX_CHOICES:
            values = [str(v) for v in range(p["minimum"], p["maximum"] + 1)]
        else:
            return None
        fields.append(GuidedField(str(name), tuple(values)))
    return fields


def _trie(seqs: list[list[int]]) -> dict:
    root: dict = {}
    for s in seqs:
        node = root
        for t in s:
            node = node.setdefault(t, {})
    return root


@dataclass(frozen=True)
class _Step:
    literal: str                 # the fixed text before the value: '{"name":' or ' "name":'
    literal_ids: list[int]
    trie: dict                   # token trie of ' <value><terminator>' for every allowed value
    value_of: dict[tuple[int, ...], str]
    end: str


def plan(tok: Any, fields: list[GuidedField]) -> list[_Step]:
    """Tokenise the fixed text and every allowed value once per request group, not once per prompt."""
    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    steps = []
    for i, f in enumerate(fields):
        literal = ("{" if i == 0 else " ") + json.dumps(f.name, ensure_ascii=False) + ":"
        end = "," if i < len(fields) - 1 else "}"
        value_of = {tuple(ids(" " + v + end)): v for v in f.values}
        steps.append(_Step(literal, ids(literal), _trie([list(s) for s in value_of]), value_of, end))
    return steps


def decode(model: Any, tok: Any, prompt_ids: list[int], steps: list[_Step]) -> tuple[str, int]:
    """(JSON text, completion tokens) for one tokenised prompt; greedy among allowed tokens. Logits
    are computed for the last position only (the prompt's other positions never need the vocab head)."""
    import torch

    pending, past, out, n_out = list(prompt_ids), None, [], 0

    def step() -> torch.Tensor:
        nonlocal pending, past
        res = model(input_ids=torch.tensor([pending], device=model.device), past_key_values=past, use_cache=True,
                    logits_to_keep=1)
        past, pending = res.past_key_values, []
        return res.logits[0, -1]

    with torch.inference_mode():
        for st in steps:
            pending += st.literal_ids
            n_out += len(st.literal_ids)
            node, walked = st.trie, []
            while node:
                allowed = list(node)
                choice = allowed[0] if len(allowed) == 1 else \
                    allowed[int(torch.argmax(step()[torch.tensor(allowed)]))]
                walked.append(choice)
                pending.append(choice)
                node = node[choice]
            out.append(st.literal + " " + st.value_of[tuple(walked)] + st.end)
            n_out += len(walked)
    return "".join(out), n_out
