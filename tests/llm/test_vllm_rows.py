"""The vLLM path's input rows (`vllm_rows`): what Ray would send to vLLM, built without Ray or a GPU.

Its keys must be the engine's own request keys, or the answers vLLM writes would be cache misses
and every request would be generated twice."""

from __future__ import annotations

from distillery.distributed.vllm_ray import vllm_rows
from distillery.llm import ChatRequest
from distillery.llm.engine import Engine


def _params(make_params, url):
    local = {"name": "loc", "provider": "local", "model": "smollm2", "gen": {"temperature": 0.0, "max_tokens": 32}}
    p = make_params(url)
    p.llm.teachers["loc"] = type(p.llm.teachers["t"])(**local)
    return p


def test_rows_cover_each_uncached_local_chat_request_once_under_the_engine_keys(srv, make_params):
    p = _params(make_params, srv.url)

    def chat(text, teacher="loc", **kw):
        return ChatRequest(teacher=teacher, messages=[{"role": "user", "content": text}], **kw)

    reqs = [chat("one"), chat("two", gen={"max_tokens": 8, "temperature": 0.5}), chat("one"),
            chat("cached"), chat("remote", teacher="t"), chat("structured", schema={"type": "object"}),
            ChatRequest(teacher="loc", prompt="a completion"), ChatRequest(teacher="loc", messages="not a list")]
    with Engine(p.llm, "s", progress=False) as eng:
        keys = {it.req.messages[0]["content"] if it.req.messages else it.req.prompt: it.key
                for it in eng.items(reqs)}
        eng.cache.put(keys["cached"], "loc", "smollm2", "stored", "stop", 1, 1, 0.0, "s")
        rows = vllm_rows(eng, reqs)
    assert list(rows) == ["loc"]
    got = {r["messages"][0]["content"]: r for r in rows["loc"]}
    assert sorted(got) == ["one", "two"]                       # once each; cached, remote, schema, completion out
    assert got["one"]["key"] == keys["one"] and got["two"]["key"] == keys["two"]
    assert got["one"]["max_tokens"] == 32 and got["one"]["temperature"] == 0.0 and got["one"]["top_p"] == 1.0
    assert got["two"]["max_tokens"] == 8 and got["two"]["temperature"] == 0.5
    assert got["one"]["messages"] == [{"role": "user", "content": "one"}]
