"""Adapters: turn one raw row of a public dataset into draft records (one job each).

An adapter gets the row, the resolved field names and the speaker->role map, and yields
`Draft`s (kind, messages, chosen/rejected, a sub-index that is stable within the row). A row
it cannot use raises `RowError(reason, detail)` and is quarantined whole. Normalisation and
role checks happen afterwards, the same way for every adapter (see normalize.py).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .config import FieldMap, SourceSpec

DEFAULT_ROLES: dict[str, str] = {
    "system": "system", "user": "user", "human": "user", "prompter": "user", "question": "user",
    "assistant": "assistant", "gpt": "assistant", "chatgpt": "assistant", "bard": "assistant",
    "bing": "assistant", "model": "assistant", "bot": "assistant", "answer": "assistant",
}

# Per-adapter default field names; `fields:` in params overrides any of them.
DEFAULT_FIELDS: dict[str, dict[str, str]] = {
    "alpaca": {"prompt": "instruction", "input": "input", "response": "output", "system": "system"},
    "gsm8k": {"prompt": "question", "response": "answer"},
    "self_instruct": {"prompt": "instruction", "messages": "instances", "input": "input", "response": "output",
                      "id": "id"},
    "openai_messages": {"messages": "messages", "role": "role", "content": "content"},
    "sharegpt": {"messages": "conversations", "role": "from", "content": "value", "system": "system"},
    "prompt_chosen_rejected": {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected",
                               "system": "system", "role": "role", "content": "content"},
    "hh": {"chosen": "chosen", "rejected": "rejected"},
    "oasst_tree": {"role": "role", "content": "text"},
    "mapping": {"role": "role", "content": "content", "input": "input", "system": "system"},
    "record": {"messages": "messages", "role": "role", "content": "content"},
}


class RowError(Exception):
    """A row that cannot become a record; `reason` is the quarantine reason code."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class Draft:
    sub: str
    kind: str
    messages: list[dict]
    chosen: dict | None = None
    rejected: dict | None = None
    labels: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    upstream_id: str | None = None


@dataclass
class Ctx:
    """What an adapter needs besides the row: field names, role map and the source spec."""

    spec: SourceSpec
    fields: dict[str, str | None]
    roles: dict[str, str]
    empty_inputs: frozenset[str] = frozenset()
    by_adapter: dict[str, "Ctx"] = field(default_factory=dict)

    @classmethod
    def for_spec(cls, spec: SourceSpec, empty_inputs: list[str] = (), adapter: str | None = None) -> "Ctx":
        adapter = adapter or spec.adapter
        if adapter == "auto":  # one context per layout `auto` may pick, each with its own defaults
            ctx = cls.for_spec(spec, empty_inputs, "mapping")
            ctx.by_adapter = {a: cls.for_spec(spec, empty_inputs, a) for a in DEFAULT_FIELDS}
            return ctx
        f = dict(DEFAULT_FIELDS.get(adapter, {}))
        f.update({k: v for k, v in spec.fields.model_dump().items() if v is not None})
        roles = dict(DEFAULT_ROLES)
        roles.update({k.lower(): v for k, v in spec.roles.items()})
        return cls(spec, {k: f.get(k) for k in FieldMap.model_fields}, roles,
                   frozenset(v.strip().lower() for v in empty_inputs))


# ---- field access -------------------------------------------------------------------------

def text_field(row: dict, key: str | None, *, required: bool = True) -> str:
    """The string under `key`; numbers are accepted as text (NaN/Infinity are not: they are a missing
    value, not the text "nan"), anything else is `wrong_type`."""
    if key is None:
        if required:
            raise RowError("missing_field", "no field name configured (set `fields`)")
        return ""
    if key not in row or row[key] is None:
        if required:
            raise RowError("missing_field", f"field {key!r} is missing")
        return ""
    v = row[key]
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if not math.isfinite(v):
            raise RowError("non_finite_number", f"field {key!r} is {json.dumps(v)}, a number that is not finite")
        return str(v)
    raise RowError("wrong_type", f"field {key!r} should be text, got {type(v).__name__}")


