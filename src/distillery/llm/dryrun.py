"""--dry-run answers: stand-ins that let a stage run to its end without calling anything.

Why answers and not failures: a stage treats a failed request as a failure (failover, a teacher
taken out of routing, a conversation dropped), so a dry run that "fails" every request stops after
the first batch or step and under-counts. A stand-in answer lets every later batch and step be
built, so the estimate covers every request the real run would send. Each stand-in carries a
marker with the request's `max_tokens`; when a later prompt embeds it (a multi-turn transcript,
a scenario document), the estimate counts `max_tokens` for it, so prompt tokens stay an upper bound.
Structured requests get the smallest answer their JSON schema accepts, so parsing succeeds.
"""

from __future__ import annotations

import json
import re
from typing import Any

_MARK = "\u27e6dry-run answer \u2264{n} tokens\u27e7"
_MARK_RE = re.compile("\u27e6dry-run answer \u2264(\\d+) tokens\u27e7")
_LINES = 12   # list-shaped stand-in: stages that parse "up to n items" get n of them


def stand_in(max_tokens: int, schema: dict | None) -> str:
    """The text of a dry-run answer for a request with this `max_tokens` and JSON schema."""
    if schema:
        try:
            return json.dumps(example(schema, schema))
        except (KeyError, TypeError, ValueError, RecursionError):
            pass
    head = f"1. {_MARK.format(n=int(max_tokens))} (item 1)"
    return "\n".join([head] + [f"{i}. dry-run item {i} of a stand-in answer" for i in range(2, _LINES + 1)])


def embedded_tokens(text: str) -> int:
    """Tokens to add for stand-in answers embedded in a prompt: their `max_tokens` each."""
    return sum(int(m.group(1)) for m in _MARK_RE.finditer(text))


def _resolve(node: dict, root: dict) -> dict:
    while "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise KeyError(ref)
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def example(node: dict, root: dict, depth: int = 0) -> Any:
    """A small instance of a JSON schema: required properties only, bounds respected."""
    if depth > 12:
        raise RecursionError("schema too deep")
    node = _resolve(node, root)
    if "const" in node:
        return node["const"]
    if node.get("enum"):
        return node["enum"][0]
    for alt in ("anyOf", "oneOf", "allOf"):
        if node.get(alt):
            options = [o for o in node[alt] if _resolve(o, root).get("type") != "null"] or node[alt]
            return example(options[0], root, depth + 1)
    kind = node.get("type", "object" if "properties" in node else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = node.get("properties") or {}
        req = node.get("required", list(props))
        return {k: example(props[k], root, depth + 1) for k in req if k in props}
    if kind == "array":
        n = int(node.get("minItems", 1))
        return [example(node.get("items") or {}, root, depth + 1) for _ in range(n)]
    if kind in ("integer", "number"):
        lo = node.get("minimum", node.get("exclusiveMinimum"))
        hi = node.get("maximum", node.get("exclusiveMaximum"))
        v = hi if hi is not None else lo if lo is not None else 1
        if "exclusiveMaximum" in node and hi is not None:
            v = hi - 1
        return int(v) if kind == "integer" else float(v)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "x" * max(1, int(node.get("minLength", 1)))
