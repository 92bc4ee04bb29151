"""MinHash signature matrix for a batch, LSH band keys, and the banding choice.

The permutations are datasketch's own `affine32` scheme (seeded `RandomState`, odd `a`, input
pre-mixed with fmix32), taken from `datasketch.MinHash` itself, so a row of `signatures` equals
`MinHash(num_perm, seed, hashfunc=shingle_hash32)` updated with the same shingles.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .shingle import MULTIPLIERS, U64, fmix64

EMPTY = np.uint32(0xFFFFFFFF)
_BLOCK = 4096  # shingles per step: bounds the (shingles x num_perm) workspace of huge records


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) uint32 arrays of datasketch's affine32 scheme for (num_perm, seed)."""
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return np.ascontiguousarray(a, dtype=np.uint32), np.ascontiguousarray(b, dtype=np.uint32)


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
    """
    a, b = permutations(num_perm, seed)
    if used is not None:
        a, b = a[:used], b[:used]
        num_perm = used
    n = len(offsets) - 1
    sig = np.full((n, num_perm), EMPTY, dtype=np.uint32)
    mixed = fmix32(sh.astype(np.uint32, copy=False))
    buf = np.empty((_BLOCK, num_perm), dtype=np.uint32)
    tmp = np.empty(num_perm, dtype=np.uint32)
    for d in range(n):
        s, e = offsets[d], offsets[d + 1]
        if s == e:
            continue
        row = sig[d]
        for lo in range(s, e, _BLOCK):
            h = mixed[lo:min(e, lo + _BLOCK)]
            w = buf[: len(h)]
            np.multiply(h[:, None], a, out=w)
            np.add(w, b, out=w)
            w.min(axis=0, out=tmp)
            np.minimum(row, tmp, out=row)
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
