"""Connected components of the duplicate graph: the survivor of every cluster depends on them."""

import numpy as np
import pytest

from distillery.dedup.cluster import components, keep_order, records_by_rank
from distillery.testing.jaccard_ref import union_find_labels


def _reference(n: int, u, v) -> np.ndarray:
    return np.array(union_find_labels(n, zip(u, v)))


@pytest.mark.parametrize("seed", range(6))
def test_components_match_union_find_on_random_graphs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    m = int(rng.integers(0, 2 * n))
    u, v = rng.integers(0, n, m), rng.integers(0, n, m)
    assert np.array_equal(components(n, u, v), _reference(n, u, v))


def test_long_chain_and_star_are_one_component_labelled_by_the_smallest_node():
    n = 5000
    chain = np.arange(n - 1)[::-1]                 # edges (n-2, n-1), ..., (0, 1), listed backwards
    assert (components(n, chain + 1, chain) == 0).all()
    star = components(10, np.full(9, 9), np.arange(9))
    assert (star == 0).all()
    assert np.array_equal(components(4, np.zeros(0, int), np.zeros(0, int)), np.arange(4))
    assert len(components(0, np.zeros(0, int), np.zeros(0, int))) == 0


def _mark_near_reference(label, rank, by_rank, active, edges_u, edges_v, edge_sims):
    """Record by record: a near record takes the similarity of a direct edge from its keeper, else is `need`."""
    status, dup_of, sim = np.zeros(len(rank), np.int8), np.full(len(rank), -1), np.full(len(rank), np.nan)
    direct = {int(b): s for a, b, s in zip(edges_u, edges_v, edge_sims) if label[a] == a}
    need = []
    for i in range(len(rank)):
        keeper = label[rank[i]]
        if active[i] and keeper != rank[i]:
            status[i], dup_of[i] = 3, by_rank[keeper]
            if int(rank[i]) in direct:
                sim[i] = direct[int(rank[i])]
            else:
                need.append(i)
    return status, dup_of, sim, need


@pytest.mark.parametrize("seed", range(4))
def test_mark_near_takes_direct_edge_similarities_and_asks_for_the_rest(seed):
    from distillery.dedup.engine import NEAR, mark_near

    rng = np.random.default_rng(seed)
    n = 2000
    rank = rng.permutation(n).astype(np.int32)
    by_rank = np.argsort(rank)
    pairs = np.unique(np.sort(rng.integers(0, n, (1500, 2)), axis=1), axis=0)
    pairs = pairs[pairs[:, 0] < pairs[:, 1]]
    u, v, sims = pairs[:, 0], pairs[:, 1], rng.random(len(pairs))
    active = rng.random(n) < 0.95
    label = components(n, u, v)
    status, dup_of, sim = np.zeros(n, np.int8), np.full(n, -1, np.int32), np.full(n, np.nan)
    need = mark_near(label, rank, by_rank, active, status, dup_of, sim, u, v, sims)
    ref_status, ref_dup, ref_sim, ref_need = _mark_near_reference(label, rank, by_rank, active, u, v, sims)
    assert np.array_equal(status == NEAR, ref_status == 3) and np.array_equal(dup_of, ref_dup)
    assert np.array_equal(sim, ref_sim, equal_nan=True) and need.tolist() == ref_need
    assert len(ref_need) and np.isfinite(ref_sim).sum() > 100        # both kinds of near record occur


def test_records_by_rank_is_the_keep_order_read_backwards():
    """LSH and the keeper of each cluster read records in keep-policy order: record of rank r, for every r,
    in the rank's own narrow dtype."""
    rng = np.random.default_rng(5)
    n = 5_000
    rank = keep_order(rng.integers(0, 10, n).astype(float), rng.integers(0, 3, n), rng.permutation(n))
    by_rank = records_by_rank(rank)
    assert by_rank.dtype == rank.dtype
    assert np.array_equal(by_rank, np.argsort(rank))
    assert np.array_equal(rank[by_rank], np.arange(n))
