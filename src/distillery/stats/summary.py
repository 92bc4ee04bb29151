"""Exact length histograms, and the percentiles, truncation shares and max_length read from them.

Token lengths are small non-negative integers, so an exact histogram (count per length) takes the
place of the list of lengths: memory is bounded by the longest sequence, not the number of rows,
histograms from workers or batches add up, and every figure equals what numpy gives on the list
(`describe(list)` is `describe(Hist.of(list))`; tests compare both ways).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np


class Hist:
    """counts[n] = how many sequences are n tokens long."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts = np.zeros(0, np.int64)

    @classmethod
    def of(cls, values: Iterable[int]) -> "Hist":
        h = cls()
        h.add(np.fromiter(values, np.int64))
        return h

    def add(self, values: np.ndarray) -> None:
        """Add a batch of lengths (a numpy int array)."""
        if values.size:
            self.merge_counts(np.bincount(values))

    def merge_counts(self, counts: np.ndarray) -> None:
        if counts.size > self.counts.size:
            counts = counts.copy()
            counts[: self.counts.size] += self.counts
            self.counts = counts.astype(np.int64, copy=False)
        else:
            self.counts[: counts.size] += counts

    def merge(self, other: "Hist") -> None:
        self.merge_counts(other.counts)

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def quantile(self, p: float) -> int:
        """np.percentile(values, p, method="inverted_cdf"), computed the way numpy does: the value at
        sorted index ceil(n*q) - 1, q = p / 100 in float64 (nearest rank: an observed length)."""
        n = self.n
        idx = n * np.true_divide(p, 100) - 1
        prev = math.floor(idx)
        k = max(0, prev if idx - prev == 0 else prev + 1)
        return int(np.searchsorted(np.cumsum(self.counts), k, side="right"))

    def over(self, limit: int) -> int:
        """How many sequences are longer than `limit`."""
        return int(self.counts[limit + 1:].sum())


def _hist(values: "Hist | Iterable[int]") -> Hist:
    return values if isinstance(values, Hist) else Hist.of(values)


def describe(values: "Hist | Iterable[int]", candidates: list[int] = ()) -> dict[str, Any]:
    """count, mean, p50/p95/p99 (nearest rank, so each is a real observed length), max, and the share
    of sequences longer than each candidate max_length (those a trainer would truncate)."""
    h = _hist(values)
    n = h.n
    if n == 0:
        return {"count": 0}
    nz = np.flatnonzero(h.counts)
    total = int(np.dot(np.arange(h.counts.size, dtype=np.int64), h.counts))   # exact: integers
    out: dict[str, Any] = {"count": n, "mean": round(total / n, 2), "min": int(nz[0])}
    for p in (50, 95, 99):
        out[f"p{p}"] = h.quantile(p)
    out["max"] = int(nz[-1])
    if candidates:
        out["truncated_share"] = {str(c): round(h.over(c) / n, 6) for c in candidates}
    return out


def recommend_max_length(lengths: "Hist | Iterable[int]", percentile: float, round_to: int) -> int:
    """The percentile of full sequence lengths, rounded up to a multiple of round_to."""
    h = _hist(lengths)
    if h.n == 0:
        return 0
    p = h.quantile(percentile)
    return max(round_to, math.ceil(p / round_to) * round_to)


def histogram(lengths: "Hist | Iterable[int]", bin_width: int) -> list[dict[str, int]]:
    """Rows {tokens: bin start, count} over every bin from 0 to the longest sequence (dvc plots)."""
    h = _hist(lengths)
    nz = np.flatnonzero(h.counts)
    if nz.size == 0:
        return []
    c = h.counts[: nz[-1] + 1]
    counts = np.bincount(np.arange(c.size) // bin_width, weights=c).astype(np.int64)
    return [{"tokens": int(i * bin_width), "count": int(x)} for i, x in enumerate(counts)]