def list_field(row: dict, key: str | None) -> list:
    if key is None or key not in row or row[key] is None:
        raise RowError("missing_field", f"field {key!r} is missing")
    v = row[key]
    if not isinstance(v, list):
        raise RowError("wrong_type", f"field {key!r} should be a list, got {type(v).__name__}")
    return v


def map_role(speaker: Any, ctx: Ctx) -> str:
    if not isinstance(speaker, str):
        raise RowError("wrong_type", f"speaker should be text, got {type(speaker).__name__}")
    role = ctx.roles.get(speaker.lower()) or ctx.roles.get(speaker)
    if role is None:
        raise RowError("unknown_role", f"speaker {speaker!r} is not mapped (add it to `roles`)")
    return role


def turns(items: list, ctx: Ctx) -> list[dict]:
    """A list of {speaker, text} dicts -> messages, using the role/content field names."""
    out = []
    for i, t in enumerate(items):
        if not isinstance(t, dict):
            raise RowError("wrong_type", f"turn {i} should be an object, got {type(t).__name__}")
        if ctx.fields["role"] not in t:
            raise RowError("missing_field", f"turn {i} has no {ctx.fields['role']!r}")
        out.append({"role": map_role(t[ctx.fields["role"]], ctx),
                    "content": text_field(t, ctx.fields["content"])})
    return out


def with_system(row: dict, ctx: Ctx, messages: list[dict]) -> list[dict]:
    system = text_field(row, ctx.fields["system"], required=False) if ctx.fields["system"] else ""
    if system.strip() and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": system}, *messages]
    return messages


def join_input(prompt: str, extra: str, ctx: Ctx) -> str:
    """Alpaca convention: a non-empty `input` follows the instruction after a blank line."""
    if extra.strip() and extra.strip().lower() not in ctx.empty_inputs:
        return f"{prompt.rstrip()}\n\n{extra.strip()}"
    return prompt


def sft(row: dict, ctx: Ctx, prompt: str, response: str, sub: str = "0") -> Draft:
    msgs = with_system(row, ctx, [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}])
    return Draft(sub, "sft", msgs)


def answer(value: Any, ctx: Ctx, name: str) -> dict:
    """A preference answer given as text, a message, or a list of messages (the last one)."""
    if isinstance(value, str):
        return {"role": "assistant", "content": value}
    if isinstance(value, list) and value:
        value = value[-1]
    if isinstance(value, dict):
        msg = turns([value], ctx)[0]
        return msg
    if value is None:
        raise RowError("missing_field", f"field {name!r} is missing")
    if isinstance(value, float) and not math.isfinite(value):
        raise RowError("non_finite_number", f"field {name!r} is {json.dumps(value)}")
    raise RowError("wrong_type", f"field {name!r} should be text or a message, got {type(value).__name__}")


# ---- adapters -----------------------------------------------------------------------------

def alpaca(row: dict, ctx: Ctx) -> Iterator[Draft]:
    """Alpaca instruction/input/output: the input is appended to the instruction."""
    prompt = join_input(text_field(row, ctx.fields["prompt"]),
                        text_field(row, ctx.fields["input"], required=False), ctx)
    yield sft(row, ctx, prompt, text_field(row, ctx.fields["response"]))


CALC = re.compile(r"<<[^<>]*>>")


def gsm8k(row: dict, ctx: Ctx) -> Iterator[Draft]:
    """GSM8K: strip `<<expr=result>>` calculator annotations; keep the final `#### answer` line."""
    solution = text_field(row, ctx.fields["response"])
    if "####" not in solution:
        raise RowError("gsm8k_no_final_answer", "solution has no '#### answer' line")
    d = sft(row, ctx, text_field(row, ctx.fields["prompt"]), CALC.sub("", solution))
    d.labels["final_answer"] = solution.rsplit("####", 1)[1].strip()
    yield d


