"""Deterministic weighted sampling of one phase from bucketed record ids.

Targets: weights are normalised and turned into integer counts by the largest-remainder method
(they sum exactly to the phase size). Each bucket gives at most its capped pool (times
`max_repeat` when upsampling is allowed); a shortfall is reported, optionally redistributed.
Which records: the ones with the smallest hash of (seed, phase, id), so the choice does not
depend on input order, and a bigger phase is a superset of a smaller one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import xxhash

from .config import BucketPolicy, PhaseParams


def hash_key(*parts: object) -> int:
    return xxhash.xxh3_64_intdigest("\x1f".join(map(str, parts)).encode("utf-8"))


def largest_remainder(weights: dict[str, float], total: int) -> dict[str, int]:
    """Integer counts proportional to weights that sum exactly to total (ties broken by name)."""
    s = sum(weights.values())
    raw = {b: total * w / s for b, w in weights.items()}
    counts = {b: math.floor(v) for b, v in raw.items()}
    left = total - sum(counts.values())
    for b in sorted(raw, key=lambda b: (-(raw[b] - counts[b]), b))[:left]:
        counts[b] += 1
    return counts


@dataclass
class BucketPlan:
    bucket: str
    weight: float
    target: int
    available: int
    limit: int
    realised: int = 0
    repeats: int = 0

    @property
    def short(self) -> bool:
        return self.realised < self.target


@dataclass
class PhasePlan:
    name: str
    size: int
    buckets: dict[str, BucketPlan] = field(default_factory=dict)

    @property
    def realised(self) -> int:
        return sum(b.realised for b in self.buckets.values())


def plan_phase(name: str, phase: PhaseParams, pools: dict[str, int], policies: dict[str, BucketPolicy],
               redistribute: bool) -> PhasePlan:
    """Decide how many records each bucket gives (pure counting; no records touched)."""
    weights = {b: w for b, w in sorted(phase.weights.items()) if w > 0}
    targets = largest_remainder(weights, phase.size)
    plan = PhasePlan(name, phase.size)
    for b, w in weights.items():
        pol = policies.get(b) or BucketPolicy()
        avail = pools.get(b, 0)
        pool = min(avail, pol.cap) if pol.cap else avail
        limit = math.floor(pool * pol.max_repeat) if pol.allow_upsample else pool
        plan.buckets[b] = BucketPlan(b, w / sum(weights.values()), targets[b], avail, limit,
                                     realised=min(targets[b], limit))
    while redistribute:
        missing = phase.size - plan.realised
        open_ = {b: p.weight for b, p in plan.buckets.items() if p.realised < p.limit}
        if missing <= 0 or not open_:
            break
        extra = largest_remainder(open_, missing)
        for b, n in extra.items():
            p = plan.buckets[b]
            p.realised = min(p.limit, p.realised + n)
    return plan


def select(ids: np.ndarray, n: int, seed: int, phase: str) -> list[tuple[str, int]]:
    """(id, copy number) pairs: the n ids with the smallest phase hash, cycling when n > len(ids).

    Copy 0 is the record itself; copies 1.. only happen with upsampling.
    """
    if n <= 0 or len(ids) == 0:
        return []
    keys = np.fromiter((hash_key(seed, phase, i) for i in ids), dtype=np.uint64, count=len(ids))
    order = ids[np.lexsort((ids, keys))]
    return [(str(order[k % len(order)]), k // len(order)) for k in range(n)]


def pool_ids(ids: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """A bucket's capped pool: the `cap` ids with the smallest seed hash (all when uncapped)."""
    if not cap or len(ids) <= cap:
        return ids
    keys = np.fromiter((hash_key(seed, "cap", i) for i in ids), dtype=np.uint64, count=len(ids))
    return ids[np.lexsort((ids, keys))][:cap]


def shuffle_order(items: list[tuple[str, int]], seed: int, phase: str) -> list[tuple[str, int]]:
    """Deterministic shuffle of the chosen (id, copy) pairs, independent of input order."""
    return sorted(items, key=lambda t: (hash_key(seed, phase, "order", t[0], t[1]), t[0], t[1]))
