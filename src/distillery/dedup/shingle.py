"""Word n-gram shingles as hashes, for a whole batch of texts at once.

Why this shape: building n-gram strings in Python is the cost centre of MinHash dedup, and after
that, making one Python string per token (see docs/dedup.md). So a whole batch is tokenised and
hashed in numpy over one array of code points: a token's hash is a polynomial hash of its code
points (prefix sums over the array, so every token costs a few vector ops) finished with fmix64,
and the n-gram hash is a position-weighted sum of token hashes. `shingle_hash32(" ".join(tokens))`
is a scalar, per-shingle reference of the same function, so plain
`datasketch.MinHash(hashfunc=shingle_hash32)` can be checked against the fast path.

Tokens are lower-cased `\\w+` runs (Python's Unicode `\\w`); characters of scripts written without
spaces (CJK, Thai, Lao, Khmer, Myanmar) are one token each. `tokenize` is the regex reference; the
batch path classifies code points with tables built from the same regexes (ASCII batches: a byte
table, since for ASCII `\\w` is exactly `[A-Za-z0-9_]`), and tests compare the two on random text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

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


# ---- token hash: polynomial over the token's code points mod 2**64, finished with fmix64
_P = 0x9E3779B97F4A7C15                       # odd, so it has an inverse mod 2**64
_P_INV = pow(_P, -1, 1 << 64)
_LEN_MIX = 0xC2B2AE3D27D4EB4F

# ASCII batches: byte tables for lower-casing and for `\w` (for ASCII exactly [A-Za-z0-9_])
_LOWER = np.arange(256, dtype=np.uint8)
_LOWER[ord("A"):ord("Z") + 1] += 32
_ASCII_WORD = np.zeros(256, dtype=bool)
for _lo, _hi in (("0", "9"), ("A", "Z"), ("a", "z"), ("_", "_")):
    _ASCII_WORD[ord(_lo):ord(_hi) + 1] = True
_RUN, _SINGLE = 1, 2                          # code point classes: part of a \\w run, a token on its own
_CP_CLASS: np.ndarray | None = None


def _codepoint_classes() -> np.ndarray:
    """Class of every code point (0 separator, _RUN, _SINGLE) from Python's own regexes, so the batch
    tokeniser cannot drift from `tokenize`. Built once per process (~0.07 s, 1.1 MB), on the first
    batch that is not all ASCII."""
    global _CP_CLASS
    if _CP_CLASS is None:
        # every code point as one string: decoding UTF-32 is ~20x faster than joining 1.1M chr() calls
        every = np.arange(0x110000, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")
        cls = np.zeros(0x110000, dtype=np.uint8)
        for m in _WORD_RE.finditer(every):
            cls[m.start():m.end()] = _RUN
        for m in re.finditer(f"[{_NOSPACE}]+", every):
            cls[m.start():m.end()] = _SINGLE
        _CP_CLASS = cls
    return _CP_CLASS


def _fmix64_int(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _MASK64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _MASK64
    return h ^ (h >> 33)


def token_hash(token: str) -> int:
    """Scalar reference of the token hash (tests and `shingle_hash32`; the batch path is vectorised)."""
    poly, pw = 0, 1
    for ch in token:
        poly = (poly + ord(ch) * pw) & _MASK64
        pw = (pw * _P) & _MASK64
    return _fmix64_int(poly ^ ((len(token) * _LEN_MIX) & _MASK64))


def token_hashes(tokens: list[str]) -> np.ndarray:
    return np.fromiter(map(token_hash, tokens), dtype=U64, count=len(tokens))


_POWERS: dict[int, np.ndarray] = {}


def _powers(base: int, n: int) -> np.ndarray:
    """base**0 .. base**(n-1) mod 2**64 (cached per process; `hash_spans` asks for a chunk's worth)."""
    pw = _POWERS.get(base)
    if pw is None or len(pw) < n:
        pw = np.full(max(n, 2 * _SPAN_CHUNK), base, dtype=U64)
        pw[0] = 1
        np.cumprod(pw, out=pw)
        _POWERS[base] = pw
    return pw[:n]


@dataclass
class Encoded:
    """A batch of texts as one lower-cased array of code points, one newline after each doc.

    All-ASCII batches (the common case) are a uint8 array lower-cased by a byte table; any other
    batch is lower-cased by `str.lower` and stored as uint32 (UTF-32). Doc d is
    `buf[starts[d]:starts[d + 1] - 1]`.
    """

    buf: np.ndarray        # uint8 or uint32 code points
    starts: np.ndarray     # int64, n + 1
    ascii: np.ndarray      # bool, n

    @classmethod
    def from_texts(cls, texts: list[str]) -> "Encoded":
        n = len(texts)
        ascii = np.fromiter((t.isascii() for t in texts), dtype=bool, count=n)
        starts = np.zeros(n + 1, dtype=np.int64)
        if ascii.all():  # one encode call, bytes are code points
            np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=n) + 1, out=starts[1:])
            buf = np.frombuffer("\n".join(texts).encode("ascii") + b"\n" if n else b"", dtype=np.uint8)
            return cls(_LOWER.take(buf), starts, ascii)
        low = [t.lower() for t in texts]  # str.lower, not a table: some characters lower to two
        np.cumsum(np.fromiter(map(len, low), dtype=np.int64, count=n) + 1, out=starts[1:])
        raw = ("\n".join(low) + "\n").encode("utf-32-le", "surrogatepass")  # JSON may hold lone surrogates
        return cls(np.frombuffer(raw, dtype=np.uint32), starts, ascii)