def self_instruct(row: dict, ctx: Ctx) -> Iterator[Draft]:
    """Self-Instruct seed task: one record per instance (instruction + instance input -> output)."""
    instruction = text_field(row, ctx.fields["prompt"])
    instances = list_field(row, ctx.fields["messages"])
    if not instances:
        raise RowError("empty_conversation", f"field {ctx.fields['messages']!r} has no instances")
    for i, inst in enumerate(instances):
        if not isinstance(inst, dict):
            raise RowError("wrong_type", f"instance {i} should be an object, got {type(inst).__name__}")
        prompt = join_input(instruction, text_field(inst, ctx.fields["input"], required=False), ctx)
        d = sft(row, ctx, prompt, text_field(inst, ctx.fields["response"]), sub=str(i))
        if "is_classification" in row:
            d.labels["is_classification"] = bool(row["is_classification"])
        yield d


def turn_items(row: dict, ctx: Ctx) -> list:
    items = list_field(row, ctx.fields["messages"])
    if not items:
        raise RowError("empty_conversation", f"field {ctx.fields['messages']!r} is empty")
    return items


def conversation(row: dict, ctx: Ctx) -> Iterator[Draft]:
    """OpenAI `messages` or ShareGPT `conversations` (+ optional `system`): one SFT record, or
    several when `dialogue` shapes it (see dialogue.py)."""
    items = turn_items(row, ctx)
    if ctx.spec.dialogue is not None:
        from .dialogue import shaped  # imported here: dialogue.py builds on this module
        yield from shaped(row, items, ctx, ctx.spec.dialogue)
        return
    yield Draft("0", "sft", with_system(row, ctx, turns(items, ctx)))


def prompt_turns(row: dict, ctx: Ctx) -> list[dict]:
    """The prompt of a preference row: `fields.prompt` as text (one user turn) or a list of turns."""
    key = ctx.fields["prompt"]
    if key not in row or row[key] is None:
        raise RowError("missing_field", f"field {key!r} is missing")
    p = row[key]
    if isinstance(p, list):
        if not p:
            raise RowError("empty_conversation", f"field {key!r} is empty")
        return turns(p, ctx)
    return [{"role": "user", "content": text_field(row, key)}]


def prompt_chosen_rejected(row: dict, ctx: Ctx) -> Iterator[Draft]:
    """Generic preference row: prompt (text or messages) + chosen + rejected."""
    msgs = prompt_turns(row, ctx)
    for name in ("chosen", "rejected"):
        if ctx.fields[name] not in row:
            raise RowError("missing_field", f"field {ctx.fields[name]!r} is missing")
    yield Draft("0", "preference", with_system(row, ctx, msgs),
                chosen=answer(row[ctx.fields["chosen"]], ctx, ctx.fields["chosen"]),
                rejected=answer(row[ctx.fields["rejected"]], ctx, ctx.fields["rejected"]))


HH_TURN = re.compile(r"\n\n(Human|Assistant):")


def parse_hh(transcript: str) -> list[dict]:
    """'\\n\\nHuman: …\\n\\nAssistant: …' -> messages (speaker markers at line starts only)."""
    parts = HH_TURN.split(transcript)
    if parts[0].strip():
        raise RowError("hh_unparseable", "transcript does not start with '\\n\\nHuman:'")
    if len(parts) < 3:
        raise RowError("hh_unparseable", "no 'Human:'/'Assistant:' turns found")
    return [{"role": "user" if parts[i] == "Human" else "assistant", "content": parts[i + 1].strip()}
            for i in range(1, len(parts), 2)]


