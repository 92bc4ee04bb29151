"""The digest set that stands in for a set of id strings: same answers, first occurrence wins."""

import numpy as np

from distillery.core.digests import DigestSet, id_digest


def test_blocks_added_one_by_one_are_all_found_and_others_are_not():
    s = DigestSet()
    ds = [id_digest(f"id{i}") for i in range(100)]
    for k in range(0, 100, 7):
        block = np.array(ds[k:k + 7], dtype="S16")
        assert not s.contains(block).any()
        s.add(block)
    assert s.contains(np.array(ds, dtype="S16")).all()
    assert len(s.runs) < 8                       # runs are merged as they grow
    # a digest ending in zero bytes is still itself (numpy's S16 strips trailing NULs on the way out)
    assert not s.contains(np.array([id_digest("other"), b"\x00" * 16], dtype="S16")).any()


def test_first_seen_is_what_a_python_set_says_across_and_within_blocks():
    ids = [f"r{i % 37}" if i % 5 else f"u{i}" for i in range(400)] + ["\ud800 lone surrogate", "\ud800 lone surrogate"]
    s, py = DigestSet(), set()
    got, want = [], []
    for k in range(0, len(ids), 9):
        block = ids[k:k + 9]
        got += s.first_seen(id_digest(i) for i in block)
        for i in block:
            want.append(i not in py)
            py.add(i)
    assert got == want
    assert sum(got) == len(py)
    assert s.first_seen([]) == []
