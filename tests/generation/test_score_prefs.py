"""score and preferences over real HTTP: judge parsing + retries, thresholds, self-judging, ties,
identity leaks and DPO->SFT."""

import json

from distillery.generation.preferences import run_preferences
from distillery.generation.score import run_score

GOOD = '{"helpfulness": 9, "accuracy": 9, "clarity": 8, "completeness": 9, "overall": 9}'
POOR = '{"helpfulness": 3, "accuracy": 4, "clarity": 5, "completeness": 3, "overall": 3}'


def _generated(gh, i, answer, teacher="big", model="big-model", prompt_id=None, finish="stop"):
    r = gh.sft(f"g{i}", f"Prompt {i}: explain recursion", answer)
    r["lineage"].append({"stage": "distill", "role": "answer", "teacher": teacher, "model": model,
                         "prompt": [{"role": "user", "content": f"Prompt {i}"}], "finish_reason": finish})
    if prompt_id:
        r["labels"] = {"prompt_id": prompt_id, "teacher": teacher}
    return r


def test_score_heuristics_judge_threshold_and_histogram(tmp_path, gen_params, engine_for, gh, server):
    rules = [{"match": r"ANSWER:\s*GREAT", "response": GOOD}, {"match": r"ANSWER:\s*MEH", "response": POOR}]
    params = gen_params(rules=rules, score__judge__max_records=1)
    human = [gh.sft(i, f"Human question {i}", f"GREAT human answer number {i}.") for i in range(5)]
    human.append(gh.sft(99, "Who are you?", "Hello! I am ChatGPT, a model made by OpenAI."))
    gen = [_generated(gh, 1, "GREAT answer about recursion."), _generated(gh, 2, "MEH answer about recursion."),
           _generated(gh, 3, "GREAT but cut", finish="length")]
    gh.write_records(tmp_path / "in" / "ingest" / "records.jsonl", human)
    gh.write_records(tmp_path / "in" / "distill" / "records.jsonl", gen)
    m = run_score(params, [tmp_path / "in"], tmp_path / "out", engine_for(params, "score"),
                  tmp_path / "plots" / "judge_scores.csv")
    kept = {r["id"]: r for r in gh.read_jsonl(tmp_path / "out" / "records.jsonl")}
    q = {x["record"]["id"]: x["reason"] for x in gh.read_jsonl(tmp_path / "out" / "quarantine.jsonl")}
    assert q == {"rec-99": "identity_leak", "rec-g2": "judge_below_threshold", "rec-g3": "truncated"}
    assert kept["rec-g1"]["scores"]["judge"]["overall"] == 9
    judged_human = [r for r in kept.values() if "judge" in r["scores"] and not r["id"].startswith("rec-g")]
    assert len(judged_human) == 1                          # score.judge.max_records=1
    assert m["rejects_by_reason"] == {"identity_leak": 1, "judge_below_threshold": 1, "truncated": 1}
    assert m["judge"]["per_teacher"]["big"]["count"] == 2 and m["judge"]["per_dimension"]["overall"]["max"] == 9
    rows = (tmp_path / "plots" / "judge_scores.csv").read_text().splitlines()
    assert rows[0].startswith("score,") and len(rows) == 11
    # every judge prompt the server saw is stored in the lineage of the record it judged
    sent = {json.dumps(r["body"]["messages"]) for r in server.requests()}
    stored = {json.dumps(s["prompt"]) for r in kept.values() for s in r["lineage"] if s.get("role") == "judge"}
    assert stored and stored <= sent