def hh(row: dict, ctx: Ctx) -> Iterator[Draft]:
    """Anthropic HH: two transcripts sharing a prefix; the prefix is the prompt, the last
    assistant turns are chosen/rejected. Pairs whose prefixes differ are quarantined."""
    chosen = parse_hh(text_field(row, ctx.fields["chosen"]))
    rejected = parse_hh(text_field(row, ctx.fields["rejected"]))
    if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        raise RowError("hh_no_final_assistant", "a transcript does not end with an Assistant turn")
    if chosen[:-1] != rejected[:-1]:
        raise RowError("hh_prompt_mismatch", "chosen and rejected differ before the final Assistant turn")
    yield Draft("0", "preference", chosen[:-1], chosen=chosen[-1], rejected=rejected[-1])


def oasst_tree(row: dict, ctx: Ctx) -> Iterator[Draft]:
    """Open-Assistant message tree -> root-to-leaf SFT conversations and ranked reply pairs.

    A conversation ends at each assistant reply that has no assistant below it (a trailing
    unanswered prompter turn is dropped). Pairs compare assistant siblings ranked by humans
    (rank 0 = best) under the same prompter message: `adjacent` (rank i vs i+1), `best_worst`
    (best vs worst), `all` (every ordered pair), or `none`. Deleted, review-failed and (with
    `skip_synthetic`) synthetic messages are pruned with their subtrees.
    """
    root = row.get("prompt") if "message_tree_id" in row else row
    if not isinstance(root, dict):
        raise RowError("wrong_type" if root is not None else "missing_field", "tree has no root message")
    spec = ctx.spec
    out: list[Draft] = []

    def keep(m: dict) -> bool:
        return not (m.get("deleted") or m.get("review_result") is False
                    or (spec.skip_synthetic and m.get("synthetic")))

    def node_msg(m: dict) -> dict:
        return {"role": map_role(m.get(ctx.fields["role"]), ctx), "content": text_field(m, ctx.fields["content"])}

    def walk(m: dict, path: list[dict], synth: bool) -> bool:
        """Emit drafts below m; return True when m's subtree contains an assistant reply."""
        msg = node_msg(m)
        here = [*path, msg]
        synth = synth or bool(m.get("synthetic"))
        replies = [r for r in (m.get("replies") or []) if isinstance(r, dict) and keep(r)]
        below = False
        for r in replies:
            below = walk(r, here, synth) or below
        if msg["role"] == "assistant" and not below and spec.paths:
            d = Draft(f"path:{m.get('message_id')}", "sft", here, upstream_id=m.get("message_id"))
            if synth:
                d.labels["synthetic"] = True
            out.append(d)
        if msg["role"] == "user" and spec.pairs != "none":
            out.extend(_pairs(m, here, replies, ctx))
        return below or msg["role"] == "assistant"

    if not keep(root):
        raise RowError("oasst_root_removed", "root message is deleted or failed review")
    walk(root, [], False)
    if not out:
        raise RowError("oasst_no_assistant_reply", "tree has no usable assistant reply")
    yield from out


def _pairs(parent: dict, prompt: list[dict], replies: list[dict], ctx: Ctx) -> Iterator[Draft]:
    ranked = sorted((r for r in replies if isinstance(r.get("rank"), int) and not isinstance(r["rank"], bool)
                     and ctx.roles.get(str(r.get(ctx.fields["role"])).lower()) == "assistant"),
                    key=lambda r: (r["rank"], str(r.get("message_id"))))
    mode = ctx.spec.pairs
    if len(ranked) < 2:
        return
    if mode == "adjacent":
        pairs = list(zip(ranked, ranked[1:]))
    elif mode == "best_worst":
        pairs = [(ranked[0], ranked[-1])]
    else:
        pairs = [(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1:]]
    for a, b in pairs:
        if a["rank"] == b["rank"]:
            continue
        d = Draft(f"pair:{a.get('message_id')}:{b.get('message_id')}", "preference", list(prompt),
                  chosen={"role": "assistant", "content": text_field(a, ctx.fields["content"])},
                  rejected={"role": "assistant", "content": text_field(b, ctx.fields["content"])},
                  upstream_id=parent.get("message_id"))
        d.lineage = {"pairs": mode, "ranks": [a["rank"], b["rank"]]}
        yield d


