"""Turn nested stage params/metrics into MLflow's flat key -> value form, with secrets removed.

Why a module of its own: this is the one place that decides what may leave the machine. Params keys
that name a secret are redacted, values that look like a credential or equal the value of a
secret-looking environment variable are redacted, and metrics keep only numbers.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, Iterator

REDACTED = "***"
# MLflow allows alphanumerics, _ - . space / in keys
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_ENV_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH", re.I)
# well-known credential shapes (OpenAI/Anthropic sk-, GitHub, Hugging Face, AWS, Slack, JWT, bearer)
_SECRET_VALUE = re.compile(
    r"(sk-[A-Za-z0-9_\-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|hf_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|"
    r"xox[abpr]-[A-Za-z0-9\-]{10,}|eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}|Bearer\s+\S{8,})")
_URL_PASSWORD = re.compile(r"(://[^/:@\s]+:)([^@/\s]+)(@)")
MAX_PARAM_CHARS = 6000


def sanitize_key(key: str) -> str:
    return _BAD_KEY_CHARS.sub("_", key)[:250]


def _walk(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        if not obj and prefix:
            yield prefix, obj
        for k, v in obj.items():
            yield from _walk(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, obj


def secret_env_values(min_len: int = 8) -> list[str]:
    """Values of environment variables whose NAME looks secret (API keys, tokens, passwords)."""
    vals = {v for k, v in os.environ.items() if _SECRET_ENV_NAME.search(k) and len(v) >= min_len}
    return sorted(vals, key=len, reverse=True)


def key_is_secret(key: str, words: list[str]) -> bool:
    parts = [p for p in re.split(r"[._\-\s/]+", key.lower()) if p]
    if parts and parts[-1] == "env":   # api_key_env: holds a variable NAME, checked by value below
        return False
    joined = "_" + "_".join(parts) + "_"
    for w in words:
        w = w.lower()
        if ("_" in w and f"_{w}_" in joined) or w in parts:
            return True
    return False


def redact_text(text: str, env_values: list[str] | None = None) -> str:
    """Remove credential-looking substrings and the values of secret env vars from a string."""
    for v in env_values if env_values is not None else secret_env_values():
        if v in text:
            text = text.replace(v, REDACTED)
    text = _SECRET_VALUE.sub(REDACTED, text)
    return _URL_PASSWORD.sub(r"\1" + REDACTED + r"\3", text)


def flatten_params(params: dict[str, Any], secret_words: list[str]) -> dict[str, str]:
    """Nested params -> {"a.b.c": "value"} strings, secrets redacted, values cut to MLflow's limit."""
    env_values = secret_env_values()
    out: dict[str, str] = {}
    for key, value in _walk(params):
        if not key:
            continue
        if key_is_secret(key, secret_words):
            text = REDACTED
        elif key.lower().endswith("_env") and isinstance(value, str) and not _ENV_NAME.match(value):
            text = REDACTED                # an _env key must hold a NAME; anything else may be a key
        else:
            text = "null" if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
            text = redact_text(text, env_values)
        out[sanitize_key(key)] = text[:MAX_PARAM_CHARS]
    return out


def flatten_metrics(metrics: dict[str, Any], max_list: int = 32) -> dict[str, float]:
    """Nested metrics -> {"rejects.too_long": 3.0}: numbers (and bools) only; short numeric lists
    become key.0, key.1, ...; strings, long lists, NaN/inf and keys holding a secret are left out."""
    env_values = secret_env_values()
    out: dict[str, float] = {}
    for key, value in _walk(metrics):
        if redact_text(key, env_values) != key:
            continue
        if isinstance(value, (list, tuple)):
            if len(value) <= max_list and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                              for x in value):
                for i, x in enumerate(value):
                    if math.isfinite(x):
                        out[sanitize_key(f"{key}.{i}")] = float(x)
            continue
        if isinstance(value, bool):
            out[sanitize_key(key)] = float(value)
        elif isinstance(value, (int, float)) and math.isfinite(value):
            out[sanitize_key(key)] = float(value)
    return out
