"""Optional paraphrase dedup with the offline MiniLM model."""

import pytest

from distillery.dedup.config import DedupParams
from distillery.dedup.engine import run_dedup

from .helpers import read, rec, write


@pytest.mark.slow
def test_paraphrases_are_removed_only_when_semantic_is_on(tmp_path):
    records = [
        rec("a", "How do I bake a simple loaf of bread at home?", ""),
        rec("b", "What is an easy way to bake bread at home?", ""),
        rec("c", "Explain the causes of the French Revolution.", ""),
        rec("d", "Write a haiku about autumn leaves falling.", ""),
    ]
    src = write(tmp_path / "in.jsonl", records)
    base = {"decontaminate": {"enabled": False}, "key": "prompt"}
    run_dedup([src], tmp_path / "off", DedupParams.model_validate(base), seed=1, max_line_bytes=1 << 22)
    assert len(read(tmp_path / "off/records.jsonl")) == 4  # MinHash sees no overlap
    p = DedupParams.model_validate({**base, "semantic": {"enabled": True, "threshold": 0.8}})
    res = run_dedup([src], tmp_path / "on", p, seed=1, max_line_bytes=1 << 22)
    assert [r["id"] for r in read(tmp_path / "on/records.jsonl")] == ["a", "c", "d"]
    q = read(tmp_path / "on/quarantine.jsonl")
    assert (q[0]["reason"], q[0]["duplicate_of"]) == ("semantic_duplicate", "a")
    assert 0.8 <= q[0]["similarity"] < 1.0
    assert res.metrics["semantic_duplicates"] == 1
