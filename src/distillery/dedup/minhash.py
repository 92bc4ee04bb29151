"""MinHash signature matrix for a batch, LSH band keys, and the banding choice.

The permutations are datasketch's `affine32` scheme (seeded legacy `RandomState`: odd `a`, then `b`;
input pre-mixed with fmix32), so a row of `signatures` equals
`MinHash(num_perm, seed, hashfunc=shingle_hash32)` updated with the same shingles (tested). They are
drawn here rather than read from a `MinHash` because importing datasketch pulls in scipy (~1.4 s).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .shingle import MULTIPLIERS, U64, fmix64

EMPTY = np.uint32(0xFFFFFFFF)
_BLOCK = 1 << 14  # shingles per step: bounds the (num_perm x shingles) workspace (8 MiB at 128 perms)


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) uint32 arrays of datasketch's affine32 scheme for (num_perm, seed)."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def signatures(sh: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int, used: int | None = None
               ) -> np.ndarray:
    """(docs x num_perm) uint32 MinHash signatures of per-doc shingle-hash sets.

    `used` < num_perm computes only the first `used` columns (what the LSH bands read when pairs are
    verified exactly); they equal the first `used` values of datasketch's `MinHash(num_perm)`.
    A doc without shingles gets the all-0xFFFFFFFF signature (datasketch's empty MinHash).

    Consecutive docs are packed into blocks of up to `_BLOCK` shingles; one (perms x block) affine
    transform and one `minimum.reduceat` along contiguous rows give all their signatures (4x faster
    than a loop over docs). A doc longer than a block is folded block by block.
    """
    a, b = permutations(num_perm, seed)
    if used is not None:
        a, b = a[:used], b[:used]
    k = len(a)
    a, b = a[:, None], b[:, None]
    starts, ends = offsets[:-1], offsets[1:]
    sig = np.full((len(starts), k), EMPTY, dtype=np.uint32)
    mixed = fmix32(sh.astype(np.uint32, copy=False))
    docs_left = np.flatnonzero(ends > starts)
    ends_left = ends[docs_left]
    buf = np.empty((k, _BLOCK), dtype=np.uint32)

    def affine(lo: int, hi: int) -> np.ndarray:
        w = buf[:, : hi - lo]
        np.multiply(a, mixed[None, lo:hi], out=w)
        np.add(w, b, out=w)
        return w

    i = 0
    while i < len(docs_left):
        lo = int(starts[docs_left[i]])
        j = max(int(np.searchsorted(ends_left, lo + _BLOCK, side="right")), i + 1)
        docs = docs_left[i:j]
        hi = int(ends[docs[-1]])
        if hi - lo <= _BLOCK:
            sig[docs] = np.minimum.reduceat(affine(lo, hi), starts[docs] - lo, axis=1).T
        else:  # a single doc longer than a block
            row = sig[docs[0]]
            for s in range(lo, hi, _BLOCK):
                np.minimum(row, affine(s, min(hi, s + _BLOCK)).min(axis=1), out=row)
        i = j
    return sig


def band_keys(sig: np.ndarray, bands: int, rows: int, salt: np.ndarray | None = None) -> np.ndarray:
    """(docs x bands) uint64 bucket keys: a hash of each band's `rows` values and the band number.

    `salt` (one uint64 per doc) separates groups that must never match (per-source dedup).
    """
    n = sig.shape[0]
    keys = np.empty((n, bands), dtype=U64)
    with np.errstate(over="ignore"):
        for bi in range(bands):
            block = sig[:, bi * rows:(bi + 1) * rows].astype(U64)
            acc = np.full(n, U64(bi + 1) * MULTIPLIERS[63], dtype=U64)
            for j in range(rows):
                acc += block[:, j] * MULTIPLIERS[j]
            if salt is not None:
                acc ^= salt
            keys[:, bi] = fmix64(acc)
    return keys


def candidate_probability(j: float | np.ndarray, bands: int, rows: int):
    """P(two docs with Jaccard j share at least one band) = 1 - (1 - j^r)^b."""
    return 1.0 - (1.0 - np.asarray(j, dtype=float) ** rows) ** bands


def choose_banding(threshold: float, num_perm: int, recall: float) -> tuple[int, int]:
    """Fewest false candidates (area under the S-curve below the threshold) among the (b, r) whose
    P(candidate | J = threshold) >= recall. Unlike datasketch's optimum, which centres the S-curve on
    the threshold (~40% recall there), this keeps pairs at the threshold; verification drops the rest."""
    xs = np.linspace(0.0, threshold, 201)
    best: tuple[float, int, int] | None = None
    for r in range(1, num_perm + 1):
        for b in range(1, num_perm // r + 1):
            if candidate_probability(threshold, b, r) < recall:
                continue
            fp = float(np.trapezoid(candidate_probability(xs, b, r), xs))
            if best is None or fp < best[0] - 1e-12:
                best = (fp, b, r)
            break  # more bands only add false candidates
    if best is None:
        return num_perm, 1
    return best[1], best[2]


def estimate(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Row-wise MinHash Jaccard estimate (share of equal slots)."""
    return (sig_a == sig_b).mean(axis=-1)
