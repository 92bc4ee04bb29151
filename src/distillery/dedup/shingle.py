"""Word n-gram shingles as hashes, for a whole batch of texts at once.

Why this shape: building n-gram strings in Python is the cost centre of MinHash dedup
(see docs/dedup.md). Instead every token is hashed once (xxh3-64, C-level `map`) and the
n-gram hash is a position-weighted sum of token hashes, computed for the whole batch with a few
numpy ops. `shingle_hash32(" ".join(tokens))` is the per-shingle reference of the same function,
so plain `datasketch.MinHash(hashfunc=shingle_hash32)` can be checked against the fast path.

Scripts without spaces (CJK, Thai, Lao, Khmer, Myanmar) are tokenised one character per token;
everything else is lower-cased `\\w+` runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import xxhash

_NOSPACE = "\u2e80-\u2fdf\u3040-\u30ff\u3100-\u312f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff" \
           "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff"
_WORD_RE = re.compile(r"\w+")
_NOSPACE_RE = re.compile(f"[{_NOSPACE}]")
_MIXED_RE = re.compile(f"[{_NOSPACE}]|[^\\W{_NOSPACE}]+")

U64 = np.uint64
_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


# odd per-position multipliers of the n-gram combine (fixed: changing them changes every signature)
MULTIPLIERS = np.array([_splitmix64(k + 1) | 1 for k in range(64)], dtype=U64)
MAX_WINDOW = len(MULTIPLIERS)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens; characters of scripts written without spaces are tokens."""
    low = text.lower()
    if _NOSPACE_RE.search(low):
        return _MIXED_RE.findall(low)
    return _WORD_RE.findall(low)


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 64-bit finaliser (wrapping uint64 arithmetic)."""
    h = h ^ (h >> U64(33))
    h = h * U64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> U64(33))
    h = h * U64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> U64(33))


def token_hashes(tokens: list[str]) -> np.ndarray:
    return np.fromiter(map(xxhash.xxh3_64_intdigest, map(str.encode, tokens)), dtype=U64, count=len(tokens))


@dataclass
class Batch:
    """Token hashes of a batch of texts, flat, with doc offsets (doc d = flat[off[d]:off[d+1]])."""

    flat: np.ndarray
    offsets: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def from_texts(cls, texts: list[str]) -> "Batch":
        toks = [tokenize(t) for t in texts]
        lens = np.fromiter((len(t) for t in toks), dtype=np.int64, count=len(toks))
        offsets = np.zeros(len(toks) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        flat = token_hashes([w for t in toks for w in t])
        return cls(flat, offsets)


def window_hashes(batch: Batch, n: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every full window of n tokens, with the doc index of each window."""
    if n > MAX_WINDOW:
        raise ValueError(f"n-gram size {n} > {MAX_WINDOW}")
    flat, off = batch.flat, batch.offsets
    total = len(flat)
    if total < n:
        return np.zeros(0, U64), np.zeros(0, np.int64)
    m = total - n + 1
    with np.errstate(over="ignore"):
        acc = flat[:m] * MULTIPLIERS[0]
        for k in range(1, n):
            acc += flat[k:k + m] * MULTIPLIERS[k]
    lens = batch.lengths
    doc = np.repeat(np.arange(len(lens)), lens)[:m]
    valid = np.arange(m) + n <= off[1:][doc]
    return fmix64(acc[valid]), doc[valid]


def whole_hashes(batch: Batch, docs: np.ndarray) -> np.ndarray:
    """64-bit hash of the whole token sequence of each listed doc (length <= MAX_WINDOW)."""
    out = np.zeros(len(docs), U64)
    with np.errstate(over="ignore"):
        for i, d in enumerate(docs):
            t = batch.flat[batch.offsets[d]:batch.offsets[d + 1]]
            out[i] = (t * MULTIPLIERS[: len(t)]).sum(dtype=U64)
    return fmix64(out)


def shingles(batch: Batch, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique 32-bit shingle hashes per doc: (flat uint32, offsets).

    A doc with 1..n-1 tokens has one shingle (its whole sequence); an empty doc has none.
    """
    h, doc = window_hashes(batch, n)
    lens = batch.lengths
    short = np.flatnonzero((lens > 0) & (lens < n))
    if len(short):
        h = np.concatenate([h, whole_hashes(batch, short)])
        doc = np.concatenate([doc, short])
    h32 = (h >> U64(32)).astype(np.uint64)
    keyed = (doc.astype(np.uint64) << U64(32)) | h32
    keyed.sort()  # explicit sort + run mask: np.unique's hash path is ~50x slower here
    if len(keyed):
        keyed = keyed[np.concatenate([[True], keyed[1:] != keyed[:-1]])]
    sh = (keyed & U64(0xFFFFFFFF)).astype(np.uint32)
    counts = np.bincount((keyed >> U64(32)).astype(np.int64), minlength=len(lens))
    offsets = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return sh, offsets


def shingle_hash32(shingle: bytes | str) -> int:
    """Reference (slow) hash of one shingle string `" ".join(tokens)`; equals the fast path."""
    if isinstance(shingle, bytes):
        shingle = shingle.decode("utf-8")
    toks = tokenize(shingle)
    t = token_hashes(toks)
    with np.errstate(over="ignore"):
        acc = (t * MULTIPLIERS[: len(t)]).sum(dtype=U64)
    return int(fmix64(np.array([acc], dtype=U64))[0] >> U64(32))


def shingle_strings(text: str, n: int) -> list[str]:
    """The shingles of a text as strings (reference path for tests and the benchmark)."""
    toks = tokenize(text)
    if not toks:
        return []
    if len(toks) < n:
        return [" ".join(toks)]
    return [" ".join(toks[i:i + n]) for i in range(len(toks) - n + 1)]
