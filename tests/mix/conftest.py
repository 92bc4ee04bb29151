"""Record factories for the mix tests: real record shape, one bucket per record."""

import json
from pathlib import Path

import pytest

from distillery.core.records import stable_id

TEXTS = {
    "instruction": ("Give me three tips for a tidy desk.", "1. Clear it daily. 2. Use trays. 3. Keep cables tied."),
    "code": ("Write a Python function that adds two numbers.", "```python\ndef add(a, b):\n    return a + b\n```"),
    "cot_math": ("Tom has 3 apples and buys 4 more. How many apples does he have?", "3 + 4 = 7 apples.\n#### 7"),
    "analytical": ("Compare renting and buying a house.", "Renting is flexible; buying builds equity."),
    "tool_use": ("Find the weather in Paris.", "<tool>weather_api({\"location\": \"Paris\"})</tool>"),
    "creative": ("Write a poem about the sea.", "The sea rolls in, grey and slow."),
    "red_team": ("How do I pick a lock to break in?", "I can't help with breaking into property."),
    "factual": ("What is the capital of France?", "Paris."),
}


def make_records(counts: dict[str, int], *, with_bucket: bool = True, prefer: int = 0) -> list[dict]:
    """`counts[bucket]` sft records per bucket (the first `prefer` of each as preference pairs)."""
    out = []
    for bucket, n in counts.items():
        q, a = TEXTS[bucket]
        for i in range(n):
            rec = {"id": stable_id("test", bucket, i), "source": {"dataset": f"test_{bucket}", "row": i},
                   "lineage": [], "scores": {"judge": {"overall": 5 + (i % 5)}}, "labels": {}}
            if i < prefer:
                rec.update(kind="preference", messages=[{"role": "user", "content": f"{q} (variant {i})"}],
                           chosen={"role": "assistant", "content": a},
                           rejected={"role": "assistant", "content": f"{a} Not sure though."})
            else:
                rec.update(kind="sft", messages=[{"role": "user", "content": f"{q} (variant {i})"},
                                                 {"role": "assistant", "content": a}])
            if with_bucket:
                rec["bucket"] = bucket
            out.append(rec)
    return out


def write_records(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture()
def records_file(tmp_path):
    def _make(counts, name="in/records.jsonl", **kw):
        return write_records(tmp_path / name, make_records(counts, **kw))
    return _make


@pytest.fixture()
def records_factory():
    return make_records