# code points hashed per step. A span's hash does not depend on where the step starts, so the prefix sums and the
# cached powers are a step's size (~2 MB each), not a batch's: at 2,048 records a step the whole batch took
# ~60 MB more at its peak, and each worker kept ~42 MB of powers between batches.
_SPAN_CHUNK = 1 << 18


def hash_spans(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """`token_hash` of every code-point span buf[s:e] (ascending, not overlapping), vectorised with prefix
    sums, a chunk of `_SPAN_CHUNK` code points at a time."""
    out = np.empty(len(s), U64)
    i = 0
    while i < len(s):
        lo = int(s[i])
        j = max(int(np.searchsorted(s, lo + _SPAN_CHUNK)), i + 1)     # the spans starting in this chunk
        out[i:j] = _hash_spans_from(buf[lo:int(e[j - 1])], s[i:j] - lo, e[i:j] - lo)
        i = j
    return out


def _hash_spans_from(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    n = int(e.max())
    prefix = np.zeros(n + 1, dtype=U64)
    np.multiply(buf[:n], _powers(_P, n), out=prefix[1:], dtype=U64)
    np.cumsum(prefix[1:], out=prefix[1:])
    poly = (prefix[e] - prefix[s]) * _powers(_P_INV, int(s.max()) + 1)[s]
    return fmix64(poly ^ ((e - s).astype(U64) * U64(_LEN_MIX)))


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
        return cls.from_encoded(Encoded.from_texts(texts))

    @classmethod
    def from_encoded(cls, enc: Encoded) -> "Batch":
        """Tokens as `tokenize` finds them: runs of `\\w` outside the no-space scripts, and every
        character of those scripts on its own."""
        if enc.buf.dtype == np.uint8:
            run, single = _ASCII_WORD.take(enc.buf), None
        else:
            kind = _codepoint_classes().take(enc.buf)
            run, single = kind == _RUN, kind == _SINGLE
        first = run.copy()
        first[1:] &= ~run[:-1]
        last = run.copy()
        last[:-1] &= ~run[1:]
        if single is not None:
            first |= single
            last |= single
        s, e = np.flatnonzero(first), np.flatnonzero(last) + 1
        # no token crosses a doc's trailing newline, so doc d's tokens are those starting in its span
        return cls(hash_spans(enc.buf, s, e), np.searchsorted(s, enc.starts).astype(np.int64))


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
