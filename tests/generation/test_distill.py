"""distill over real HTTP: routing proportions, failover, reruns, and the stored prompt."""

import json
from collections import Counter

from distillery.generation.distill import run_distill


def _inputs(gh, tmp_path, n):
    return gh.write_records(tmp_path / "ingest" / "src" / "records.jsonl",
                         [gh.sft(i, f"Question number {i}: what is {i} plus {i}?") for i in range(n)])


def test_routing_proportions_and_stored_prompt_equals_sent(tmp_path, server, gen_params, engine_for, gh):
    params = gen_params(distill__teachers={"big": 0.75, "small": 0.25}, distill__sample=0)
    _inputs(gh, tmp_path, 400)
    m = run_distill(params, [tmp_path / "ingest"], tmp_path / "out", engine_for(params, "distill"))
    recs = gh.read_jsonl(tmp_path / "out" / "records.jsonl")
    assert m["records_out"] == len(recs) == 400
    by_teacher = Counter(r["lineage"][-1]["teacher"] for r in recs)
    assert abs(by_teacher["big"] / 400 - 0.75) < 0.07 and abs(by_teacher["small"] / 400 - 0.25) < 0.07
    # the server saw exactly the prompts the records say were sent, to the models they name
    got = {(req["body"]["model"], json.dumps(req["body"]["messages"])) for req in server.requests()}
    stored = {(r["lineage"][-1]["model"], json.dumps(r["lineage"][-1]["prompt"])) for r in recs}
    assert got == stored
    step = recs[0]["lineage"][-1]
    assert step["stage"] == "distill" and step["params"]["gen"]["max_tokens"] == 400
    assert {t["template"].rsplit("/", 1)[-1] for t in step["params"]["templates"]} == {"system.j2", "user.j2"}
    assert all(len(t["template_sha"]) == 16 for t in step["params"]["templates"])
    # the training record keeps the original instruction, the answer is the teacher's
    assert recs[0]["messages"][-1]["content"].startswith("Test answer to: Question number")
    assert recs[0]["labels"]["prompt_id"].startswith("rec-")


