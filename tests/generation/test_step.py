"""The step runner against the test server over HTTP: every item a step takes ends as exactly one
output record or one quarantine entry with its reason (in = out + quarantined, per reason), a failed
request is also in failed_requests.jsonl, a re-ask (`Resend`) is a real second request, and the
lineage holds the exact prompt the server received."""

from __future__ import annotations

from distillery.core.quarantine import StageCounter
from distillery.generation.step import Reject, Resend, Sink, Step, classify, run_step
from distillery.llm import ChatRequest, ChatResult


class NumberStep(Step[dict]):
    """Ask for a number; a reply that is not one is re-asked once, then rejected (`not_a_number`)."""

    stage = "test"
    gen = {"temperature": 0.0, "max_tokens": 40, "seed": 1}

    def ask(self, item: dict, messages: list[dict]) -> ChatRequest:
        return ChatRequest(teacher="big", messages=messages, gen=self.gen, tag=f"test:{item['id']}")

    def prompt(self, item: dict) -> ChatRequest:
        return self.ask(item, [{"role": "user", "content": f"Give a number for item {item['n']}."}])

    def parse(self, item: dict, results: list[ChatResult]) -> dict | Reject | Resend:
        res = results[-1]
        bad = classify(res)
        if bad:
            return bad
        text = (res.text or "").strip()
        if text.isdigit():
            item["number"] = int(text)
            return item
        if len(results) == 1:
            fix = {"role": "user", "content": f"Item {item['n']}: reply with ONLY a number."}
            return Resend.of(self.ask(item, [*res.sent, {"role": "assistant", "content": text}, fix]))
        return Reject("not_a_number", text)


RULES = [
    {"match": r"item [0-3]\.$", "response": "42"},
    {"match": r"item [45]\.$", "status": 500, "response": "boom"},
    {"match": r"item 6\.$", "response": ""},
    {"match": r"item 7\.$", "response": "12 and then some more words", "finish_reason": "length"},
    {"match": r"item [89]\.$", "response": "I would rather not say."},
    {"match": r"Item 8: reply", "response": "7"},
    {"match": r"Item 9: reply", "response": "seven"},
]


def test_every_item_ends_once_and_in_equals_out_plus_quarantined_per_reason(tmp_path, gen_params, engine_for, gh,
                                                                           server):
    params = gen_params(rules=RULES)
    engine = engine_for(params, "test")
    items = [{"id": f"q{i}", "n": i, "lineage": []} for i in range(10)]
    counter = StageCounter()
    order = []
    with Sink(tmp_path / "out", "test", counter) as sink:
        for item, verdict in run_step(NumberStep(), items, engine, batch_size=3):
            order.append(item["id"])
            sink.settle(item, verdict)

    assert order == [f"q{i}" for i in range(10)]          # each item once, in input order
    kept = gh.read_jsonl(tmp_path / "out" / "records.jsonl")
    quarantined = gh.read_jsonl(tmp_path / "out" / "quarantine.jsonl")
    assert [r["id"] for r in kept] == ["q0", "q1", "q2", "q3", "q8"]
    assert [r["number"] for r in kept] == [42, 42, 42, 42, 7]
    by_reason = {q["record"]["id"]: q["reason"] for q in quarantined}
    assert by_reason == {"q4": "teacher_failed", "q5": "teacher_failed", "q6": "empty_response",
                         "q7": "truncated_response", "q9": "not_a_number"}
    assert counter.records_in == 10 == counter.records_out + counter.rejected
    assert dict(counter.rejects) == {"teacher_failed": 2, "empty_response": 1, "truncated_response": 1,
                                     "not_a_number": 1}
    # the failed requests are also in the engine's failed-requests file, with their reason
    # (the engine logs a truncation too: the request did not finish)
    failed = {f["tag"]: f["error"] for f in gh.read_jsonl(tmp_path / "failed" / "test.jsonl")}
    assert sorted(failed) == ["test:q4", "test:q5", "test:q7"] and failed["test:q7"] == "truncated"
    assert next(q for q in quarantined if q["record"]["id"] == "q4")["detail"].startswith(failed["test:q4"] + ": ")
    # the re-ask is a real second request; the lineage holds every prompt exactly as the server got it
    received = [r["body"]["messages"] for r in server.requests() if "messages" in r.get("body", {})]
    q8 = kept[-1]
    assert [s["role"] for s in q8["lineage"]] == ["answer", "answer"]
    assert [s["prompt"] for s in q8["lineage"]] == [m for m in received if "item 8." in m[0]["content"]]
    assert q8["lineage"][0]["model"] == "big-model" and q8["lineage"][1]["prompt"][-1]["content"].startswith("Item 8")
    assert len(received) == 12                       # 10 first asks + 2 re-asks (items 8 and 9)


def test_a_step_without_requests_goes_straight_to_parse(tmp_path, gen_params, engine_for, server):
    class Skip(NumberStep):
        def prompt(self, item: dict) -> None:
            return None

        def parse(self, item: dict, results: list[ChatResult]) -> Reject:
            assert results == []
            return Reject("not_asked")

    params = gen_params(rules=RULES)
    out = list(run_step(Skip(), [{"id": "a", "n": 1, "lineage": []}], engine_for(params, "test")))
    assert out[0][1] == Reject("not_asked") and out[0][0]["lineage"] == [] and server.requests() == []
