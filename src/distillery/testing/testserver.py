"""An OpenAI-compatible HTTP server for tests and benchmarks (127.0.0.1 only, aiohttp).

Endpoints: POST /v1/chat/completions, /v1/completions, /v1/files (multipart), GET /v1/files/{id},
/v1/files/{id}/content, POST /v1/batches, GET /v1/batches/{id}; usage fields on every answer.
Control: GET /_requests (every request received, JSON), POST /_reset, POST /_config (JSON with
any ServerConfig field), GET /_health.

Faults, by rate (seeded, deterministic) or by script: 429 with Retry-After, 500, hangs, malformed
JSON, truncated answers (finish_reason "length"). Scripted answers: rules
`{"match": regex searched in the last message content (or prompt), "response": text,
"finish_reason": "stop", "status": 200, "times": null, "hang": false, "malformed": false,
"retry_after": s, "echo_auth": false}` (echo_auth: the error message repeats the Authorization header,
like a careless provider, to test that keys are redacted);
the first matching rule with `times` left wins; otherwise a deterministic default answer
("Test answer to: <last message>", cut to max_tokens words with finish_reason "length").

    with TestServer(latency_ms=0, rules=[{"match": "capital", "response": "Paris"}]) as srv:
        base_url = srv.url          # http://127.0.0.1:PORT/v1
        srv.requests()              # what it received

    python -m distillery.testing.testserver --port 8765 --latency-ms 200 --rate-429 0.05 --rate-500 0.02
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class ServerConfig:
    latency_ms: float = 0.0
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_hang: float = 0.0
    rate_malformed: float = 0.0
    rate_truncate: float = 0.0
    retry_after_s: float = 0.1
    hang_s: float = 3600.0
    seed: int = 0
    batch_delay_s: float = 0.0
    record: bool = True
    rules: list[dict] = field(default_factory=list)


def _words(text: str) -> int:
    return len(text.split())


def _last_text(body: dict) -> str:
    if "messages" in body:
        msgs = body.get("messages") or []
        return str(msgs[-1].get("content", "")) if msgs else ""
    p = body.get("prompt", "")
    return p if isinstance(p, str) else json.dumps(p)


def _prompt_tokens(body: dict) -> int:
    if "messages" in body:
        return sum(_words(str(m.get("content", ""))) + 3 for m in body.get("messages") or []) + 3
    return _words(_last_text(body))


class _State:
    def __init__(self, cfg: ServerConfig):
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.log: list[dict] = []
        self.rule_uses: dict[int, int] = {}
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.counter = 0

    def reset(self) -> None:
        self.log.clear()
        self.rule_uses.clear()
        self.rng = random.Random(self.cfg.seed)

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def rule_for(self, text: str) -> dict | None:
        for i, rule in enumerate(self.cfg.rules):
            if re.search(rule.get("match", ""), text, re.S):
                times = rule.get("times")
                used = self.rule_uses.get(i, 0)
                if times is not None and used >= times:
                    continue
                self.rule_uses[i] = used + 1
                return rule
        return None

    def answer(self, body: dict) -> dict:
        """Decide the answer to a chat/completion body: {status, text, finish_reason, hang, malformed}."""
        text_in = _last_text(body)
        rule = self.rule_for(text_in)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        if rule is not None:
            out = {"status": int(rule.get("status", 200)), "text": rule.get("response"),
                   "finish_reason": rule.get("finish_reason", "stop"), "hang": bool(rule.get("hang")),
                   "malformed": bool(rule.get("malformed")), "retry_after": rule.get("retry_after"),
                   "echo_auth": bool(rule.get("echo_auth"))}
            if out["text"] is None:
                out["text"] = f"Test answer to: {text_in}"
            return out
        c = self.cfg
        r = self.rng.random()
        edges = [("rate_429", c.rate_429), ("rate_500", c.rate_500), ("rate_hang", c.rate_hang),
                 ("rate_malformed", c.rate_malformed), ("rate_truncate", c.rate_truncate)]
        fault = None
        acc = 0.0
        for name, rate in edges:
            acc += rate
            if r < acc:
                fault = name
                break
        text = f"Test answer to: {text_in}"
        finish = "stop"
        words = text.split(" ")
        if max_tokens and len(words) > int(max_tokens):
            text, finish = " ".join(words[:int(max_tokens)]), "length"
        out = {"status": 200, "text": text, "finish_reason": finish, "hang": False, "malformed": False,
               "retry_after": None}
        if fault == "rate_429":
            out["status"] = 429
        elif fault == "rate_500":
            out["status"] = 500
        elif fault == "rate_hang":
            out["hang"] = True
        elif fault == "rate_malformed":
            out["malformed"] = True
        elif fault == "rate_truncate":
            out["text"], out["finish_reason"] = " ".join(words[:max(1, len(words) // 2)]), "length"
        return out


def completion_body(body: dict, ans: dict, chat: bool) -> dict:
    text = ans["text"]
    usage = {"prompt_tokens": _prompt_tokens(body), "completion_tokens": _words(text)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    rid = "cmpl-" + hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    if chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": text},
                  "finish_reason": ans["finish_reason"]}
        return {"id": rid, "object": "chat.completion", "created": 0, "model": body.get("model", "test"),
                "choices": [choice], "usage": usage}
    choice = {"index": 0, "text": text, "finish_reason": ans["finish_reason"], "logprobs": None}
    return {"id": rid, "object": "text_completion", "created": 0, "model": body.get("model", "test"),
            "choices": [choice], "usage": usage}


def _error(status: int, message: str, headers: dict | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "test_server", "code": status}},
                             status=status, headers=headers)


STATE = web.AppKey("state", _State)


def build_app(cfg: ServerConfig) -> web.Application:
    st = _State(cfg)
    app = web.Application(client_max_size=512 * 1024 * 1024)
    app[STATE] = st

    def record(request: web.Request, body: Any) -> None:
        if st.cfg.record:
            st.log.append({"path": request.path, "method": request.method, "body": body,
                           "has_auth": bool(request.headers.get("Authorization")), "t": time.time()})

    async def generate(request: web.Request, chat: bool) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "body is not JSON")
        record(request, body)
        if chat and not isinstance(body.get("messages"), list):
            return _error(400, "messages must be a list")
        if not chat and "prompt" not in body:
            return _error(400, "prompt is required")
        ans = st.answer(body)
        if st.cfg.latency_ms:
            await asyncio.sleep(st.cfg.latency_ms / 1000.0)
        if ans["hang"]:
            await asyncio.sleep(st.cfg.hang_s)
        if ans["status"] == 429:
            ra = ans.get("retry_after") if ans.get("retry_after") is not None else st.cfg.retry_after_s
            return _error(429, "rate limited (test server)", {"Retry-After": f"{ra:g}"})
        if ans["status"] != 200:
            leak = f" (you sent {request.headers.get('Authorization')})" if ans.get("echo_auth") else ""
            return _error(ans["status"], f"injected error {ans['status']}{leak}")
        if ans["malformed"]:
            return web.Response(text='{"id": "broken", "choices": [{"message": ', content_type="application/json")
        return web.json_response(completion_body(body, ans, chat))

    async def chat_completions(request):
        return await generate(request, True)

    async def completions(request):
        return await generate(request, False)

    async def files_create(request: web.Request):
        reader = await request.multipart()
        data, purpose, filename = b"", "", "upload.jsonl"
        async for part in reader:
            if part.name == "file":
                filename = part.filename or filename
                data = await part.read(decode=False)
            elif part.name == "purpose":
                purpose = (await part.text()).strip()
        fid = st.next_id("file")
        st.files[fid] = bytes(data)
        record(request, {"purpose": purpose, "filename": filename, "bytes": len(data)})
        return web.json_response({"id": fid, "object": "file", "bytes": len(data), "created_at": 0,
                                  "filename": filename, "purpose": purpose, "status": "processed"})

    async def files_get(request: web.Request):
        fid = request.match_info["fid"]
        if fid not in st.files:
            return _error(404, f"no file {fid}")
        return web.json_response({"id": fid, "object": "file", "bytes": len(st.files[fid]), "created_at": 0,
                                  "filename": fid, "purpose": "batch", "status": "processed"})

    async def files_content(request: web.Request):
        fid = request.match_info["fid"]
        record(request, None)
        if fid not in st.files:
            return _error(404, f"no file {fid}")
        return web.Response(body=st.files[fid], content_type="application/octet-stream")

    def batch_view(b: dict) -> dict:
        if b["status"] == "in_progress" and time.time() >= b["ready_at"]:
            _finish_batch(b)
        return {k: v for k, v in b.items() if k not in ("ready_at",)}

    def _finish_batch(b: dict) -> None:
        out_lines, err_lines = [], []
        for line in st.files[b["input_file_id"]].decode("utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            body = row.get("body") or {}
            chat = row.get("url", "").endswith("chat/completions")
            ans = st.answer(body)
            if ans["status"] != 200 or ans["malformed"] or ans["hang"]:
                status = ans["status"] if ans["status"] != 200 else 500
                err_lines.append({"id": st.next_id("req"), "custom_id": row.get("custom_id"),
                                  "response": {"status_code": status, "body": {}},
                                  "error": {"code": str(status), "message": f"injected error {status}"}})
                continue
            out_lines.append({"id": st.next_id("req"), "custom_id": row.get("custom_id"),
                              "response": {"status_code": 200, "request_id": "r",
                                           "body": completion_body(body, ans, chat)}, "error": None})
        if out_lines:
            fid = st.next_id("file")
            st.files[fid] = ("\n".join(json.dumps(x) for x in out_lines) + "\n").encode()
            b["output_file_id"] = fid
        if err_lines:
            fid = st.next_id("file")
            st.files[fid] = ("\n".join(json.dumps(x) for x in err_lines) + "\n").encode()
            b["error_file_id"] = fid
        b["status"] = "completed"
        b["completed_at"] = int(time.time())
        b["request_counts"] = {"total": len(out_lines) + len(err_lines), "completed": len(out_lines),
                               "failed": len(err_lines)}

    async def batches_create(request: web.Request):
        body = await request.json()
        record(request, body)
        fid = body.get("input_file_id")
        if fid not in st.files:
            return _error(400, f"no input file {fid}")
        bid = st.next_id("batch")
        st.batches[bid] = {"id": bid, "object": "batch", "endpoint": body.get("endpoint"),
                           "input_file_id": fid, "completion_window": body.get("completion_window", "24h"),
                           "status": "in_progress", "created_at": int(time.time()), "output_file_id": None,
                           "error_file_id": None, "errors": None,
                           "request_counts": {"total": 0, "completed": 0, "failed": 0},
                           "ready_at": time.time() + st.cfg.batch_delay_s}
        return web.json_response(batch_view(st.batches[bid]))

    async def batches_get(request: web.Request):
        bid = request.match_info["bid"]
        record(request, None)
        if bid not in st.batches:
            return _error(404, f"no batch {bid}")
        return web.json_response(batch_view(st.batches[bid]))

    async def get_requests(request):
        return web.json_response(st.log)

    async def reset(request):
        st.reset()
        return web.json_response({"ok": True})

    async def config(request):
        body = await request.json()
        for k, v in body.items():
            if not hasattr(st.cfg, k):
                return _error(400, f"unknown config key {k}")
            setattr(st.cfg, k, v)
        if "seed" in body:
            st.rng = random.Random(st.cfg.seed)
        return web.json_response(asdict(st.cfg))

    async def health(request):
        return web.json_response({"ok": True})

    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/files", files_create)
    app.router.add_get("/v1/files/{fid}", files_get)
    app.router.add_get("/v1/files/{fid}/content", files_content)
    app.router.add_post("/v1/batches", batches_create)
    app.router.add_get("/v1/batches/{bid}", batches_get)
    app.router.add_get("/_requests", get_requests)
    app.router.add_post("/_reset", reset)
    app.router.add_post("/_config", config)
    app.router.add_get("/_health", health)
    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TestServer:
    """Run the server in a background thread (its own event loop). A context manager."""

    __test__ = False  # not a pytest class

    def __init__(self, port: int | None = None, **cfg: Any):
        self.cfg = ServerConfig(**cfg)
        self.port = port or free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.app: web.Application | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def state(self) -> _State:
        assert self.app is not None
        return self.app[STATE]

    def start(self) -> "TestServer":
        ready = threading.Event()
        errors: list[BaseException] = []

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                self.app = build_app(self.cfg)
                self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
                self._loop.run_until_complete(self._runner.setup())
                site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
                self._loop.run_until_complete(site.start())
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
            for t in pending:  # hanging handlers
                t.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=main, name=f"testserver:{self.port}", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> "TestServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # control (thread-safe enough for tests: plain attribute and list operations)
    def requests(self) -> list[dict]:
        return list(self.state.log)

    def reset(self) -> None:
        self.state.reset()

    def configure(self, **kw: Any) -> None:
        for k, v in kw.items():
            if not hasattr(self.cfg, k):
                raise AttributeError(f"unknown test-server setting {k}")
            setattr(self.cfg, k, v)
        if "seed" in kw:
            self.state.rng = random.Random(self.cfg.seed)


class SubprocessServer:
    """The same server in its own process (benchmarks: keeps it off the client's GIL)."""

    def __init__(self, port: int | None = None, **cfg: Any):
        self.port = port or free_port()
        self.cfg = cfg
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "SubprocessServer":
        args = [sys.executable, "-m", "distillery.testing.testserver", "--port", str(self.port),
                "--config-json", json.dumps(self.cfg)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        import urllib.request

        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_health", timeout=1).read()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"test server exited: {self.proc.stderr.read().decode()[-500:]}")
                time.sleep(0.1)
        raise RuntimeError("test server did not start in 30 s")

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used (Linux /proc), for benchmarks."""
        assert self.proc is not None
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def control(self, path: str, body: dict | None = None) -> Any:
        import urllib.request

        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     headers={"Content-Type": "application/json"},
                                     method="POST" if data is not None else "GET")
        return json.loads(urllib.request.urlopen(req, timeout=30).read())

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m distillery.testing.testserver", description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    for name in ("429", "500", "hang", "malformed", "truncate"):
        ap.add_argument(f"--rate-{name}", type=float, default=0.0, help=f"fraction of requests answered with {name}")
    ap.add_argument("--retry-after-s", type=float, default=0.1, help="Retry-After sent with 429")
    ap.add_argument("--seed", type=int, default=0, help="fault RNG seed")
    ap.add_argument("--batch-delay-s", type=float, default=0.0, help="seconds a batch stays in_progress")
    ap.add_argument("--rules", type=str, default=None, help="JSON file with a list of scripted answer rules")
    ap.add_argument("--no-record", action="store_true", help="do not keep received requests (long benchmarks)")
    ap.add_argument("--config-json", type=str, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    cfg = ServerConfig(latency_ms=a.latency_ms, rate_429=a.rate_429, rate_500=a.rate_500, rate_hang=a.rate_hang,
                       rate_malformed=a.rate_malformed, rate_truncate=a.rate_truncate, retry_after_s=a.retry_after_s,
                       seed=a.seed, batch_delay_s=a.batch_delay_s, record=not a.no_record)
    if a.rules:
        with open(a.rules, encoding="utf-8") as fh:
            cfg.rules = json.load(fh)
    if a.config_json:
        for k, v in json.loads(a.config_json).items():
            setattr(cfg, k, v)
    web.run_app(build_app(cfg), host="127.0.0.1", port=a.port, access_log=None, print=None, backlog=1024)


if __name__ == "__main__":
    main()
