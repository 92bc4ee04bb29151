"""Calls to any OpenAI-compatible endpoint with the `openai` async client (its own retries off).

Turns every exception into a `CallError` with a reason code; the engine decides about retries.
Error details pass through `redact`, so a server that echoes a header cannot leak the key.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson

from .config import TeacherParams
from .outcome import CallError, Outcome
from .parsing import schema_json, schema_name
from .secrets import api_key, redact



def make_client(teacher: TeacherParams):
    """An AsyncOpenAI client for a teacher (reads its key from the env var it names)."""
    import openai

    key = api_key(teacher.name, teacher.api_key_env)
    http = None
    if teacher.http_backend == "aiohttp":
        # aiohttp transport: ~2x less client CPU per request than the default httpx pool at high concurrency
        http = openai.DefaultAioHttpClient(timeout=teacher.timeout_s,
                                           limits=_limits(teacher.max_concurrency))
    return openai.AsyncOpenAI(api_key=key, base_url=teacher.base_url, max_retries=0, timeout=teacher.timeout_s,
                              http_client=http)


class DirectClient:
    """Online calls posted with a bare aiohttp session (`http_backend: direct`): the JSON body as-is,
    the answer's bytes back, HTTP errors mapped to reason codes here. It skips the SDK's request
    building and response models, most of the client's CPU per request. Batch mode keeps the SDK."""

    def __init__(self, teacher: TeacherParams):
        self.base = (teacher.base_url or "").rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key(teacher.name, teacher.api_key_env)}",
                        "Content-Type": "application/json", "Accept": "application/json"}
        self.timeout_s = teacher.timeout_s
        self.limit = max(teacher.max_concurrency, 1) + 8
        self._session: Any = None

    async def post(self, path: str, body: dict[str, Any]) -> bytes:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.limit),
                                                  timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        try:
            async with self._session.post(self.base + path, data=body_bytes(body),
                                          headers=self.headers) as r:
                data: bytes = await r.read()
                if r.status >= 400:
                    raise status_error(r.status, redact(data[:300].decode("utf-8", "replace").splitlines()[0]
                                                        if data else f"HTTP {r.status}"), r.headers)
                return data
        except CallError:
            raise
        except asyncio.TimeoutError:
            raise CallError("timeout", "no answer within timeout_s", retryable=True) from None
        except aiohttp.ClientError as e:
            raise CallError("connection", redact(f"{e.__class__.__name__}: {str(e)[:200]}"), retryable=True) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def body_bytes(body: dict[str, Any]) -> bytes:
    """The request body as JSON bytes: orjson (a tenth of `json.dumps`' CPU per request; UTF-8 rather than
    \\u escapes, both valid JSON), or `json.dumps` for what orjson refuses (a lone surrogate)."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body).encode()


def status_error(status: int, msg: str, headers: Any) -> CallError:
    """The reason code of an HTTP error status (Retry-After honoured for 429 and 5xx)."""
    ra = _retry_after(headers)
    if status == 429:
        return CallError("rate_limited", f"HTTP 429 {msg}", retryable=True, retry_after=ra)
    if status in (401, 403):
        return CallError("auth", f"HTTP {status} (check the key in the teacher's api_key_env)")
    if status == 404:
        return CallError("not_found", f"HTTP 404 {msg}")
    if status in (408, 409) or status >= 500:
        return CallError("server_error", f"HTTP {status} {msg}", retryable=True, retry_after=ra)
    return CallError("bad_request", f"HTTP {status} {msg}")


def _limits(n: int):
    import httpx2

    return httpx2.Limits(max_connections=max(n, 1) + 8, max_keepalive_connections=max(n, 1) + 8)


def request_body(teacher: TeacherParams, mode: str, payload: Any, gen: dict, schema: Any) -> dict:
    """The JSON body of a chat or completion request (also used for batch JSONL lines)."""
    body: dict[str, Any] = {"model": teacher.model}
    if mode == "chat":
        body["messages"] = payload
    else:
        body["prompt"] = payload
    for k, v in gen.items():
        if v is not None:
            body[k] = v
    if schema is not None and mode == "chat" and teacher.response_format != "none":
        if teacher.response_format == "json_object":
            body["response_format"] = {"type": "json_object"}
        else:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": schema_name(schema), "schema": schema_json(schema), "strict": False}}
    return body


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw:
            try:
                return max(0.0, float(raw) * scale)
            except ValueError:
                return None
    return None


def _connection_cause(exc: BaseException) -> str | None:
    """A refused/unreachable connection somewhere in the exception chain, as one line."""
    import aiohttp

    seen = 0
    e: BaseException | None = exc
    while e is not None and seen < 8:
        if isinstance(e, (aiohttp.ClientConnectorError, ConnectionRefusedError, ConnectionResetError)) or (
                isinstance(e, OSError) and not isinstance(e, TimeoutError) and e.errno is not None):
            return f"{e.__class__.__name__}: {str(e)[:200]}"
        e = e.__cause__ or e.__context__
        seen += 1
    return None


def classify(exc: BaseException) -> CallError:
    """Map an openai/httpx exception to a reason code."""
    import openai

    msg = redact(str(exc).splitlines()[0][:300] if str(exc) else exc.__class__.__name__)
    refused = _connection_cause(exc)
    if refused is not None:  # the aiohttp transport reports a refused connection as a connect *timeout*
        return CallError("connection", redact(refused), retryable=True)
    if isinstance(exc, openai.APITimeoutError):
        return CallError("timeout", "no answer within timeout_s", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = redact(f"{cause.__class__.__name__}: {str(cause)[:200]}") if cause else msg
        return CallError("connection", detail, retryable=True)
    if isinstance(exc, openai.APIStatusError):
        return status_error(exc.status_code, msg, getattr(exc.response, "headers", None))
    if isinstance(exc, (json.JSONDecodeError, openai.APIResponseValidationError, ValueError)):
        return CallError("malformed_response", msg, retryable=True)
    return CallError("server_error", f"{exc.__class__.__name__}: {msg}", retryable=True)


async def call(client: Any, teacher: TeacherParams, mode: str, payload: Any, gen: dict, schema: Any) -> Outcome:
    """One attempt. Raises CallError.

    Goes through the openai client (auth, base_url, headers, HTTP errors -> APIStatusError) but posts
    the JSON body as-is and parses the answer with `json`, skipping the SDK's typed request transform
    and response model construction: that halves client CPU per request at high concurrency.
    """
    body = request_body(teacher, mode, payload, gen, schema)
    path = "/chat/completions" if mode == "chat" else "/completions"
    try:
        if isinstance(client, DirectClient):
            raw = await client.post(path, body)
        else:
            raw = await client.post(path, body=body, cast_to=bytes)
    except CallError:
        raise
    except Exception as e:  # noqa: BLE001 - every failure becomes a reason code
        raise classify(e) from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:   # what orjson refuses but json reads (NaN, integers past 64 bits): as lenient as before
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CallError("malformed_response", "answer is not valid JSON", retryable=True) from None
    if not isinstance(data, dict):
        raise CallError("malformed_response", "answer is not a JSON object", retryable=True)
    return outcome_from_body(data, mode)


def outcome_from_body(body: dict, mode: str) -> Outcome:
    """An Outcome from a JSON response body (online answers and Batch API output lines)."""
    try:
        ch = body["choices"][0]
        text = ch["message"]["content"] if mode == "chat" else ch["text"]
        usage = body.get("usage") or {}
        return Outcome(text=text, finish_reason=ch.get("finish_reason"),
                       prompt_tokens=int(usage.get("prompt_tokens") or 0),
                       completion_tokens=int(usage.get("completion_tokens") or 0), model=body.get("model"))
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise CallError("malformed_response", f"answer lacks choices/usage ({e.__class__.__name__})",
                        retryable=True) from None
