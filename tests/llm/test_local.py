"""The local provider with the real SmolLM2-135M-Instruct, offline, in-process."""

from __future__ import annotations

import pytest

from distillery.llm import ChatRequest

from distillery.llm.engine import Engine
from distillery.core.params import load_params

pytestmark = pytest.mark.slow


@pytest.fixture()
def local_params(tmp_path, smollm2_path):
    def _make(**teacher):
        t = {"name": "local", "provider": "local", "model": str(smollm2_path), "batch_size": 4,
             "gen": {"temperature": 0.0, "max_tokens": 24}}
        t.update(teacher)
        return load_params(None, sections=("llm", "engine"), extra={"llm.teachers": [t], "llm.default_teacher": "local",
                                        "llm.cache_path": str(tmp_path / "c.sqlite"), "llm.progress": False})
    return _make


def test_local_chat_completion_deterministic_and_cached(local_params):
    p = local_params()
    reqs = [ChatRequest(teacher="local", messages=[{"role": "user", "content": "What is the capital of France?"}]),
            ChatRequest(teacher="local", messages=[{"role": "user", "content": "Name a primary colour."}]),
            ChatRequest(teacher="local", prompt="The quick brown fox", gen={"max_tokens": 8}),
            ChatRequest(teacher="local", messages=[{"role": "user", "content": "Count to 100 in words."}],
                        gen={"max_tokens": 4})]
    with Engine.from_params(p, stage="distill") as eng:
        res = eng.run(reqs)
        m = eng.metrics()
    assert res[0].ok and "Paris" in res[0].text and res[0].finish_reason == "stop"
    assert res[0].usage["prompt_tokens"] > 5 and res[0].cost_usd == 0.0
    assert res[1].text and res[1].ok == (res[1].finish_reason == "stop") == (not res[1].truncated)
    assert res[2].sent == "The quick brown fox" and res[2].usage["completion_tokens"] <= 8
    assert res[3].truncated and res[3].error == "truncated" and res[3].usage["completion_tokens"] == 4
    assert m["teachers"]["local"]["requests"] == 4
    with Engine.from_params(p, stage="distill", refresh=True) as eng:  # recomputed: same text (greedy)
        again = eng.run(reqs)
    assert [r.text for r in again] == [r.text for r in res]
    with Engine.from_params(p, stage="distill") as eng:
        cached = eng.run(reqs)
    assert all(r.cached for r in cached) and [r.text for r in cached] == [r.text for r in res]


def test_local_seeded_sampling_reproducible_and_stop_strings(local_params):
    p = local_params(gen={"temperature": 0.9, "max_tokens": 12})
    req = [ChatRequest(teacher="local", messages=[{"role": "user", "content": "Write a short poem."}],
                       gen={"seed": 3}),
           ChatRequest(teacher="local", prompt="1, 2, 3, 4, 5, 6,", gen={"temperature": 0.0, "stop": [" 8"]})]
    with Engine.from_params(p, stage="s", refresh=True) as eng:
        a = eng.run(req)
        b = eng.run(req)
    assert a[0].text == b[0].text and a[0].text
    assert a[1].text.strip().startswith("7") and " 8" not in a[1].text and a[1].finish_reason == "stop"


def test_default_alias_uses_the_prepared_model(tmp_path, smollm2_path, monkeypatch):
    """`model: smollm2` resolves to data/models/smollm2 when present (here: the converted cache copy)."""
    p = load_params(None, sections=("llm", "engine"), extra={"llm.cache_path": str(tmp_path / "c.sqlite"), "llm.progress": False})
    with Engine.from_params(p, stage="s") as eng:
        (r,) = eng.run([ChatRequest(teacher="local-smollm2",
                                    messages=[{"role": "user", "content": "Say hello."}])])
    assert r.ok and r.model == "smollm2" and r.text


def test_structured_requests_to_a_local_model_are_decoded_under_the_schema(local_params):
    """A 135M model asked for rubric JSON rambles; under a closed-value schema every answer parses,
    with values from the allowed sets and no repair round. Pydantic schemas work the same."""
    from typing import Literal

    from pydantic import BaseModel, Field

    class Winner(BaseModel):
        winner: Literal["A", "B", "tie"]
        confident: bool

    rubric = {"type": "object", "properties": {
        "helpfulness": {"type": "integer", "minimum": 1, "maximum": 10},
        "overall": {"type": "integer", "minimum": 1, "maximum": 10}}}
    ask = [{"role": "user", "content": f"Rate this answer to 'What is 2+2?': {a}. Reply as JSON."}
           for a in ("4", "5", "Paris")]
    p = local_params(gen={"temperature": 0.0, "max_tokens": 8})  # too few tokens for free-form JSON
    with Engine.from_params(p, stage="score") as eng:
        res = eng.run([ChatRequest(teacher="local", messages=[m], schema=rubric) for m in ask]
                      + [ChatRequest(teacher="local", messages=[ask[0]], schema=Winner)])
        m = eng.metrics()
    for r in res[:3]:
        assert r.ok and r.finish_reason == "stop", r.error
        assert set(r.parsed) == {"helpfulness", "overall"} and all(1 <= v <= 10 for v in r.parsed.values())
    assert isinstance(res[3].parsed, Winner) and res[3].parsed.winner in ("A", "B", "tie")
    assert m["teachers"]["local"]["repair_rounds"] == 0
