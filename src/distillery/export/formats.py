"""One function per trainer file: a checked record in, one row (or a reason it cannot be written) out.

The schemas are the ones TRL, axolotl and LLaMA-Factory read without edits: every row has every
key with one type ("" not null), contents are strings, roles alternate. `COLUMNS` declares each
format's columns and types (the Parquet schema, and what `datasets` infers from the JSONL). A
converter returns `Skip(reason)` when a record is valid but the format cannot express it (a
multi-turn prompt in the single-turn `prompt_pairs` file); the bundle counts those per file, never
silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

SHAREGPT_ROLE = {"user": "human", "assistant": "gpt", "system": "system"}


@dataclass(frozen=True)
class Skip:
    """A valid record this format cannot express."""

    reason: str


Row = dict[str, Any]
Converter = Callable[[dict], "Row | Skip"]


def _msg(m: dict) -> dict:
    return {"role": m["role"], "content": m["content"]}


def split_system(messages: list[dict]) -> tuple[str, list[dict]]:
    """(system text or "", the turns after it)."""
    if messages and messages[0]["role"] == "system":
        return messages[0]["content"], messages[1:]
    return "", messages


def history_pairs(turns: list[dict]) -> list[list[str]]:
    """[[user, assistant], ...] for alternating turns (LLaMA-Factory `history`)."""
    return [[turns[i]["content"], turns[i + 1]["content"]] for i in range(0, len(turns) - 1, 2)]


def render_chatml(messages: list[dict]) -> str:
    """ChatML as SmolLM2/Qwen templates write it: `<|im_start|>role\\ncontent<|im_end|>\\n` per turn."""
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


# --- SFT ------------------------------------------------------------------------------------------

def sft_messages(rec: dict) -> Row:
    return {"messages": [_msg(m) for m in rec["messages"]]}


def sft_sharegpt(rec: dict) -> Row:
    # A system prompt is the first turn ({"from": "system"}), never a `system` key: an empty `system` makes
    # axolotl's chat_template prepend an empty system turn, and a key on some rows only breaks `datasets`'
    # JSON loader once the first chunk it reads (10 MB) has no such row. LLaMA-Factory (system_tag) and
    # axolotl (role "system") both read a leading system turn.
    return {"conversations": [{"from": SHAREGPT_ROLE[m["role"]], "value": m["content"]} for m in rec["messages"]]}


def sft_alpaca(rec: dict) -> Row:
    system, turns = split_system(rec["messages"])
    return {"instruction": turns[-2]["content"], "input": "", "output": turns[-1]["content"],
            "system": system, "history": history_pairs(turns[:-2])}


def sft_chatml_text(rec: dict) -> Row:
    return {"text": render_chatml(rec["messages"])}


# --- DPO ------------------------------------------------------------------------------------------

def dpo_trl(rec: dict) -> Row:
    return {"prompt": [_msg(m) for m in rec["messages"]],
            "chosen": [_msg(rec["chosen"])], "rejected": [_msg(rec["rejected"])]}


def dpo_messages_pair(rec: dict) -> Row:
    return {"messages": [_msg(m) for m in rec["messages"]],
            "chosen": _msg(rec["chosen"]), "rejected": _msg(rec["rejected"])}


def dpo_prompt_pairs(rec: dict) -> Row | Skip:
    system, turns = split_system(rec["messages"])
    if len(turns) != 1:
        return Skip("multiturn_prompt_not_representable")
    return {"system": system, "prompt": turns[0]["content"],
            "chosen": rec["chosen"]["content"], "rejected": rec["rejected"]["content"]}


def dpo_alpaca_pref(rec: dict) -> Row:
    system, turns = split_system(rec["messages"])
    return {"instruction": turns[-1]["content"], "input": "", "chosen": rec["chosen"]["content"],
            "rejected": rec["rejected"]["content"], "system": system, "history": history_pairs(turns[:-1])}


# --- column types: "string", [T] a list of T, {name: T} a struct -----------------------------------

MESSAGE = {"role": "string", "content": "string"}
COLUMNS: dict[str, dict[str, object]] = {
    "messages": {"messages": [MESSAGE]},
    "sharegpt": {"conversations": [{"from": "string", "value": "string"}]},
    "alpaca": {"instruction": "string", "input": "string", "output": "string", "system": "string",
               "history": [["string"]]},
    "chatml_text": {"text": "string"},
    "trl": {"prompt": [MESSAGE], "chosen": [MESSAGE], "rejected": [MESSAGE]},
    "messages_pair": {"messages": [MESSAGE], "chosen": MESSAGE, "rejected": MESSAGE},
    "prompt_pairs": {"system": "string", "prompt": "string", "chosen": "string", "rejected": "string"},
    "alpaca_pref": {"instruction": "string", "input": "string", "chosen": "string", "rejected": "string",
                    "system": "string", "history": [["string"]]},
}
ID_COLUMN = {"id": "string"}

# Columns whose type a reader can only see on some rows: an empty `history` is a list of nothing.
# `datasets`' JSON loader (what TRL, axolotl and LLaMA-Factory call) fixes the schema from the first
# chunk it reads and fails on a later chunk holding `[["user", "assistant"]]` ("Couldn't cast array of
# type list<item: string> to null"), so a JSONL writer puts the first row where these are non-empty on
# line 1 (see bundle.JsonlSink). Parquet files carry their schema and need no such row.
LATE_TYPED: dict[str, tuple[str, ...]] = {"alpaca": ("history",), "alpaca_pref": ("history",)}


SFT_FILES: dict[str, Converter] = {
    "messages": sft_messages,
    "sharegpt": sft_sharegpt,
    "alpaca": sft_alpaca,
    "chatml_text": sft_chatml_text,
}
DPO_FILES: dict[str, Converter] = {
    "trl": dpo_trl,
    "messages_pair": dpo_messages_pair,
    "prompt_pairs": dpo_prompt_pairs,
    "alpaca_pref": dpo_alpaca_pref,
}


def file_name(kind: str, fmt: str, file_type: str = "jsonl") -> str:
    """Path of a format inside a bundle: sft/<fmt>.jsonl, dpo/<fmt>.parquet, sft/<fmt>.jsonl.gz, ..."""
    return f"{'sft' if kind == 'sft' else 'dpo'}/{fmt}.{file_type}"
