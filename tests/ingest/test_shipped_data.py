"""The shipped samples and evaluation sets are where other stages expect them, intact and documented."""

import csv
import gzip
import hashlib
import json
import re

import pytest

EVAL = {  # path -> records; used by dedup decontamination and train_eval
    "data/raw/eval/gsm8k_test.jsonl.gz": 1319,
    "data/raw/eval/humaneval.jsonl.gz": 164,
    "data/raw/eval/truthfulqa.csv": 817,
    "data/raw/eval/mt_bench_questions.jsonl": 80,
    "data/raw/eval/mt_bench_reference_answers.jsonl": 30,
    "data/raw/eval/wizardlm_testset.jsonl": 218,
}


def _count(path):
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            return sum(1 for _ in csv.DictReader(fh))
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return sum(1 for line in fh if json.loads(line))


@pytest.mark.parametrize("rel,n", sorted(EVAL.items()))
def test_eval_sets_are_complete(repo_root, rel, n):
    assert _count(repo_root / rel) == n


def test_every_shipped_file_matches_the_sha256_in_its_source_note(repo_root):
    raw = repo_root / "data/raw"
    files = sorted(p for p in raw.rglob("*") if p.is_file() and p.suffix in (".gz", ".json", ".jsonl", ".csv"))
    assert len(files) == 11
    for f in files:
        note = (f.parent / "SOURCE.md").read_text(encoding="utf-8")
        row = next(line for line in note.splitlines() if f"`{f.name}`" in line and "|" in line)
        assert hashlib.sha256(f.read_bytes()).hexdigest() in row, f
        assert (f.parent / "LICENSE").exists() or (f.parent / "licenses").is_dir(), f
    assert sum(f.stat().st_size for f in raw.rglob("*") if f.is_file()) < 3_000_000


def test_params_pins_match_the_shipped_files(repo_root, shipped_ingest):
    for name, spec in shipped_ingest.sources.items():
        assert hashlib.sha256(spec.path.read_bytes()).hexdigest() == spec.sha256, name
        note = (spec.path.parent / "SOURCE.md").read_text(encoding="utf-8")
        assert re.search(r"[0-9a-f]{40}", spec.revision).group(0) in note, name
