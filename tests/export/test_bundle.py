"""The export bundle: what each file holds, routing by kind, quarantine, determinism, LLaMA-Factory registry."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from distillery.export.config import ExportParams
from distillery.export.formats import render_chatml
from distillery.export.registry import LLAMAFACTORY, NOT_REGISTERED
from distillery.export.run import run_export

from .conftest import bad_records, good_records, pref_multiturn_system, sft_multiturn_system, write_lines

SFT_FILES = ["sft/messages.jsonl", "sft/sharegpt.jsonl", "sft/alpaca.jsonl", "sft/chatml_text.jsonl"]
DPO_FILES = ["dpo/trl.jsonl", "dpo/messages_pair.jsonl", "dpo/prompt_pairs.jsonl", "dpo/alpaca_pref.jsonl"]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def export(inputs, out, params=None):
    return run_export([str(i) for i in inputs], out, params or ExportParams(), max_line_bytes=1 << 22)


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_mix_layout_writes_train_eval_and_phase_bundles(mix_dir, tmp_path):
    out = tmp_path / "export"
    m = export([mix_dir], out)
    assert m["bundles"]["train"]["by_kind"] == {"sft": 6, "preference": 6}
    assert m["bundles"]["eval"]["by_kind"] == {"sft": 1, "preference": 1}
    assert m["bundles"]["phases/calibration"]["records_out"] == 2
    assert m["bundles"]["phases/reasoning"]["by_kind"] == {"sft": 2, "preference": 0}
    for rel in SFT_FILES:
        assert m["files"][rel] == 6 and len(rows(out / rel)) == 6
        assert len(rows(out / "eval" / rel)) == 1
        assert len(rows(out / "phases/reasoning" / rel)) == 2
    # prompt_pairs holds only single-turn prompts: the multi-turn pair is counted as skipped, not lost
    assert m["files"]["dpo/prompt_pairs.jsonl"] == 3
    assert m["bundles"]["train"]["skipped"] == {"dpo/prompt_pairs.jsonl": {"multiturn_prompt_not_representable": 3}}
    for rel in ("dpo/trl.jsonl", "dpo/messages_pair.jsonl", "dpo/alpaca_pref.jsonl"):
        assert m["files"][rel] == 6
    assert json.loads((out / "phases/index.json").read_text()) == {"phases": ["calibration", "reasoning"]}
    assert json.loads((out / "provenance.json").read_text())["train"]["sources"]["gsm8k"]["records"] == 3


def test_phases_and_eval_switches(mix_dir, tmp_path):
    out = tmp_path / "export"
    export([mix_dir], out)
    m = export([mix_dir], out, ExportParams(phases=False, eval=False))
    assert not any(k.startswith("phases/") for k in m["bundles"])
    assert not (out / "phases/calibration").exists(), "stale phase bundles of an earlier run are removed"
    assert (out / "eval/sft/messages.jsonl").read_text() == "", "eval files exist (empty) so the layout is fixed"
    assert json.loads((out / "phases/index.json").read_text()) == {"phases": []}


def test_kinds_are_never_mixed(mix_dir, tmp_path):
    out = tmp_path / "export"
    export([mix_dir], out)
    sft_ids = {r["id"] for r in rows(out / "sft/messages.jsonl")}
    dpo_ids = {r["id"] for r in rows(out / "dpo/trl.jsonl")}
    assert sft_ids and dpo_ids and not sft_ids & dpo_ids
    assert all(i.startswith(("gsm-17", "oasst-6ab2")) for i in sft_ids)
    assert all(i.startswith(("hh-4", "pref-mt-1")) for i in dpo_ids)


def test_row_contents_of_every_format(tmp_path):
    out = tmp_path / "export"
    export([write_lines(tmp_path / "in.jsonl", [sft_multiturn_system(), pref_multiturn_system()])], out)
    rec, pref = sft_multiturn_system(), pref_multiturn_system()
    msgs = rec["messages"]
    assert rows(out / "sft/messages.jsonl") == [{"id": rec["id"], "messages": msgs}]
    assert rows(out / "sft/sharegpt.jsonl") == [{
        "id": rec["id"], "system": msgs[0]["content"],
        "conversations": [{"from": "human" if m["role"] == "user" else "gpt", "value": m["content"]}
                          for m in msgs[1:]]}]
    assert [c["from"] for c in rows(out / "sft/sharegpt.jsonl")[0]["conversations"]] == ["human", "gpt"] * 2
    assert rows(out / "sft/alpaca.jsonl") == [{
        "id": rec["id"], "instruction": msgs[3]["content"], "input": "", "output": msgs[4]["content"],
        "system": msgs[0]["content"], "history": [[msgs[1]["content"], msgs[2]["content"]]]}]
    text = rows(out / "sft/chatml_text.jsonl")[0]["text"]
    assert text == (f"<|im_start|>system\n{msgs[0]['content']}<|im_end|>\n"
                    f"<|im_start|>user\n{msgs[1]['content']}<|im_end|>\n"
                    f"<|im_start|>assistant\n{msgs[2]['content']}<|im_end|>\n"
                    f"<|im_start|>user\n{msgs[3]['content']}<|im_end|>\n"
                    f"<|im_start|>assistant\n{msgs[4]['content']}<|im_end|>\n")
    p = pref["messages"]
    assert rows(out / "dpo/trl.jsonl") == [{"id": pref["id"], "prompt": p, "chosen": [pref["chosen"]],
                                            "rejected": [pref["rejected"]]}]
    assert rows(out / "dpo/messages_pair.jsonl") == [{"id": pref["id"], "messages": p, "chosen": pref["chosen"],
                                                      "rejected": pref["rejected"]}]
    assert rows(out / "dpo/alpaca_pref.jsonl") == [{
        "id": pref["id"], "instruction": p[3]["content"], "input": "", "chosen": pref["chosen"]["content"],
        "rejected": pref["rejected"]["content"], "system": p[0]["content"],
        "history": [[p[1]["content"], p[2]["content"]]]}]
    assert rows(out / "dpo/prompt_pairs.jsonl") == []


def test_alpaca_files_have_every_key_on_every_row(mix_dir, tmp_path):
    out = tmp_path / "export"
    export([mix_dir], out)
    for rel, keys in (("sft/alpaca.jsonl", ["id", "instruction", "input", "output", "system", "history"]),
                      ("dpo/alpaca_pref.jsonl", ["id", "instruction", "input", "chosen", "rejected", "system",
                                                 "history"]),
                      ("dpo/prompt_pairs.jsonl", ["id", "system", "prompt", "chosen", "rejected"])):
        for r in rows(out / rel):
            assert sorted(r) == sorted(keys)
            assert all(isinstance(r[k], str) for k in keys if k != "history"), r
    systems = [r["system"] for r in rows(out / "sft/alpaca.jsonl")]
    assert "" in systems and any(systems), "records without a system prompt get '' (never null)"


def test_system_prompt_injection(tmp_path):
    out = tmp_path / "export"
    src = write_lines(tmp_path / "in.jsonl", good_records())
    export([src], out, ExportParams(system_prompt="You are Atlas.", system_prompt_mode="if_missing"))
    systems = [r["messages"][0] for r in rows(out / "sft/messages.jsonl")]
    assert systems[0] == {"role": "system", "content": "You are Atlas."}
    assert systems[1]["content"].startswith("You are Atlas, a concise"), "existing system kept in if_missing"
    export([src], out, ExportParams(system_prompt="You are Atlas.", system_prompt_mode="override"))
    assert {r["system"] for r in rows(out / "sft/sharegpt.jsonl")} == {"You are Atlas."}
    assert {r["prompt"][0]["content"] for r in rows(out / "dpo/trl.jsonl")} == {"You are Atlas."}


def test_bad_records_are_quarantined_and_counted(tmp_path):
    out = tmp_path / "export"
    src = write_lines(tmp_path / "in.jsonl", good_records() + bad_records())
    m = export([src], out)
    assert m["records_in"] == 10 and m["records_out"] == 4 and m["rejected"] == 6
    assert m["rejects_by_reason"] == {"chosen_equals_rejected": 1, "malformed_json": 1,
                                      "wrong_type": 1, "prompt_must_end_with_user": 1,
                                      "role_order": 1, "bad_role": 1}
    q = rows(out / "quarantine.jsonl")
    assert [e["reason"] for e in q] == ["role_order", "bad_role", "chosen_equals_rejected",
                                        "wrong_type", "prompt_must_end_with_user", "malformed_json"]
    assert all(e["file"] == str(src) and e["bundle"] == "train" and e["line"] >= 5 for e in q)
    assert q[0]["record"]["id"] == "bad-order" and q[-1]["raw"].startswith("{not json")
    exported = {r["id"] for rel in ("sft/messages.jsonl", "dpo/trl.jsonl") for r in rows(out / rel)}
    assert not any(i.startswith("bad-") for i in exported)


def test_export_is_byte_deterministic(mix_dir, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    ma = export([mix_dir], a)
    mb = export([mix_dir], b)
    assert ma == mb
    da, db = tree_digest(a), tree_digest(b)
    # configs name the output folder; everything else must be identical byte for byte
    assert {k: v for k, v in da.items() if not k.startswith("configs/")} == \
           {k: v for k, v in db.items() if not k.startswith("configs/")}
    export([mix_dir], a)  # rerun into the same folder
    assert tree_digest(a) == da


def test_dataset_info_registers_every_file_with_existing_columns(mix_dir, tmp_path):
    out = tmp_path / "export"
    m = export([mix_dir], out)
    info = json.loads((out / "dataset_info.json").read_text())
    registered = {e["file_name"] for e in info.values()}
    for path, n in m["files"].items():
        rel = "/".join(path.split("/")[-2:])
        if rel in NOT_REGISTERED or n == 0:
            assert path not in registered
        else:
            assert path in registered, f"{path} is not registered in dataset_info.json"
    assert set(LLAMAFACTORY) | set(NOT_REGISTERED) == set(SFT_FILES) | set(DPO_FILES)
    for name, e in info.items():
        first = rows(out / e["file_name"])[0]
        for col in e["columns"].values():
            assert col in first, f"{name}: column {col!r} missing in {e['file_name']}"
        is_dpo = e["file_name"].split("/")[-2] == "dpo"
        assert e.get("ranking", False) is is_dpo, name
        if e.get("formatting") == "sharegpt":
            # LLaMA-Factory's SharegptDatasetConverter rules: optional leading system, then user/assistant
            # alternating; an even count for SFT, odd for ranking, whose chosen/rejected are assistant dicts
            tags = e["tags"]
            for row in rows(out / e["file_name"]):
                msgs = row[e["columns"]["messages"]]
                if msgs[0][tags["role_tag"]] == tags["system_tag"]:
                    msgs = msgs[1:]
                assert [m[tags["role_tag"]] for m in msgs] == \
                       [tags["user_tag"] if i % 2 == 0 else tags["assistant_tag"] for i in range(len(msgs))]
                assert all(isinstance(m[tags["content_tag"]], str) for m in msgs)
                assert len(msgs) % 2 == (1 if is_dpo else 0), name
                if is_dpo:
                    for k in ("chosen", "rejected"):
                        ans = row[e["columns"][k]]
                        assert isinstance(ans, dict) and ans[tags["role_tag"]] == tags["assistant_tag"]
        else:
            assert e.get("formatting", "alpaca") == "alpaca"
    assert "distillery_eval_sft_messages" in info and "distillery_phases_reasoning_sft_alpaca" in info


def test_chatml_renderer_matches_sharegpt_conversation_split():
    msgs = sft_multiturn_system()["messages"]
    assert render_chatml(msgs).count("<|im_start|>") == len(msgs)
    assert render_chatml(msgs[1:]).startswith("<|im_start|>user\n")


@pytest.mark.parametrize("keep_id", [True, False])
def test_id_column_switch(tmp_path, keep_id):
    out = tmp_path / "export"
    export([write_lines(tmp_path / "in.jsonl", good_records())], out, ExportParams(keep_id=keep_id))
    for rel in SFT_FILES + DPO_FILES:
        assert all(("id" in r) is keep_id for r in rows(out / rel)), rel


def test_copy_paste_configs_point_at_real_files(mix_dir, tmp_path):
    import yaml

    out = tmp_path / "export"
    export([mix_dir], out)
    sft_doc, dpo_doc = yaml.safe_load_all((out / "configs/axolotl_datasets.yaml").read_text())
    assert sft_doc["datasets"][0]["type"] == "chat_template"
    assert dpo_doc["rl"] == "dpo" and dpo_doc["datasets"][0]["type"] == "chat_template.default"
    for ds in sft_doc["datasets"] + sft_doc["test_datasets"] + dpo_doc["datasets"]:
        assert Path(ds["path"]).is_file() and rows(Path(ds["path"]))
    # the TRL snippet runs as written and loads train and test splits
    scope: dict = {}
    exec(compile((out / "configs/trl_load.py").read_text(), "trl_load.py", "exec"), scope)
    assert scope["sft"]["train"].num_rows == 6 and scope["sft"]["test"].num_rows == 1
    assert scope["dpo"]["train"].num_rows == 6 and set(scope["dpo"]["train"].column_names) >= {"prompt", "chosen"}
