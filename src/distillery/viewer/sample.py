"""Seeded, order-independent sampling with a fixed memory bound.

An item is kept when its hash is among the k smallest of its group (bottom-k sampling, the
hash-based form of reservoir sampling): the sample is uniform, does not depend on the order the
files are read in, and holds at most k items per group whatever the input size. Groups themselves
are capped the same way (the `max_groups` groups with the smallest hashes get examples), while the
count of every group is kept.
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Any, Callable, Hashable

import xxhash


def stable_hash(seed: int, key: str) -> int:
    """64-bit hash of `key` under `seed` (xxh3); lone surrogates in ids are hashed as they are."""
    return xxhash.xxh3_64_intdigest(key.encode("utf-8", "surrogatepass"), seed=seed & 0xFFFFFFFFFFFFFFFF)


class BottomK:
    """The k items with the smallest (hash, key)."""

    __slots__ = ("k", "ranks", "views")

    def __init__(self, k: int):
        self.k = k
        self.ranks: list[tuple[int, str]] = []
        self.views: dict[str, Any] = {}

    def wants(self, rank: tuple[int, str]) -> bool:
        if self.k <= 0 or rank[1] in self.views:
            return False
        return len(self.ranks) < self.k or rank < self.ranks[-1]

    def add(self, rank: tuple[int, str], make: Callable[[], Any]) -> bool:
        """Keep the item when it ranks among the k smallest; `make()` builds its view only then."""
        if not self.wants(rank):
            return False
        bisect.insort(self.ranks, rank)
        self.views[rank[1]] = make()
        if len(self.ranks) > self.k:
            _, dropped = self.ranks.pop()
            del self.views[dropped]
        return True

    def items(self) -> list[Any]:
        """The kept views in rank order (a deterministic order)."""
        return [self.views[key] for _, key in self.ranks]


def _group_key(group: Hashable) -> str:
    return "\x1f".join(map(str, group)) if isinstance(group, tuple) else str(group)


class GroupedSample:
    """Counts per group (all groups) and a bottom-k sample of items per group (at most `max_groups` groups)."""

    def __init__(self, k: int, max_groups: int, seed: int):
        self.k = k
        self.max_groups = max_groups
        self.seed = seed
        self.counts: Counter = Counter()
        self.samples: dict[Hashable, BottomK] = {}
        self._group_ranks: list[tuple[int, str]] = []   # admitted groups, sorted
        self._by_key: dict[str, Hashable] = {}
        self._refused: set[Hashable] = set()

    def _admit(self, group: Hashable) -> BottomK | None:
        sample = self.samples.get(group)
        if sample is not None or group in self._refused or self.k <= 0:
            return sample
        gkey = _group_key(group)
        rank = (stable_hash(self.seed, "group\x1e" + gkey), gkey)
        if len(self._group_ranks) >= self.max_groups:
            if rank >= self._group_ranks[-1]:
                self._refused.add(group)
                return None
            _, evicted = self._group_ranks.pop()
            old = self._by_key.pop(evicted)
            del self.samples[old]
            self._refused.add(old)
        bisect.insort(self._group_ranks, rank)
        self._by_key[gkey] = group
        sample = self.samples[group] = BottomK(self.k)
        return sample

    def add(self, group: Hashable, key: str, make: Callable[[], Any], count: bool = True) -> bool:
        """Count the item in its group and sample it; `make()` runs only for an item that is kept."""
        if count:
            self.counts[group] += 1
        sample = self._admit(group)
        if sample is None:
            return False
        return sample.add((stable_hash(self.seed, key), key), make)

    def shown(self) -> int:
        return sum(len(s.ranks) for s in self.samples.values())
