"""prompt_dedup: duplicate and benchmark prompts are dropped before any teacher call, and the calls
the order saves are the calls the scripted OpenAI-compatible server never receives."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from distillery.core.io import read_stage_metrics

from .helpers import edit, read, rec, text, write

KEY_ENV = "DISTILLERY_PROMPT_DEDUP_TEST_KEY"
EVAL_Q = ("A farmer has seventeen sheep and buys nine more at the market on Tuesday morning, then sells "
          "four of them to his neighbour; how many sheep does the farmer have at the end of the week")


def _teacher(url: str, model: str, price_in: float, price_out: float) -> dict:
    return {"provider": "openai", "model": model, "base_url": url, "api_key_env": KEY_ENV, "max_retries": 0,
            "backoff_base_s": 0.0, "timeout_s": 10, "max_concurrency": 8, "response_format": "none",
            "price_input_per_1m": price_in, "price_output_per_1m": price_out,
            "gen": {"temperature": 0.0, "max_tokens": 400}}


def write_params(tmp_path: Path, url: str, **extra) -> Path:
    from distillery.core.params import root_model

    data = root_model().model_validate({}).model_dump(mode="json", by_alias=True)
    data = {k: data[k] for k in ("distill", "synthesize", "score", "dedup", "prompt_dedup")}
    eval_file = write(tmp_path / "eval" / "gsm.jsonl", [{"question": EVAL_Q}])
    data["project"] = {"seed": 42}
    data["llm"] = {"teachers": {"big": _teacher(url, "big-model", 3.0, 15.0),
                                "judge": _teacher(url, "judge-model", 0.5, 1.5)},
                   "default_teacher": "big", "cache_path": str(tmp_path / "cache" / "responses.sqlite"),
                   "progress": False}
    data["distill"].update(teachers={"big": 1.0}, sample=0, samples_per_teacher=2, responses_per_prompt=1)
    data["distill"]["pilot"]["size"] = 0
    data["distill"]["gen"]["max_tokens"] = 400
    for sec in ("multiturn", "scenarios", "completion"):
        data["synthesize"][sec]["teacher"] = "big"
    data["score"]["judge"]["teachers"] = ["judge"]
    data["dedup"]["decontaminate"]["sets"] = [{"name": "gsm_test", "path": str(eval_file), "fields": ["question"]}]
    data["prompt_dedup"].update(workers=1, **extra)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def corpus() -> list[dict]:
    """50 prompts, 20% duplicates and 2 that quote the eval item. Of the duplicates, 4 are copies that
    differ in case and spacing, 2 are byte-identical (their requests would be cache hits anyway) and 4
    are light edits (one word in 60)."""
    base = [text(i) for i in range(40)]
    base[5] = "Please solve: " + EVAL_Q + "?"
    base[6] = EVAL_Q.upper() + " Show your work."
    records = [rec(f"p{i:02d}", t) for i, t in enumerate(base)]
    records += [rec(f"x{i:02d}", "  " + base[10 + i].upper().replace(" ", "  ") + "\n",
                    answer=f"another reference answer {i}") for i in range(4)]
    records += [rec(f"x{i:02d}", base[10 + i]) for i in range(4, 6)]
    records += [rec(f"n{i:02d}", edit(base[20 + i], 1, seed=i)) for i in range(4)]
    return records


@pytest.fixture()
def server(monkeypatch):
    from distillery.testing.testserver import TestServer

    monkeypatch.setenv(KEY_ENV, "sk-test-not-a-real-key")
    with TestServer(latency_ms=0) as srv:
        yield srv


def _distill_requests(server, params_path: Path, inputs: Path, out: Path) -> int:
    from distillery.core.params import load_params
    from distillery.generation.distill import run_distill
    from distillery.llm.engine import Engine

    params = load_params(params_path)
    shutil.rmtree(Path(params.llm.cache_path).parent, ignore_errors=True)  # each order starts uncached
    server.reset()
    engine = Engine.from_params(params, stage="distill", failed_path=out / "failed.jsonl")
    try:
        m = run_distill(params, [inputs], out, engine)
    finally:
        engine.close()
    sent = [r for r in server.requests() if r["path"].endswith("/chat/completions")]
    return m["records_out"], len(sent)


def test_duplicate_and_contaminated_prompts_never_reach_the_teacher(tmp_path, server, monkeypatch):
    from distillery.core.params import load_params
    from distillery.dedup.prompts import run_prompt_dedup

    monkeypatch.chdir(tmp_path)
    params_path = write_params(tmp_path, server.url)
    raw = write(tmp_path / "ingest" / "src" / "records.jsonl", corpus())
    m = run_prompt_dedup(load_params(params_path), [raw.parent.parent], tmp_path / "prompts")

    kept = {r["id"] for r in read(tmp_path / "prompts" / "records.jsonl")}
    q = {r["record"]["id"]: r for r in read(tmp_path / "prompts" / "quarantine.jsonl")}
    # the copies go (id order keeps p.. over x..; the edited n.. sorts first, so it stays and p2x goes)
    assert {k: (v["reason"], v["duplicate_of"]) for k, v in q.items() if v["reason"] == "duplicate_prompt"} == \
        {f"x{i:02d}": ("duplicate_prompt", f"p{10 + i:02d}") for i in range(6)}
    assert {k: v["duplicate_of"] for k, v in q.items() if v["reason"] == "near_duplicate_prompt"} == \
        {f"p{20 + i:02d}": f"n{i:02d}" for i in range(4)}
    assert {k: v["duplicate_of"] for k, v in q.items() if v["reason"] == "contaminated_prompt"} == \
        {"p05": "gsm_test:0", "p06": "gsm_test:0"}
    assert len(kept) == 38 and not kept & set(q)
    assert (m["prompts_in"], m["unique_prompts"], m["duplicates_skipped"], m["contaminated_skipped"]) == \
        (50, 38, 10, 2)

    # the scripted server counts what each order sends: requests = unique, uncontaminated prompts x samples
    recs_before, before = _distill_requests(server, params_path, tmp_path / "ingest", tmp_path / "d_raw")
    recs_after, after = _distill_requests(server, params_path, tmp_path / "prompts", tmp_path / "d_dedup")
    # raw: 50 records answered twice each; the 2 byte-identical copies' 4 requests came from the LLM cache
    assert (recs_before, before) == (100, 48 * 2)
    assert (recs_after, after) == (38 * 2, 38 * 2)
    assert (before - after) / before == pytest.approx(20 / 96)   # ~20% fewer requests
    # the metrics price exactly the calls the server did not see (cache hits are not counted as saved)
    assert m["identical_requests"] == 2
    assert m["calls_per_prompt"] == {"distill": 2.0, "completion": 1.0, "judge": 3.0}
    assert m["calls_saved"] == (before - after) // 2 * (2 + 1 + 3)
    # 10 prompts x (2 distill x 400 x $15/M + 1 completion x max_tokens x $15/M + 3 judge x max_tokens x $1.5/M)
    p = load_params(params_path)
    out_usd = 10 * (2 * 400 * 15 + p.synthesize.completion.gen.max_tokens * 15
                    + 3 * p.score.judge.gen.max_tokens * 1.5) / 1e6
    assert out_usd < m["usd_saved_estimate"] < out_usd * 1.2


def test_near_duplicates_follow_the_threshold_and_decontamination_can_be_off(tmp_path, server, monkeypatch):
    from distillery.core.params import load_params
    from distillery.dedup.prompts import run_prompt_dedup

    monkeypatch.chdir(tmp_path)
    raw = write(tmp_path / "in" / "records.jsonl", corpus())
    params = load_params(write_params(tmp_path, server.url, threshold=0.99, decontaminate=False))
    m = run_prompt_dedup(params, [raw], tmp_path / "out")
    reasons = [r["reason"] for r in read(tmp_path / "out" / "quarantine.jsonl")]
    assert sorted(set(reasons)) == ["duplicate_prompt"] and len(reasons) == 6
    assert (m["unique_prompts"], m["near_duplicates"], m["contaminated_skipped"]) == (44, 0, 0)


@pytest.mark.slow
def test_script_writes_metrics_and_bad_lines_go_to_quarantine(run_script, tmp_path):
    url = "http://127.0.0.1:9/v1"  # never called: prompt_dedup only prices the calls it saves
    params_path = write_params(tmp_path, url)
    lines = [json.dumps(r) for r in corpus()] + ["{not json", json.dumps({"id": "nop", "kind": "sft", "messages": []})]
    write(tmp_path / "ingest" / "a" / "records.jsonl", lines)
    r = run_script("prompt_dedup", "--input", "ingest", "--output", "prompts", "--metrics", "m/prompt_dedup.json",
                   "--params", params_path, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "prompt_dedup: 52 prompts, 38 to answer; duplicates 10, contaminated 2" in r.stderr
    m = read_stage_metrics(tmp_path / "m" / "prompt_dedup.json")
    assert (m["records_in"], m["records_out"], m["calls_saved"]) == (52, 38, 60)
    reasons = [x["reason"] for x in read(tmp_path / "prompts" / "quarantine.jsonl")]
    assert reasons.count("malformed_json") == 1 and len(reasons) == 14
    # bad params: one line naming the key, no traceback
    r = run_script("prompt_dedup", "--input", "ingest", "--output", "p2", "--set", "prompt_dedup.threshold=2",
                   "--params", params_path, cwd=tmp_path)
    assert r.returncode == 2 and "prompt_dedup.threshold" in r.stderr.strip().splitlines()[-1]
    assert "Traceback" not in r.stderr
