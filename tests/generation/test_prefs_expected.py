"""preferences with the real local judge (SmolLM2-135M, guided, expected scores): a greedy integer
judge gives both answers the same overall (a tie, no pair); the expected score tells them apart, so
a pair comes out carrying both judge scores and their margin."""

import pytest

from distillery.generation.preferences import run_preferences

pytestmark = pytest.mark.slow

ANSWERS = [("p1", "big", "The capital of France is Paris."),
           ("p1", "small", "Bananas are yellow and monkeys like them a lot.")]


def _group(gh, tmp_path):
    recs = []
    for pid, t, a in ANSWERS:
        r = gh.sft(f"{pid}-{t}", "What is the capital of France?", a)
        r["lineage"].append({"stage": "distill", "role": "answer", "teacher": t, "model": f"{t}-model",
                             "prompt": [{"role": "user", "content": "What is the capital of France?"}],
                             "finish_reason": "stop"})
        r["labels"] = {"prompt_id": pid, "teacher": t}
        recs.append(r)
    gh.write_records(tmp_path / "distill" / "records.jsonl", recs)


def _run(tmp_path, gen_params, engine_for, gh, smollm2_path, out: str, scores: str):
    params = gen_params(llm__teachers__local={"provider": "local", "model": str(smollm2_path), "device": "cpu"},
                        score__judge__teachers=["local"], score__judge__guided=True,
                        score__judge__guided_scores=scores, preferences__min_margin=0.01)
    m = run_preferences(params, [tmp_path / "distill"], tmp_path / out, engine_for(params, "preferences"))
    return m, [r for r in gh.read_jsonl(tmp_path / out / "records.jsonl") if r["kind"] == "preference"]


def test_expected_scores_turn_a_greedy_tie_into_a_pair(tmp_path, gen_params, engine_for, gh, smollm2_path):
    _group(gh, tmp_path)
    _, greedy = _run(tmp_path, gen_params, engine_for, gh, smollm2_path, "greedy", "greedy")
    assert greedy == []                                   # the same integer for both answers: a tie
    m, pairs = _run(tmp_path, gen_params, engine_for, gh, smollm2_path, "expected", "expected")
    assert len(pairs) == 1 and m["outputs"]["pairs"] == 1
    pref = pairs[0]["scores"]["preference"]
    assert pref["margin"] >= 0.01
    print(pairs[0]["scores"], pairs[0]["chosen"]["content"])
