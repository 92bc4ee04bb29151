"""multiturn, scenarios and completion over real HTTP."""

import json
from collections import Counter

from distillery.generation.completion import run_completion
from distillery.generation.multiturn import run_multiturn
from distillery.generation.scenarios import run_scenarios

SIM = [{"match": r"Persona: CEO\b", "response": "CEO_ASKS: how much will this cost us?"},
       {"match": "role-playing", "response": "User: How do I get started with this?"}]


def test_multiturn_turn_counts_exact_and_truncated_turns_rejected(tmp_path, gen_params, engine_for, gh, server):
    rules = [{"match": "^CEO_ASKS", "response": "It depends on", "finish_reason": "length"}] + SIM
    params = gen_params(rules=rules, synthesize__multiturn__conversations=21, synthesize__multiturn__min_turns=1,
                        synthesize__multiturn__max_turns=4)
    m = run_multiturn(params, tmp_path / "mt", engine_for(params, "multiturn"))
    recs = gh.read_jsonl(tmp_path / "mt" / "records.jsonl")
    q = gh.read_jsonl(tmp_path / "mt" / "quarantine.jsonl")
    # every CEO conversation hit a truncated assistant turn; nothing else failed
    assert {x["reason"] for x in q} == {"truncated_turn"} and {x["record"]["labels"]["persona"] for x in q} == {"CEO"}
    assert len(recs) + len(q) == 21 and recs
    for r in recs:
        body = [msg for msg in r["messages"] if msg["role"] != "system"]
        assert [msg["role"] for msg in body] == ["user", "assistant"] * r["labels"]["turns"]
        assert 1 <= r["labels"]["turns"] <= 4
        assert body[0]["content"] == "How do I get started with this?"      # "User:" prefix stripped
        assert r["messages"][0]["role"] == "system" and "Distillery Assistant" in r["messages"][0]["content"]
        # one user-sim and one assistant lineage step per turn, each with the exact prompt sent
        assert Counter(s["role"] for s in r["lineage"]) == {"user_sim": r["labels"]["turns"],
                                                             "answer": r["labels"]["turns"]}
    assert set(m["turns"]) == {"1", "2", "3", "4"}
    assert len({(r["labels"]["persona"], r["labels"]["flow"]) for r in recs + [x["record"] for x in q]}) == 21
    # (identical requests are answered once by the engine, so compare the sets)
    sent = {json.dumps(r["body"]["messages"]) for r in server.requests()}
    stored = {json.dumps(s["prompt"]) for r in recs + [x["record"] for x in q] for s in r["lineage"]}
    assert stored == sent


def test_multiturn_required_pattern_and_word_bounds(tmp_path, gen_params, engine_for, gh, server):
    rules = SIM + [{"match": "get started", "response": "Install it. Pro Tip: pin versions."}]
    mt = dict(synthesize__multiturn__conversations=4, synthesize__multiturn__required_patterns=["pro tip"],
              synthesize__multiturn__personas=["CEO", "ML intern"], synthesize__multiturn__min_turns=2,
              synthesize__multiturn__max_turns=2,
              synthesize__multiturn__flows={"troubleshooting": "fix it", "follow_up": "go deeper"})
    params = gen_params(rules=rules, synthesize__multiturn__max_words=12, **mt)
    run_multiturn(params, tmp_path / "mt", engine_for(params, "multiturn"))
    q = gh.read_jsonl(tmp_path / "mt" / "quarantine.jsonl")
    kept = gh.read_jsonl(tmp_path / "mt" / "records.jsonl")
    # the CEO's questions get the server's default answer, which has no "Pro Tip"
    assert {(x["reason"], x["record"]["labels"]["persona"]) for x in q} == {("missing_required_pattern", "CEO")}
    assert len(kept) == 2 and all(r["labels"]["persona"] == "ML intern" for r in kept)
    assert all("Pro Tip" in r["messages"][2]["content"] for r in kept)
    params = gen_params(rules=rules, synthesize__multiturn__max_words=5, project__seed=9, **mt)
    run_multiturn(params, tmp_path / "mt2", engine_for(params, "multiturn"))
    q = gh.read_jsonl(tmp_path / "mt2" / "quarantine.jsonl")
    assert [x["reason"] for x in q] == ["turn_too_long"] * 4 and "7 words > 5" in q[0]["detail"]


