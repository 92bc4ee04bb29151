"""A new dataset with its own field and speaker names is added through params alone."""

import csv
import hashlib
import json

from distillery.core.io import read_stage_metrics


def test_question_answer_csv_via_fields_mapping(ingest_cli, tmp_path, jsonl):
    with open(tmp_path / "faq.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["qid", "question", "answer", "persona"])
        w.writerow(["q1", "What is DVC?", "A tool that versions data and pipelines.", "You are terse."])
        w.writerow(["q2", "Is the sky green?", "No, it is usually blue.", ""])
    params = {"ingest": {"sources": {"faq": {
        "path": "faq.csv", "adapter": "mapping", "bucket": "factual", "license": "CC0-1.0",
        "fields": {"prompt": "question", "response": "answer", "system": "persona", "id": "qid"}}}}}
    p = ingest_cli("--source", "faq", "--output", "out", params=params)
    assert p.returncode == 0, p.stderr
    recs = jsonl(tmp_path / "out/records.jsonl")
    assert [r["messages"] for r in recs] == [
        [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is DVC?"},
         {"role": "assistant", "content": "A tool that versions data and pipelines."}],
        [{"role": "user", "content": "Is the sky green?"}, {"role": "assistant", "content": "No, it is usually blue."}],
    ]
    assert all(r["bucket"] == "factual" and r["source"]["license"] == "CC0-1.0" for r in recs)
    assert [r["source"]["upstream_id"] for r in recs] == ["q1", "q2"]
    metrics = read_stage_metrics(tmp_path / "out/metrics.json")
    assert metrics["records_out"] == 2 and metrics["source"] == "faq"


def test_agent_speakers_via_roles_mapping(ingest_cli, tmp_path, jsonl):
    rows = [{"dialog": [{"speaker": "agent_1", "text": "Hi, can you help me plan a trip?"},
                        {"speaker": "agent_2", "text": "Sure. Where to?"},
                        {"speaker": "agent_1", "text": "Lisbon, in May."},
                        {"speaker": "agent_2", "text": "Great choice: mild weather, few crowds."}]}]
    (tmp_path / "chats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = {"ingest": {"sources": {"chats": {
        "path": "chats.jsonl", "adapter": "mapping",
        "fields": {"messages": "dialog", "role": "speaker", "content": "text"},
        "roles": {"agent_1": "user", "agent_2": "assistant"}}}}}
    p = ingest_cli("--source", "chats", "--output", "out", params=params)
    assert p.returncode == 0, p.stderr
    (rec,) = jsonl(tmp_path / "out/records.jsonl")
    assert [m["role"] for m in rec["messages"]] == ["user", "assistant", "user", "assistant"]
    assert rec["messages"][3]["content"] == "Great choice: mild weather, few crowds."


def test_unmapped_speaker_is_quarantined_with_its_name(ingest_cli, tmp_path, jsonl):
    rows = [{"conversations": [{"from": "agent_1", "value": "hello there"}, {"from": "gpt", "value": "hi"}]}]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = ingest_cli("--input", "c.jsonl", "--adapter", "sharegpt", "--output", "out", "--max-reject-rate", "1")
    assert p.returncode == 0, p.stderr
    (q,) = jsonl(tmp_path / "out/quarantine.jsonl")
    assert q["reason"] == "unknown_role" and "agent_1" in q["detail"] and q["line"] == 1


def test_standalone_input_and_sha256_pin(ingest_cli, tmp_path, jsonl, one_line):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"instruction": "Say hi.", "input": "", "output": "Hi!"}) + "\n")
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    base = {"path": "a.jsonl", "adapter": "alpaca", "revision": "v1"}
    p = ingest_cli("--source", "a", "--output", "out", params={"ingest": {"sources": {"a": {**base, "sha256": good}}}})
    assert p.returncode == 0, p.stderr
    assert jsonl(tmp_path / "out/records.jsonl")[0]["source"]["revision"] == "v1"

    bad = "0" * 64
    p = ingest_cli("--source", "a", "--output", "out2", params={"ingest": {"sources": {"a": {**base, "sha256": bad}}}})
    assert p.returncode == 2
    err = one_line(p)
    assert "ingest.sources.a.sha256" in err and "a.jsonl" in err and good[:16] in err
    assert not (tmp_path / "out2").exists()
