"""LLM calls on the configured engine: the local `Engine` or `RayEngine` workers (same results)."""

from __future__ import annotations

from typing import Any, Sequence

from . import engine_for


def run_chat(params: Any, requests: Sequence[Any], stage: str = "default", **engine_kw: Any) -> list:
    # one call, one engine: a Ray session started here is stopped again before returning
    """Answer ChatRequests with the LLM engine, locally or fanned out over Ray workers (same results)."""
    with make_engine(params, stage, **engine_kw) as eng:
        return eng.run(list(requests))


def make_engine(params: Any, stage: str, **kw: Any) -> Any:
    """What a generation stage should construct instead of `Engine.from_params(params, stage, ...)`:
    the local `Engine` (engine: local, or a dry run) or a `RayEngine` (same run/metrics/close API)."""
    cfg = engine_for(params, stage)
    if cfg.engine == "local" or kw.get("dry_run"):
        from ..llm.engine import Engine

        return Engine.from_params(params, stage, **kw)
    from .generate_ray import RayEngine

    kw.pop("dry_run", None)
    return RayEngine(params, stage, cfg, **kw)