def test_scenarios_chain_and_trait_check(tmp_path, gen_params, engine_for, gh, server):
    rules = [{"match": "List 2 distinct", "response": "1. A budget overrun at a startup\n2. A delayed launch"},
             {"match": "Write a realistic", "response": "MEMO To: the team. From: Dana. Date: 3 May. We are over "
                                                          "budget by 20% and need a plan by Friday. Please help."},
             {"match": "How should I respond", "response": "Let's work through this together. What matters most?"},
             {"match": r"RESPONSE:\s*Let's work", "response": '{"collaborative": 9, "inquisitive": 8}'}]
    params = gen_params(rules=rules, synthesize__scenarios__categories=["crisis response", "ethical dilemma"],
                        synthesize__scenarios__ideas_per_category=2,
                        synthesize__scenarios__traits={"collaborative": "partnership", "inquisitive": "asks"})
    m = run_scenarios(params, tmp_path / "sc", engine_for(params, "scenarios"))
    recs = gh.read_jsonl(tmp_path / "sc" / "records.jsonl")
    assert len(recs) == 4 and m["records_out"] == 4
    r = recs[0]
    assert [s["role"] for s in r["lineage"]] == ["ideas", "document", "answer", "judge"]
    assert "MEMO To: the team" in r["messages"][1]["content"] and r["scores"]["traits"]["collaborative"] == 9
    assert {x["labels"]["doc_type"] for x in recs} <= {"memo", "email", "report"}
    # a trait scored below min_score sends the record to the quarantine
    rules[-1] = {"match": r"RESPONSE:\s*Let's work", "response": '{"collaborative": 9, "inquisitive": 2}'}
    params = gen_params(rules=rules, synthesize__scenarios__categories=["crisis response"],
                        synthesize__scenarios__ideas_per_category=2, project__seed=5,
                        synthesize__scenarios__traits={"collaborative": "partnership", "inquisitive": "asks"})
    run_scenarios(params, tmp_path / "sc2", engine_for(params, "scenarios"))
    q = gh.read_jsonl(tmp_path / "sc2" / "quarantine.jsonl")
    assert {(x["reason"], x["detail"]) for x in q} == {("trait_missing", "inquisitive")}


def test_scenarios_split_a_run_on_idea_list_and_redraw_a_looping_response(tmp_path, gen_params, engine_for, gh,
                                                                           server):
    """A small model's "1. ... 2. ..." on one line gives two ideas; a response that hits max_tokens is
    asked again with the next seed (resample_truncated) and kept, with both draws in its lineage."""
    rules = [{"match": "List 2 distinct", "response": "1. A budget overrun at a startup. 2. A delayed launch"},
             {"match": "Write a realistic", "response": "MEMO To: the team. From: Dana. We are over budget by 20% "
                                                          "and the launch slipped a month. Please help."},
             {"match": "How should I respond", "response": "Let's work through", "finish_reason": "length",
              "times": 1},
             {"match": "How should I respond", "response": "Let's work through this together. What matters most?"},
             {"match": r"RESPONSE:\s*Let's work", "response": '{"collaborative": 9}'}]
    sc = dict(synthesize__scenarios__categories=["crisis response"], synthesize__scenarios__ideas_per_category=2,
              synthesize__scenarios__traits={"collaborative": "partnership"})
    params = gen_params(rules=rules, synthesize__scenarios__resample_truncated=1, **sc)
    m = run_scenarios(params, tmp_path / "sc", engine_for(params, "scenarios"))
    recs = gh.read_jsonl(tmp_path / "sc" / "records.jsonl")
    assert m["records_out"] == 2 and {r["labels"]["idea"] for r in recs} == {"A budget overrun at a startup.",
                                                                             "A delayed launch"}
    roles = sorted([s["role"] for s in r["lineage"]] for r in recs)
    assert roles == [["ideas", "document", "answer", "answer", "judge"], ["ideas", "document", "answer", "judge"]]
    first, second = [s for r in recs for s in r["lineage"] if s["role"] == "answer" and s.get("attempt")]
    assert first["finish_reason"] == "length" and second["params"]["gen"]["seed"] == first["params"]["gen"]["seed"] + 1000
    assert [f["error"] for f in gh.read_jsonl(tmp_path / "failed" / "scenarios.jsonl")] == ["truncated"]
    # without a redraw the looping response is quarantined
    server.reset()
    params = gen_params(rules=rules, project__seed=5, **sc)
    run_scenarios(params, tmp_path / "sc2", engine_for(params, "scenarios"))
    assert [x["reason"] for x in gh.read_jsonl(tmp_path / "sc2" / "quarantine.jsonl")] == ["truncated_response"]


