"""Generation tests run the real stage code and the real engine against the OpenAI-compatible test
server on 127.0.0.1 (scripted answers, every request recorded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

KEY_ENV = "DISTILLERY_GEN_TEST_KEY"


def _teacher(url: str, model: str, price_in: float = 1.0, price_out: float = 2.0) -> dict:
    return {"provider": "openai", "model": model, "base_url": url, "api_key_env": KEY_ENV,
            "max_retries": 0, "backoff_base_s": 0.0, "timeout_s": 10, "max_concurrency": 8,
            "response_format": "none", "price_input_per_1m": price_in, "price_output_per_1m": price_out,
            "gen": {"temperature": 0.0, "max_tokens": 400}}


def default_templates() -> dict:
    """The generation sections' defaults; their `prompts/...` templates come from the package data
    (tests run in tmp dirs with no prompts/ folder of their own)."""
    from distillery.core.params import root_model

    data = root_model().model_validate({}).model_dump(mode="json", by_alias=True)
    return {k: data[k] for k in ("distill", "synthesize", "preferences", "score")}


@pytest.fixture()
def server():
    from distillery.testing.testserver import TestServer

    with TestServer(latency_ms=0) as srv:
        yield srv


@pytest.fixture()
def gen_params(tmp_path, server, monkeypatch):
    """Build validated params: teachers big/small/judge on the test server (+ a dead one), a cache in
    tmp, templates from the repo, and any dotted overrides."""
    from distillery.testing.testserver import free_port
    from distillery.core.params import apply_overrides, load_params

    monkeypatch.setenv(KEY_ENV, "sk-test-not-a-real-key")
    monkeypatch.chdir(tmp_path)

    def make(rules: list[dict] | None = None, **overrides) -> object:
        server.configure(rules=rules or [])
        dead = f"http://127.0.0.1:{free_port()}/v1"
        data = default_templates()
        data["project"] = {"seed": 42}
        data["llm"] = {"teachers": {"big": _teacher(server.url, "big-model", 3.0, 15.0),
                                    "small": _teacher(server.url, "small-model", 0.1, 0.3),
                                    "judge": _teacher(server.url, "judge-model", 0.5, 1.5),
                                    "dead": _teacher(dead, "dead-model")},
                       "default_teacher": "big", "cache_path": str(tmp_path / "cache" / "responses.sqlite"),
                       "progress": False}
        data["distill"]["teachers"] = {"big": 1.0}
        data["distill"]["pilot"]["size"] = 0
        data["distill"]["gen"]["max_tokens"] = 400
        data["score"]["judge"]["teachers"] = ["judge"]
        for sec in ("multiturn", "scenarios", "completion"):
            data["synthesize"][sec]["teacher"] = "big"
        apply_overrides(data, [f"{k.replace('__', '.')}={json.dumps(v)}" for k, v in overrides.items()])
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return load_params(path)

    return make


@pytest.fixture()
def engine_for():
    from distillery.llm.engine import Engine

    made = []

    def make(params, stage: str):
        e = Engine.from_params(params, stage=stage, failed_path=Path("failed") / f"{stage}.jsonl")
        made.append(e)
        return e

    yield make
    for e in made:
        e.close()


def write_records(path: Path, recs: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def read_jsonl(path: Path) -> list[dict]:
    p = Path(path)
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []


def sft(i: int | str, prompt: str, answer: str = "A human answer.", bucket: str = "instruction", **extra) -> dict:
    return {"id": f"rec-{i}", "kind": "sft", "bucket": bucket, "source": {"dataset": "test", "row": i},
            "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
            "lineage": [{"stage": "ingest"}], "scores": {}, "labels": {}, **extra}


@pytest.fixture()
def gh():
    """Helpers for tests (import mode is importlib, so conftest cannot be imported by name)."""
    import sys

    return sys.modules[__name__]
