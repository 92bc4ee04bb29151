"""Decontamination against real eval sets (GSM8K test, HumanEval, TruthfulQA, MT-Bench)."""

import gzip
import json
import shutil
from pathlib import Path

import pytest

from distillery.dedup.config import DedupParams
from distillery.dedup.engine import run_dedup
from distillery.core.errors import InputError

from .helpers import read, rec, text, write

DS = Path("/work/shared/datasets")


@pytest.fixture()
def eval_sets(tmp_path):
    """Small copies of the real eval files (first rows), in the formats the defaults use."""
    d = tmp_path / "eval"
    d.mkdir()
    with gzip.open(DS / "gsm8k/test.jsonl.gz", "rt", encoding="utf-8") as fh, \
            gzip.open(d / "gsm8k_test.jsonl.gz", "wt", encoding="utf-8") as out:
        for i, line in zip(range(50), fh):
            out.write(line)
    with gzip.open(DS / "humaneval/HumanEval.jsonl.gz", "rt", encoding="utf-8") as fh, \
            gzip.open(d / "humaneval.jsonl.gz", "wt", encoding="utf-8") as out:
        for i, line in zip(range(20), fh):
            out.write(line)
    lines = (DS / "truthfulqa/TruthfulQA.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (d / "truthfulqa.csv").write_text("".join(lines[:40]), encoding="utf-8")
    shutil.copy(DS / "mt_bench/mt_bench_question.jsonl", d / "mt_bench_questions.jsonl")
    shutil.copy(DS / "wizardlm_testset/WizardLM_testset.jsonl", d / "wizardlm_testset.jsonl")
    return [
        {"name": "gsm8k_test", "path": str(d / "gsm8k_test.jsonl.gz"), "fields": ["question"]},
        {"name": "humaneval", "path": str(d / "humaneval.jsonl.gz"), "fields": ["prompt"], "id_field": "task_id"},
        {"name": "truthfulqa", "path": str(d / "truthfulqa.csv"), "fields": ["Question"]},
        {"name": "mt_bench", "path": str(d / "mt_bench_questions.jsonl"), "fields": ["turns"],
         "id_field": "question_id"},
        {"name": "wizardlm", "path": str(d / "wizardlm_testset.jsonl"), "fields": ["Instruction"], "id_field": "idx"},
    ]


def first(path, n=1, mode="rt"):
    op = gzip.open if str(path).endswith(".gz") else open
    with op(path, mode, encoding="utf-8") as fh:
        return [json.loads(line) for _, line in zip(range(n), fh)]


def test_records_containing_eval_items_are_removed_and_reported(tmp_path, eval_sets):
    gsm = first(DS / "gsm8k/test.jsonl.gz", 3)
    he = first(DS / "humaneval/HumanEval.jsonl.gz", 1)[0]
    mt = first(DS / "mt_bench/mt_bench_question.jsonl", 1)[0]
    wiz = first(DS / "wizardlm_testset/WizardLM_testset.jsonl", 12)[11]["Instruction"]
    records = [
        # a GSM8K test question embedded in a longer prompt: 13-gram overlap
        rec("g", "Solve this for me please. " + gsm[1]["question"] + " Show your work."),
        # HumanEval prompt reformatted (indentation, case): still shares long n-grams
        rec("h", "Complete the code:\n" + he["prompt"].upper().replace("    ", "\t")),
        # short TruthfulQA question (< 13 tokens) copied inside a prompt: whole-sequence match
        rec("t", "Quick question. What happens to you if you eat watermelon seeds? Thanks!"),
        # an MT-Bench turn with a word changed mid-sentence (breaks every 13-gram): containment
        rec("m", mt["turns"][0].replace("Hawaii", "Maui")),
        # a WizardLM test instruction asked as is (the judged win rate's prompts)
        rec("w", wiz),
        rec("clean1", text(1)), rec("clean2", "How many eggs does a duck lay in a week on average?"),
    ]
    src = write(tmp_path / "in.jsonl", records)
    p = DedupParams.model_validate({"decontaminate": {"sets": eval_sets}})
    res = run_dedup([src], tmp_path / "out", p, seed=42, max_line_bytes=4 << 20)
    kept = [r["id"] for r in read(tmp_path / "out/records.jsonl")]
    assert kept == ["clean1", "clean2"]
    report = {r["id"]: r for r in read(tmp_path / "out/contamination.jsonl")}
    assert (report["g"]["eval_set"], report["g"]["eval_item"], report["g"]["method"]) == ("gsm8k_test", "1", "ngram")
    assert report["g"]["eval_text"].startswith(gsm[1]["question"][:50])
    assert (report["h"]["eval_set"], report["h"]["eval_item"]) == ("humaneval", "HumanEval/0")
    assert (report["t"]["eval_set"], report["t"]["eval_item"]) == ("truthfulqa", "0")
    assert (report["m"]["eval_set"], report["m"]["eval_item"], report["m"]["method"]) == \
        ("mt_bench", "81#1", "near_duplicate")
    q = {r["record"]["id"]: r for r in read(tmp_path / "out/quarantine.jsonl")}
    assert q["g"]["reason"] == "contaminated" and q["g"]["duplicate_of"] == "gsm8k_test:1"
    assert report["w"]["eval_set"] == "wizardlm" and report["w"]["eval_item"] == "12"
    assert res.metrics["contaminated"] == 5
    assert res.metrics["contaminated_by_set"] == {"gsm8k_test": 1, "humaneval": 1, "mt_bench": 1, "truthfulqa": 1,
                                                  "wizardlm": 1}
    assert q["g"]["matched"] == {"eval_set": "gsm8k_test", "eval_item": "1"}
    # two workers writing three-record batches: the same bytes in every output
    p2 = DedupParams.model_validate({"decontaminate": {"sets": eval_sets}, "workers": 2, "batch_size": 3})
    assert run_dedup([src], tmp_path / "out2", p2, seed=42, max_line_bytes=4 << 20).metrics["workers"] == 2
    for name in ("records.jsonl", "quarantine.jsonl", "contamination.jsonl", "clusters.jsonl"):
        assert (tmp_path / "out2" / name).read_bytes() == (tmp_path / "out" / name).read_bytes(), name


def test_missing_eval_file_stops_with_one_line(tmp_path):
    src = write(tmp_path / "in.jsonl", [rec("a", text(1))])
    p = DedupParams.model_validate({"decontaminate": {"sets": [
        {"name": "gone", "path": str(tmp_path / "nope.jsonl"), "fields": ["question"]}]}})
    with pytest.raises(InputError, match=r"dedup.decontaminate.sets\[gone\].path: eval set file not found"):
        run_dedup([src], tmp_path / "out", p, seed=42, max_line_bytes=4 << 20)


def test_wrong_eval_field_stops_with_one_line(tmp_path, eval_sets):
    src = write(tmp_path / "in.jsonl", [rec("a", text(1))])
    spec = dict(eval_sets[0], fields=["problem"])
    p = DedupParams.model_validate({"decontaminate": {"sets": [spec]}})
    with pytest.raises(InputError, match=r"\[gsm8k_test\].fields: none of \['problem'\]"):
        run_dedup([src], tmp_path / "out", p, seed=42, max_line_bytes=4 << 20)
