"""Human-human dialogues ingested by params alone (`dialogue:`): trim to the last assistant turn,
one example per assistant turn, roles by speaker order, consecutive turns of one speaker joined.

The fixture is real: 11 Open-Assistant conversations as a two-party chat log whose speakers are ids
(tests/ingest/data/README.md); 7 of them end on the prompter's turn, as people leave chats.
"""

import json
from pathlib import Path

from distillery.core.io import read_stage_metrics
from distillery.core.records import check_record, check_roles
from distillery.core.text import normalize_text

DATA = Path(__file__).parent / "data"
DIALOGUES = DATA / "oasst_dialogues.jsonl"
ROWS = [json.loads(line) for line in DIALOGUES.read_text(encoding="utf-8").splitlines()]
AGENTS = {"agent_1": "user", "agent_2": "assistant"}


def _params(dialogue: dict | None, path=DIALOGUES, role="agent", roles=AGENTS, **fields) -> dict:
    src = {"path": str(path), "adapter": "mapping", "max_reject_rate": 1,
           "fields": {"messages": "turns", "role": role, "content": "text", "id": "conversation_id", **fields},
           "roles": roles}
    if dialogue is not None:
        src["dialogue"] = dialogue
    return {"ingest": {"sources": {"chats": src}}}


def _run(ingest_cli, tmp_path, out: str, params: dict):
    p = ingest_cli("--source", "chats", "--output", out, params=params)
    assert p.returncode == 0, p.stderr
    recs = [json.loads(x) for x in (tmp_path / out / "records.jsonl").read_text().splitlines()]
    q = [json.loads(x) for x in (tmp_path / out / "quarantine.jsonl").read_text().splitlines()]
    for rec in recs:
        assert check_record(rec) is None and check_roles("sft", rec["messages"]) is None
    return recs, q, read_stage_metrics(tmp_path / out / "metrics.json")


def _texts(row: dict, n: int) -> list[str]:
    return [normalize_text(t["text"]) for t in row["turns"][:n]]


def test_unshaped_dialogues_that_end_on_the_user_are_lost(ingest_cli, tmp_path):
    recs, q, m = _run(ingest_cli, tmp_path, "out", _params(None))
    assert len(recs) == 4 and m["rejects_by_reason"] == {"sft_must_end_with_assistant": 7}


def test_trim_ends_each_dialogue_at_its_last_assistant_turn(ingest_cli, tmp_path):
    recs, q, m = _run(ingest_cli, tmp_path, "out", _params({"trim": True}))
    assert len(recs) == 10 and [(e["reason"], e["line"]) for e in q] == [("no_assistant_turn", 11)]
    by_id = {r["source"]["upstream_id"]: r for r in recs}
    for row in ROWS[:10]:
        rec, n = by_id[row["conversation_id"]], len(row["turns"])
        kept = n if n % 2 == 0 else n - 1
        assert [m["content"] for m in rec["messages"]] == _texts(row, kept)
        assert rec["lineage"][0].get("dialogue") == ({"turns": kept, "of": n} if kept < n else None)
    assert m["records_in"] == 11 and m["records_out"] == 10


