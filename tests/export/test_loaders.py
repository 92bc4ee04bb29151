"""The exports load as-is in the trainers' own code: HF `datasets` (json, gzipped json, parquet; what TRL,
axolotl and LLaMA-Factory call), LLaMA-Factory's and axolotl's row conversion rules, TRL's format detection
and chat-template application with the real SmolLM2 tokenizer."""

from __future__ import annotations

import json

import pytest

from distillery.export.config import ExportParams
from distillery.export.formats import COLUMNS, DPO_FILES, SFT_FILES, render_chatml
from distillery.export.run import run_export

from .conftest import every_file_type, good_records, pref_multiturn_system, pref_single, read_rows, \
    sft_multiturn_system, sft_single, write_lines

FILE_TYPES = ("jsonl", "jsonl.gz", "parquet")
FILES = [f"{'sft' if fmt in SFT_FILES else 'dpo'}/{fmt}.{ft}" for fmt in (*SFT_FILES, *DPO_FILES) for ft in FILE_TYPES]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    d = tmp_path_factory.mktemp("bundle")
    # mixed single/multi-turn, with and without system prompts, so Arrow must infer one schema across them
    src = write_lines(d / "records.jsonl", good_records() * 2)
    run_export([str(src)], d / "export", every_file_type(), max_line_bytes=1 << 22)
    return d / "export"


def load(path, **kw):
    """As TRL users, axolotl and LLaMA-Factory load a local file: datasets' json (also .gz) or parquet builder."""
    from datasets import load_dataset

    return load_dataset("parquet" if str(path).endswith(".parquet") else "json", data_files=str(path),
                        split="train", **kw)


def _dtype(feature):
    """Arrow/`datasets` feature -> the notation of formats.COLUMNS ("string", [T], {name: T})."""
    from datasets import List, Value

    if isinstance(feature, Value):
        return feature.dtype
    if isinstance(feature, List):
        return [_dtype(feature.feature)]
    if isinstance(feature, dict):
        return {k: _dtype(v) for k, v in feature.items()}
    return repr(feature)


@pytest.mark.parametrize("rel", FILES)
def test_each_file_loads_with_datasets_with_its_declared_types(bundle, rel):
    fmt = rel.split("/")[1].split(".")[0]
    ds = load(bundle / rel)
    assert list(ds.column_names) == ["id", *COLUMNS[fmt]]
    assert ds.num_rows == len(read_rows(bundle / rel)) > 0
    assert {k: _dtype(v) for k, v in ds.features.items()} == {"id": "string", **COLUMNS[fmt]}


def _big_input(d, n: int):
    """n single-turn records without a system prompt, then multi-turn ones with one: at real size the first
    chunk `datasets` reads (10 MB; here 16 KB) holds no multi-turn row and no system prompt."""
    recs = [r | {"id": f"{r['id']}-{i}"} for i in range(n) for r in (sft_single(), pref_single())]
    recs += [r | {"id": f"{r['id']}-{i}"} for i in range(5) for r in (sft_multiturn_system(), pref_multiturn_system())]
    return write_lines(d / "big.jsonl", recs)


@pytest.mark.parametrize("ext", ["jsonl", "jsonl.gz"])
def test_files_load_in_chunks_when_multiturn_rows_come_late(tmp_path, ext):
    out = tmp_path / "export"
    src = _big_input(tmp_path, 300)
    suffix = "" if ext == "jsonl" else ".jsonl.gz"
    run_export([str(src)], out, ExportParams(sft_formats=[f + suffix for f in SFT_FILES],
                                             dpo_formats=[f + suffix for f in DPO_FILES]), max_line_bytes=1 << 22)
    for fmt in (*SFT_FILES, *DPO_FILES):
        path = out / f"{'sft' if fmt in SFT_FILES else 'dpo'}/{fmt}.{ext}"
        assert path.stat().st_size > 16 << 10 or ext == "jsonl.gz"
        ds = load(path, chunksize=16 << 10)
        assert ds.num_rows == len(read_rows(path))
        assert {k: _dtype(v) for k, v in ds.features.items()} == {"id": "string", **COLUMNS[fmt]}, fmt
        if fmt in ("alpaca", "alpaca_pref"):
            assert sum(1 for h in ds["history"] if h) == 5


