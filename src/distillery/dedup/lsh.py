"""Candidate pairs from LSH band collisions, and pair verification.

Docs are referred to by their *rank* in the keep-policy order (see `cluster.keep_order`), which
depends only on record content, so any engine that groups the same band keys emits the same pairs.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np


def _pairs_in_runs(members: np.ndarray, starts: np.ndarray, sizes: np.ndarray, all_pairs_max: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Edges inside each run of `members` (sorted ascending within a run).

    Runs up to `all_pairs_max` members give every pair; larger ones a star from the first member
    plus a chain of neighbours (linear in size; such buckets are near-identical families).
    """
    us, vs = [], []
    small = sizes <= all_pairs_max
    for s in np.unique(sizes[small]):
        st = starts[small & (sizes == s)]
        iu, iv = np.triu_indices(int(s), k=1)
        us.append(members[st[:, None] + iu[None, :]].ravel())
        vs.append(members[st[:, None] + iv[None, :]].ravel())
    for st, s in zip(starts[~small], sizes[~small]):
        run = members[st:st + s]
        us += [np.full(s - 1, run[0]), run[1:-1]]
        vs += [run[1:], run[2:]]
    if not us:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(us).astype(np.int64), np.concatenate(vs).astype(np.int64)


def bucket_pairs(keys: np.ndarray, ranks: np.ndarray, all_pairs_max: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (u < v, by rank) of docs sharing a key in one band column. `keys` and `ranks` align. When the
    ranks ascend (the local engine passes its rows in rank order), a stable sort by key alone keeps every run
    in rank order: one sort, and none of lexsort's extra N-sized arrays in the worker that pairs a band."""
    if len(ranks) < 2 or bool(np.all(ranks[1:] > ranks[:-1])):
        order = np.argsort(keys, kind="stable")
    else:
        order = np.lexsort((ranks, keys))
    k, m = keys[order], ranks[order]
    if len(k) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    brk = np.flatnonzero(k[1:] != k[:-1]) + 1
    starts = np.concatenate([[0], brk])
    sizes = np.diff(np.concatenate([starts, [len(k)]]))
    multi = sizes > 1
    return _pairs_in_runs(m, starts[multi], sizes[multi], all_pairs_max)


def band_codes(keys: np.ndarray, ranks: np.ndarray, all_pairs_max: int = 64, parts: int = 1) -> np.ndarray:
    """One band's candidate pairs as int64 codes u * 2**31 + v (u < v, by rank); bands are independent, so
    each can be paired in its own process. `parts` (a power of two) pairs the keys in that many slices by
    their top bits (keys are hashes; equal keys share a slice): the sort's arrays are a slice's size."""
    if parts <= 1:
        u, v = bucket_pairs(keys, ranks, all_pairs_max)
        return u * np.int64(1 << 31) + v
    bits = int(parts).bit_length() - 1
    assert 1 << bits == parts, "parts must be a power of two"
    top = (keys >> np.uint64(64 - bits)).astype(np.uint8 if bits <= 8 else np.int64)
    out = []
    for part in range(parts):
        sel = top == part
        u, v = bucket_pairs(keys[sel], ranks[sel], all_pairs_max)
        del sel
        out.append(u * np.int64(1 << 31) + v)
    return np.concatenate(out)


def merge_codes(band_code_arrays: Iterable[np.ndarray]) -> np.ndarray:
    """Unique candidate pairs over all bands' codes, as an (E x 2) int64 array of ranks, sorted."""
    chunks = [c for c in band_code_arrays if len(c)]
    if not chunks:
        return np.zeros((0, 2), np.int64)
    codes = np.concatenate(chunks)
    codes.sort()  # sort + run mask (np.unique takes a much slower hash path on large int arrays)
    codes = codes[np.concatenate([[True], codes[1:] != codes[:-1]])]
    return np.stack([codes >> 31, codes & ((1 << 31) - 1)], axis=1)


def candidate_pairs(band_columns: Iterable[np.ndarray], ranks: np.ndarray, all_pairs_max: int = 64) -> np.ndarray:
    """Unique candidate pairs over all bands, as an (E x 2) int64 array of ranks, sorted. `band_columns`
    yields each band's keys aligned with `ranks` (a (docs x bands) array's `.T`, or one band at a time from
    disk)."""
    return merge_codes(band_codes(col, ranks, all_pairs_max) for col in band_columns)


def jaccard_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard of two sorted unique arrays."""
    return float(jaccard_many([a], [b])[0])


def jaccard_many(a_sets: list[np.ndarray], b_sets: list[np.ndarray]) -> np.ndarray:
    """Exact Jaccard of aligned lists of sorted unique uint32 arrays, in a few vectorised calls.

    Prefixing each hash with its pair number makes the concatenation of all b sets one sorted array,
    so a single `searchsorted` finds every intersection.
    """
    n = len(a_sets)
    if n == 0:
        return np.zeros(0)
    la = np.fromiter(map(len, a_sets), dtype=np.int64, count=n)
    lb = np.fromiter(map(len, b_sets), dtype=np.int64, count=n)
    pair = np.arange(n, dtype=np.uint64)
    pa = np.repeat(pair, la)
    ka = (pa << np.uint64(32)) | np.concatenate(a_sets).astype(np.uint64)
    kb = (np.repeat(pair, lb) << np.uint64(32)) | np.concatenate(b_sets).astype(np.uint64)
    inter = np.zeros(n, np.int64)
    if len(ka) and len(kb):
        idx = np.minimum(np.searchsorted(kb, ka), len(kb) - 1)
        hit = kb[idx] == ka
        inter = np.bincount(pa[hit].astype(np.int64), minlength=n)
    union = la + lb - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)