def test_scenarios_trait_check_goes_guided_with_the_judge(tmp_path, gen_params, engine_for, gh, server):
    """With score.judge.guided the trait check carries the traits' schema: the engine validates and
    repairs the answer, and the stage does not re-ask on top (free text it re-asks)."""
    rules = [{"match": "List 1 distinct", "response": "1. A budget overrun at a startup"},
             {"match": "Write a realistic", "response": "MEMO To: the team. From: Dana. We are over budget by 20% "
                                                          "and need a plan by Friday. Please help."},
             {"match": "How should I respond", "response": "Let's work through this together. What matters most?"},
             {"match": "could not be used", "response": '{"collaborative": 8, "overall": 8}'},   # the engine's repair
             {"match": r"RESPONSE:\s*Let's work", "response": "A collaborative answer, I would say."}]
    sc = dict(synthesize__scenarios__categories=["crisis response"],
              synthesize__scenarios__traits={"collaborative": "partnership"})
    params = gen_params(rules=rules, score__judge__guided=True, score__judge__parse_retries=3,
                        llm__max_parse_retries=1, **sc)
    run_scenarios(params, tmp_path / "sc", engine_for(params, "scenarios"))
    [rec] = gh.read_jsonl(tmp_path / "sc" / "records.jsonl")
    assert rec["scores"]["traits"] == {"collaborative": 8}
    judged = [r["body"]["messages"] for r in server.requests() if "RESPONSE:" in json.dumps(r["body"]["messages"])]
    assert len(judged) == 2 and "could not be used" in judged[1][-1]["content"]
    assert not any("could not be parsed" in m["content"] for msgs in judged for m in msgs)
    # free text (no schema): the stage re-asks with its own correction
    server.reset()
    params = gen_params(rules=rules, score__judge__parse_retries=1, project__seed=3, **sc)
    run_scenarios(params, tmp_path / "sc2", engine_for(params, "scenarios"))
    judged = [r["body"]["messages"] for r in server.requests() if "RESPONSE:" in json.dumps(r["body"]["messages"])]
    assert len(judged) == 2 and "could not be parsed" in judged[1][-1]["content"]


