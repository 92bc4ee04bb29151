"""The export bundle: which files are written (params), what each holds, routing by kind, quarantine,
determinism, LLaMA-Factory registry."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path

import pytest

from distillery.export.config import ExportParams
from distillery.export.formats import COLUMNS, DPO_FILES as DPO_CONVERTERS, SFT_FILES as SFT_CONVERTERS, \
    render_chatml
from distillery.export.registry import LLAMAFACTORY, NOT_REGISTERED
from distillery.export.run import run_export, warn_pipeline_files

from .conftest import DPO_FILES, SFT_FILES, all_formats, bad_records, every_file_type, good_records, \
    pref_multiturn_system, pref_single, read_rows, sft_multiturn_system, sft_single, write_lines


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def export(inputs, out, params=None):
    return run_export([str(i) for i in inputs], out, params or ExportParams(), max_line_bytes=1 << 22)


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_default_writes_only_messages_and_trl(mix_dir, tmp_path):
    """The default bundle is the two files the pipeline reads and most users load; nothing else is written,
    registered or mentioned."""
    out = tmp_path / "export"
    m = export([mix_dir], out)
    bundles = ["", "eval/", "phases/calibration/", "phases/reasoning/"]
    assert {f for f in files_under(out) if f.endswith((".jsonl", ".gz", ".parquet")) and "quarantine" not in f} == \
           {f"{b}{rel}" for b in bundles for rel in ("sft/messages.jsonl", "dpo/trl.jsonl")}
    assert set(m["files"]) == {f"{b}{rel}" for b in bundles for rel in ("sft/messages.jsonl", "dpo/trl.jsonl")}
    assert (out / "phases/reasoning/dpo").is_dir() and rows(out / "phases/reasoning/dpo/trl.jsonl") == []
    info = json.loads((out / "dataset_info.json").read_text())
    assert sorted(info) == ["distillery_eval_sft_messages", "distillery_phases_calibration_sft_messages",
                            "distillery_phases_reasoning_sft_messages", "distillery_sft_messages"]
    ax = (out / "configs/axolotl_datasets.yaml").read_text()
    trl = (out / "configs/trl_load.py").read_text()
    for text in (ax, trl):  # files are named only when written (an opt-in format may be suggested by name)
        assert set(re.findall(r"(?:sft|dpo)/[a-z_]+\.[a-z.]+", text)) == {"sft/messages.jsonl", "dpo/trl.jsonl"}
    assert json.loads((out / "provenance.json").read_text())["train"]["files"] == \
           {"dpo/trl.jsonl": 6, "sft/messages.jsonl": 6}


def test_formats_and_file_types_come_from_params(tmp_path):
    out = tmp_path / "export"
    src = write_lines(tmp_path / "in.jsonl", good_records())
    m = export([src], out, ExportParams(sft_formats=["sharegpt.parquet", "alpaca.jsonl.gz", "alpaca"],
                                        dpo_formats=["prompt_pairs.jsonl.gz"]))
    assert set(m["files"]) - {f for f in m["files"] if f.startswith("eval/")} == \
           {"sft/sharegpt.parquet", "sft/alpaca.jsonl.gz", "sft/alpaca.jsonl", "dpo/prompt_pairs.jsonl.gz"}
    assert not (out / "sft/messages.jsonl").exists() and not (out / "dpo/trl.jsonl").exists()
    assert gzip.decompress((out / "sft/alpaca.jsonl.gz").read_bytes()) == (out / "sft/alpaca.jsonl").read_bytes()
    assert read_rows(out / "sft/sharegpt.parquet")[0]["conversations"][0]["from"] == "human"
    assert m["files"]["dpo/prompt_pairs.jsonl.gz"] == 1  # the multi-turn pair is skipped in this format


def test_every_file_type_holds_the_same_rows(tmp_path):
    out = tmp_path / "export"
    src = write_lines(tmp_path / "in.jsonl", good_records() * 2)
    m = export([src], out, every_file_type())
    for rel in SFT_FILES + DPO_FILES:
        base = rel.removesuffix(".jsonl")
        assert read_rows(out / f"{base}.jsonl.gz") == read_rows(out / rel)
        # Parquet keeps the input order; an alpaca .jsonl has its first multi-turn row first
        assert sorted(map(json.dumps, read_rows(out / f"{base}.parquet"))) == sorted(map(json.dumps, rows(out / rel)))
        assert m["files"][rel] == m["files"][f"{base}.jsonl.gz"] == m["files"][f"{base}.parquet"]


def test_parquet_schema_is_the_declared_one_even_for_an_empty_file(tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "export"
    export([write_lines(tmp_path / "in.jsonl", [sft_single()])], out, every_file_type())
    for fmt, cols in COLUMNS.items():
        kind = "sft" if fmt in SFT_CONVERTERS else "dpo"
        schema = pq.read_schema(out / f"{kind}/{fmt}.parquet")
        assert schema.names == ["id", *cols], fmt
    assert pq.ParquetFile(out / "dpo/trl.parquet").metadata.num_rows == 0
    import pyarrow as pa

    assert pq.read_schema(out / "sft/alpaca.parquet").field("history").type == pa.list_(pa.list_(pa.string()))


def test_earlier_runs_files_of_unconfigured_formats_are_removed(mix_dir, tmp_path):
    out = tmp_path / "export"
    export([mix_dir], out, every_file_type())
    assert (out / "sft/sharegpt.parquet").exists() and (out / "eval/dpo/alpaca_pref.jsonl.gz").exists()
    export([mix_dir], out)
    assert {f for f in files_under(out / "sft")} == {"messages.jsonl"}
    assert {f for f in files_under(out / "eval/dpo")} == {"trl.jsonl"}
    assert {f for f in files_under(out / "phases/reasoning")} == {"sft/messages.jsonl", "dpo/trl.jsonl"}


def test_params_reject_unknown_and_repeated_formats():
    from pydantic import ValidationError

    for bad in (["csv"], ["messages.csv"], ["trl"]):
        with pytest.raises(ValidationError, match="unknown format"):
            ExportParams(sft_formats=bad)
    with pytest.raises(ValidationError, match="the same file"):
        ExportParams(dpo_formats=["trl", "trl.jsonl"])
    assert ExportParams(sft_formats=[]).sft_formats == []


def test_leaving_out_a_file_the_pipeline_reads_warns(tmp_path, caplog):
    assert warn_pipeline_files(ExportParams()) == []
    assert warn_pipeline_files(ExportParams(sft_formats=["messages.jsonl", "sharegpt"])) == []
    lines = warn_pipeline_files(ExportParams(sft_formats=["messages.parquet"], dpo_formats=["messages_pair"]))
    assert len(lines) == 2
    assert "stats (stats.sft_files) and validate (validate.sft_file)" in lines[0]
    assert "train_eval" in lines[1]


def test_mix_layout_writes_train_eval_and_phase_bundles(mix_dir, tmp_path):
    out = tmp_path / "export"
    m = export([mix_dir], out, all_formats())
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
    assert (out / "eval/dpo/trl.jsonl").read_text() == ""
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
    export([write_lines(tmp_path / "in.jsonl", [sft_multiturn_system(), pref_multiturn_system()])], out,
           all_formats())
    rec, pref = sft_multiturn_system(), pref_multiturn_system()
    msgs = rec["messages"]
    assert rows(out / "sft/messages.jsonl") == [{"id": rec["id"], "messages": msgs}]
    # the system prompt is the first turn; there is no `system` key
    assert rows(out / "sft/sharegpt.jsonl") == [{
        "id": rec["id"],
        "conversations": [{"from": {"user": "human", "assistant": "gpt", "system": "system"}[m["role"]],
                           "value": m["content"]} for m in msgs]}]
    assert [c["from"] for c in rows(out / "sft/sharegpt.jsonl")[0]["conversations"]] == \
           ["system"] + ["human", "gpt"] * 2
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


def test_sharegpt_rows_never_carry_a_system_key(tmp_path):
    """An empty `system` makes axolotl's chat_template prepend an empty system turn; a `system` key on some
    rows only breaks `datasets` at size. A record without a system prompt starts with the user turn."""
    out = tmp_path / "export"
    export([write_lines(tmp_path / "in.jsonl", good_records())], out, all_formats())
    got = rows(out / "sft/sharegpt.jsonl")
    assert got and all(set(r) == {"id", "conversations"} for r in got)
    by_id = {r["id"]: r["conversations"] for r in got}
    assert by_id[sft_single()["id"]][0] == {"from": "human", "value": sft_single()["messages"][0]["content"]}
    assert by_id[sft_multiturn_system()["id"]][0]["from"] == "system"


def test_alpaca_multiturn_rows_keep_earlier_turns_in_history(tmp_path):
    out = tmp_path / "export"
    export([write_lines(tmp_path / "in.jsonl", [sft_single(), sft_multiturn_system()])], out, all_formats())
    by_id = {r["id"]: r for r in rows(out / "sft/alpaca.jsonl")}
    msgs = sft_multiturn_system()["messages"]
    mt = by_id[sft_multiturn_system()["id"]]
    # LLaMA-Factory rebuilds history pairs, then instruction -> output: the whole conversation
    rebuilt = [{"role": "system", "content": mt["system"]}]
    for u, a in mt["history"]:
        rebuilt += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    rebuilt += [{"role": "user", "content": mt["instruction"]}, {"role": "assistant", "content": mt["output"]}]
    assert rebuilt == msgs
    assert by_id[sft_single()["id"]]["history"] == []


def test_first_multiturn_row_goes_first_in_alpaca_jsonl(tmp_path):
    """`datasets` fixes `history`'s type from the first chunk it reads, so the first row with a non-empty
    history is line 1 (the rest keep their input order); Parquet files keep the input order."""
    out = tmp_path / "export"
    recs = [sft_single() | {"id": f"s{i}"} for i in range(5)] + [sft_multiturn_system() | {"id": "mt1"}] + \
           [sft_single() | {"id": "s5"}, sft_multiturn_system() | {"id": "mt2"}]
    prefs = [pref_single() | {"id": f"p{i}"} for i in range(3)] + [pref_multiturn_system() | {"id": "pm"}]
    export([write_lines(tmp_path / "in.jsonl", recs + prefs)], out,
           ExportParams(sft_formats=["alpaca", "alpaca.jsonl.gz", "alpaca.parquet", "messages"],
                        dpo_formats=["alpaca_pref", "trl"]))
    want = ["mt1", "s0", "s1", "s2", "s3", "s4", "s5", "mt2"]
    assert [r["id"] for r in rows(out / "sft/alpaca.jsonl")] == want
    assert [r["id"] for r in read_rows(out / "sft/alpaca.jsonl.gz")] == want
    assert [r["id"] for r in read_rows(out / "sft/alpaca.parquet")] == [r["id"] for r in recs]
    assert [r["id"] for r in rows(out / "sft/messages.jsonl")] == [r["id"] for r in recs]
    assert [r["id"] for r in rows(out / "dpo/alpaca_pref.jsonl")] == ["pm", "p0", "p1", "p2"]
    # no multi-turn row at all: input order
    export([write_lines(tmp_path / "one.jsonl", recs[:3])], out, all_formats())
    assert [r["id"] for r in rows(out / "sft/alpaca.jsonl")] == ["s0", "s1", "s2"]


def test_alpaca_files_have_every_key_on_every_row(mix_dir, tmp_path):
    out = tmp_path / "export"
    export([mix_dir], out, all_formats())
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
    export([src], out, all_formats(system_prompt="You are Atlas.", system_prompt_mode="if_missing"))
    systems = [r["messages"][0] for r in rows(out / "sft/messages.jsonl")]
    assert systems[0] == {"role": "system", "content": "You are Atlas."}
    assert systems[1]["content"].startswith("You are Atlas, a concise"), "existing system kept in if_missing"
    export([src], out, all_formats(system_prompt="You are Atlas.", system_prompt_mode="override"))
    assert {json.dumps(r["conversations"][0]) for r in rows(out / "sft/sharegpt.jsonl")} == \
           {json.dumps({"from": "system", "value": "You are Atlas."})}
    assert {r["system"] for r in rows(out / "sft/alpaca.jsonl")} == {"You are Atlas."}
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
    ma = export([mix_dir], a, every_file_type())
    mb = export([mix_dir], b, every_file_type())
    assert ma == mb
    da, db = tree_digest(a), tree_digest(b)
    assert any(k.endswith(".parquet") for k in da) and any(k.endswith(".jsonl.gz") for k in da)
    # configs name the output folder; everything else must be identical byte for byte
    assert {k: v for k, v in da.items() if not k.startswith("configs/")} == \
           {k: v for k, v in db.items() if not k.startswith("configs/")}
    export([mix_dir], a, every_file_type())  # rerun into the same folder
    assert tree_digest(a) == da


def test_the_bundle_is_the_same_bytes_whatever_the_workers_and_blocks(tmp_path, monkeypatch):
    """Blocks of lines are converted in worker processes and written in input order: three workers on
    blocks of 7 lines give the files, metrics and quarantine of one process on one block, for every
    format and file type. The input has rejects in several blocks, Parquet row groups across blocks, and
    its first multi-turn row (which the alpaca JSONL files put on line 1) deep in a later block."""
    import distillery.core.parallel as parallel
    import distillery.export.bundle as bundle

    recs: list = []
    for i in range(3300):
        r = (sft_single() if i % 3 else pref_single()) | {"id": f"r{i}"}
        recs.append(r)
        if i % 500 == 250:
            recs += bad_records()
    recs.insert(1777, sft_multiturn_system() | {"id": "mt"})
    recs.insert(1900, pref_multiturn_system() | {"id": "pm"})
    src = write_lines(tmp_path / "in.jsonl", recs)
    params = every_file_type()
    one = export([src], tmp_path / "one", params.model_copy(update={"workers": 1}))
    monkeypatch.setattr(parallel, "POOL_MIN_BYTES", 0)
    monkeypatch.setattr(bundle, "BLOCK_LINES", 7)
    three = export([src], tmp_path / "three", params.model_copy(update={"workers": 3}))
    assert one == three and one["rejected"] == 7 * 6
    da, db = tree_digest(tmp_path / "one"), tree_digest(tmp_path / "three")
    assert {k: v for k, v in da.items() if not k.startswith("configs/")} == \
           {k: v for k, v in db.items() if not k.startswith("configs/")}
    assert [r["id"] for r in rows(tmp_path / "three/sft/alpaca.jsonl")][:2] == ["mt", "r1"]
    import pyarrow.parquet as pq

    groups = pq.ParquetFile(tmp_path / "three/sft/messages.parquet").metadata
    assert [groups.row_group(g).num_rows for g in range(groups.num_row_groups)] == [bundle.PARQUET_BATCH, 2201 - 2048]


def _columns(path: Path) -> set[str]:
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return set(pq.read_schema(path).names)
    return set().union(*(set(r) for r in read_rows(path)))


@pytest.mark.parametrize("params", [all_formats(), every_file_type(), ExportParams(
    sft_formats=["messages.parquet", "sharegpt.jsonl.gz", "alpaca.parquet", "chatml_text"],
    dpo_formats=["trl.parquet", "alpaca_pref.parquet", "messages_pair.jsonl.gz"])], ids=["jsonl", "all", "mixed"])
def test_dataset_info_registers_every_readable_file_with_existing_columns(mix_dir, tmp_path, params):
    out = tmp_path / "export"
    m = export([mix_dir], out, params)
    info = json.loads((out / "dataset_info.json").read_text())
    registered = {e["file_name"] for e in info.values()}
    assert registered <= set(m["files"]), "only files this run wrote are registered"
    for path, n in m["files"].items():
        name = path.split("/")[-1]
        fmt, ext = name.split(".", 1)
        if n == 0 or fmt in NOT_REGISTERED or ext == "jsonl.gz":
            assert path not in registered  # LLaMA-Factory reads .jsonl/.parquet, not gzip, and not TRL's pairs
        elif ext == "jsonl" or path.replace(".parquet", ".jsonl") not in m["files"]:
            assert path in registered, f"{path} is not registered in dataset_info.json"
        else:
            assert path not in registered, "one registration per format: the .jsonl"
    assert set(LLAMAFACTORY) | set(NOT_REGISTERED) == set(SFT_CONVERTERS) | set(DPO_CONVERTERS)
    for name, e in info.items():
        cols = _columns(out / e["file_name"])
        for col in e["columns"].values():
            assert col in cols, f"{name}: column {col!r} missing in {e['file_name']}"
        is_dpo = e["file_name"].split("/")[-2] == "dpo"
        assert e.get("ranking", False) is is_dpo, name
        if e.get("formatting") == "sharegpt":
            # LLaMA-Factory's SharegptDatasetConverter rules: optional leading system, then user/assistant
            # alternating; an even count for SFT, odd for ranking, whose chosen/rejected are assistant dicts
            tags = e["tags"]
            for row in read_rows(out / e["file_name"]):
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


def test_chatml_text_is_registered_for_pretraining_only(mix_dir, tmp_path):
    out = tmp_path / "export"
    export([mix_dir], out, all_formats())
    info = json.loads((out / "dataset_info.json").read_text())
    chatml = {n: e for n, e in info.items() if "chatml_text" in n}
    assert sorted(chatml) == ["distillery_eval_pt_chatml_text", "distillery_phases_calibration_pt_chatml_text",
                              "distillery_phases_reasoning_pt_chatml_text", "distillery_pt_chatml_text"]
    assert not any(n.startswith("distillery_sft_chatml") or "_sft_chatml" in n for n in info)
    # LLaMA-Factory's pre-training entry: alpaca formatting, the text as `prompt`, no response column
    assert chatml["distillery_pt_chatml_text"] == {"file_name": "sft/chatml_text.jsonl", "formatting": "alpaca",
                                                   "columns": {"prompt": "text"}}
    assert "distillery_eval_sft_messages" in info and "distillery_phases_reasoning_sft_alpaca" in info


def test_chatml_renderer_matches_sharegpt_conversation_split():
    msgs = sft_multiturn_system()["messages"]
    assert render_chatml(msgs).count("<|im_start|>") == len(msgs)
    assert render_chatml(msgs[1:]).startswith("<|im_start|>user\n")


@pytest.mark.parametrize("keep_id", [True, False])
def test_id_column_switch(tmp_path, keep_id):
    out = tmp_path / "export"
    export([write_lines(tmp_path / "in.jsonl", good_records())], out, every_file_type(keep_id=keep_id))
    for f in files_under(out):
        if f.startswith(("sft/", "dpo/")):
            assert all(("id" in r) is keep_id for r in read_rows(out / f)), f


@pytest.mark.parametrize("params, sft_path, dpo_path", [
    (ExportParams(), "sft/messages.jsonl", "dpo/trl.jsonl"),
    (all_formats(), "sft/messages.jsonl", "dpo/messages_pair.jsonl"),
    (ExportParams(sft_formats=["sharegpt.parquet"], dpo_formats=["trl.jsonl.gz", "prompt_pairs"]),
     "sft/sharegpt.parquet", "dpo/trl.jsonl.gz"),
], ids=["default", "all", "parquet-gz"])
def test_axolotl_config_names_only_written_files(mix_dir, tmp_path, params, sft_path, dpo_path):
    import yaml

    out = tmp_path / "export"
    m = export([mix_dir], out, params)
    text = (out / "configs/axolotl_datasets.yaml").read_text()
    sft_doc, dpo_doc = yaml.safe_load_all(text)
    (sft,), (dpo,) = sft_doc["datasets"], dpo_doc["datasets"]
    assert sft["path"] == f"{out}/{sft_path}" and dpo["path"] == f"{out}/{dpo_path}"
    assert sft["ds_type"] == ("parquet" if sft_path.endswith(".parquet") else "json")
    assert sft_doc["test_datasets"][0]["path"] == f"{out}/eval/{sft_path}"
    assert sft["type"] == "chat_template" and dpo_doc["rl"] == "dpo"
    assert dpo["type"] == "chat_template.default" and dpo["field_messages"] == ("prompt" if "trl" in dpo_path
                                                                                 else "messages")
    if "sharegpt" in sft_path:
        assert sft["field_messages"] == "conversations"
        assert sft["message_property_mappings"] == {"role": "from", "content": "value"}
    for ds in sft_doc["datasets"] + sft_doc["test_datasets"] + dpo_doc["datasets"]:
        assert Path(ds["path"]).is_file() and read_rows(Path(ds["path"]))
    named = set(re.findall(r"[a-z]+/[a-z_]+\.(?:jsonl\.gz|jsonl|parquet)", text))
    assert {n for n in named} <= {f for f in m["files"]}, "the config names only files that were written"


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
