"""End to end with the real local SmolLM2 (offline): the generation stage scripts chained exactly as
in dvc.yaml, on a tiny sample. Output quality is low (135M); the mechanics are what is checked."""

import json

from distillery.core.io import read_stage_metrics

import pytest

TINY = [
    "distill.sample=2", "distill.samples_per_teacher=2", "distill.gen.max_tokens=24", "distill.pilot.size=1",
    "distill.max_reject_rate=1.0", "distill.keep_truncated=true",
    "score.judge.gen.max_tokens=24", "score.judge.max_records=1", "score.max_reject_rate=1.0",
    "score.judge.allow_self_judge=true", "score.judge.on_parse_failure=keep",
    "preferences.min_margin=0",
    "synthesize.multiturn.conversations=1", "synthesize.multiturn.min_turns=2", "synthesize.multiturn.max_turns=2",
    "synthesize.multiturn.user_gen.max_tokens=16", "synthesize.multiturn.assistant_gen.max_tokens=16",
    "synthesize.scenarios.categories=[crisis response]", "synthesize.scenarios.idea_gen.max_tokens=24",
    "synthesize.scenarios.document_gen.max_tokens=24", "synthesize.scenarios.response_gen.max_tokens=24",
    "synthesize.scenarios.trait_check.gen.max_tokens=24",
    "synthesize.completion.sample=2", "synthesize.completion.gen.max_tokens=16",
]


@pytest.mark.slow
def test_generation_chain_with_local_model(tmp_path, run_script, smollm2_path, gh, monkeypatch):
    from distillery.generation.completion import run_completion
    from distillery.generation.multiturn import run_multiturn
    from distillery.generation.preferences import run_preferences
    from distillery.generation.scenarios import run_scenarios
    from distillery.generation.score import run_score
    from distillery.llm.engine import Engine
    from distillery.core.params import load_params

    records = [gh.sft(i, q) for i, q in enumerate(["Name a fruit.", "What is 2+2?", "Say hello in French."])]
    gh.write_records(tmp_path / "data" / "ingest" / "t" / "records.jsonl", records)
    (tmp_path / "params.yaml").write_text("project: {seed: 42}\n")
    sets = [a for s in TINY for a in ("--set", s)]
    env = {"OMP_NUM_THREADS": "1", "DISTILLERY_TRACKING": "0"}
    # distill through its script, exactly as dvc.yaml runs it
    distill_cmd = ("distill", "--input", "data/ingest", "--output", "data/distill", "--metrics", "metrics/distill.json",
                   *sets)
    r = run_script(*distill_cmd, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    # the other stages in-process (one model load), on the same params and cache
    monkeypatch.chdir(tmp_path)
    params = load_params(tmp_path / "params.yaml", TINY)
    d = tmp_path / "data"
    metrics = {"distill": read_stage_metrics(tmp_path / "metrics" / "distill.json")}
    for name, fn in [("completion", lambda e: run_completion(params, [d / "ingest"], d / "synth" / "completion", e)),
                     ("multiturn", lambda e: run_multiturn(params, d / "synth" / "multiturn", e)),
                     ("scenarios", lambda e: run_scenarios(params, d / "synth" / "scenarios", e)),
                     ("preferences", lambda e: run_preferences(params, [d / "distill"], d / "preferences", e)),
                     ("score", lambda e: run_score(params, [d / "ingest", d / "distill", d / "synth", d / "preferences"],
                                                   d / "score", e, tmp_path / "judge_scores.csv"))]:
        with Engine.from_params(params, stage=name, progress=False) as engine:
            metrics[name] = fn(engine)
    for name, m in metrics.items():
        assert m["records_in"] == m["records_out"] + m["rejected"], name
    assert "local-smollm2" in metrics["distill"]["cost"]
    distilled = gh.read_jsonl(d / "distill" / "records.jsonl")
    q = gh.read_jsonl(d / "distill" / "quarantine.jsonl")
    assert len(distilled) + len(q) == 4                          # 2 prompts x 2 samples
    step = (distilled or [x["record"] for x in q])[0]["lineage"][-1]
    assert step["model"] == "smollm2" and step["prompt"][-1]["role"] == "user"
    comp = gh.read_jsonl(d / "synth" / "completion" / "records.jsonl") + \
        [x["record"] for x in gh.read_jsonl(d / "synth" / "completion" / "quarantine.jsonl")]
    assert comp and all(isinstance(c["lineage"][-1]["prompt"], str) and "<|im_start|>" not in c["lineage"][-1]["prompt"]
                        for c in comp)
    for conv in gh.read_jsonl(d / "synth" / "multiturn" / "records.jsonl"):
        assert [m["role"] for m in conv["messages"][1:]] == ["user", "assistant"] * 2
    assert (tmp_path / "judge_scores.csv").exists()
    assert metrics["score"]["records_in"] >= 3 and metrics["score"]["judge"]["calls"]
    # a rerun is served from the cache and byte-identical
    before = (d / "distill" / "records.jsonl").read_bytes()
    r = run_script(*distill_cmd, cwd=tmp_path, env=env)
    assert r.returncode == 0 and (d / "distill" / "records.jsonl").read_bytes() == before
    assert read_stage_metrics(tmp_path / "metrics" / "distill.json")["cost"]["local-smollm2"]["cached"] > 0


@pytest.mark.slow
def test_guided_local_judge_always_gives_scores_and_winners(tmp_path, smollm2_path, monkeypatch):
    """`score.judge.guided`: the offline 135M judge, which rarely writes valid rubric JSON by itself,
    returns scores for every dimension and a winner for both pairwise orders on every call."""
    from distillery.generation.config import JudgeParams
    from distillery.generation.judge import Judge
    from distillery.llm.engine import Engine
    from distillery.core.params import load_params

    monkeypatch.chdir(tmp_path)  # any folder: the judge templates are package data
    params = load_params(None, extra={
        "llm.teachers": [{"name": "local", "provider": "local", "model": str(smollm2_path), "batch_size": 4}],
        "llm.default_teacher": "local", "llm.cache_path": str(tmp_path / "c.sqlite"), "llm.progress": False})
    jp = JudgeParams(teachers=["local"], allow_self_judge=True, guided=True, gen={"temperature": 0.0, "max_tokens": 8})
    answers = [("What is 2+2?", "4"), ("What is 2+2?", "It is 5."), ("Name a fruit.", "An apple.")]
    with Engine.from_params(params, stage="score", progress=False) as engine:
        judge = Judge(engine, jp, params.llm, seed=0, stage="score")
        scored = judge.score([(i, q, a, ("other", "other")) for i, (q, a) in enumerate(answers)])
        pairs = judge.compare([(0, "What is 2+2?", "4", "It is 5.", ("x", "x"), ("y", "y"))])
    for v in scored:
        assert v.reason == "" and set(v.scores) == {*jp.dimensions, "overall"}
        assert all(1 <= s <= 10 for s in v.scores.values())
    assert pairs[0].reason == "" and sum(pairs[0].scores.values()) == 1.0
