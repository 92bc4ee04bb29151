"""Fixtures for the LLM layer: a real HTTP test server on 127.0.0.1 and params pointing at it."""

from __future__ import annotations

import pytest

from distillery.testing.testserver import TestServer
from distillery.core.params import load_params

FAKE_KEY = "sk-test-DO-NOT-LEAK-4f1c9a7e"


@pytest.fixture(scope="module")
def server():
    with TestServer(latency_ms=0) as srv:
        yield srv


@pytest.fixture()
def srv(server):
    """The module's server, reset (no rules, no faults, empty request log) for each test."""
    server.configure(rules=[], rate_429=0.0, rate_500=0.0, rate_hang=0.0, rate_malformed=0.0, rate_truncate=0.0,
                     latency_ms=0.0, retry_after_s=0.05, batch_delay_s=0.0, hang_s=3600.0, seed=0)
    server.reset()
    return server


@pytest.fixture()
def make_params(tmp_path, monkeypatch):
    """params with one openai teacher 't' at `url` (extra teacher settings and llm keys as kwargs)."""
    monkeypatch.setenv("TEST_LLM_KEY", FAKE_KEY)

    def _make(url: str, teacher: dict | None = None, **llm) -> object:
        t = {"name": "t", "provider": "openai", "model": "test-model", "base_url": url,
             "api_key_env": "TEST_LLM_KEY", "price_input_per_1m": 1.0, "price_output_per_1m": 2.0,
             "timeout_s": 2.0, "max_retries": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.2,
             "gen": {"temperature": 0.0, "max_tokens": 64}}
        t.update(teacher or {})
        extra = {"llm.teachers": [t], "llm.default_teacher": "t", "llm.cache_path": str(tmp_path / "cache.sqlite"),
                 "llm.progress": False}
        extra.update({f"llm.{k}": v for k, v in llm.items()})
        return load_params(None, sections=("llm", "engine"), extra=extra)

    return _make
