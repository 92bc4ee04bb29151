"""What a record contributes to dedup: its key text, quality score, source and exact hash.

Pure functions of one record dict, so every engine (local processes, Ray) derives the same values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xxhash

from ..core.records import iter_texts, prompt_messages, response_text
from ..core.text import dedup_key_text
from .shingle import Encoded

# the ASCII characters str.split() splits on
_SPACE = np.zeros(256, dtype=bool)
_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_MASK64 = (1 << 64) - 1


def _contents(msgs: list[dict]) -> list[str]:
    return [m.get("content") or "" for m in msgs if isinstance(m, dict)]


def key_text(rec: dict, key: str) -> str:
    """The text compared for duplicates: prompt, response, conversation or prompt_chosen."""
    if key == "prompt":
        parts = _contents(prompt_messages(rec))
    elif key == "response":
        parts = [response_text(rec)]
    elif key == "prompt_chosen":
        parts = _contents(prompt_messages(rec)) + [response_text(rec)]
    else:  # conversation: every message, and both answers of a preference pair
        parts = list(iter_texts(rec))
    return "\n".join(p for p in parts if isinstance(p, str) and p)


def conversation_text(rec: dict) -> str:
    """All text of a record (what decontamination searches)."""
    return "\n".join(t for t in iter_texts(rec) if isinstance(t, str) and t)


def quality_score(rec: dict, path: str) -> float:
    """The score under `scores.<path>` (e.g. judge.overall), or -inf when absent or not a number."""
    cur: Any = rec.get("scores")
    for part in path.split("."):
        if not isinstance(cur, dict):
            return -math.inf
        cur = cur.get(part)
    if isinstance(cur, bool) or not isinstance(cur, (int, float)) or math.isnan(cur):
        return -math.inf
    return float(cur)


def source_name(rec: dict) -> str:
    src = rec.get("source")
    return str(src.get("dataset", "")) if isinstance(src, dict) else ""


def exact_hash(text: str, salt: str = "") -> tuple[int, int]:
    """xxh3-128 of the normalised text (NFC, casefold, whitespace collapsed) as two uint64."""
    h = xxhash.xxh3_128_intdigest((salt + "\x1f" + dedup_key_text(text)).encode("utf-8", "surrogatepass"))
    return h >> 64, h & _MASK64


def exact_hashes(texts: list[str], salts: list[str], enc: Encoded) -> tuple[np.ndarray, np.ndarray]:
    """`exact_hash` of every text of a batch, as (hi, lo) uint64 arrays.

    For ASCII texts (NFC is the identity, casefold is lower-casing) the whitespace collapse runs in
    numpy over the batch buffer `enc` (already lower-cased): every space is dropped except one before
    each word run that is not its doc's first. Other texts take the scalar path.
    """
    buf, starts = enc.buf, enc.starts
    solid = ~_SPACE.take(buf, mode="clip")  # code points >= 256 (non-ASCII docs only) are not used
    run = solid.copy()
    run[1:] &= ~solid[:-1]
    rs = np.flatnonzero(run)
    first = np.zeros(len(rs) + 1, dtype=bool)      # each doc's first run (if it has one)
    first[np.searchsorted(rs, starts[:-1])] = True
    inner = rs[~first[:-1]] - 1                      # the byte before every other run
    solid[inner] = True
    out = buf.copy()
    out[inner] = 32
    # each doc's kept code points counted per doc (every doc ends in its newline, so no segment is empty), and
    # gathered by a mask: no 8-byte index per code point (~20 MB at a 2,048-record batch)
    cut = np.concatenate(([0], np.cumsum(np.add.reduceat(solid, starts[:-1], dtype=np.int64)))).tolist() \
        if len(starts) > 1 else [0]
    packed = out[solid].astype(np.uint8, copy=False).tobytes()  # exact for the ASCII docs read below
    digest = xxhash.xxh3_128_intdigest
    his, los = [], []
    for d, (text, salt, ascii) in enumerate(zip(texts, salts, enc.ascii.tolist())):
        if ascii:
            h = digest((salt + "\x1f").encode("utf-8") + packed[cut[d]:cut[d + 1]])
        else:
            h = digest((salt + "\x1f" + dedup_key_text(text)).encode("utf-8", "surrogatepass"))
        his.append(h >> 64)
        los.append(h & _MASK64)
    return np.array(his, dtype=np.uint64), np.array(los, dtype=np.uint64)


def record_id(rec: dict, fallback: str) -> str:
    rid = rec.get("id")
    return str(rid) if rid not in (None, "") else fallback
