"""The exports load as-is in the trainers' own code: HF `datasets` (json), TRL's format detection and
chat-template application with the real SmolLM2 tokenizer."""

from __future__ import annotations

import json

import pytest

from distillery.export.config import ExportParams
from distillery.export.run import run_export

from .conftest import good_records, pref_multiturn_system, pref_single, sft_multiturn_system, write_lines

EXPECTED_COLUMNS = {
    "sft/messages.jsonl": {"id", "messages"},
    "sft/sharegpt.jsonl": {"id", "conversations", "system"},
    "sft/alpaca.jsonl": {"id", "instruction", "input", "output", "system", "history"},
    "sft/chatml_text.jsonl": {"id", "text"},
    "dpo/trl.jsonl": {"id", "prompt", "chosen", "rejected"},
    "dpo/messages_pair.jsonl": {"id", "messages", "chosen", "rejected"},
    "dpo/prompt_pairs.jsonl": {"id", "system", "prompt", "chosen", "rejected"},
    "dpo/alpaca_pref.jsonl": {"id", "instruction", "input", "chosen", "rejected", "system", "history"},
}
MESSAGE = {"role": "string", "content": "string"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    d = tmp_path_factory.mktemp("bundle")
    # mixed single/multi-turn, with and without system prompts, so Arrow must infer one schema across them
    src = write_lines(d / "records.jsonl", good_records() * 2)
    run_export([str(src)], d / "export", ExportParams(), max_line_bytes=1 << 22)
    return d / "export"


def load(path):
    from datasets import load_dataset

    return load_dataset("json", data_files=str(path), split="train")


def _dtype(feature):
    """Arrow/`datasets` feature -> a small comparable structure."""
    from datasets import List, Value

    if isinstance(feature, Value):
        return feature.dtype
    if isinstance(feature, List):
        return [_dtype(feature.feature)]
    if isinstance(feature, dict):
        return {k: _dtype(v) for k, v in feature.items()}
    return repr(feature)


@pytest.mark.parametrize("rel", sorted(EXPECTED_COLUMNS))
def test_each_file_loads_with_datasets_json(bundle, rel):
    ds = load(bundle / rel)
    assert set(ds.column_names) == EXPECTED_COLUMNS[rel]
    n = sum(1 for line in (bundle / rel).read_text().splitlines() if line.strip())
    assert ds.num_rows == n > 0
    types = {k: _dtype(v) for k, v in ds.features.items()}
    assert types["id"] == "string"
    if rel in ("sft/messages.jsonl", "dpo/trl.jsonl", "dpo/messages_pair.jsonl"):
        key = "prompt" if rel == "dpo/trl.jsonl" else "messages"
        assert types[key] == [MESSAGE]
    if rel == "dpo/trl.jsonl":
        assert types["chosen"] == [MESSAGE] and types["rejected"] == [MESSAGE]
    if rel == "dpo/messages_pair.jsonl":
        assert types["chosen"] == MESSAGE and types["rejected"] == MESSAGE
    if rel == "sft/sharegpt.jsonl":
        assert types["conversations"] == [{"from": "string", "value": "string"}] and types["system"] == "string"
    if rel.endswith("alpaca.jsonl") or rel.endswith("alpaca_pref.jsonl"):
        assert types["history"] == [["string"]]
        assert all(types[k] == "string" for k in EXPECTED_COLUMNS[rel] - {"history"})
    if rel in ("dpo/prompt_pairs.jsonl", "sft/chatml_text.jsonl"):
        assert all(t == "string" for t in types.values())


def test_trl_detects_conversational_formats(bundle):
    from trl.data_utils import is_conversational

    for rel in ("sft/messages.jsonl", "dpo/trl.jsonl"):
        ds = load(bundle / rel)
        assert all(is_conversational(ex) for ex in ds), rel
    for rel in ("sft/chatml_text.jsonl", "dpo/prompt_pairs.jsonl"):
        ds = load(bundle / rel)
        assert not any(is_conversational(ex) for ex in ds), rel


@pytest.fixture(scope="module")
def tokenizer(smollm2_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_path)


def test_trl_apply_chat_template_on_dpo_rows(bundle, tokenizer):
    from trl.data_utils import apply_chat_template, maybe_apply_chat_template

    ds = load(bundle / "dpo/trl.jsonl")
    by_id = {ex["id"]: ex for ex in ds}
    mt = pref_multiturn_system()
    out = apply_chat_template(by_id[mt["id"]], tokenizer)
    p = mt["messages"]
    assert out["prompt"] == (f"<|im_start|>system\n{p[0]['content']}<|im_end|>\n"
                             f"<|im_start|>user\n{p[1]['content']}<|im_end|>\n"
                             f"<|im_start|>assistant\n{p[2]['content']}<|im_end|>\n"
                             f"<|im_start|>user\n{p[3]['content']}<|im_end|>\n<|im_start|>assistant\n")
    assert out["chosen"] == mt["chosen"]["content"] + "<|im_end|>\n"
    assert out["rejected"] == mt["rejected"]["content"] + "<|im_end|>\n"
    # no system in the record: the model template's default system prompt is used, and it is the same call
    single = pref_single()
    out2 = maybe_apply_chat_template(by_id[single["id"]], tokenizer)
    assert out2["prompt"].endswith(f"<|im_start|>user\n{single['messages'][0]['content']}<|im_end|>\n"
                                   "<|im_start|>assistant\n")
    assert out2["chosen"] == single["chosen"]["content"] + "<|im_end|>\n"


def test_trl_apply_chat_template_on_sft_rows_matches_chatml_text(bundle, tokenizer):
    from trl.data_utils import maybe_apply_chat_template

    ds = load(bundle / "sft/messages.jsonl")
    texts = {json.loads(line)["id"]: json.loads(line)["text"]
             for line in (bundle / "sft/chatml_text.jsonl").read_text().splitlines()}
    rec = sft_multiturn_system()
    ex = next(e for e in ds if e["id"] == rec["id"])
    rendered = maybe_apply_chat_template(ex, tokenizer)["text"]
    # a multi-turn conversation with a system prompt: our ChatML text is exactly the model's own template
    assert rendered == texts[rec["id"]]
    assert rendered.count("<|im_start|>assistant\n") == 2
