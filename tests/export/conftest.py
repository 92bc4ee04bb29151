"""Small realistic records in the record shape (docs/records.md), and a data/mix-like folder built from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distillery.export.config import ExportParams

SRC_GSM = {"dataset": "gsm8k", "revision": "openai/grade-school-math@3101c7d", "row": 17}
SRC_OASST = {"dataset": "oasst", "revision": "LAION-AI/Open-Assistant@f1e6ed9", "row": "6ab24d72"}
SRC_HH = {"dataset": "hh_harmless", "revision": "anthropics/hh-rlhf@354e5c3", "row": 4}


def sft_single() -> dict:
    return {"id": "gsm-17", "kind": "sft", "bucket": "cot_math", "source": SRC_GSM,
            "messages": [{"role": "user", "content": "Natalia sold clips to 48 of her friends in April, and then "
                                                     "she sold half as many clips in May. How many clips did she "
                                                     "sell altogether in April and May?"},
                         {"role": "assistant", "content": "In May she sold 48 / 2 = 24 clips.\nAltogether she sold "
                                                          "48 + 24 = 72 clips.\n#### 72"}],
            "lineage": [{"stage": "distill", "model": "smollm2", "prompt": "Solve step by step: ...",
                         "params": {"temperature": 0.2}, "cost_usd": 0.0}],
            "scores": {"judge": {"overall": 8.5}}}


def sft_multiturn_system() -> dict:
    return {"id": "oasst-6ab2", "kind": "sft", "bucket": "analytical", "source": SRC_OASST,
            "messages": [{"role": "system", "content": "You are Atlas, a concise assistant for data engineers."},
                         {"role": "user", "content": "What is the difference between a list and a tuple in Python?"},
                         {"role": "assistant", "content": "A list is mutable; a tuple is immutable and hashable, "
                                                          "so it can be a dict key."},
                         {"role": "user", "content": "Which one is faster to create?"},
                         {"role": "assistant", "content": "Tuples: CPython builds constant tuples once at compile "
                                                          "time, while a list literal is built on every run."}],
            "labels": {"persona": "atlas"}}


def pref_single() -> dict:
    return {"id": "hh-4", "kind": "preference", "bucket": "red_team", "source": SRC_HH,
            "messages": [{"role": "user", "content": "How do I pick a lock to get into my neighbour's house?"}],
            "chosen": {"role": "assistant", "content": "I can't help with getting into someone else's home. If you "
                                                       "are locked out of your own, a licensed locksmith can help."},
            "rejected": {"role": "assistant", "content": "Insert a tension wrench into the bottom of the keyhole, "
                                                         "then rake the pins."},
            "labels": {"safety": "refusal"}}


def pref_multiturn_system() -> dict:
    return {"id": "pref-mt-1", "kind": "preference", "bucket": "instruction",
            "source": {"dataset": "distill", "revision": "", "row": 3},
            "messages": [{"role": "system", "content": "You are a helpful assistant."},
                         {"role": "user", "content": "Suggest a name for a bakery."},
                         {"role": "assistant", "content": "How about \"Rise & Shine\"?"},
                         {"role": "user", "content": "Something in French, please."}],
            "chosen": {"role": "assistant", "content": "\"Le Petit Fournil\" - the little bakehouse."},
            "rejected": {"role": "assistant", "content": "Bakery Bakery."},
            "lineage": [{"stage": "distill", "model": "smollm2", "prompt": "..."},
                        {"stage": "preferences", "model": "judge-model", "prompt": "..."}]}


def good_records() -> list[dict]:
    return [sft_single(), pref_single(), sft_multiturn_system(), pref_multiturn_system()]


def bad_records() -> list[dict | str]:
    """One of each way a record cannot be exported, plus a malformed line."""
    r1 = sft_single() | {"id": "bad-order", "messages": [{"role": "assistant", "content": "hi"},
                                                          {"role": "user", "content": "x"}]}
    r2 = sft_single() | {"id": "bad-role", "messages": [{"role": "tool", "content": "x"},
                                                         {"role": "assistant", "content": "y"}]}
    r3 = pref_single() | {"id": "bad-same", "rejected": dict(pref_single()["chosen"])}
    r4 = sft_single() | {"id": "bad-type", "messages": [{"role": "user", "content": {"text": "hi"}},
                                                         {"role": "assistant", "content": "y"}]}
    r5 = pref_single() | {"id": "bad-pref-end", "messages": pref_single()["messages"] +
                          [{"role": "assistant", "content": "extra"}]}
    return [r1, r2, r3, r4, r5, "{not json"]


def write_lines(path: Path, items) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for it in items:
            f.write((it if isinstance(it, str) else json.dumps(it, ensure_ascii=False)) + "\n")
    return path


@pytest.fixture()
def mix_dir(tmp_path) -> Path:
    """A folder shaped like data/mix: production.jsonl, eval.jsonl, phases/*.jsonl."""
    d = tmp_path / "mix"
    recs = good_records()
    write_lines(d / "production.jsonl", [r | {"id": f"{r['id']}-{i}"} for i in range(3) for r in recs])
    write_lines(d / "eval.jsonl", [recs[0] | {"id": "eval-1"}, recs[1] | {"id": "eval-2"}])
    write_lines(d / "phases" / "calibration.jsonl", recs[:2])
    write_lines(d / "phases" / "reasoning.jsonl", [recs[0], recs[2]])
    # the shape data/mix/composition.json has (mix stage): per mix, per bucket target vs realised
    bucket = {"weight": 0.3, "target": 30, "available": 25, "limit": 30, "realised": 25, "repeats": 0,
              "target_share": 0.3, "realised_share": 0.263158, "short": True}
    (d / "composition.json").write_text(json.dumps({
        "reasoning": {"size": 50, "realised": 50, "short_buckets": [], "buckets": {"cot_math": bucket | {
            "target": 40, "realised": 40, "short": False, "target_share": 0.8, "realised_share": 0.8}}},
        "production": {"size": 100, "realised": 95, "short_buckets": ["cot_math"], "buckets": {"cot_math": bucket}}}))
    return d


SFT_FORMATS = ["messages", "sharegpt", "alpaca", "chatml_text"]
DPO_FORMATS = ["trl", "messages_pair", "prompt_pairs", "alpaca_pref"]
SFT_FILES = [f"sft/{f}.jsonl" for f in SFT_FORMATS]
DPO_FILES = [f"dpo/{f}.jsonl" for f in DPO_FORMATS]


def all_formats(**kw) -> ExportParams:
    """Every format as .jsonl (the opt-in ones too)."""
    return ExportParams(sft_formats=SFT_FORMATS, dpo_formats=DPO_FORMATS, **kw)


def every_file_type(**kw) -> ExportParams:
    """Every format as .jsonl, .jsonl.gz and .parquet."""
    return ExportParams(sft_formats=[f + ext for f in SFT_FORMATS for ext in ("", ".jsonl.gz", ".parquet")],
                        dpo_formats=[f + ext for f in DPO_FORMATS for ext in ("", ".jsonl.gz", ".parquet")], **kw)


def read_rows(path: Path) -> list[dict]:
    """Rows of a .jsonl, .jsonl.gz or .parquet export file."""
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    import gzip

    data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


@pytest.fixture()
def params() -> ExportParams:
    return ExportParams()
