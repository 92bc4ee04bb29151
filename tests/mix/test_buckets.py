"""Bucket assignment: existing field > source default > rules > embeddings > default; safety labels."""

import json

from distillery.core.io import read_stage_metrics

import pytest

from distillery.core.errors import ParamsError
from distillery.mix.buckets import BucketAssigner
from distillery.mix.config import BucketsParams
from distillery.core.params import load_params


def rec(q, a, **kw):
    return {"id": "x", "kind": "sft", "source": {"dataset": kw.pop("dataset", "d")},
            "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}], **kw}


CASES = [
    ("Write a function to reverse a string in Python.", "```python\ndef rev(s):\n    return s[::-1]\n```", "code"),
    ("Natalia sold clips to 48 friends in April, and half as many in May. How many clips did she sell?",
     "In May she sold 48/2 = <<48/2=24>>24 clips. 48+24 = <<48+24=72>>72.\n#### 72", "cot_math"),
    ("What's the weather in Oslo?", '<tool_call>{"name": "weather", "arguments": {"city": "Oslo"}}</tool_call>',
     "tool_use"),
    ("How do I hack into my ex's email account?", "I can't help with accessing someone else's account.", "red_team"),
    ("Write a short poem about autumn leaves.", "Red and gold they drift and fall...", "creative"),
    ("Compare the pros and cons of remote work for small teams.", "Remote work saves commuting...", "analytical"),
    ("Who was the first person to walk on the moon?", "Neil Armstrong, in 1969.", "factual"),
    ("Give me a name for my new bakery.", "How about 'Rise & Shine'?", "instruction"),
]


@pytest.mark.parametrize("q,a,expected", CASES)
def test_rules_then_default(q, a, expected):
    a_ = BucketAssigner(BucketsParams())
    bucket, how = a_.assign(rec(q, a))
    assert (bucket or "instruction") == expected, how


def test_precedence_existing_source_default_and_refine():
    p = BucketsParams(source_defaults={"gsm8k": "cot_math"}, refine=["instruction"])
    a = BucketAssigner(p)
    code_text = ("Write a Python function that sorts a list.", "```python\nsorted(x)\n```")
    assert a.assign(rec(*code_text, bucket="factual")) == ("factual", "existing")       # existing wins
    assert a.assign(rec(*code_text, dataset="gsm8k")) == ("cot_math", "source_default")
    assert a.assign(rec(*code_text, bucket="instruction")) == ("code", "refined:rule[1]")  # generic -> refined
    assert a.assign(rec("Name a colour.", "Blue.", bucket="instruction")) == ("instruction", "refine")


def test_safety_labels_on_red_team_only():
    a = BucketAssigner(BucketsParams())
    refused = a.finalize(rec("How do I make a bomb?", "I'm sorry, but I can't help with that."), "red_team")
    complied = a.finalize(rec("How do I make a bomb?", "Mix the following..."), "red_team")
    kept = a.finalize(rec("q", "a", labels={"safety": "harmlessness_preference"}), "red_team")
    plain = a.finalize(rec("How do I make a bomb?", "I can't help with that."), "instruction")
    assert refused["labels"]["safety"] == "refusal"
    assert complied["labels"]["safety"] == "unreviewed"          # to be reviewed before training
    assert kept["labels"]["safety"] == "harmlessness_preference"  # a source's own label is kept
    assert "safety" not in plain.get("labels", {})


def test_bad_bucket_params_name_the_key(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("buckets:\n  rules:\n    - {bucket: poetry, patterns: ['sonnet']}\n")
    with pytest.raises(ParamsError, match=r"buckets.*rules\[0\]\.bucket: unknown bucket 'poetry'"):
        load_params(p)
    p.write_text("buckets:\n  extra: [poetry]\n  rules:\n    - {bucket: poetry, patterns: ['(sonnet']}\n")
    with pytest.raises(ParamsError, match=r"invalid regex"):
        load_params(p)
    p.write_text("buckets:\n  extra: [poetry]\n  rules:\n    - {bucket: poetry, patterns: ['sonnet']}\n")
    a = BucketAssigner(load_params(p).buckets)
    assert a.assign(rec("Write a sonnet.", "Shall I..."))[0] == "poetry"


def test_script_buckets_unlabelled_records(tmp_path, run_script, records_factory):
    recs = records_factory({"code": 60, "cot_math": 60, "red_team": 60, "instruction": 60}, with_bucket=False)
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in recs))
    r = run_script("mix", "--input", inp, "--output", tmp_path / "out", "--eval-fraction", "0", "--size", "100",
                   cwd=tmp_path,
                   env={"DISTILLERY_TRACKING": "0"})
    assert r.returncode == 0, r.stderr
    m = read_stage_metrics(tmp_path / "out" / "metrics.json")
    assert m["pool"] == {"code": 60, "cot_math": 60, "instruction": 60, "red_team": 60}
    assert m["bucketed_by"] == {"default": 60, "rule": 180}
    bad = run_script("mix", "--input", inp, "--output", tmp_path / "o2", "--set", "mix.phases.x.size=5",
                     cwd=tmp_path, env={"DISTILLERY_TRACKING": "0"})
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "mix.phases.x.weights: required key is missing" in bad.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_embedding_classifier_fills_in_where_rules_are_silent():
    from distillery.mix.config import EmbeddingParams
    from distillery.mix.embed import CentroidClassifier

    clf = CentroidClassifier(EmbeddingParams(enabled=True))
    got = clf.predict(["Tell me a bedtime tale about a dragon who is afraid of the dark.",
                       "What year did the Berlin Wall fall?",
                       "zzzz qqqq"])
    assert got == ["creative", "factual", None]      # gibberish is below min_similarity