def test_near_duplicates_are_judged_once_and_the_verdict_copied(tmp_path, gen_params, engine_for, gh, server):
    rules = [{"match": r"ANSWER:\s*GREAT", "response": GOOD}, {"match": r"ANSWER:\s*MEH", "response": POOR}]
    params = gen_params(rules=rules, score__judge__batch_size=2)
    recs = [_generated(gh, 1, "GREAT answer about recursion."),
            _generated(gh, 2, "MEH answer about recursion."),
            _generated(gh, 3, "GREAT   answer about RECURSION."),    # same normalised prompt + answer as g1
            _generated(gh, 4, "GREAT answer about recursion.", teacher="small", model="small-model")]
    for r in recs:   # one prompt for all; g3 lands in a later judging batch than g1
        r["messages"][0]["content"] = "Explain recursion"
    gh.write_records(tmp_path / "in" / "records.jsonl", recs)
    m = run_score(params, [tmp_path / "in"], tmp_path / "out", engine_for(params, "score"))
    kept = {r["id"]: r for r in gh.read_jsonl(tmp_path / "out" / "records.jsonl")}
    # g1 and g2 asked; g3 copied (its request would differ: whitespace, case); g4 (another author: its
    # own cluster) sends g1's very request, which the engine answers from its cache
    assert len(server.requests()) == 2
    assert kept["rec-g4"]["scores"]["judge"]["overall"] == 9 and "copied_from" not in kept["rec-g4"]["scores"]["judge"]
    assert m["judge_calls_saved"] == 1 and m["judge"]["calls"]["copied"] == 1
    assert kept["rec-g3"]["scores"]["judge"] == {**kept["rec-g1"]["scores"]["judge"], "copied_from": "rec-g1"}
    assert [s["prompt"] for s in kept["rec-g3"]["lineage"] if s.get("role") == "judge"] == \
        [s["prompt"] for s in kept["rec-g1"]["lineage"] if s.get("role") == "judge"]
    assert m["judged"] == 4 and m["records_out"] == 3 and m["rejects_by_reason"] == {"judge_below_threshold": 1}


def test_judge_parse_failure_is_retried_then_quarantined(tmp_path, gen_params, engine_for, gh, server):
    rules = [{"match": "could not be parsed", "response": "```json\n" + GOOD + "\n```"},
             {"match": "Rate the ANSWER", "response": "It is a pretty good answer, I'd say."}]
    gh.write_records(tmp_path / "in" / "records.jsonl", [_generated(gh, 1, "An answer about recursion.")])
    params = gen_params(rules=rules)
    run_score(params, [tmp_path / "in"], tmp_path / "ok", engine_for(params, "score"))
    rec = gh.read_jsonl(tmp_path / "ok" / "records.jsonl")[0]
    assert rec["scores"]["judge"]["overall"] == 9
    attempts = [s for s in rec["lineage"] if s.get("role") == "judge"]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert attempts[1]["prompt"][-2] == {"role": "assistant", "content": "It is a pretty good answer, I'd say."}

    params = gen_params(rules=rules[1:], score__judge__parse_retries=1, project__seed=7)  # new cache keys
    m = run_score(params, [tmp_path / "in"], tmp_path / "bad", engine_for(params, "score"))
    q = gh.read_jsonl(tmp_path / "bad" / "quarantine.jsonl")
    assert [x["reason"] for x in q] == ["judge_unparsed"]
    assert q[0]["record"]["scores"]["judge"]["error"] == "judge_no_scores"
    assert m["judge"]["calls"]["unparsed"] == 1


def test_judge_refuses_to_judge_its_own_teacher(tmp_path, gen_params, engine_for, gh, server):
    gh.write_records(tmp_path / "in" / "records.jsonl", [_generated(gh, 1, "An answer.", teacher="judge",
                                                                    model="judge-model")])
    params = gen_params(rules=[{"match": "Rate the", "response": GOOD}])
    run_score(params, [tmp_path / "in"], tmp_path / "o", engine_for(params, "score"))
    rec = gh.read_jsonl(tmp_path / "o" / "records.jsonl")[0]
    assert rec["scores"]["judge"] == {"skipped": "judge_refused_self"} and server.requests() == []
    # a second judge in the list takes over; allow_self_judge lets the same teacher judge
    params = gen_params(rules=[{"match": "Rate the", "response": GOOD}], score__judge__teachers=["judge", "small"])
    run_score(params, [tmp_path / "in"], tmp_path / "o2", engine_for(params, "score"))
    assert gh.read_jsonl(tmp_path / "o2" / "records.jsonl")[0]["scores"]["judge"]["judge"] == "small"


def _group(gh, tmp_path, answers):
    recs = [_generated(gh, f"{pid}-{t}", a, teacher=t, model=f"{t}-model", prompt_id=pid)
            for pid, t, a in answers]
    return gh.write_records(tmp_path / "distill" / "records.jsonl", recs)


