"""Structured output: find the JSON in a model's answer, validate it, and say why it failed.

Models wrap JSON in prose or ``` fences, leave trailing commas, or return `[{...}]` when an object
was asked for. `parse_structured` tolerates those; whatever still fails comes back with a short
reason the engine feeds into a bounded repair retry.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


class ParseFailure(ValueError):
    """The answer holds no JSON matching the schema; the message says why (one line)."""


def schema_json(schema: Any) -> dict | None:
    """JSON schema of a pydantic model class or a schema dict (for the cache key and the API)."""
    if schema is None:
        return None
    if isinstance(schema, dict):
        return schema
    if hasattr(schema, "model_json_schema"):
        return schema.model_json_schema()
    raise TypeError(f"schema must be a pydantic model class or a JSON-schema dict, not {type(schema).__name__}")


def schema_name(schema: Any) -> str:
    if isinstance(schema, dict):
        name = schema.get("title") or "response"
    else:
        name = getattr(schema, "__name__", "response")
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(name))[:64] or "response"


def _balanced(text: str, start: int) -> str | None:
    """The balanced {...} or [...] starting at `start` (string-aware)."""
    open_ch = text[start]
    close_ch = "}" if open_ch == "{" else "]"
    depth, in_str, esc = 0, False, False
    for i in range(start, len(text)):
        c = text[i]
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
            continue
        if c == '"':
            in_str = True
        elif c == open_ch:
            depth += 1
        elif c == close_ch:
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
    return None


def _candidates(text: str):
    yield text.strip()
    for m in _FENCE.finditer(text):
        yield m.group(1).strip()
    for i, c in enumerate(text):
        if c in "{[":
            chunk = _balanced(text, i)
            if chunk:
                yield chunk


def iter_json(text: str):
    """Every JSON value found in `text`, best first: whole text, fenced blocks, balanced objects."""
    seen = set()
    for cand in _candidates(text or ""):
        if not cand or cand in seen:
            continue
        seen.add(cand)
        for variant in (cand, _TRAILING_COMMA.sub(r"\1", cand)):
            try:
                yield json.loads(variant)
                break
            except json.JSONDecodeError:
                continue


def extract_json(text: str) -> Any:
    """The first JSON value found in `text`."""
    for obj in iter_json(text):
        return obj
    raise ParseFailure("no JSON object found in the answer")


def _validate(obj: Any, schema: Any) -> Any:
    if isinstance(schema, dict):
        import jsonschema

        try:
            jsonschema.validate(obj, schema)
        except jsonschema.ValidationError as e:
            where = "/".join(str(p) for p in e.absolute_path) or "(root)"
            raise ParseFailure(f"{where}: {e.message[:200]}") from None
        return obj
    from pydantic import ValidationError

    try:
        return schema.model_validate(obj)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        raise ParseFailure(f"{where}: {err['msg'][:200]}") from None


def parse_structured(text: str, schema: Any) -> Any:
    """The first JSON value in `text` that validates (a one-element list is unwrapped when an
    object was expected); otherwise the first candidate's validation problem."""
    first: ParseFailure | None = None
    for obj in iter_json(text):
        tries = [obj] + ([obj[0]] if isinstance(obj, list) and len(obj) == 1 and isinstance(obj[0], dict) else [])
        for cand in tries:
            try:
                return _validate(cand, schema)
            except ParseFailure as e:
                first = first or e
    raise first or ParseFailure("no JSON object found in the answer")


def repair_messages(messages: list[dict], answer: str, problem: str, schema: Any) -> list[dict]:
    """The follow-up turn that asks the model to fix its JSON (one bounded retry)."""
    sj = json.dumps(schema_json(schema), ensure_ascii=False)
    return [*messages, {"role": "assistant", "content": answer or ""},
            {"role": "user", "content": f"Your answer could not be used: {problem}. Reply with only a JSON "
                                        f"value matching this JSON schema, no other text: {sj}"}]
