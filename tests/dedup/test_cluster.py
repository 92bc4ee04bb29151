"""Connected components of the duplicate graph: the survivor of every cluster depends on them."""

import numpy as np
import pytest

from distillery.dedup.cluster import components
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