def test_split_gives_one_example_per_assistant_turn(ingest_cli, tmp_path):
    recs, q, m = _run(ingest_cli, tmp_path, "out", _params({"split": True}))
    assert len(recs) == sum(len(r["turns"]) // 2 for r in ROWS) == 17
    assert len({r["id"] for r in recs}) == 17 and [e["reason"] for e in q] == ["no_assistant_turn"]
    six = [r for r in recs if r["source"]["line"] == 10]        # the 6-turn dialogue: 3 examples
    assert [len(r["messages"]) for r in six] == [2, 4, 6]
    assert [m["content"] for m in six[2]["messages"]] == _texts(ROWS[9], 6)
    assert all(r["lineage"][0]["dialogue"] == {"turns": len(r["messages"]), "of": 6} for r in six)
    assert m["records_by_kind"] == {"sft": 17}


def test_alternate_assigns_roles_to_speaker_ids(ingest_cli, tmp_path):
    # speaker_id is an anonymous id per conversation: no `roles` map could name them
    recs, q, m = _run(ingest_cli, tmp_path, "out", _params({"alternate": True, "trim": True}, role="speaker_id",
                                                            roles={}))
    by_agent, _, _ = _run(ingest_cli, tmp_path, "ref", _params({"trim": True}))
    assert len(recs) == 10 and [r["messages"] for r in recs] == [r["messages"] for r in by_agent]
    assert [e["reason"] for e in q] == ["no_assistant_turn"]


def test_plain_text_turns_alternate_by_position(ingest_cli, tmp_path):
    """DailyDialog-style rows (`dialog: [text, text, ...]`), made from the same real conversations."""
    path = tmp_path / "daily.jsonl"
    path.write_text("".join(json.dumps({"conversation_id": r["conversation_id"],
                                        "dialog": [t["text"] for t in r["turns"]]}) + "\n" for r in ROWS))
    recs, q, m = _run(ingest_cli, tmp_path, "out", _params({"alternate": True, "split": True}, path=path,
                                                            messages="dialog", roles={}))
    assert len(recs) == 17 and [e["reason"] for e in q] == ["no_assistant_turn"]


def test_agent_first_chats_merge_and_third_speakers(ingest_cli, tmp_path):
    """A support chat the agent opens, a customer who sends two messages in a row, and a group chat."""
    chats = [
        [("agent_7", "Hello, you are chatting with Dana. How can I help?"), ("cust_1", "Hi. My order is late."),
         ("cust_1", "It was due on Monday."), ("agent_7", "Sorry about that. It ships today."),
         ("cust_1", "Thanks!")],
        [("agent_2", "Hi, what can I do for you?"), ("cust_9", "Can I change my address?"),
         ("agent_2", "Yes: Settings, then Addresses."), ("cust_3", "And mine?")],
    ]
    path = tmp_path / "support.jsonl"
    path.write_text("".join(json.dumps({"conversation_id": f"c{i}", "turns": [{"from": s, "msg": t} for s, t in c]})
                            + "\n" for i, c in enumerate(chats)))
    shape = {"alternate": True, "first_role": "assistant", "merge_consecutive": True, "trim": True}
    recs, q, m = _run(ingest_cli, tmp_path, "out", _params(shape, path=path, role="from", content="msg", roles={}))
    (rec,) = recs
    assert rec["messages"] == [{"role": "user", "content": "Hi. My order is late.\n\nIt was due on Monday."},
                               {"role": "assistant", "content": "Sorry about that. It ships today."}]
    assert rec["lineage"][0]["dialogue"] == {"turns": 2, "of": 4}     # 4 after merging, greeting and thanks cut
    assert [(e["reason"], e["line"]) for e in q] == [("unknown_role", 2)] and "cust_3" in q[0]["detail"]


def test_dialogue_params_mistakes_name_the_key(ingest_inproc, tmp_path):
    (tmp_path / "a.jsonl").write_text("{}\n")
    cases = [
        ({"adapter": "mapping", "fields": {"prompt": "q", "response": "a"}, "dialogue": {"trim": True}},
         "ingest.sources.a.dialogue: needs fields.messages"),
        ({"adapter": "alpaca", "dialogue": {"trim": True}}, "ingest.sources.a.dialogue: needs a turn-list adapter"),
        ({"adapter": "sharegpt", "dialogue": {"first_role": "system"}}, "ingest.sources.a.dialogue.first_role"),
        ({"adapter": "sharegpt", "dialogue": {"trimm": True}}, "ingest.sources.a.dialogue.trimm: unknown key"),
    ]
    for spec, expected in cases:
        r = ingest_inproc("--source", "a", "--output", "out",
                          params={"ingest": {"sources": {"a": {"path": "a.jsonl", **spec}}}})
        assert r.exit_code == 2 and expected in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
