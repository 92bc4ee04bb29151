"""The engine against the OpenAI-compatible test server over real HTTP: answers, faults, cache, budget."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from distillery.core.errors import DistilleryError, ParamsError
from distillery.llm import ChatRequest
from distillery.llm.engine import Engine


def chat(i: int | str, **kw) -> ChatRequest:
    return ChatRequest(teacher="t", messages=[{"role": "user", "content": f"question {i}"}], **kw)


def test_answers_in_order_with_usage_cost_and_sent_equals_received(srv, make_params):
    with Engine.from_params(make_params(srv.url), stage="distill") as eng:
        reqs = [chat(i) for i in range(20)]
        res = eng.run(reqs)
    assert [r.text for r in res] == [f"Test answer to: question {i}" for i in range(20)]
    assert all(r.ok and not r.cached and r.finish_reason == "stop" for r in res)
    r0 = res[0]
    assert r0.usage == {"prompt_tokens": 8, "completion_tokens": 5}
    assert r0.cost_usd == pytest.approx((8 * 1.0 + 5 * 2.0) / 1e6)
    received = {json.dumps(q["body"]["messages"]) for q in srv.requests()}
    assert {json.dumps(r.sent) for r in res} == received
    m = eng.metrics()
    assert m["teachers"]["t"]["ok"] == 20 and m["totals"]["cost_usd"] == pytest.approx(20 * r0.cost_usd)


def test_completion_mode_hits_v1_completions_with_raw_prompt(srv, make_params):
    prompt = "Q: 2+2?\nA: 4\n\nQ: 3+3?\nA:"
    with Engine.from_params(make_params(srv.url), stage="completion") as eng:
        (r,) = eng.run([ChatRequest(teacher="t", prompt=prompt, gen={"stop": ["\n\n"]})])
    assert r.ok and r.sent == prompt
    (q,) = srv.requests()
    assert q["path"] == "/v1/completions" and q["body"]["prompt"] == prompt and q["body"]["stop"] == ["\n\n"]
    assert "messages" not in q["body"]


def test_request_gen_overrides_teacher_defaults(srv, make_params):
    with Engine.from_params(make_params(srv.url), stage="s") as eng:
        eng.run([chat(1, gen={"temperature": 0.9, "seed": 7})])
    body = srv.requests()[0]["body"]
    assert body["temperature"] == 0.9 and body["seed"] == 7 and body["max_tokens"] == 64


def test_rerun_is_served_from_cache_and_refresh_bypasses_it(srv, make_params):
    p = make_params(srv.url)
    reqs = [chat(i) for i in range(10)]
    with Engine.from_params(p, stage="s") as eng:
        first = eng.run(reqs)
    with Engine.from_params(p, stage="s") as eng:
        again = eng.run(reqs)
        assert eng.metrics()["totals"]["cost_usd"] == 0
    assert len(srv.requests()) == 10
    assert all(r.cached for r in again) and [r.text for r in again] == [r.text for r in first]
    with Engine.from_params(p, stage="s", refresh=True) as eng:
        fresh = eng.run(reqs)
    assert len(srv.requests()) == 20 and not any(r.cached for r in fresh)


def test_cache_key_covers_model_gen_and_schema(srv, make_params):
    p = make_params(srv.url)
    srv.configure(rules=[{"match": ".", "response": "{}"}])
    with Engine.from_params(p, stage="s") as eng:
        eng.run([chat(1)])
        eng.run([chat(1, gen={"temperature": 0.5})])
        eng.run([chat(1, schema={"type": "object"})])
        eng.run([chat(1)])
    assert len(srv.requests()) == 3


def test_429_with_retry_after_then_success(srv, make_params):
    srv.configure(rules=[{"match": "question 1$", "status": 429, "times": 2, "retry_after": 0.05}])
    with Engine.from_params(make_params(srv.url), stage="s") as eng:
        (r,) = eng.run([chat(1)])
        m = eng.metrics()["teachers"]["t"]
    assert r.ok and r.attempts == 3
    assert m["retries_by_reason"] == {"rate_limited": 2}
    assert len(srv.requests()) == 3


def test_500_retried_then_gives_up_with_reason(srv, make_params, tmp_path):
    srv.configure(rules=[{"match": "question 1$", "status": 500}])
    failed = tmp_path / "failed.jsonl"
    with Engine.from_params(make_params(srv.url), stage="s", failed_path=failed) as eng:
        res = eng.run([chat(1, tag="row-1"), chat(2)])
        m = eng.metrics()
    assert not res[0].ok and res[0].error == "server_error" and res[0].attempts == 4  # 1 + max_retries 3
    assert res[1].ok
    assert m["teachers"]["t"]["failed_by_reason"] == {"server_error": 1}
    rows = [json.loads(x) for x in failed.read_text().splitlines()]
    assert rows[0]["tag"] == "row-1" and rows[0]["error"] == "server_error"
    assert rows[0]["sent"] == [{"role": "user", "content": "question 1"}]


def test_hang_times_out_and_is_retried(srv, make_params):
    srv.configure(rules=[{"match": "question 1$", "hang": True, "times": 1}])
    with Engine.from_params(make_params(srv.url, teacher={"timeout_s": 0.5}), stage="s") as eng:
        (r,) = eng.run([chat(1)])
        m = eng.metrics()["teachers"]["t"]
    assert r.ok and m["retries_by_reason"] == {"timeout": 1}


def test_hang_forever_fails_with_timeout(srv, make_params):
    srv.configure(rules=[{"match": "question 1$", "hang": True}])
    with Engine.from_params(make_params(srv.url, teacher={"timeout_s": 0.3, "max_retries": 1}), stage="s") as eng:
        (r,) = eng.run([chat(1)])
    assert not r.ok and r.error == "timeout"


def test_malformed_json_is_retried_then_reported(srv, make_params):
    srv.configure(rules=[{"match": "question 1$", "malformed": True, "times": 1},
                         {"match": "question 2$", "malformed": True}])
    with Engine.from_params(make_params(srv.url, teacher={"max_retries": 1}), stage="s") as eng:
        r1, r2 = eng.run([chat(1), chat(2)])
    assert r1.ok
    assert not r2.ok and r2.error == "malformed_response"


def test_truncated_answer_is_never_accepted(srv, make_params):
    with Engine.from_params(make_params(srv.url), stage="s") as eng:
        (r,) = eng.run([chat("with a long tail of words", gen={"max_tokens": 3})])
    assert not r.ok and r.truncated and r.error == "truncated" and r.finish_reason == "length"
    assert r.text == "Test answer to:"


def test_truncated_answer_cached_so_rerun_does_not_pay(srv, make_params):
    p = make_params(srv.url)
    srv.configure(rules=[{"match": ".", "response": "partial", "finish_reason": "length"}])
    for _ in range(2):
        with Engine.from_params(p, stage="s") as eng:
            (r,) = eng.run([chat(1)])
        assert r.truncated
    assert len(srv.requests()) == 1


class Verdict(BaseModel):
    score: int
    reason: str


def test_structured_output_tolerant_parse(srv, make_params):
    srv.configure(rules=[{"match": ".", "response": 'Sure! ```json\n{"score": 8, "reason": "clear",}\n```'}])
    with Engine.from_params(make_params(srv.url), stage="judge") as eng:
        (r,) = eng.run([chat(1, schema=Verdict)])
    assert r.ok and r.parsed == Verdict(score=8, reason="clear")
    body = srv.requests()[0]["body"]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["score", "reason"]


def test_structured_output_repair_round_then_success(srv, make_params):
    srv.configure(rules=[{"match": "question 1$", "response": "I think it is good."},
                         {"match": "could not be used", "response": '{"score": 6, "reason": "ok"}'}])
    with Engine.from_params(make_params(srv.url), stage="judge") as eng:
        (r,) = eng.run([chat(1, schema=Verdict)])
        m = eng.metrics()["teachers"]["t"]
    assert r.ok and r.parsed.score == 6 and m["repair_rounds"] == 1
    assert len(srv.requests()) == 2
    assert r.sent[-1]["role"] == "user" and "could not be used" in r.sent[-1]["content"]
    assert r.usage["prompt_tokens"] > 0 and r.cost_usd > 0


def test_structured_output_gives_up_after_bounded_repairs(srv, make_params):
    srv.configure(rules=[{"match": ".", "response": '{"score": "high"}'}])
    with Engine.from_params(make_params(srv.url, max_parse_retries=2), stage="judge") as eng:
        (r,) = eng.run([chat(1, schema=Verdict)])
    assert not r.ok and r.error == "parse_error" and "score" in r.detail
    assert len(srv.requests()) == 3


def test_budget_zero_calls_nothing(srv, make_params):
    p = make_params(srv.url, stage_max_usd={"s": 0.0})
    with Engine.from_params(p, stage="s") as eng:
        res = eng.run([chat(i) for i in range(5)])
        m = eng.metrics()
    assert all(r.error == "budget_refused" for r in res)
    assert srv.requests() == [] and m["budget"]["refused_requests"] == 5


def test_budget_stops_before_overrun(srv, make_params):
    # a request costs $0.000018 (8 prompt + 5 completion tokens) but may cost up to ~$0.00016
    # (prompt bytes + max_tokens 64): a cap of $0.0002 admits about 11 and never overruns
    p = make_params(srv.url, teacher={"price_input_per_1m": 1.0, "price_output_per_1m": 2.0}, max_usd=0.0002)
    with Engine.from_params(p, stage="s") as eng:
        res = eng.run([chat(i) for i in range(40)])
        m = eng.metrics()
    ok = [r for r in res if r.ok]
    assert 0 < len(ok) < 40
    assert {r.error for r in res if not r.ok} == {"budget_refused"}
    assert m["budget"]["overall_spent_usd"] <= 0.0002
    assert len(srv.requests()) == len(ok)


def test_overall_budget_counts_spend_of_earlier_runs(srv, make_params):
    p = make_params(srv.url)
    with Engine.from_params(p, stage="a") as eng:
        eng.run([chat(i) for i in range(5)])
        spent = eng.metrics()["budget"]["spent_usd"]
    p2 = make_params(srv.url, max_usd=spent)  # same cache: its ledger already holds `spent`
    with Engine.from_params(p2, stage="b") as eng:
        (r,) = eng.run([chat("new")])
    assert r.error == "budget_refused"


def test_unknown_teacher_is_one_line_error(srv, make_params):
    with Engine.from_params(make_params(srv.url), stage="s") as eng:
        with pytest.raises(ParamsError, match="unknown teacher 'nope'.*has: t"):
            eng.run([ChatRequest(teacher="nope", messages=[{"role": "user", "content": "x"}])])


def test_missing_api_key_variable_names_it_only_when_used(srv, make_params, monkeypatch):
    p = make_params(srv.url)
    with Engine.from_params(p, stage="s") as eng:
        eng.run([chat(1)])  # cached now
    monkeypatch.delenv("TEST_LLM_KEY")
    with Engine.from_params(p, stage="s") as eng:
        (r,) = eng.run([chat(1)])  # served from the cache: no key needed
        assert r.ok and r.cached
        with pytest.raises(DistilleryError, match="environment variable TEST_LLM_KEY is not set") as ei:
            eng.run([chat(2)])
    assert "\n" not in str(ei.value)


def test_server_down_is_connection_error(make_params):
    from distillery.testing.testserver import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    with Engine.from_params(make_params(url, teacher={"max_retries": 1}), stage="s") as eng:
        (r,) = eng.run([chat(1)])
    assert not r.ok and r.error == "connection"


def test_bad_base_url_path_is_not_found(srv, make_params):
    bad = srv.url.replace("/v1", "/nope")
    with Engine.from_params(make_params(bad), stage="s") as eng:
        (r,) = eng.run([chat(1)])
    assert not r.ok and r.error == "not_found"


def test_bad_base_url_in_params_is_rejected_on_load(make_params):
    with pytest.raises(ParamsError, match="base_url"):
        make_params("not a url")


def test_invalid_request_is_bad_request_not_exception(srv, make_params):
    with Engine.from_params(make_params(srv.url), stage="s") as eng:
        res = eng.run([ChatRequest(teacher="t"), chat(1, gen={"temprature": 1}), chat(2)])
    assert [r.error for r in res] == ["bad_request", "bad_request", None]


def test_rate_limit_rpm_spaces_requests(srv, make_params):
    import time

    p = make_params(srv.url, teacher={"rpm": 600})  # 10/s, bucket holds 600: the first burst goes at once
    with Engine.from_params(p, stage="s") as eng:
        eng.clients.limiter(p.llm.teachers["t"]).requests.level = 0  # start empty: 5 requests need ~0.5 s
        t0 = time.perf_counter()
        res = eng.run([chat(i) for i in range(5)])
        dt = time.perf_counter() - t0
    assert all(r.ok for r in res) and dt >= 0.4


def test_random_429_and_500_lose_nothing_and_stay_in_budget(srv, make_params):
    srv.configure(rate_429=0.05, rate_500=0.02, retry_after_s=0.01, seed=5)
    p = make_params(srv.url, teacher={"max_retries": 8, "max_concurrency": 32}, stage_max_usd={"s": 0.01})
    with Engine.from_params(p, stage="s") as eng:
        res = eng.run([chat(i) for i in range(300)])
        m = eng.metrics()
    assert all(r.ok for r in res)
    t = m["teachers"]["t"]
    assert t["retries_by_reason"]["rate_limited"] > 0 and t["retries_by_reason"]["server_error"] > 0
    assert len(srv.requests()) == 300 + t["retries"]
    assert m["budget"]["spent_usd"] <= 0.01


def test_random_truncation_and_malformed_are_counted_by_reason(srv, make_params, tmp_path):
    srv.configure(rate_truncate=0.1, rate_malformed=0.1, seed=2)
    failed = tmp_path / "f.jsonl"
    p = make_params(srv.url, teacher={"max_retries": 0})
    with Engine.from_params(p, stage="s", failed_path=failed) as eng:
        res = eng.run([chat(i) for i in range(100)])
        m = eng.metrics()["teachers"]["t"]
    by = m["failed_by_reason"]
    assert set(by) == {"truncated", "malformed_response"}
    assert by["truncated"] == sum(r.truncated for r in res) > 0
    assert m["ok"] == 100 - sum(by.values())
    assert len(failed.read_text().splitlines()) == sum(by.values())


def test_dns_failure_is_connection_error(make_params):
    with Engine.from_params(make_params("http://no-such-host.invalid/v1", teacher={"max_retries": 0}),
                            stage="s") as eng:
        (r,) = eng.run([chat(1)])
    assert not r.ok and r.error == "connection"


def test_duplicate_requests_in_one_run_are_paid_once(srv, make_params):
    with Engine.from_params(make_params(srv.url), stage="s") as eng:
        res = eng.run([chat(1), chat(2), chat(1), chat(1)])
        m = eng.metrics()["teachers"]["t"]
    assert len(srv.requests()) == 2
    assert [r.text for r in res] == ["Test answer to: question 1", "Test answer to: question 2"] + \
        ["Test answer to: question 1"] * 2
    assert [r.cached for r in res] == [False, False, True, True]
    assert res[2].cost_usd == 0 and m["cost_usd"] == pytest.approx(res[0].cost_usd + res[1].cost_usd)


def test_retry_after_is_honoured(srv, make_params):
    import time

    srv.configure(rules=[{"match": "question 1$", "status": 429, "times": 1, "retry_after": 0.6}])
    p = make_params(srv.url, teacher={"backoff_base_s": 0.001, "backoff_max_s": 5.0})
    with Engine.from_params(p, stage="s") as eng:
        t0 = time.perf_counter()
        (r,) = eng.run([chat(1)])
        dt = time.perf_counter() - t0
    assert r.ok and dt >= 0.6


def test_tpm_limit_spaces_requests_by_tokens(srv, make_params):
    import time

    # each request reserves prompt bytes (~26) + max_tokens 64 = ~90 tokens; 6000 tpm = 100 tokens/s
    p = make_params(srv.url, teacher={"tpm": 6000})
    with Engine.from_params(p, stage="s") as eng:
        eng.clients.limiter(p.llm.teachers["t"]).tokens.level = 0
        t0 = time.perf_counter()
        res = eng.run([chat(i) for i in range(4)])
        dt = time.perf_counter() - t0
    assert all(r.ok for r in res) and dt >= 3.0
