"""The dedup stage on the configured engine: this machine's process pool or Ray Data (same outputs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from . import engine_for


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
