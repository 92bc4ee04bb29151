"""The dedup parent's per-record table, kept on disk: what comes back is what went in, ids sort as strings."""

import random
from types import SimpleNamespace

import numpy as np
import pytest

from distillery.dedup import table
from distillery.dedup.table import Table

TRICKY = ["b", "a", "ab", "a", "", "é", "e\u0301", "z\x00", "z", "z\x00a", "😀", "\uffff", "\ud800", "A" * 80,
          "A" * 79 + "B", "名前", "0", "10", "9"]


def prep(ids, sources, bands=3, line0=1):
    n = len(ids)
    rng = np.random.default_rng(n + line0)
    return SimpleNamespace(ids=ids, sources=sources, lines=np.arange(line0, line0 + n), scores=rng.random(n),
                           hi=rng.integers(0, 2**63, n, dtype=np.uint64), lo=rng.integers(0, 2**63, n, dtype=np.uint64),
                           n_shingles=rng.integers(0, 500, n), keys=rng.integers(0, 2**63, (n, bands), dtype=np.uint64),
                           hits=[(0, 7, "ngram", 3.0)])


def test_columns_ids_sources_and_band_keys_come_back_as_added(tmp_path):
    a = prep(["r1", "r2", "é3"], ["web", "curated", "web"])
    b = prep(["r4", "😀"], ["other", "web"], line0=10)
    t = Table(tmp_path / "t", bands=3)
    t.add(0, 0, a)
    t.add(1, 2, b)
    cols, ids, keys = t.freeze()
    assert [ids[i] for i in range(len(ids))] == ["r1", "r2", "é3", "r4", "😀"]
    assert ids.many(np.array([4, 0, 2, 0])) == ["😀", "r1", "é3", "r1"] and ids.many(np.array([], int)) == []
    assert cols["line"].tolist() == [1, 2, 3, 10, 11]
    assert cols["file_no"].tolist() == [0, 0, 0, 2, 2] and cols["batch_no"].tolist() == [0, 0, 0, 1, 1]
    assert cols["local"].tolist() == [0, 1, 2, 0, 1]
    assert set(cols) == set(table.HELD)                     # the rest are read on demand, not held for the run
    assert cols["nsh"].tolist() == np.concatenate([a.n_shingles, b.n_shingles]).tolist() and "nsh" not in cols
    assert not hasattr(ids, "blob") and ids.ends.nbytes == 8 * len(ids)   # id text stays on disk
    assert np.array_equal(t.column("scores"), np.concatenate([a.scores, b.scores]))
    assert np.array_equal(t.column("hi"), np.concatenate([a.hi, b.hi]))
    assert np.array_equal(t.column("lo"), np.concatenate([a.lo, b.lo]))
    assert t.source_rank(["curated", "web"]).tolist() == [1, 0, 1, 2, 1]   # unlisted sources after listed ones
    rows = np.array([4, 0, 2])
    got = list(keys.columns(rows))
    whole = np.concatenate([a.keys, b.keys])
    assert len(got) == 3 and all(np.array_equal(g, whole[rows, k]) for k, g in enumerate(got))
    assert t.hits == [(0, 7, "ngram", 3.0), (3, 7, "ngram", 3.0)]   # record numbers across batches


@pytest.mark.parametrize("ids", [TRICKY, [i for i in TRICKY if "\x00" not in i and len(i) < 60],
                                 [f"{random.Random(k).randrange(10**6):x}" for k in range(3000)],
                                 [f"{random.Random(k).randrange(10**3):03x}" for k in range(3000)],
                                 ["é", "e", "z", "😀", "名", "é"]],
                         ids=["with-nul-and-long", "short", "many-hex", "one-length-with-repeats",
                              "one-char-mixed-bytes"])
def test_ids_sort_exactly_as_python_strings_do_and_ties_keep_input_order(tmp_path, monkeypatch, ids):
    monkeypatch.setattr(table, "_ID_SORT_CHUNK", 5)      # the chunked scatter crosses many chunks
    t = Table(tmp_path / "t", bands=0)
    for s in range(0, len(ids), 7):
        part = ids[s:s + 7]
        t.add(s, 0, prep(part, ["x"] * len(part), bands=0))
    _, got, _ = t.freeze()
    assert [got[i] for i in range(len(got))] == ids
    assert got.order().tolist() == sorted(range(len(ids)), key=lambda i: ids[i])
