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

from .decoding import left_padded, prefill

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


class _Rows:
    """The rows of one guided batch on one KV cache. `feed` appends each row's pending tokens at once;
    a row with fewer (or none) gets masked holes before them, so every row's last real token sits in
    the last column and one forward pass gives each row's next-token logits."""

    def __init__(self, model: Any, tok: Any, extra: int, n: int) -> None:
        self.model, self.tok, self.n, self.extra = model, tok, n, extra
        self.cache: Any = None
        self.mask: Any = None
        self.count = [0] * n          # real tokens per row = the position of its next token

    def feed(self, chunks: list[list[int]]) -> Any:
        """Append `chunks[r]` to row r; the logits (rows x vocab) after each row's last token (a row fed
        nothing gets a meaningless row: callers read only rows they fed). The first feed is the
        prompts, whose shared prefixes are computed once (`decoding.prefill`)."""
        import torch

        if self.cache is None:
            self.cache, self.mask, _, logits = prefill(self.model, self.tok, chunks, self.extra)
            self.count = [len(c) for c in chunks]
            return logits
        ids, mask, pos = left_padded(self.tok, chunks, self.count)
        self.count = [c + len(chunk) for c, chunk in zip(self.count, chunks)]
        dev = self.model.device
        self.mask = mask.to(dev) if self.mask is None else torch.cat([self.mask, mask.to(dev)], dim=1)
        return self.model(input_ids=ids.to(dev), attention_mask=self.mask, position_ids=pos.to(dev),
                          past_key_values=self.cache, use_cache=True, logits_to_keep=1).logits[:, -1]

    def crop(self, n: int) -> None:
        """Forget the last `n` columns, which every row filled with real tokens (a probe)."""
        self.cache.crop(-n)
        self.mask = self.mask[:, :-n]
        self.count = [c - n for c in self.count]


def decode(model: Any, tok: Any, prompt_ids: list[int], steps: list[_Step]) -> tuple[str, int]:
    """`decode_batch` for one prompt."""
    return decode_batch(model, tok, [prompt_ids], steps)[0]


def decode_batch(model: Any, tok: Any, prompts: list[list[int]], steps: list[_Step]) -> list[tuple[str, int]]:
    """(JSON text, completion tokens) per tokenised prompt, the prompts decoded together: greedy among
    allowed tokens (an `expected` field: the probability-weighted mean, see the module doc). Every
    row walks the same tries, so a batch costs one forward pass per step for all rows, where one
    prompt at a time paid a pass per step per prompt (at batch 1 each pass reads all the weights).
    Logits are computed for each row's last position only."""
    import torch

    n = len(prompts)
    rows = _Rows(model, tok, sum(len(st.literal_ids) for st in steps) + 32, n)
    pending = [list(p) for p in prompts]
    out: list[list[str]] = [[] for _ in prompts]
    n_out = [0] * n
    with torch.inference_mode():
        for st in steps:
            for r in range(n):
                pending[r] += st.literal_ids
                n_out[r] += len(st.literal_ids)
            if st.expected:
                node, head = st.trie, []
                while len(node) == 1:           # the tokens every value starts with (" ")
                    head.append(next(iter(node)))
                    node = node[head[-1]]
                logits = rows.feed([p + head for p in pending])     # the cache now ends where the values branch
                probs = value_probs(rows, node, logits, tuple(head))
                for r in range(n):
                    best: tuple[int, ...] = max(probs[r], key=lambda s: probs[r][s])
                    pending[r] = list(best[len(head):])
                    mean = sum(p * float(st.value_of[s]) for s, p in probs[r].items())
                    out[r].append(f"{st.literal} {mean:.2f}{st.end}")
                    n_out[r] += len(best)
                continue
            nodes: list[dict] = [st.trie] * n
            walked: list[list[int]] = [[] for _ in prompts]
            while True:
                for r in range(n):
                    while len(nodes[r]) == 1:   # no choice to make: no forward pass
                        t = next(iter(nodes[r]))
                        walked[r].append(t)
                        pending[r].append(t)
                        nodes[r] = nodes[r][t]
                choosing = [r for r in range(n) if nodes[r]]
                if not choosing:
                    break
                logits = rows.feed(pending)     # a choosing row always has pending tokens: its last choice
                pending = [[] for _ in prompts]
                for r in choosing:
                    allowed = list(nodes[r])
                    t = allowed[int(torch.argmax(logits[r, torch.tensor(allowed)]))]
                    walked[r].append(t)
                    pending[r].append(t)
                    nodes[r] = nodes[r][t]
            for r in range(n):
                out[r].append(st.literal + " " + st.value_of[tuple(walked[r])] + st.end)
                n_out[r] += len(walked[r])
    return [("".join(o), k) for o, k in zip(out, n_out)]


def value_probs(rows: _Rows, trie: dict, logits: Any, prefix: tuple[int, ...] = ()
                ) -> list[dict[tuple[int, ...], float]]:
    """Per row, the probability of every full token sequence of the trie (after `prefix`, the tokens
    leading to it), each branching node's softmax restricted to its children. `logits`: every row's
    next-token logits at the root, with `rows`' cache ending there. An off-root branching node costs
    one forward pass of the tokens leading to it, for all rows at once (they share the trie); the
    cache is cropped back after each, so it ends as it began."""
    import torch

    out: list[dict[tuple[int, ...], float]] = [{} for _ in range(rows.n)]

    def walk(node: dict, logits: Any, prefix: tuple[int, ...], mass: Any) -> None:
        allowed = list(node)
        probs = torch.ones((rows.n, 1)) if len(allowed) == 1 else \
            torch.softmax(logits[:, torch.tensor(allowed)].float(), -1)
        for j, tok_id in enumerate(allowed):
            chain, child = [tok_id], node[tok_id]
            while len(child) == 1:          # no choice to make: no forward pass
                t = next(iter(child))
                chain.append(t)
                child = child[t]
            seq, m = prefix + tuple(chain), mass * probs[:, j]
            if not child:
                for r, p in enumerate(m.tolist()):
                    out[r][seq] = out[r].get(seq, 0.0) + p
                continue
            walk(child, rows.feed([chain] * rows.n), seq, m)
            rows.crop(len(chain))

    walk(trie, logits, prefix, torch.ones(rows.n))
    return out
