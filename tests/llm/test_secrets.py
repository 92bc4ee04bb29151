"""API keys never reach logs, exceptions, results, the cache, the failed-requests file or metrics."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import FAKE_KEY

SCRIPT = r"""
import json, logging, sys
from distillery.core.stage import setup_logging
from distillery.llm import ChatRequest
from distillery.llm.engine import Engine
from distillery.core.params import load_params
from distillery.core.io import write_json
setup_logging()
logging.getLogger().setLevel(logging.DEBUG)
for name in ("openai", "httpx2", "httpcore2", "aiohttp"):
    logging.getLogger(name).setLevel(logging.DEBUG)
url, out = sys.argv[1], sys.argv[2]
p = load_params(None, sections=("llm", "engine"), extra={"llm.teachers": [{"name": "t", "provider": "openai", "model": "m", "base_url": url,
    "api_key_env": "TEST_LLM_KEY", "max_retries": 1, "backoff_base_s": 0.01, "price_input_per_1m": 1}],
    "llm.default_teacher": "t", "llm.cache_path": out + "/cache.sqlite", "llm.progress": True})
with Engine.from_params(p, stage="s", failed_path=out + "/failed.jsonl") as eng:
    res = eng.run([ChatRequest(teacher="t", messages=[{"role": "user", "content": f"q{i}"}], tag=f"r{i}")
                   for i in range(6)])
    write_json(out + "/metrics.json", eng.metrics())
    write_json(out + "/results.json", [r.to_dict() for r in res])
print(json.dumps([r.error for r in res]))
"""


def test_fake_key_appears_nowhere_the_run_wrote(srv, tmp_path):
    srv.configure(rules=[{"match": "q1$", "status": 401, "echo_auth": True},
                         {"match": "q2$", "status": 400, "echo_auth": True},
                         {"match": "q3$", "status": 500, "echo_auth": True},
                         {"match": "q4$", "status": 429, "echo_auth": True, "times": 1}])
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    env = {"TEST_LLM_KEY": FAKE_KEY, "DISTILLERY_PROGRESS": "1", "PATH": "/usr/bin:/bin",
           "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(script), srv.url, str(out)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    errors = json.loads(proc.stdout.strip().splitlines()[-1])
    assert errors == [None, "auth", "bad_request", "server_error", None, None]
    # the server really received the key (so a leak was possible) ...
    assert all(r["has_auth"] for r in srv.requests())
    # ... and it echoed it back in error messages, yet nothing we wrote contains it
    files = [f for f in out.rglob("*") if f.is_file()]
    assert {f.name for f in files} >= {"cache.sqlite", "failed.jsonl", "metrics.json", "results.json"}
    for f in files:
        assert FAKE_KEY.encode() not in f.read_bytes(), f"key leaked into {f.name}"
    assert FAKE_KEY not in proc.stdout and FAKE_KEY not in proc.stderr
    assert "llm s" in proc.stderr and "failed=3" in proc.stderr and "proj=$" in proc.stderr  # live bar
    assert "injected error" in (out / "failed.jsonl").read_text()  # the detail is kept, minus the key
    assert "***" in (out / "failed.jsonl").read_text()
