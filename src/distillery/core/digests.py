"""Record ids as 16-byte digests, and a compact set of them.

Why: a stage that checks every record id against the ones it has seen (mix, the generation readers)
would otherwise hold a Python set of id strings, ~120 bytes an id: at 1.2M records that was most of
score's growth in memory. A digest is 16 bytes in a sorted numpy run, and lookups are one vectorised
search per block of records.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import xxhash


def id_digest(rid: str) -> bytes:
    """The xxh3-128 of an id (ids with lone surrogates included)."""
    return xxhash.xxh3_128_digest(rid.encode("utf-8", "surrogatepass"))


class DigestSet:
    """A set of 16-byte id digests in sorted numpy runs (log-structured: a new run per block, runs of
    similar size merged), 16 bytes an id instead of a Python set's ~100; lookups are vectorised per block."""

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []

    def contains(self, d: np.ndarray) -> np.ndarray:
        found = np.zeros(len(d), dtype=bool)
        for run in self.runs:
            pos = np.minimum(np.searchsorted(run, d), len(run) - 1)
            found |= run[pos] == d
        return found

    def add(self, d: np.ndarray) -> None:
        """Add digests that are not in the set yet (and unique among themselves)."""
        if len(d) == 0:
            return
        self.runs.append(np.sort(d))
        while len(self.runs) > 1 and len(self.runs[-2]) <= 2 * len(self.runs[-1]):
            b, a = self.runs.pop(), self.runs.pop()
            self.runs.append(np.sort(np.concatenate((a, b)), kind="stable"))   # timsort: merges two runs

    def first_seen(self, digests: Iterable[bytes]) -> list[bool]:
        """For a block of digests in input order: True where the digest is neither in the set nor earlier in
        the block (the first occurrence wins); those are added."""
        block = list(digests)
        if not block:
            return []
        known = self.contains(np.array(block, dtype="S16"))
        new: dict[bytes, None] = {}
        out = []
        for d, k in zip(block, known.tolist()):
            first = not k and d not in new
            if first:
                new[d] = None
            out.append(first)
        self.add(np.array(list(new), dtype="S16"))
        return out