def test_preferences_pairs_ties_and_dpo_to_sft(tmp_path, gen_params, engine_for, gh, server):
    rules = [{"match": r"ANSWER:\s*GREAT", "response": GOOD}, {"match": r"ANSWER:\s*MEH", "response": POOR},
             {"match": r"ANSWER:\s*(OK|FINE)", "response": GOOD}]
    _group(gh, tmp_path, [("p1", "big", "GREAT explanation of recursion."), ("p1", "small", "MEH explanation."),
                          ("p2", "big", "OK answer."), ("p2", "small", "FINE answer."),          # tie
                          ("p3", "big", "GREAT Hi, I am ChatGPT by OpenAI."), ("p3", "small", "MEH x."),  # leak
                          ("p4", "big", "GREAT lonely answer.")])                               # one answer
    params = gen_params(rules=rules, preferences__min_margin=2.0,
                        score__identity__system_prompt="You are Atlas, built on Llama 3.2 3B. "
                                                       "You are NOT a GPT model or an OpenAI product.")
    m = run_preferences(params, [tmp_path / "distill"], tmp_path / "out", engine_for(params, "preferences"))
    out = gh.read_jsonl(tmp_path / "out" / "records.jsonl")
    pairs = [r for r in out if r["kind"] == "preference"]
    sfts = [r for r in out if r["kind"] == "sft"]
    assert len(pairs) == 1 and len(sfts) == 1
    assert pairs[0]["chosen"]["content"].startswith("GREAT") and pairs[0]["rejected"]["content"].startswith("MEH")
    assert pairs[0]["scores"]["preference"]["margin"] == 6
    assert all(p["chosen"]["content"] != p["rejected"]["content"] for p in pairs)
    assert sfts[0]["messages"][0] == {"role": "system", "content": params.score.identity.system_prompt}
    assert sfts[0]["messages"][-1]["content"] == pairs[0]["chosen"]["content"]
    q = sorted(x["reason"] for x in gh.read_jsonl(tmp_path / "out" / "quarantine.jsonl"))
    assert q == ["identity_leak", "tie", "too_few_answers"]
    assert m["outputs"]["pairs"] == 1 and m["outputs"]["sft_from_dpo"] == 1


def test_four_answers_give_every_pair_over_the_margin_and_one_sft_per_chosen(tmp_path, gen_params, engine_for, gh,
                                                                              server):
    MID = '{"helpfulness": 6, "accuracy": 6, "clarity": 6, "completeness": 6, "overall": 6}'
    rules = [{"match": r"ANSWER:\s*GREAT", "response": GOOD}, {"match": r"ANSWER:\s*MEH", "response": POOR},
             {"match": r"ANSWER:\s*SO-SO", "response": MID}]
    # four samples of one teacher (9, 6, 3, 3) and a prompt whose two answers tie
    _group(gh, tmp_path, [("p1", "t", "GREAT answer."), ("p1", "t", "SO-SO answer."), ("p1", "t", "MEH one."),
                          ("p1", "t", "MEH two."), ("p2", "t", "SO-SO a."), ("p2", "t", "SO-SO b.")])
    recs = gh.read_jsonl(tmp_path / "distill" / "records.jsonl")
    for i, r in enumerate(recs):
        r["id"] = f"{r['id']}-{i}"                      # four samples of one teacher: distinct ids
    gh.write_records(tmp_path / "distill" / "records.jsonl", recs)
    params = gen_params(rules=rules, preferences__min_margin=2.0, preferences__pairs_per_prompt=0)
    m = run_preferences(params, [tmp_path / "distill"], tmp_path / "all", engine_for(params, "preferences"))
    out = gh.read_jsonl(tmp_path / "all" / "records.jsonl")
    pairs = [(r["chosen"]["content"], r["rejected"]["content"], r["scores"]["preference"]["margin"])
             for r in out if r["kind"] == "preference"]
    # 9-6, 9-3, 9-3, 6-3, 6-3 reach the margin of 2; 3-3 (MEH one vs two) is a tie; widest first
    assert pairs == [("GREAT answer.", "MEH two.", 6), ("GREAT answer.", "MEH one.", 6),
                     ("GREAT answer.", "SO-SO answer.", 3), ("SO-SO answer.", "MEH two.", 3),
                     ("SO-SO answer.", "MEH one.", 3)]
    # one SFT record per distinct chosen answer, not per pair
    assert sorted(r["messages"][-1]["content"] for r in out if r["kind"] == "sft") == ["GREAT answer.", "SO-SO answer."]
    # the prompt is the accounting unit: p1 paired, p2 quarantined once as a tie
    assert [x["reason"] for x in gh.read_jsonl(tmp_path / "all" / "quarantine.jsonl")] == ["tie"]
    assert (m["records_in"], m["records_out"], m["rejected"]) == (2, 1, 1)
    assert m["outputs"] == {"pairs": 5, "sft_from_dpo": 2}
    # pairs_per_prompt 2 keeps the two widest
    params = gen_params(rules=rules, preferences__min_margin=2.0, preferences__pairs_per_prompt=2)
    run_preferences(params, [tmp_path / "distill"], tmp_path / "two", engine_for(params, "preferences"))
    assert [r["rejected"]["content"] for r in gh.read_jsonl(tmp_path / "two" / "records.jsonl")
            if r["kind"] == "preference"] == ["MEH two.", "MEH one."]


