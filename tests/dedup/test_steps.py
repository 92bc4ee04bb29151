"""The per-batch step is a pure function of the records: batch boundaries change nothing.

This is what lets another engine (Ray Data `map_batches`) reproduce the local engine's decisions.
"""

import json

import numpy as np

from distillery.dedup.config import DedupParams
from distillery.dedup.steps import Settings, prepare_batch

from .helpers import edit, rec, text


def test_batch_boundaries_do_not_change_keys_or_hashes():
    records = [rec(f"r{i}", edit(text(i % 9, 80), i % 5, seed=i), score=i % 3) for i in range(50)]
    lines = [(i + 1, json.dumps(r).encode()) for i, r in enumerate(records)]
    st = Settings(DedupParams(), 42, 13, 7, 1 << 22)
    whole = prepare_batch(lines, st, None)
    parts = [prepare_batch(lines[i:i + 7], st, None) for i in range(0, 50, 7)]
    assert np.array_equal(whole.keys, np.concatenate([p.keys for p in parts]))
    assert np.array_equal(whole.hi, np.concatenate([p.hi for p in parts]))
    assert np.array_equal(whole.n_shingles, np.concatenate([p.n_shingles for p in parts]))
    assert whole.ids == sum((p.ids for p in parts), [])
    assert whole.scores.tolist() == [float(i % 3) for i in range(50)]
