"""Where the heavy stages run: this machine's process pool (`local`) or a Ray cluster (`ray`).

`run_dedup` (the `dedup` module) and `make_engine` / `run_chat` (the `generate` module) dispatch on
`params.engine`, per stage. Dedup and generation live in separate modules so that each stage depends only on its own code.
Importing this package never imports ray; only `engine: ray` does (see docs/distributed.md).
"""

from __future__ import annotations

from typing import Any

from .config import EngineParams

__all__ = ["EngineParams", "engine_for"]


def engine_for(params: Any, stage: str) -> EngineParams:
    """The `engine:` settings of one stage (its `engine.stages.<stage>` override applied)."""
    return params.engine.for_stage(stage)
