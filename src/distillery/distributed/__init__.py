"""Where the heavy stages run: this machine's process pool (`local`) or a Ray cluster (`ray`).

    from distillery.distributed import run_dedup, run_chat
    res = run_dedup(params, inputs, out_dir)            # dispatches on params.engine (per stage)
    results = run_chat(params, requests, stage="distill")

Importing this package never imports ray; only `engine: ray` does (see docs/distributed.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .config import EngineParams

__all__ = ["EngineParams", "engine_for", "run_dedup", "run_chat", "make_engine"]


def engine_for(params: Any, stage: str) -> EngineParams:
    """The `engine:` settings of one stage (its `engine.stages.<stage>` override applied)."""
    return params.engine.for_stage(stage)


def run_dedup(params: Any, inputs: Sequence[str | Path], out_dir: str | Path, *, plots_path: Path | None = None,
              stage: str = "dedup"):
    """The dedup stage on the configured engine; same outputs, metrics and kept ids on both."""
    from ..core.errors import InputError

    cfg = engine_for(params, stage)
    p = params.dedup
    out = Path(out_dir)
    kw = dict(seed=params.project.seed, max_line_bytes=params.project.max_line_bytes, plots_path=plots_path,
              stage=stage)
    if cfg.engine == "local":
        from ..dedup.engine import run_dedup as run_local
        from ..core.io import input_files

        files = input_files([str(i) for i in inputs])
        if not files:
            raise InputError(f"{', '.join(map(str, inputs))}: no records.jsonl found")
        return run_local(files, out, p, **kw)
    from .dedup_ray import run_dedup_ray
    from .shards import list_inputs

    files = list_inputs([str(i) for i in inputs])
    if not files:
        raise InputError(f"{', '.join(map(str, inputs))}: no records.jsonl found")
    return run_dedup_ray(files, out, p, cfg, **kw)


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
        from ..llm import Engine

        return Engine.from_params(params, stage, **kw)
    from .generate_ray import RayEngine

    kw.pop("dry_run", None)
    return RayEngine(params, stage, cfg, **kw)
