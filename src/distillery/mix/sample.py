"""Deterministic weighted sampling of one phase from bucketed record ids.

Targets: weights are normalised and turned into integer counts by the largest-remainder method
(they sum exactly to the phase size). Each bucket gives at most its capped pool (times
`max_repeat` when upsampling is allowed); a shortfall is reported, optionally redistributed.
Which records: the ones with the smallest hash of (seed, phase, id), so the choice does not
depend on input order, and a bigger phase is a superset of a smaller one. Records are numbers into
the arrays the mix stage keeps (see run.py); ties of the 64-bit hash are broken by the id digest.
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


def follow_data_size(phase: PhaseParams, pools: dict[str, int], policies: dict[str, BucketPolicy],
                     redistribute: bool) -> int:
    """The size of a mix whose `size` is null ("follow the data"): the largest size its weights allow
    without upsampling.

    With `redistribute_shortfall` that is every eligible record of the weighted buckets once (each bucket's
    pool, within its cap): short buckets give all they have and the others fill in, so nothing is left
    over. Without it the weights are exact, so the scarcest bucket sets the size: the largest size whose
    targets every weighted bucket that has records can meet from its own (capped) pool.
    """
    weights = {b: w for b, w in sorted(phase.weights.items()) if w > 0}
    capped = {}
    for b in weights:
        pol = policies.get(b) or BucketPolicy()
        avail = pools.get(b, 0)
        capped[b] = min(avail, pol.cap) if pol.cap else avail
    if redistribute:
        return sum(capped.values())
    have = {b: n for b, n in capped.items() if n > 0}
    if not have:
        return 0
    total_w = sum(weights.values())
    size = min(math.floor(n * total_w / weights[b]) for b, n in have.items())
    while size > 0:
        targets = largest_remainder(weights, size)
        if all(targets[b] <= n for b, n in have.items()):
            break
        size -= 1
    return size


def plan_phase(name: str, phase: PhaseParams, pools: dict[str, int], policies: dict[str, BucketPolicy],
               redistribute: bool, size: int | None = None) -> PhasePlan:
    """Decide how many records each bucket gives (pure counting; no records touched). `size` overrides
    `phase.size`; a null size follows the data (`follow_data_size`)."""
    if size is None:
        size = phase.size if phase.size is not None else follow_data_size(phase, pools, policies, redistribute)
    weights = {b: w for b, w in sorted(phase.weights.items()) if w > 0}
    targets = largest_remainder(weights, size)
    plan = PhasePlan(name, size)
    for b, w in weights.items():
        pol = policies.get(b) or BucketPolicy()
        avail = pools.get(b, 0)
        pool = min(avail, pol.cap) if pol.cap else avail
        limit = math.floor(pool * pol.max_repeat) if pol.allow_upsample else pool
        plan.buckets[b] = BucketPlan(b, w / sum(weights.values()), targets[b], avail, limit,
                                     realised=min(targets[b], limit))
    while redistribute:
        missing = size - plan.realised
        open_ = {b: p.weight for b, p in plan.buckets.items() if p.realised < p.limit}
        if missing <= 0 or not open_:
            break
        extra = largest_remainder(open_, missing)
        for b, n in extra.items():
            p = plan.buckets[b]
            p.realised = min(p.limit, p.realised + n)
    return plan


def ranked(idx: np.ndarray, keys: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """The record numbers `idx` ordered by (keys, tiebreak) of each: a hash of the id, then a digest of it."""
    if len(idx) == 0:
        return idx
    return idx[np.lexsort((tiebreak[idx], keys[idx]))]


def capped_pool(idx: np.ndarray, cap: int | None, cap_keys: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """A bucket's capped pool: the `cap` records with the smallest (seed, "cap", id) hash (all when uncapped)."""
    if not cap or len(idx) <= cap:
        return idx
    return ranked(idx, cap_keys, tiebreak)[:cap]


def draw(pool: np.ndarray, n: int, keys: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """How many times each record of `pool` is drawn when `n` are taken: in the order of the smallest
    (seed, phase, id) hash, cycling when n > len(pool). Copy 0 is the record itself; copies 1.. only
    happen with upsampling. Aligned with `pool`."""
    times = np.zeros(len(pool), dtype=np.int64)
    if n <= 0 or len(pool) == 0:
        return times
    full, rest = divmod(n, len(pool))
    times += full
    if rest:
        order = np.lexsort((tiebreak[pool], keys[pool]))
        times[order[:rest]] += 1
    return times
