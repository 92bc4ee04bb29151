"""Percentiles, truncation shares, the recommended max_length and histogram rows."""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np


def describe(values: Iterable[int], candidates: list[int] = ()) -> dict[str, Any]:
    """count, mean, p50/p95/p99 (nearest rank, so each is a real observed length), max, and the share
    of sequences longer than each candidate max_length (those a trainer would truncate)."""
    a = np.asarray(list(values), dtype=np.int64)
    if a.size == 0:
        return {"count": 0}
    out: dict[str, Any] = {"count": int(a.size), "mean": round(float(a.mean()), 2), "min": int(a.min())}
    for p in (50, 95, 99):
        out[f"p{p}"] = int(np.percentile(a, p, method="inverted_cdf"))
    out["max"] = int(a.max())
    if candidates:
        out["truncated_share"] = {str(c): round(float((a > c).mean()), 6) for c in candidates}
    return out


def recommend_max_length(lengths: Iterable[int], percentile: float, round_to: int) -> int:
    """The percentile of full sequence lengths, rounded up to a multiple of round_to."""
    a = np.asarray(list(lengths), dtype=np.int64)
    if a.size == 0:
        return 0
    p = int(np.percentile(a, percentile, method="inverted_cdf"))
    return max(round_to, math.ceil(p / round_to) * round_to)


def histogram(lengths: Iterable[int], bin_width: int) -> list[dict[str, int]]:
    """Rows {tokens: bin start, count} over every bin from 0 to the longest sequence (dvc plots)."""
    a = np.asarray(list(lengths), dtype=np.int64)
    if a.size == 0:
        return []
    counts = np.bincount(a // bin_width)
    return [{"tokens": int(i * bin_width), "count": int(c)} for i, c in enumerate(counts)]