def test_completion_prompt_sent_verbatim_trimmed_and_copies_flagged(tmp_path, gen_params, engine_for, gh, server):
    rules = [{"match": r"Prompt: What is gravity\?\nCompletion:\n$",
              "response": "Gravity pulls masses together.\nName a primary color:\nRed"},
             {"match": r"Prompt: Describe a dog\.\nCompletion:\n$",
              "response": "Dogs are loyal and friendly companions to humans."}]
    params = gen_params(rules=rules, synthesize__completion__sample=0, synthesize__completion__shots=6)
    gh.write_records(tmp_path / "in" / "records.jsonl",
                     [gh.sft(1, "What is gravity?"), gh.sft(2, "Describe a dog."),
                      gh.sft(3, "A long one " * 50)])
    m = run_completion(params, [tmp_path / "in"], tmp_path / "c", engine_for(params, "completion"))
    recs = gh.read_jsonl(tmp_path / "c" / "records.jsonl")
    q = gh.read_jsonl(tmp_path / "c" / "quarantine.jsonl")
    assert [r["messages"] for r in recs] == [[{"role": "user", "content": "What is gravity?"},
                                              {"role": "assistant", "content": "Gravity pulls masses together."}]]
    assert [x["reason"] for x in q] == ["copies_exemplar"] and m["copies_flagged"] == 1
    assert m["skipped"] == {"instruction_too_long": 1}
    reqs = server.requests()
    assert {r["path"] for r in reqs} == {"/v1/completions"}               # no chat endpoint, no chat template
    step = recs[0]["lineage"][-1]
    sent = [r["body"]["prompt"] for r in reqs if "gravity" in r["body"]["prompt"]]
    assert sent == [step["prompt"]]                                        # the stored prompt is the one sent
    assert step["prompt"].startswith("Each prompt below is followed by its completion.")
    assert step["prompt"].endswith("\nPrompt: What is gravity?\nCompletion:\n")     # the answer's slot
    assert "<|im_start|>" not in step["prompt"] and len(step["exemplars"]) == 6
    assert step["raw_completion"].endswith("Red") and step["trimmed"] is True


def test_multiturn_resamples_a_truncated_turn_with_a_new_seed(tmp_path, gen_params, engine_for, gh, server):
    """A looping turn is asked again with the next seed (up to resample_truncated times): the
    conversation survives, every attempt stays in its lineage and the truncated one in the
    failed-requests log; a turn truncated every time still ends in the quarantine."""
    mt = dict(synthesize__multiturn__conversations=1, synthesize__multiturn__personas=["CEO"],
              synthesize__multiturn__min_turns=1, synthesize__multiturn__max_turns=1,
              synthesize__multiturn__resample_truncated=1,
              synthesize__multiturn__assistant_gen={"temperature": 0.7, "max_tokens": 64})
    looping = {"match": "^CEO_ASKS", "response": "It depends on", "finish_reason": "length"}
    fine = {"match": "^CEO_ASKS", "response": "Start with a small pilot."}
    params = gen_params(rules=[{**looping, "times": 1}, fine] + SIM, **mt)
    m = run_multiturn(params, tmp_path / "mt", engine_for(params, "multiturn"))
    [rec] = gh.read_jsonl(tmp_path / "mt" / "records.jsonl")
    assert m["records_out"] == 1 and not (tmp_path / "mt" / "quarantine.jsonl").read_text()
    assert rec["messages"][-1] == {"role": "assistant", "content": "Start with a small pilot."}
    first, second = [s for s in rec["lineage"] if s["role"] == "answer"]
    assert (first["attempt"], first["finish_reason"], second["attempt"]) == (1, "length", 2)
    assert second["params"]["gen"]["seed"] == first["params"]["gen"]["seed"] + 1000
    assert [r["body"]["seed"] for r in server.requests() if "CEO_ASKS" in json.dumps(r["body"]["messages"])] == [42, 1042]
    assert [f["error"] for f in gh.read_jsonl(tmp_path / "failed" / "multiturn.jsonl")] == ["truncated"]

    # truncated on every attempt: two paid requests, then the quarantine
    params = gen_params(rules=[looping] + SIM, project__seed=7, **mt)
    run_multiturn(params, tmp_path / "mt2", engine_for(params, "multiturn"))
    [q] = gh.read_jsonl(tmp_path / "mt2" / "quarantine.jsonl")
    assert q["reason"] == "truncated_turn"
    assert sum(s["role"] == "answer" for s in q["record"]["lineage"]) == 2
