"""Read exported rows (or plain records) as conversations, and find each row's bucket.

Accepted rows: SFT `{"messages": [...]}`; DPO `{"prompt": [...], "chosen": [...], "rejected": [...]}`
(TRL conversational; plain strings are wrapped as user/assistant turns); pipeline records with
`kind`. Exports carry `id` but not `bucket`, so buckets come from the row, else from the mix
files by id, else by the first user turn's text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import xxhash

from ..core.io import BadLine, iter_jsonl


@dataclass
class Row:
    kind: str                      # "sft" | "dpo"
    id: str | None
    bucket: str | None
    prompt: list[dict]             # messages before the answer
    answers: list[list[dict]]      # sft: [final assistant turns]; dpo: [chosen, rejected]
    first_user: str


def _is_msgs(v: object) -> bool:
    return isinstance(v, list) and bool(v) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in v)


def _as_msgs(v: object, role: str) -> list[dict] | None:
    if isinstance(v, str):
        return [{"role": role, "content": v}]
    if isinstance(v, dict):
        v = [v]
    if not _is_msgs(v):
        return None
    return [{"role": m["role"], "content": m["content"]} for m in v]


def _first_user(msgs: list[dict]) -> str:
    return next((m["content"] for m in msgs if m["role"] == "user"), "")


def content_key(text: str) -> str:
    return xxhash.xxh3_64_hexdigest(" ".join(text.split()).encode("utf-8"))


def to_row(obj: dict) -> Row | str:
    """A Row, or a reason code when the object is not a usable SFT/DPO row."""
    rid = obj.get("id") if isinstance(obj.get("id"), str) else None
    bucket = obj.get("bucket") if isinstance(obj.get("bucket"), str) else None
    kind = obj.get("kind")
    if kind == "preference" or (kind is None and "chosen" in obj and "rejected" in obj):
        prompt = _as_msgs(obj.get("messages") if kind == "preference" else obj.get("prompt"), "user")
        chosen, rejected = _as_msgs(obj.get("chosen"), "assistant"), _as_msgs(obj.get("rejected"), "assistant")
        if prompt is None or chosen is None or rejected is None:
            return "bad_dpo_row"
        return Row("dpo", rid, bucket, prompt, [chosen, rejected], _first_user(prompt))
    if kind in ("sft", None) and "messages" in obj:
        msgs = _as_msgs(obj["messages"], "user")
        if msgs is None or msgs[-1]["role"] != "assistant" or len(msgs) < 2:
            return "bad_sft_row"
        return Row("sft", rid, bucket, msgs[:-1], [msgs[-1:]], _first_user(msgs))
    return "unknown_row_format"


def iter_rows(path: Path, max_line_bytes: int) -> Iterator[tuple[int, Row | str, object]]:
    """(line, Row or reason, raw object) for every non-blank line."""
    for lineno, obj in iter_jsonl(path, max_line_bytes):
        if isinstance(obj, BadLine):
            yield lineno, obj.reason, obj
        else:
            yield lineno, to_row(obj), obj


class BucketLookup:
    """id -> bucket and first-user-turn -> bucket, from the mix stage's files."""

    def __init__(self, mix_dir: str | Path | None):
        self.by_id: dict[str, str] = {}
        self.by_text: dict[str, str] = {}
        if mix_dir is None or not Path(mix_dir).is_dir():
            return
        d = Path(mix_dir)
        files = [d / "production.jsonl", d / "eval.jsonl", *sorted((d / "phases").glob("*.jsonl"))]
        for f in files:
            if not f.exists():
                continue
            for _, rec in iter_jsonl(f):
                if isinstance(rec, BadLine) or not isinstance(rec.get("bucket"), str):
                    continue
                if isinstance(rec.get("id"), str):
                    self.by_id.setdefault(rec["id"], rec["bucket"])
                msgs = rec.get("messages") if _is_msgs(rec.get("messages")) else []
                text = _first_user(msgs)
                if text:
                    self.by_text.setdefault(content_key(text), rec["bucket"])

    def __len__(self) -> int:
        return len(self.by_id)

    def bucket(self, row: Row) -> str | None:
        if row.bucket:
            return row.bucket
        if row.id and row.id in self.by_id:
            return self.by_id[row.id]
        return self.by_text.get(content_key(row.first_user)) if row.first_user else None
