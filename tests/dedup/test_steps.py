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


def test_batch_exact_hashes_equal_the_scalar_normalised_hash():
    """ASCII texts are normalised in numpy, others by `dedup_key_text`; both give `exact_hash`, so an
    ASCII text and a non-ASCII one that normalise alike (Straße / STRASSE) are still exact duplicates."""
    from distillery.dedup.keys import exact_hash, exact_hashes
    from distillery.dedup.shingle import Encoded

    from .test_minhash import random_texts

    texts = random_texts(600, seed=5)
    salts = [("", "src-a", "é")[k % 3] for k in range(len(texts))]
    hi, lo = exact_hashes(texts, salts, Encoded.from_texts(texts))
    assert [(int(h), int(l)) for h, l in zip(hi, lo)] == [exact_hash(t, s) for t, s in zip(texts, salts)]
    same = ["Strasse", "  STRASSE ", "Straße", "stra\u00dfe\n"]
    hi, lo = exact_hashes(same, [""] * 4, Encoded.from_texts(same))
    assert len(set(zip(hi.tolist(), lo.tolist()))) == 1


def test_lines_parse_fast_but_keep_the_standard_parsers_verdicts():
    """orjson first; what it refuses is decided by `json` (NaN is accepted, reasons stay the same)."""
    from distillery.dedup.engine import numbered_lines
    from distillery.dedup.steps import parse_line

    assert parse_line(b'{"id": "a", "x": 1}\n', 1 << 20) == {"id": "a", "x": 1}
    assert parse_line(b'{"id": "a", "x": NaN}', 1 << 20)["id"] == "a"            # orjson refuses, json accepts
    big = parse_line(b'{"id": 123456789012345678901234567890}', 1 << 20)["id"]  # orjson would give a float
    assert big == 123456789012345678901234567890 and isinstance(big, int)
    assert parse_line(b"[1, 2]", 1 << 20)[0] == "not_an_object"
    assert parse_line(b'{"a": ', 1 << 20)[0] == "malformed_json"
    assert parse_line(b'{"a": "\xff"}', 1 << 20)[0] == "invalid_utf8"
    assert parse_line(b'{"a": 1}', 4)[0] == "record_too_large"
    # blank lines are skipped but still counted in the line numbers
    assert numbered_lines(5, b'{"a": 1}\n\n  \n{"b": 2}') == [(5, b'{"a": 1}\n'), (8, b'{"b": 2}')]
