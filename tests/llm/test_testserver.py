"""The test server itself: HTTP control endpoints, scripted rules, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

from distillery.testing.testserver import SubprocessServer, free_port


def post(url: str, body: dict) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def test_rules_times_and_default_answer(srv):
    srv.configure(rules=[{"match": "hello", "response": "scripted", "times": 1},
                         {"match": "limit", "status": 429, "retry_after": 7}])
    base = f"http://127.0.0.1:{srv.port}"
    msg = {"model": "m", "messages": [{"role": "user", "content": "hello there"}]}
    assert post(base + "/v1/chat/completions", msg)[2]["choices"][0]["message"]["content"] == "scripted"
    second = post(base + "/v1/chat/completions", msg)[2]
    assert second["choices"][0]["message"]["content"] == "Test answer to: hello there"
    assert second["usage"]["completion_tokens"] == 5
    status, headers, body = post(base + "/v1/chat/completions",
                                 {"model": "m", "messages": [{"role": "user", "content": "limit"}]})
    assert status == 429 and headers["Retry-After"] == "7"
    with urllib.request.urlopen(base + "/_requests") as r:
        log = json.loads(r.read())
    assert [x["body"]["messages"][0]["content"] for x in log] == ["hello there", "hello there", "limit"]
    post(base + "/_reset", {})
    with urllib.request.urlopen(base + "/_requests") as r:
        assert json.loads(r.read()) == []


def test_config_endpoint_and_max_tokens_truncation(srv):
    base = f"http://127.0.0.1:{srv.port}"
    assert post(base + "/_config", {"nope": 1})[0] == 400
    post(base + "/_config", {"rules": [{"match": "x", "response": "configured"}]})
    body = post(base + "/v1/completions", {"model": "m", "prompt": "x"})[2]
    assert body["choices"][0]["text"] == "configured" and body["object"] == "text_completion"
    body = post(base + "/v1/completions", {"model": "m", "prompt": "a b c d e", "max_tokens": 2})[2]
    assert body["choices"][0] == {"index": 0, "text": "Test answer", "finish_reason": "length", "logprobs": None}


def test_command_line_server_with_fault_rates():
    with SubprocessServer(latency_ms=1, rate_500=1.0) as s:
        status, _, body = post(s.url + "/chat/completions", {"model": "m", "messages": [{"role": "user",
                                                                                        "content": "x"}]})
        assert status == 500 and "injected" in body["error"]["message"]
        assert s.control("/_requests")[0]["path"] == "/v1/chat/completions"


def test_module_entry_point_help_and_port():
    port = free_port()
    out = subprocess.run([sys.executable, "-m", "distillery.testing.testserver", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "--rate-429" in out.stdout and "--latency-ms" in out.stdout
    proc = subprocess.Popen([sys.executable, "-m", "distillery.testing.testserver", "--port", str(port),
                             "--latency-ms", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_health", timeout=1) as r:
                    assert json.loads(r.read()) == {"ok": True}
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("server did not answer")
    finally:
        proc.terminate()
        proc.wait(10)
