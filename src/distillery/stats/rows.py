"""Read exported rows (or plain records) as conversations, and find each row's bucket.

Accepted rows: SFT `{"messages": [...]}`; DPO `{"prompt": [...], "chosen": [...], "rejected": [...]}`
(TRL conversational; plain strings are wrapped as user/assistant turns); pipeline records with
`kind`. Exports carry `id` but not `bucket`, so buckets come from the row, else from the mix
files by id, else by the first user turn's text.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xxhash

from ..core.parallel import OrderedPool, record_rows
from ..mix.files import record_files


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


def text_key(text: str) -> int:
    """Whitespace-insensitive hash of a first user turn (0 for none): how an id-less row finds its bucket."""
    return xxhash.xxh3_64_intdigest(" ".join(text.split()).encode("utf-8")) if text else 0


def id_key(rid: str) -> int:
    return xxhash.xxh3_64_intdigest(rid.encode("utf-8", "surrogatepass"))


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


def _lookup_keys(line: int, rec: dict) -> tuple[str, int | None, int] | None:
    """(bucket, id key or None, first-user key or 0) of a mix record with a bucket."""
    if not isinstance(rec.get("bucket"), str):
        return None
    rid = rec.get("id")
    return (rec["bucket"], id_key(rid) if isinstance(rid, str) else None,
            text_key(_first_user(rec.get("messages") if _is_msgs(rec.get("messages")) else [])))


class BucketLookup:
    """id -> bucket and first-user-turn -> bucket, from the mix stage's files.

    Kept as sorted 64-bit hashes with a bucket code each (16 bytes per mix record, not a dict of
    strings); the first mix record to name an id or a text wins."""

    def __init__(self, mix_dir: str | Path | None, pool: OrderedPool | None = None):
        """`pool`: workers that parse the mix files (the parent keeps only the keys)."""
        # typed arrays, not lists: 12 bytes a key and code instead of ~48 (at 1.2M records the lists held ~100 MB)
        ids, texts, id_codes, text_codes = array("Q"), array("Q"), array("i"), array("i")
        codes: dict[str, int] = {}
        for f in record_files(mix_dir):
            for bucket, ik, tk in record_rows(f, _lookup_keys, pool or OrderedPool(1)):
                code = codes.setdefault(bucket, len(codes))
                if ik is not None:
                    ids.append(ik)
                    id_codes.append(code)
                if tk:
                    texts.append(tk)
                    text_codes.append(code)
        self.names = list(codes)
        self.by_id = self._table(ids, id_codes)
        self.by_text = self._table(texts, text_codes)

    @staticmethod
    def _table(keys: array, codes: array) -> tuple[np.ndarray, np.ndarray]:
        uniq, first = np.unique(np.frombuffer(keys, np.uint64), return_index=True)  # first occurrence wins
        return uniq, np.frombuffer(codes, np.int32)[first] if len(codes) else np.zeros(0, np.int32)

    def __len__(self) -> int:
        return len(self.by_id[0])

    @staticmethod
    def _find(table: tuple[np.ndarray, np.ndarray], keys: np.ndarray) -> np.ndarray:
        uniq, codes = table
        if not uniq.size:
            return np.full(keys.size, -1, np.int32)
        pos = np.minimum(np.searchsorted(uniq, keys), uniq.size - 1)
        return np.where(uniq[pos] == keys, codes[pos], -1)

    def buckets(self, own: list[str | None], ids: list[str | None], texts: list[int]) -> list[str | None]:
        """Bucket of each row of a batch: its own, else by id, else by first user turn, else None."""
        by_id = self._find(self.by_id, np.array([id_key(i) if i else 0 for i in ids], np.uint64))
        by_text = self._find(self.by_text, np.array(texts, np.uint64))
        out: list[str | None] = []
        for b, has_id, ci, ct, t in zip(own, ids, by_id.tolist(), by_text.tolist(), texts):
            if b:
                out.append(b)
            elif has_id and ci >= 0:
                out.append(self.names[ci])
            elif t and ct >= 0:
                out.append(self.names[ct])
            else:
                out.append(None)
        return out

    def bucket(self, row: Row) -> str | None:
        return self.buckets([row.bucket], [row.id], [text_key(row.first_user)])[0]
