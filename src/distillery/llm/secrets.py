"""API keys come only from env vars named in params, and are scrubbed from every message we emit."""

from __future__ import annotations

import os
from typing import overload

from ..core.errors import DistilleryError

_SECRETS: set[str] = set()


class MissingSecretError(DistilleryError):
    """The env var a teacher's `api_key_env` names is not set."""


def api_key(teacher: str, env_name: str | None) -> str:
    """Read a teacher's key; a missing variable is one line naming it (never the value)."""
    if not env_name:
        return "not-needed"  # local servers (vLLM, llama.cpp, Ollama) accept any key
    value = os.environ.get(env_name)
    if not value:
        raise MissingSecretError(f"teacher {teacher!r}: environment variable {env_name} is not set "
                                 f"(params llm.teachers.{teacher}.api_key_env)")
    remember(value)
    return value


def remember(value: str) -> None:
    if value and len(value) >= 4:
        _SECRETS.add(value)


@overload
def redact(text: str) -> str: ...
@overload
def redact(text: None) -> None: ...
def redact(text: str | None) -> str | None:
    """Replace every known key in `text` with ***."""
    if not text:
        return text
    for s in _SECRETS:
        if s in text:
            text = text.replace(s, "***")
    return text
