"""LSH pairing of one band: however the band is sorted or sliced, the candidate pairs are the same."""

import itertools
from collections import defaultdict

import numpy as np
import pytest

from distillery.dedup.lsh import band_codes, merge_codes


def _brute_pairs(keys, ranks) -> set[tuple[int, int]]:
    """Every pair of ranks sharing a key (buckets small enough that all pairs are taken)."""
    runs = defaultdict(list)
    for k, r in zip(keys.tolist(), ranks.tolist()):
        runs[k].append(r)
    return {(a, b) for rs in runs.values() for a, b in itertools.combinations(sorted(rs), 2)}


def _pairs(codes) -> set[tuple[int, int]]:
    return {tuple(p) for p in merge_codes([codes]).tolist()}


@pytest.mark.parametrize("seed", range(4))
def test_slices_and_rank_order_give_the_pairs_of_a_brute_force_grouping(seed):
    rng = np.random.default_rng(seed)
    n = 5000
    pool = rng.integers(0, 2**64, n // 3, dtype=np.uint64)           # hash-like keys, many shared
    keys = pool[rng.integers(0, len(pool), n)]
    ranks = rng.permutation(4 * n)[:n].astype(np.int32)               # ranks of the records still in play
    want = _brute_pairs(keys, ranks)
    assert len(want) > 1000

    assert _pairs(band_codes(keys, ranks, all_pairs_max=10**6)) == want                 # any order (lexsort)
    by_rank = np.argsort(ranks)
    k, r = keys[by_rank], ranks[by_rank]
    for parts in (1, 2, 4, 8):                                                         # rank order, sliced
        assert _pairs(band_codes(k, r, all_pairs_max=10**6, parts=parts)) == want


def test_large_buckets_pair_the_same_whether_sliced_or_not():
    rng = np.random.default_rng(9)
    keys = np.repeat(rng.integers(0, 2**64, 6, dtype=np.uint64), [200, 3, 90, 2, 150, 1])
    ranks = np.sort(rng.permutation(10_000)[:len(keys)]).astype(np.int32)
    shuffle = rng.permutation(len(keys))
    whole = _pairs(band_codes(keys[shuffle], ranks[shuffle], all_pairs_max=64))
    assert whole == _pairs(band_codes(keys, ranks, all_pairs_max=64, parts=4))
    assert len(whole) < 200 * 199 // 2        # the 200-member bucket gave a star and a chain, not all pairs


def test_parts_must_be_a_power_of_two():
    with pytest.raises(AssertionError):
        band_codes(np.zeros(4, np.uint64), np.arange(4, dtype=np.int32), parts=3)