def test_rerun_is_byte_identical_and_served_from_cache(tmp_path, server, gen_params, engine_for, gh):
    params = gen_params(distill__teachers={"big": 0.5, "small": 0.5}, distill__sample=20,
                        distill__pilot__size=3, distill__pilot__teachers=["big", "small"])
    server.configure(rules=[{"match": "Rate the ANSWER", "response": '{"helpfulness": 8, "accuracy": 7, '
                             '"clarity": 9, "completeness": 8, "overall": 8}'}])
    _inputs(gh, tmp_path, 60)
    run_distill(params, [tmp_path / "ingest"], tmp_path / "a", engine_for(params, "distill"))
    calls = len(server.requests())
    m = run_distill(params, [tmp_path / "ingest"], tmp_path / "b", engine_for(params, "distill"))
    assert len(server.requests()) == calls          # everything came from the cache
    for f in ("records.jsonl", "comparison.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert m["records_out"] == 20
    comp = m["comparison"]["teachers"]
    assert set(comp) == {"big", "small"} and comp["big"]["mean_judge_score"] == 8
    assert comp["big"]["cost_usd"] > comp["small"]["cost_usd"] > 0   # list prices differ


def test_failover_after_repeated_failures(tmp_path, server, gen_params, engine_for, gh):
    params = gen_params(distill__teachers={"dead": 1.0, "small": 0.0001}, distill__failover=["small"],
                        distill__max_consecutive_failures=2, distill__sample=10, distill__batch_size=4)
    _inputs(gh, tmp_path, 10)
    m = run_distill(params, [tmp_path / "ingest"], tmp_path / "out", engine_for(params, "distill"))
    recs = gh.read_jsonl(tmp_path / "out" / "records.jsonl")
    assert len(recs) == 10 and {r["lineage"][-1]["teacher"] for r in recs} == {"small"}
    assert m["teachers_down"] == ["dead"]
    assert m["teachers"]["dead"]["requests"] == 4     # first batch only; then routed straight to small
    assert any(r["lineage"][-1].get("failover_from") == ["dead"] for r in recs)


def test_truncated_answers_are_quarantined(tmp_path, server, gen_params, engine_for, gh):
    params = gen_params(distill__sample=0)
    server_rules = [{"match": "number 1:", "response": "cut off mid", "finish_reason": "length"}]
    params = gen_params(rules=server_rules, distill__sample=0)
    _inputs(gh, tmp_path, 3)
    m = run_distill(params, [tmp_path / "ingest"], tmp_path / "out", engine_for(params, "distill"))
    q = gh.read_jsonl(tmp_path / "out" / "quarantine.jsonl")
    assert [x["reason"] for x in q] == ["truncated_response"] and m["records_out"] == 2


def test_script_stops_with_one_line_for_an_unknown_teacher(tmp_path, run_script, gh):
    gh.write_records(tmp_path / "in" / "records.jsonl", [gh.sft(1, "Hi")])
    args = ("distill", "--input", "in", "--output", "out")
    r = run_script(*args, "--set", "distill.template=prompts/distill/nope.j2", cwd=tmp_path,
                   env={"DISTILLERY_TRACKING": "0"})
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith(
        "error: distill.template: template not found: prompts/distill/nope.j2 (not in ")
    # an unknown teacher is caught when params load, naming the key, before any model or template work
    r = run_script(*args, "--set", "distill.teachers={nope: 1.0}", cwd=tmp_path, env={"DISTILLERY_TRACKING": "0"})
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith(
        "error: params.yaml: distill.teachers.nope: 'nope' is not defined in llm.teachers")
    assert "Traceback" not in r.stderr


def test_a_looping_sample_is_redrawn_with_a_seed_no_other_sample_uses(tmp_path, server, gen_params, engine_for, gh):
    """Best-of-2 answers take seeds 42 and 1042; their redraws take 2042 and 3042, so the cache never
    answers a redraw with the other sample's text. Each draw is a paid request in the lineage."""
    dist = dict(distill__sample=0, distill__samples_per_teacher=2, distill__resample_truncated=1,
                distill__gen={"temperature": 0.7, "max_tokens": 32})
    looping = {"match": "number 0:", "response": "It depends on", "finish_reason": "length"}
    params = gen_params(rules=[{**looping, "times": 2}], **dist)
    _inputs(gh, tmp_path, 1)
    m = run_distill(params, [tmp_path / "ingest"], tmp_path / "out", engine_for(params, "distill"))
    recs = gh.read_jsonl(tmp_path / "out" / "records.jsonl")
    assert m["records_out"] == 2 and m["teachers"]["big"]["redrawn"] == 2
    assert sorted(r["body"]["seed"] for r in server.requests()) == [42, 1042, 2042, 3042]
    for rec in recs:
        first, kept = [s for s in rec["lineage"] if s["stage"] == "distill"]
        assert (first["attempt"], first["finish_reason"], kept["attempt"]) == (1, "length", 2)
        assert kept["params"]["gen"]["seed"] == first["params"]["gen"]["seed"] + 2000
        assert rec["messages"][-1]["content"].startswith("Test answer to: Question number 0")
    assert [f["error"] for f in gh.read_jsonl(tmp_path / "failed" / "distill.jsonl")] == ["truncated", "truncated"]

    # looping on every draw: two paid requests per sample, then the quarantine
    server.reset()
    params = gen_params(rules=[looping], project__seed=7, **dist)
    m = run_distill(params, [tmp_path / "ingest"], tmp_path / "out2", engine_for(params, "distill"))
    q = gh.read_jsonl(tmp_path / "out2" / "quarantine.jsonl")
    assert [x["reason"] for x in q] == ["truncated_response"] * 2 and m["records_out"] == 0
    assert len({r["body"]["seed"] for r in server.requests()}) == 4
    assert all(sum(s["stage"] == "distill" for s in x["record"]["lineage"]) == 2 for x in q)