def mapping(row: dict, ctx: Ctx) -> Iterator[Draft]:
    """Generic adapter driven by `fields`: a turn list, a preference triple (fixed, or decided by
    the row's judgment with `preference`), or prompt/response."""
    f = ctx.fields
    if ctx.spec.preference is not None:
        from .judgment import judged_pair  # imported here: judgment.py builds on this module
        yield from judged_pair(row, ctx, ctx.spec.preference)
    elif f["messages"]:
        yield from conversation(row, ctx)
    elif f["chosen"] and f["rejected"]:
        yield from prompt_chosen_rejected(row, ctx)
    elif f["prompt"] and f["response"]:
        prompt = join_input(text_field(row, f["prompt"]), text_field(row, f["input"], required=False)
                            if f["input"] else "", ctx)
        yield sft(row, ctx, prompt, text_field(row, f["response"]))
    else:
        raise RowError("mapping_incomplete", "set fields.messages, fields.chosen+rejected or fields.prompt+response")


def record(row: dict, ctx: Ctx) -> Iterator[Draft]:
    """A file already in the record shape (an earlier run's output): messages (+ chosen/rejected);
    its labels are kept, ids are new (this is a new ingest)."""
    if row.get("kind") == "preference":
        msgs = turns(list_field(row, ctx.fields["messages"]), ctx)
        d = Draft("0", "preference", msgs, chosen=answer(row.get("chosen"), ctx, "chosen"),
                  rejected=answer(row.get("rejected"), ctx, "rejected"))
    elif row.get("kind") == "sft":
        d = Draft("0", "sft", with_system(row, ctx, turns(turn_items(row, ctx), ctx)))  # never reshaped
    else:
        raise RowError("wrong_type", f"field 'kind' should be 'sft' or 'preference', got {row.get('kind')!r}")
    if isinstance(row.get("labels"), dict):
        d.labels.update(row["labels"])
    yield d


def detect(row: dict) -> str | None:
    """The layout a row is in, from its field names (None when it matches none)."""
    keys = row.keys()
    if "message_tree_id" in keys or ("replies" in keys and "role" in keys):
        return "oasst_tree"
    if "kind" in keys and "messages" in keys:
        return "record"
    if "conversations" in keys:
        return "sharegpt"
    if "messages" in keys:
        return "openai_messages"
    if "chosen" in keys and "rejected" in keys:
        if "prompt" in keys:
            return "prompt_chosen_rejected"
        return "hh" if isinstance(row["chosen"], str) and "\n\nHuman:" in row["chosen"] else None
    if "instruction" in keys and "instances" in keys:
        return "self_instruct"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    if "question" in keys and "answer" in keys and "####" in str(row["answer"]):
        return "gsm8k"
    return None


def auto(row: dict, ctx: Ctx) -> Iterator[Draft]:
    """Pick the adapter per row from its field names (for `--input FILE` with no --adapter)."""
    name = detect(row)
    if name is None:
        raise RowError("unknown_layout", f"cannot tell the adapter from fields {sorted(row)[:12]}; set `adapter`")
    sub = ctx.by_adapter[name]
    uid = row.get(sub.fields["id"]) if sub.fields["id"] else None
    for d in ADAPTERS[name](row, sub):
        d.lineage.setdefault("detected", name)
        if d.upstream_id is None and isinstance(uid, (str, int)):
            d.upstream_id = str(uid)
        yield d


ADAPTERS: dict[str, Callable[[dict, Ctx], Iterator[Draft]]] = {
    "auto": auto,
    "record": record,
    "alpaca": alpaca,
    "openai_messages": conversation,
    "sharegpt": conversation,
    "oasst_tree": oasst_tree,
    "hh": hh,
    "prompt_chosen_rejected": prompt_chosen_rejected,
    "gsm8k": gsm8k,
    "self_instruct": self_instruct,
    "mapping": mapping,
}
