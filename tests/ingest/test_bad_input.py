"""Bad input is quarantined with a reason code and file:line, or stops with one clear line."""

import json

from distillery.core.io import read_stage_metrics

GOOD = {"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]}


def _bad_lines() -> list[bytes]:
    """One line per bad-input case, in order; the expected reason code of each."""
    j = lambda o: json.dumps(o).encode()  # noqa: E731
    return [
        (b'{"messages": [{"role": "user", "content": "unterminated', "malformed_json"),
        (j({"messages": "hello"}), "wrong_type"),
        (j({"messages": [{"role": "user", "content": ["a", "list"]}, GOOD["messages"][1]]}), "wrong_type"),
        (j({"conversation": GOOD["messages"]}), "missing_field"),
        (j({"messages": [{"role": "user"}, GOOD["messages"][1]]}), "missing_field"),
        (j({"messages": []}), "empty_conversation"),
        (j({"messages": [GOOD["messages"][1], GOOD["messages"][0]]}), "role_order"),
        (j({"messages": [GOOD["messages"][0]]}), "sft_must_end_with_assistant"),
        (j({"messages": [GOOD["messages"][0], {"role": "assistant", "content": "   \n "}]}), "empty_turn"),
        (j({"messages": [GOOD["messages"][0], {"role": "assistant", "content": "..."}]}), "near_empty_turn"),
        (j({"messages": [GOOD["messages"][0], {"role": "assistant", "content": "N/A"}]}), "placeholder_turn"),
        (j({"messages": [GOOD["messages"][0], {"role": "wizard", "content": "x"}]}), "unknown_role"),
        ('{"messages": [{"role": "user", "content": "caf\u00e9 '.encode() + b"\xff\xfe" + b'"}]}', "invalid_utf8"),
        (j({"messages": [GOOD["messages"][0], {"role": "assistant", "content": "\ud800 lone"}]}), "invalid_unicode"),
        (j({"messages": [GOOD["messages"][0], {"role": "assistant", "content": "x" * (5 << 20)}]}),
         "record_too_large"),
        (b'["an", "array"]', "not_an_object"),
    ]


def test_every_bad_line_is_quarantined_with_reason_and_line(ingest_cli, tmp_path, jsonl):
    cases = _bad_lines()
    good = [json.dumps({"messages": [{"role": "user", "content": f"Question {i}?"},
                                     {"role": "assistant", "content": f"Answer {i}."}]}).encode()
            for i in range(400)]
    lines = [c for c, _ in cases] + good  # bad rows first, then enough good ones to stay under 5%
    (tmp_path / "mixed.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    p = ingest_cli("--input", "mixed.jsonl", "--adapter", "openai_messages", "--output", "out")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    q = jsonl(tmp_path / "out/quarantine.jsonl")
    assert [(e["reason"], e["line"]) for e in q] == [(r, i) for i, (_, r) in enumerate(cases, start=1)]
    assert all(e["file"] == "mixed.jsonl" and e["stage"] == "ingest" for e in q)
    assert "raw" in q[0] and "unterminated" in q[0]["raw"]          # the bad text itself is kept
    assert len(jsonl(tmp_path / "out/records.jsonl")) == 400
    m = read_stage_metrics(tmp_path / "out/metrics.json")
    assert m["records_in"] == 416 and m["rejected"] == 16 and m["rejects_by_reason"]["wrong_type"] == 2


def test_reject_rate_over_threshold_fails_the_stage_saying_so(ingest_cli, tmp_path, one_line, jsonl):
    rows = [{"instruction": "Say hi.", "output": "Hi!"}] * 8 + [{"instruction": "Say hi.", "output": ""}] * 2
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = ingest_cli("--input", "a.jsonl", "--adapter", "alpaca", "--output", "out")
    assert p.returncode == 3
    err = one_line(p)
    assert "reject rate 20.0% (2/10) exceeds" in err and "5.0%" in err and "empty_turn=2" in err
    assert len(jsonl(tmp_path / "out/quarantine.jsonl")) == 2      # the evidence is written
    p = ingest_cli("--input", "a.jsonl", "--adapter", "alpaca", "--output", "out", "--max-reject-rate", "0.25")
    assert p.returncode == 0, p.stderr


def test_missing_file_stops_with_one_line(ingest_cli, one_line):
    p = ingest_cli("--input", "nope.jsonl", "--adapter", "alpaca", "--output", "out")
    assert p.returncode == 2
    err = one_line(p)
    assert "ingest.sources.nope.path" in err and "nope.jsonl" in err


def test_unknown_adapter_stops_with_one_line_naming_the_key(ingest_cli, tmp_path, one_line):
    (tmp_path / "a.jsonl").write_text("{}\n")
    p = ingest_cli("--source", "a", "--output", "out",
                   params={"ingest": {"sources": {"a": {"path": "a.jsonl", "adapter": "dolly"}}}})
    assert p.returncode == 2
    err = one_line(p)
    assert "ingest.sources.a.adapter" in err and "dolly" in err and "alpaca" in err
    p = ingest_cli("--input", "a.jsonl", "--adapter", "dolly", "--output", "out")
    assert p.returncode == 2 and "ingest.sources.a.adapter" in one_line(p)


def test_other_params_mistakes_name_the_key(ingest_inproc, tmp_path):
    (tmp_path / "a.jsonl").write_text("{}\n")
    cases = [
        ({"a": {"path": "a.jsonl", "adapter": "mapping", "fields": {"question": "q"}}}, "a",
         "ingest.sources.a.fields.question: unknown key"),
        ({"a": {"path": "a.jsonl", "adapter": "alpaca", "roles": {"agent_1": "human"}}}, "a",
         "ingest.sources.a.roles.agent_1"),
        ({"a": {"path": "a.jsonl", "adapter": "alpaca", "sha256": "abc"}}, "a",
         "ingest.sources.a.sha256: must be 64 hex digits"),
        ({"a": {"path": "a.jsonl", "adapter": "alpaca"}}, "b", "ingest.sources.b: no such source in params (known: a)"),
    ]
    for sources, name, expected in cases:
        r = ingest_inproc("--source", name, "--output", "out", params={"ingest": {"sources": sources}})
        assert r.exit_code == 2 and expected in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = ingest_inproc("--output", "out")
    assert r.exit_code == 2 and "--source" in r.stderr


def test_bad_csv_row_and_broken_json_array(ingest_cli, tmp_path, jsonl, one_line):
    rows = [b"instruction,output"] + [f"Task {i},Done {i}".encode() for i in range(30)]
    rows.insert(5, b"Bad \xff bytes,out")
    rows.insert(9, b"a,b,c,too many")
    (tmp_path / "t.csv").write_bytes(b"\n".join(rows) + b"\n")
    p = ingest_cli("--input", "t.csv", "--adapter", "alpaca", "--output", "out", "--max-reject-rate", "0.1")
    assert p.returncode == 0, p.stderr
    assert [(e["reason"], e["line"]) for e in jsonl(tmp_path / "out/quarantine.jsonl")] == [
        ("invalid_utf8", 6), ("csv_extra_columns", 10)]
    assert len(jsonl(tmp_path / "out/records.jsonl")) == 30

    (tmp_path / "b.json").write_text('[{"instruction": "x", "output": "y"},\n {"instruction": ')
    p = ingest_cli("--input", "b.json", "--adapter", "alpaca", "--output", "out2")
    assert p.returncode == 2
    assert "b.json:2: not valid JSON" in one_line(p)


def test_help_explains_every_option(ingest_cli):
    p = ingest_cli("--help")
    assert p.returncode == 0
    for opt in ("--source", "--input", "--name", "--adapter", "--format", "--bucket", "--limit",
                "--max-reject-rate", "--output", "--params", "--set", "oasst_tree", "quarantine"):
        assert opt in p.stdout, opt


def test_odd_oasst_trees_are_quarantined_not_crashed(ingest_cli, tmp_path, jsonl):
    def msg(role, text, rank=None, replies=()):
        return {"message_id": text, "role": role, "text": text, "rank": rank, "replies": list(replies)}

    good = {"message_tree_id": "t1", "prompt": msg("prompter", "Hello?", replies=[
        msg("assistant", "Hi there.", rank=0), msg("assistant", "Hey.", rank="first")])}
    rows = [good,
            {"message_tree_id": "t2", "prompt": msg("prompter", "Anyone?")},              # no reply at all
            {"message_tree_id": "t3", "prompt": "not a message"},
            {"message_tree_id": "t4", "prompt": msg("prompter", "Deep?", replies=[
                {"role": "assistant", "text": ["not", "text"]}])}]
    (tmp_path / "trees.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = ingest_cli("--input", "trees.jsonl", "--adapter", "oasst_tree", "--output", "out", "--max-reject-rate", "1")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert [q["reason"] for q in jsonl(tmp_path / "out/quarantine.jsonl")] == [
        "oasst_no_assistant_reply", "wrong_type", "wrong_type"]
    recs = jsonl(tmp_path / "out/records.jsonl")
    assert [r["kind"] for r in recs] == ["sft", "sft"]   # a non-integer rank makes no pair
