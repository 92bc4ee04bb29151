"""Every adapter on the real shipped samples: counts, role order, and source-specific parsing."""

import gzip
import json
import re

import pytest

from distillery.core.records import Record, check_roles
from distillery.sources.config import SourceSpec
from distillery.sources.ingest import ingest_source
from distillery.core.text import normalize_text


def test_default_params_ingest_all_five_sources_with_buckets(shipped_ingest):
    buckets = {n: s.bucket for n, s in shipped_ingest.sources.items()}
    assert buckets == {"code_alpaca": "code", "gsm8k": "cot_math", "hh_harmless": "red_team",
                       "oasst": "instruction", "self_instruct": "instruction"}
    assert all(s.sha256 and s.revision and s.license for s in shipped_ingest.sources.values())


@pytest.mark.parametrize("name", ["code_alpaca", "gsm8k", "hh_harmless", "oasst", "self_instruct"])
def test_records_are_valid_and_role_ordered(ingested, name):
    recs = ingested[name]["records"]
    assert recs
    ids = [r["id"] for r in recs]
    assert len(set(ids)) == len(ids)
    for r in recs:
        Record.model_validate(r)
        assert check_roles(r["kind"], r["messages"], r.get("chosen"), r.get("rejected")) is None
        assert r["source"]["dataset"] == name and r["source"]["revision"]
        assert r["lineage"][0]["stage"] == "ingest"
        assert all(m["content"] == m["content"].strip() and m["content"] for m in r["messages"])


def test_counts_and_reject_reasons_on_the_samples(ingested):
    counts = {n: (len(v["records"]), [q["reason"] for q in v["quarantine"]]) for n, v in ingested.items()}
    assert counts["code_alpaca"] == (999, ["empty_turn"])          # one upstream row has an empty output
    assert counts["gsm8k"] == (1000, [])
    assert counts["self_instruct"] == (175, [])
    assert counts["hh_harmless"][0] == 597
    assert sorted(counts["hh_harmless"][1]) == ["empty_turn", "empty_turn", "near_empty_turn"]
    q = ingested["code_alpaca"]["quarantine"][0]
    assert q["file"].endswith("code_alpaca_2k.first1000.json") and q["line"] == 238
    m = ingested["hh_harmless"]["result"].metrics
    assert m["records_in"] == 600 and m["rejects_by_reason"] == {"empty_turn": 2, "near_empty_turn": 1}


def test_alpaca_appends_input_to_instruction(ingested, repo_root):
    rows = json.loads((repo_root / "data/raw/code_alpaca/code_alpaca_2k.first1000.json").read_text())
    recs = {r["source"]["row"]: r for r in ingested["code_alpaca"]["records"]}
    with_input = next(i for i, row in enumerate(rows) if row["input"].strip() and i in recs)
    user = recs[with_input]["messages"][0]["content"]
    assert user.startswith(rows[with_input]["instruction"].strip()) and rows[with_input]["input"].strip() in user
    assert recs[with_input]["bucket"] == "code"


def test_gsm8k_strips_calculator_annotations_keeps_final_answer(ingested, repo_root):
    recs = ingested["gsm8k"]["records"]
    raw = [json.loads(line) for line in gzip.open(repo_root / "data/raw/gsm8k/train.first1000.jsonl.gz", "rt")]
    assert sum("<<" in r["answer"] for r in raw) > 900  # the sample really has annotations
    for r, row in zip(recs, raw):
        answer = r["messages"][1]["content"]
        assert "<<" not in answer and ">>" not in answer
        assert answer.splitlines()[-1].startswith("#### ")
        assert r["labels"]["final_answer"] == row["answer"].rsplit("####", 1)[1].strip()
    assert recs[0]["messages"][1]["content"] == (
        "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May.\n#### 72")


def _split_hh(text):
    parts = re.split(r"\n\n(Human|Assistant):", text)
    return [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts), 2)]