# --- LLaMA-Factory: its loader picks the builder by the last extension, then its converters build the
# conversation from the registered columns (LLaMA-Factory's data/README.md and converter rules) -----------

FILEEXT2TYPE = {"arrow": "arrow", "csv": "csv", "json": "json", "jsonl": "json", "parquet": "parquet", "txt": "text"}


def _llamafactory_convert(entry: dict, ex: dict) -> dict:
    """Standard (_prompt, _response, _system) of one example, as LLaMA-Factory's Alpaca/Sharegpt converters do."""
    cols = entry.get("columns", {})
    names = ["system", "tools", "images", "chosen", "rejected", "kto_tag"]
    sharegpt = entry.get("formatting", "alpaca") == "sharegpt"
    names += ["messages"] if sharegpt else ["prompt", "query", "response", "history"]
    attr = {n: cols.get(n) for n in names}  # with `columns`, an unnamed column is None
    ranking = entry.get("ranking", False)
    if not sharegpt:
        prompt = []
        if attr["history"] and isinstance(ex[attr["history"]], list):
            for old_prompt, old_response in ex[attr["history"]]:
                prompt += [{"role": "user", "content": old_prompt}, {"role": "assistant", "content": old_response}]
        query = [ex[a] for a in (attr["prompt"], attr["query"]) if a and ex[a]]
        prompt.append({"role": "user", "content": "\n".join(query)})
        if ranking and isinstance(ex[attr["chosen"]], str) and isinstance(ex[attr["rejected"]], str):
            response = [{"role": "assistant", "content": ex[attr[k]]} for k in ("chosen", "rejected")]
        elif attr["response"] and isinstance(ex[attr["response"]], str):
            response = [{"role": "assistant", "content": ex[attr["response"]]}]
        else:
            response = []  # unsupervised: pre-training text
        return {"_prompt": prompt, "_response": response, "_system": ex[attr["system"]] if attr["system"] else ""}
    tags = entry["tags"]
    role = {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant", tags["system_tag"]: "system"}
    msgs = ex[attr["messages"]]
    if msgs and msgs[0][tags["role_tag"]] == tags["system_tag"]:
        system, msgs = msgs[0][tags["content_tag"]], msgs[1:]
    else:
        system = ex[attr["system"]] if attr["system"] else ""  # a registered column that is absent: KeyError
    accept = ((tags["user_tag"],), (tags["assistant_tag"],))
    assert all(m[tags["role_tag"]] in accept[i % 2] for i, m in enumerate(msgs)), "Invalid role tag"
    assert len(msgs) % 2 == (1 if ranking else 0), "Invalid message count"
    aligned = [{"role": role[m[tags["role_tag"]]], "content": m[tags["content_tag"]]} for m in msgs]
    if ranking:
        response = [{"role": role[ex[attr[k]][tags["role_tag"]]], "content": ex[attr[k]][tags["content_tag"]]}
                    for k in ("chosen", "rejected")]
        return {"_prompt": aligned, "_response": response, "_system": system}
    return {"_prompt": aligned[:-1], "_response": aligned[-1:], "_system": system}


def test_every_registered_dataset_converts_back_to_its_records_in_llamafactory(bundle):
    """Loaded the way LLaMA-Factory loads them, every registered file gives back each record's whole
    conversation: system prompt, earlier turns (sharegpt turns, alpaca `history`), the answer or the pair."""
    info = json.loads((bundle / "dataset_info.json").read_text())
    recs = {r["id"]: r for r in good_records()}
    assert {e["file_name"].split(".", 1)[1] for e in info.values()} == {"jsonl"}, "a .jsonl when both are written"
    seen = set()
    for name, entry in info.items():
        builder = FILEEXT2TYPE[entry["file_name"].split(".")[-1]]
        ds = load(bundle / entry["file_name"]) if builder == "json" else pytest.fail(builder)
        for ex in ds:
            rec = recs[ex["id"]]
            conv = _llamafactory_convert(entry, ex)
            if name.endswith("_pt_chatml_text"):
                assert conv["_response"] == [] and conv["_prompt"][-1]["content"] == render_chatml(rec["messages"])
                continue
            system = [{"role": "system", "content": conv["_system"]}] if conv["_system"] else []
            if entry.get("ranking"):
                if "prompt_pairs" in name and len(rec["messages"]) > 2:
                    pytest.fail("a multi-turn prompt in prompt_pairs")
                assert system + conv["_prompt"] == rec["messages"], name
                assert conv["_response"] == [rec["chosen"], rec["rejected"]]
            else:
                assert system + conv["_prompt"] + conv["_response"] == rec["messages"], name
            seen.add((name, ex["id"]))
    assert {n for n, _ in seen} == set(info) - {"distillery_pt_chatml_text"}
    assert ("distillery_sft_alpaca", sft_multiturn_system()["id"]) in seen
    assert ("distillery_dpo_alpaca_pref", pref_multiturn_system()["id"]) in seen


def test_registered_parquet_files_convert_the_same(tmp_path):
    out = tmp_path / "export"
    src = write_lines(tmp_path / "in.jsonl", good_records())
    run_export([str(src)], out, ExportParams(sft_formats=[f"{f}.parquet" for f in SFT_FILES],
                                             dpo_formats=[f"{f}.parquet" for f in DPO_FILES]), max_line_bytes=1 << 22)
    info = json.loads((out / "dataset_info.json").read_text())
    assert info and all(e["file_name"].endswith(".parquet") for e in info.values())
    recs = {r["id"]: r for r in good_records()}
    for name, entry in info.items():
        assert FILEEXT2TYPE[entry["file_name"].split(".")[-1]] == "parquet"
        for ex in load(out / entry["file_name"]):
            conv = _llamafactory_convert(entry, ex)
            rec = recs[ex["id"]]
            system = [{"role": "system", "content": conv["_system"]}] if conv["_system"] else []
            if not name.endswith("_pt_chatml_text") and not entry.get("ranking"):
                assert system + conv["_prompt"] + conv["_response"] == rec["messages"], name


# --- axolotl: chat_template's conversation thread (after it drops None values) ----------------------------

AXOLOTL_ROLES = {"human": "user", "user": "user", "assistant": "assistant", "gpt": "assistant",
                 "system": "system", "tool": "tool"}


def _axolotl_turns(row: dict, field_messages: str, mapping: dict[str, str], field_system: str = "system") -> list:
    """axolotl ChatTemplateStrategy.get_conversation_thread: a `system` field (when present and not None)
    becomes a system turn unless the conversation already starts with one."""
    row = {k: v for k, v in row.items() if v is not None}  # remove_none_values
    turns = []
    msgs = [{k: m[v] for k, v in mapping.items()} for m in row[field_messages]]
    msgs = [m | {"role": AXOLOTL_ROLES.get(m["role"], m["role"])} for m in msgs]
    if msgs[0]["role"] != "system" and field_system in row:
        turns.append({"role": "system", "content": row[field_system]})
    return turns + msgs


def test_axolotl_chat_template_gets_no_empty_system_turn(bundle):
    recs = {r["id"]: r for r in good_records()}
    for rel, field, mapping in (("sft/sharegpt.jsonl", "conversations", {"role": "from", "content": "value"}),
                                ("sft/sharegpt.parquet", "conversations", {"role": "from", "content": "value"}),
                                ("sft/messages.jsonl", "messages", {"role": "role", "content": "content"})):
        ds = load(bundle / rel)
        assert "system" not in ds.column_names
        for ex in ds:
            turns = _axolotl_turns(ex, field, mapping)
            assert turns == recs[ex["id"]]["messages"], rel
            assert all(t["content"] for t in turns), "no empty turn"


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
    texts = {r["id"]: r["text"] for r in read_rows(bundle / "sft/chatml_text.jsonl")}
    rec = sft_multiturn_system()
    ex = next(e for e in ds if e["id"] == rec["id"])
    rendered = maybe_apply_chat_template(ex, tokenizer)["text"]
    # a multi-turn conversation with a system prompt: our ChatML text is exactly the model's own template
    assert rendered == texts[rec["id"]]
    assert rendered.count("<|im_start|>assistant\n") == 2
