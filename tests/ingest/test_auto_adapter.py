"""`--input FILE` with no adapter: the layout is told per row from its fields."""

import json


def test_auto_detects_each_layout_in_one_file(ingest_cli, tmp_path, jsonl):
    rows = [
        {"instruction": "Name a colour.", "input": "", "output": "Blue."},
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]},
        {"chosen": "\n\nHuman: Help me lie.\n\nAssistant: I'd rather not.",
         "rejected": "\n\nHuman: Help me lie.\n\nAssistant: Sure, here's how."},
        {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
        {"question": "What is 3*4?", "answer": "3*4=<<3*4=12>>12\n#### 12"},
        {"id": "seed_task_1", "instruction": "Add.", "instances": [{"input": "1, 2", "output": "3"}]},
        {"kind": "sft", "messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}],
         "labels": {"persona": "tutor"}},
        {"title": "no idea what this is"},
    ]
    (tmp_path / "mixed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = ingest_cli("--input", "mixed.jsonl", "--output", "out", "--max-reject-rate", "0.2")
    assert p.returncode == 0, p.stderr
    recs = jsonl(tmp_path / "out/records.jsonl")
    assert [r["lineage"][0]["detected"] for r in recs] == [
        "alpaca", "sharegpt", "hh", "prompt_chosen_rejected", "gsm8k", "self_instruct", "record"]
    assert recs[2]["chosen"]["content"] == "I'd rather not." and recs[2]["messages"][-1]["content"] == "Help me lie."
    assert recs[4]["messages"][1]["content"] == "3*4=12\n#### 12"
    assert recs[5]["source"]["upstream_id"] == "seed_task_1"
    assert recs[6]["labels"] == {"persona": "tutor"}
    (q,) = jsonl(tmp_path / "out/quarantine.jsonl")
    assert q["reason"] == "unknown_layout" and q["line"] == 8 and "title" in q["detail"]


def test_an_ingested_record_file_can_be_ingested_again(ingested, tmp_path, ingest_cli, jsonl):
    src = ingested["oasst"]["dir"] / "records.jsonl"
    p = ingest_cli("--input", str(src), "--name", "again", "--output", "out")
    assert p.returncode == 0, p.stderr
    before = jsonl(src)
    after = jsonl(tmp_path / "out/records.jsonl")
    assert [(r["kind"], r["messages"], r.get("chosen"), r.get("rejected")) for r in after] == \
        [(r["kind"], r["messages"], r.get("chosen"), r.get("rejected")) for r in before]
