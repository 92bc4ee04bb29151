"""The bulk cached pass (`Engine._answer_hits`): the keys it computes are the ones every earlier run
stored, so an existing user's cache is read and nothing is bought again; whatever it cannot answer
(misses, schemas, truncated answers) still goes through the full path with its accounting."""

from __future__ import annotations

import hashlib
import json

from distillery.llm import ChatRequest
from distillery.llm.cache import ResponseCache
from distillery.llm.engine import Engine

TRICKY = ["plain", "ünïcödé and 中文", "emoji 🦙", 'quotes " and \\ backslash', "tab\tnew\nline\r\x00\x1f\x7f",
          "\u2028\u2029 separators", "</script> & <b>", ""]


def old_key(url: str, model: str, payload, gen: dict) -> str:
    """The cache key as every earlier release wrote it: sha256 of canonical JSON (sorted keys, no ASCII escaping)."""
    blob = json.dumps({"u": url, "m": model, "p": payload, "g": gen, "s": None}, sort_keys=True,
                      ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def test_a_cache_written_with_the_old_keys_is_read_and_nothing_is_bought(srv, make_params):
    p = make_params(srv.url)
    url = srv.url.rstrip("/")
    reqs, rows = [], []
    for i, s in enumerate(TRICKY):
        msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": f"{s} {i}"}]
        reqs.append(ChatRequest(teacher="t", messages=msgs))
        rows.append((old_key(url, "test-model", msgs, {"max_tokens": 64, "temperature": 0.0}), f"chat {i}"))
        reqs.append(ChatRequest(teacher="t", prompt=f"{s} prompt {i}", gen={"temperature": 0.7, "top_p": 1e-05}))
        rows.append((old_key(url, "test-model", f"{s} prompt {i}", {"max_tokens": 64, "temperature": 0.7,
                                                                     "top_p": 1e-05}), f"prompt {i}"))
    c = ResponseCache(p.llm.cache_path)
    c.put_many([(k, "t", "test-model", text, "stop", 3, 4, 0.001) for k, text in rows], "old-run")
    c.close()
    with Engine.from_params(p, stage="s") as eng:
        res = eng.run(reqs)
        m = eng.metrics()
    assert srv.requests() == []
    assert [r.text for r in res] == [text for _, text in rows]
    assert all(r.ok and r.cached and r.usage == {"prompt_tokens": 3, "completion_tokens": 4} for r in res)
    assert res[0].sent == reqs[0].messages and res[0].sent is not reqs[0].messages and res[1].sent == reqs[1].prompt
    assert m["totals"]["requests"] == m["totals"]["cached"] == m["totals"]["ok"] == len(reqs)
    assert m["totals"]["cost_usd"] == 0


def test_hits_and_misses_mixed_keep_order_accounting_and_the_full_path(srv, make_params):
    p = make_params(srv.url)
    srv.configure(rules=[{"match": "json", "response": '{"a": 1}'}, {"match": "long", "finish_reason": "length"}])
    first = [ChatRequest(teacher="t", messages=[{"role": "user", "content": f"q{i}"}]) for i in range(5)]
    first.append(ChatRequest(teacher="t", messages=[{"role": "user", "content": "json please"}],
                             schema={"type": "object"}))
    first.append(ChatRequest(teacher="t", messages=[{"role": "user", "content": "long one"}]))
    with Engine.from_params(p, stage="s") as eng:
        before = eng.run(first)
    assert len(srv.requests()) == 7
    extra = ChatRequest(teacher="t", messages=[{"role": "user", "content": "one more"}])
    bad = ChatRequest(teacher="t", messages=[{"role": "user", "content": "x"}], gen={"nonsense": 1})
    with Engine.from_params(p, stage="s") as eng:
        again = eng.run([*first[:3], extra, *first[3:], bad])
        m = eng.metrics()
    assert len(srv.requests()) == 8                      # exactly the one new prompt was sent
    assert [r.text for r in again[:3]] == [r.text for r in before[:3]] and not again[3].cached
    assert again[-3].parsed == {"a": 1} and again[-3].cached            # schema hit: parsed again
    assert again[-2].error == "truncated" and again[-2].cached          # truncated hit: still a failure
    assert again[-1].error == "bad_request" and "nonsense" in again[-1].detail
    assert m["totals"]["requests"] == 9 and m["totals"]["cached"] == 7
    assert m["totals"]["failed_by_reason"] == {"bad_request": 1, "truncated": 1}


def test_a_miss_keyed_by_the_bulk_pass_is_paid_and_stored_as_the_full_path_would(srv, make_params, tmp_path):
    """The misses `_answer_hits` keys go straight to the paid path as Items: same request sent, same cache
    key, same result fields as `resolve`'s path (the one `refresh` takes), so a later run finds them."""
    reqs = []
    for i, s in enumerate(TRICKY):
        reqs.append(ChatRequest(teacher="t", messages=[{"role": "system", "content": "be brief"},
                                                       {"role": "user", "content": f"{s} {i}"}]))
        reqs.append(ChatRequest(teacher="t", prompt=f"{s} prompt {i}", gen={"temperature": 0.7}))
    runs = {}
    for name, refresh in (("bulk", False), ("full", True)):
        p = make_params(srv.url, cache_path=str(tmp_path / f"{name}.sqlite"))
        srv.reset()
        with Engine.from_params(p, stage="s", refresh=refresh) as eng:
            res = eng.run(reqs)
            keys = [it.key for it in eng.items(reqs)]
        c = ResponseCache(p.llm.cache_path)
        stored = c.answers(set(keys))
        c.close()
        runs[name] = (res, [r["body"] for r in srv.requests()], [k in stored for k in keys])
    (bulk, sent_b, found_b), (full, sent_f, found_f) = runs["bulk"], runs["full"]
    assert sorted(map(json.dumps, sent_b)) == sorted(map(json.dumps, sent_f)) and len(sent_b) == len(reqs)
    assert all(found_b) and all(found_f)                 # stored under the key every later run looks up
    for b, f, req in zip(bulk, full, reqs):
        assert b.ok and not b.cached and b.attempts == 1 and b.latency_s > 0 and b.cost_usd > 0
        assert b.sent == (req.messages if req.prompt is None else req.prompt)
        assert (b.text, b.finish_reason, b.usage, b.cost_usd, b.sent, b.error, b.truncated, b.parsed) == \
               (f.text, f.finish_reason, f.usage, f.cost_usd, f.sent, f.error, f.truncated, f.parsed)