def test_a_leaking_best_answer_drops_only_its_own_pairs(tmp_path, gen_params, engine_for, gh, server):
    MID = '{"helpfulness": 6, "accuracy": 6, "clarity": 6, "completeness": 6, "overall": 6}'
    rules = [{"match": r"ANSWER:\s*GREAT", "response": GOOD}, {"match": r"ANSWER:\s*MEH", "response": POOR},
             {"match": r"ANSWER:\s*SO-SO", "response": MID}]
    _group(gh, tmp_path, [("p1", "t", "GREAT Hi, I am ChatGPT by OpenAI."), ("p1", "t", "SO-SO answer."),
                          ("p1", "t", "MEH answer.")])
    recs = gh.read_jsonl(tmp_path / "distill" / "records.jsonl")
    for i, r in enumerate(recs):
        r["id"] = f"{r['id']}-{i}"
    gh.write_records(tmp_path / "distill" / "records.jsonl", recs)
    params = gen_params(rules=rules, preferences__min_margin=2.0, preferences__pairs_per_prompt=0,
                        score__identity__system_prompt="You are Atlas. You are NOT a GPT model or an OpenAI product.")
    m = run_preferences(params, [tmp_path / "distill"], tmp_path / "o", engine_for(params, "preferences"))
    pairs = [(r["chosen"]["content"], r["rejected"]["content"]) for r in gh.read_jsonl(tmp_path / "o" / "records.jsonl")
             if r["kind"] == "preference"]
    # the leaking 9 is never chosen; the clean 6-vs-3 pair is kept, and the prompt counts as paired
    assert pairs == [("SO-SO answer.", "MEH answer.")]
    assert gh.read_jsonl(tmp_path / "o" / "quarantine.jsonl") == []
    assert (m["records_in"], m["records_out"], m["pairs"]) == (1, 1, 1)


def test_pairwise_mode_judges_both_orders(tmp_path, gen_params, engine_for, gh, server):
    # a judge that always prefers position A has no real preference: both orders disagree -> tie
    _group(gh, tmp_path, [("p1", "big", "Answer one."), ("p1", "small", "Answer two.")])
    params = gen_params(rules=[{"match": "Which answer", "response": '{"winner": "A"}'}],
                        preferences__mode="pairwise", preferences__min_margin=0.5)
    run_preferences(params, [tmp_path / "distill"], tmp_path / "biased", engine_for(params, "preferences"))
    assert [x["reason"] for x in gh.read_jsonl(tmp_path / "biased" / "quarantine.jsonl")] == ["tie"]
    bodies = [r["body"]["messages"][-1]["content"] for r in server.requests()]
    assert len(bodies) == 2 and bodies[0] != bodies[1]          # the two orders were both asked
    # a judge that always prefers "Answer one" wherever it stands -> a pair
    params = gen_params(rules=[{"match": "ANSWER A:\\s*Answer one", "response": '{"winner": "A"}'},
                               {"match": "Which answer", "response": '{"winner": "B"}'}],
                        preferences__mode="pairwise", preferences__min_margin=0.5, project__seed=8)  # new cache keys
    run_preferences(params, [tmp_path / "distill"], tmp_path / "fair", engine_for(params, "preferences"))
    pair = [r for r in gh.read_jsonl(tmp_path / "fair" / "records.jsonl") if r["kind"] == "preference"][0]
    assert pair["chosen"]["content"] == "Answer one." and pair["rejected"]["content"] == "Answer two."


def test_teacher_rank_mode_needs_no_judge(tmp_path, gen_params, engine_for, gh, server):
    _group(gh, tmp_path, [("p1", "big", "Strong."), ("p1", "small", "Weak.")])
    params = gen_params(preferences__mode="teacher_rank", preferences__teacher_rank=["big", "small"])
    run_preferences(params, [tmp_path / "distill"], tmp_path / "o", engine_for(params, "preferences"))
    pair = [r for r in gh.read_jsonl(tmp_path / "o" / "records.jsonl") if r["kind"] == "preference"][0]
    assert (pair["chosen"]["content"], pair["rejected"]["content"]) == ("Strong.", "Weak.")
    assert server.requests() == []
