"""Deterministic teacher routing: the same record id and seed always go to the same teacher(s).

Weighted sampling without replacement by Efraimidis-Spirakis keys: each teacher gets
key = -ln(u) / weight with u a hash of (seed, record id, teacher) in (0, 1); the k smallest keys
win. For k = 1 a teacher is chosen with probability weight / sum(weights), and no RNG state is
shared between records, so adding records or reordering input never changes earlier routes.
"""

from __future__ import annotations

import math

import xxhash


def unit_hash(*parts: object) -> float:
    """A uniform float in (0, 1) from the parts (xxh64, stable across runs and machines)."""
    h = xxhash.xxh64("\x1f".join(str(p) for p in parts).encode("utf-8")).intdigest()
    return (h + 0.5) / 2.0 ** 64


def route(record_id: str, seed: int, weights: dict[str, float], k: int = 1,
          exclude: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The k teachers for a record, best key first; teachers with weight 0 or excluded never win."""
    keys = []
    for name, w in weights.items():
        if w <= 0 or name in exclude:
            continue
        keys.append((-math.log(unit_hash(seed, record_id, name)) / w, name))
    keys.sort()
    return [name for _, name in keys[:k]]


def weights_for(bucket: str | None, default: dict[str, float],
                per_bucket: dict[str, dict[str, float]]) -> dict[str, float]:
    return per_bucket.get(bucket or "", default) if per_bucket else default


def sample_order(ids: list[str], seed: int) -> list[str]:
    """A deterministic pseudo-random order of ids (for samples that must not favour file order)."""
    return sorted(ids, key=lambda i: unit_hash(seed, "sample", i))
