"""Schema-guided decoding for local models: answers that always parse, from any model size.

A 135M model asked for rubric JSON mostly rambles (and gets truncated), so offline judge scores were
mostly parse failures. For a flat object whose every property has a small closed set of values
(integers with minimum/maximum, enums, booleans) the JSON text is fixed except for the values, so the
decoder writes the fixed text itself and lets the model choose only among the allowed value tokens:
a greedy walk over a token trie of `<value><terminator>` per property, one incremental forward pass
per step (KV cache). This is what vLLM calls guided decoding, restricted to the schemas judges use.
Any other schema returns None from `guided_fields`, and the request is generated freely and parsed.

Expected scores (G-Eval's probability-weighted score): a `{"type": "number", "minimum": a, "maximum": b,
"x-guided": "expected"}` property (a <= b integers) is decoded over the integers a..b like an integer
field, but the text holds the EXPECTED value under the model's distribution restricted to those
integers, rounded to 2 decimals (a number in [a, b], so it validates against the same schema). The
distribution is exact: every branching node of the value trie gets its restricted softmax (one extra
forward pass per off-path branching node, e.g. " 1" -> "," or "0" for 1 vs 10, on the KV cache, cropped
back afterwards). The cache then continues with the most probable value, so later fields see an integer.
A greedy integer judge gives every answer of a small model the same score; the expected score separates them.
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
    expected: bool = False      # write the probability-weighted mean of the (integer) values, not the choice


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
        elif _int_range(p, "integer"):
            values = [str(v) for v in range(p["minimum"], p["maximum"] + 1)]
        elif _int_range(p, "number") and p.get("x-guided") == "expected":
            fields.append(GuidedField(str(name), tuple(str(v) for v in range(p["minimum"], p["maximum"] + 1)), True))
            continue
        else:
            return None
        fields.append(GuidedField(str(name), tuple(values)))
    return fields


def _int_range(p: dict, kind: str) -> bool:
    lo, hi = p.get("minimum"), p.get("maximum")
    return p.get("type") == kind and type(lo) is int and type(hi) is int and 0 <= hi - lo < _MAX_CHOICES


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
    expected: bool = False


def plan(tok: Any, fields: list[GuidedField]) -> list[_Step]:
    """Tokenise the fixed text and every allowed value once per request group, not once per prompt."""
    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    steps = []
    for i, f in enumerate(fields):
        literal = ("{" if i == 0 else " ") + json.dumps(f.name, ensure_ascii=False) + ":"
        end = "," if i < len(fields) - 1 else "}"
        value_of = {tuple(ids(" " + v + end)): v for v in f.values}
        steps.append(_Step(literal, ids(literal), _trie([list(s) for s in value_of]), value_of, end, f.expected))
    return steps


def decode(model: Any, tok: Any, prompt_ids: list[int], steps: list[_Step]) -> tuple[str, int]:
    """(JSON text, completion tokens) for one tokenised prompt; greedy among allowed tokens (an
    `expected` field: the probability-weighted mean, see the module doc). Logits are computed for the
    last position only (the prompt's other positions never need the vocab head)."""
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
            if st.expected:
                node, head = st.trie, []
                while len(node) == 1:           # the tokens every value starts with (" ")
                    head.append(next(iter(node)))
                    node = node[head[-1]]
                pending += head
                logits = step()                 # the cache now ends where the values branch
                probs = value_probs(model, node, logits, lambda: past, tuple(head))
                best: tuple[int, ...] = max(probs, key=lambda s: probs[s])
                walked = list(best)
                pending += walked[len(head):]
                mean = sum(p * float(st.value_of[s]) for s, p in probs.items())
                out.append(f"{st.literal} {mean:.2f}{st.end}")
                n_out += len(walked)
                continue
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



def value_probs(model: Any, trie: dict, logits: Any, cache: Any, prefix: tuple[int, ...] = ()
                ) -> dict[tuple[int, ...], float]:
    """Probability of every full token sequence of the trie (after `prefix`, the tokens leading to it), each branching node's softmax restricted to
    its children. `logits`: the next-token logits at the root;
    `cache()`: the KV cache holding everything up to the root. An off-root branching node costs one
    forward pass of the tokens leading to it; the cache is cropped back after each, so it ends as it began."""
    import torch

    out: dict[tuple[int, ...], float] = {}

    def walk(node: dict, logits: Any, prefix: tuple[int, ...], mass: float) -> None:
        allowed = list(node)
        probs = [1.0] if len(allowed) == 1 else torch.softmax(logits[torch.tensor(allowed)].float(), -1).tolist()
        for tok_id, p in zip(allowed, probs):
            chain, child = [tok_id], node[tok_id]
            while len(child) == 1:          # no choice to make: no forward pass
                t = next(iter(child))
                chain.append(t)
                child = child[t]
            seq = prefix + tuple(chain)
            if not child:
                out[seq] = out.get(seq, 0.0) + mass * p
                continue
            past = cache()
            res = model(input_ids=torch.tensor([list(seq[-len(chain):])], device=model.device),
                        past_key_values=past, use_cache=True, logits_to_keep=1)
            walk(child, res.logits[0, -1], seq, mass * p)
            past.crop(-len(chain))     # a negative count removes that many tokens (transformers 4.x and 5.x)

    walk(trie, logits, prefix, 1.0)
    return out