def test_hh_splits_shared_prefix_into_prompt_and_answers(ingested, repo_root):
    raw = [json.loads(line) for line in gzip.open(
        repo_root / "data/raw/hh_harmless/harmless-base_test.first600.jsonl.gz", "rt")]
    recs = ingested["hh_harmless"]["records"]
    for r in recs[:200]:
        row = raw[r["source"]["row"]]
        chosen, rejected = _split_hh(row["chosen"]), _split_hh(row["rejected"])
        assert r["kind"] == "preference" and r["messages"][-1]["role"] == "user"
        assert len(r["messages"]) == len(chosen) - 1
        assert r["chosen"]["content"] == normalize_text(chosen[-1][1])
        assert r["rejected"]["content"] == normalize_text(rejected[-1][1])
        assert [m["content"] for m in r["messages"]] == [normalize_text(t) for _, t in chosen[:-1]]
        assert r["rejected"]["content"] != r["chosen"]["content"]
        assert [m["role"] for m in r["messages"]] == [
            "user" if s == "Human" else "assistant" for s, _ in rejected[:-1]]
        assert r["bucket"] == "red_team" and r["labels"]["safety"] == "harmlessness_preference"
    multi = [r for r in recs if len(r["messages"]) >= 3]
    assert len(multi) > 200  # multi-turn context is kept, not only the last human turn


def _oasst_expected(tree_file):
    """Independent count: terminal assistant replies and ranked sibling groups."""
    paths, groups = 0, []

    def walk(m):
        nonlocal paths
        reps = m.get("replies") or []
        has_asst_below = any([walk(r) for r in reps])  # walk every child
        if m["role"] == "assistant" and not has_asst_below:
            paths += 1
        ranks = sorted(r["rank"] for r in reps if r["role"] == "assistant" and r.get("rank") is not None)
        if len(ranks) >= 2:
            groups.append(ranks)
        return has_asst_below or m["role"] == "assistant"

    for line in gzip.open(tree_file, "rt"):
        walk(json.loads(line)["prompt"])
    return paths, groups


def test_oasst_paths_and_ranked_pairs(ingested, repo_root, shipped_ingest, tmp_path):
    tree = repo_root / "data/raw/oasst/en_100_tree.jsonl.gz"
    paths, groups = _oasst_expected(tree)
    recs = ingested["oasst"]["records"]
    sft = [r for r in recs if r["kind"] == "sft"]
    pref = [r for r in recs if r["kind"] == "preference"]
    assert len(sft) == paths == 546
    assert len(pref) == sum(len(g) - 1 for g in groups) == 429  # adjacent ranks
    assert max(len(r["messages"]) for r in sft) >= 4            # real multi-turn paths
    for r in pref:
        lo, hi = r["lineage"][0]["ranks"]
        assert lo < hi
        assert r["messages"][-1]["role"] == "user"
    assert sum(r["labels"].get("synthetic", False) for r in sft) > 0

    for mode, expected in (("best_worst", len(groups)), ("all", 754)):
        spec = SourceSpec.model_validate({**shipped_ingest.sources["oasst"].model_dump(), "pairs": mode,
                                          "paths": False})
        res = ingest_source("oasst", spec, shipped_ingest.defaults, tmp_path / mode, max_row_bytes=4 << 20)
        assert res.metrics["records_by_kind"] == {"preference": expected}


def test_self_instruct_instances_become_prompts(ingested, repo_root):
    raw = [json.loads(line) for line in open(repo_root / "data/raw/self_instruct/seed_tasks.jsonl")]
    recs = ingested["self_instruct"]["records"]
    assert len(recs) == sum(len(t["instances"]) for t in raw) == 175
    for r, task in zip(recs, raw):
        inst = task["instances"][0]
        user, asst = r["messages"][0]["content"], r["messages"][1]["content"]
        expected = normalize_text(task["instruction"])
        if inst["input"].strip():
            expected += "\n\n" + normalize_text(inst["input"])
        assert user == expected
        assert r["labels"]["is_classification"] == task["is_classification"]
        assert asst


def test_same_input_gives_byte_identical_output(shipped_ingest, ingested, tmp_path):
    spec = shipped_ingest.sources["oasst"]
    ingest_source("oasst", spec, shipped_ingest.defaults, tmp_path, max_row_bytes=4 << 20)
    assert (tmp_path / "records.jsonl").read_bytes() == (ingested["oasst"]["dir"] / "records.jsonl").read_bytes()


def test_oasst_skip_synthetic_prunes_model_written_messages(shipped_ingest, ingested, tmp_path):
    spec = SourceSpec.model_validate({**shipped_ingest.sources["oasst"].model_dump(), "skip_synthetic": True})
    res = ingest_source("oasst", spec, shipped_ingest.defaults, tmp_path, max_row_bytes=4 << 20)
    recs = [json.loads(x) for x in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert recs and not any(r["labels"].get("synthetic") for r in recs)
    assert res.metrics["records_out"] < len(ingested["oasst"]["records"])
