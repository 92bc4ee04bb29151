"""params.yaml `engine:` section: where the heavy stages run (this process pool, or a Ray cluster).

Pydantic only (cheap to import, never imports ray). `for_stage(name)` merges a stage's override
over the defaults, so `engine.stages.dedup.engine: ray` moves only the dedup stage to Ray.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from ..core.params import Section

EngineName = Literal["local", "ray"]


class StageEngine(Section):
    """Per-stage override: every key left out falls back to the section's default."""

    engine: EngineName | None = None
    address: str | None = None
    num_cpus: int | None = Field(None, gt=0)
    chunk_mb: float | None = Field(None, gt=0)
    concurrency: int | None = Field(None, gt=0)


class EngineParams(Section):
    """engine: local (multiprocessing in this process) or ray (a cluster by address, or a local one)."""

    engine: EngineName = Field("local", description="local: process pool on this machine; ray: a Ray cluster")
    address: str | None = Field(
        None, description="Ray cluster address (`ray://head:10001` or `auto`); null = start a local cluster "
                          "for the run and stop it at the end")
    num_cpus: int | None = Field(None, gt=0, description="CPUs of the local cluster (null = all cores); "
                                                         "ignored with an address")
    runtime_env: dict[str, Any] = Field(
        default_factory=dict, description="Ray runtime_env for the job (pip, env_vars, working_dir, ...)")
    object_store_mb: int | None = Field(None, gt=0, description="object store of the local cluster (null = Ray's)")
    chunk_mb: float = Field(64.0, gt=0, description="dedup: input bytes per Ray read task (byte ranges, "
                                                    "split at line ends; a .gz file is one task)")
    concurrency: int | None = Field(None, gt=0, description="generation: Ray tasks in flight (null = cluster "
                                                            "CPUs); each runs the LLM engine on its share")
    spill_dir: str | None = Field(None, description="dedup: folder for shingle spill files, visible to every "
                                                    "node (shared FS on a multi-node cluster; null = beside "
                                                    "the output)")
    max_driver_edges: int = Field(200_000_000, gt=0,
                                  description="dedup: verified edges up to this run connected components on the "
                                              "driver (scipy); more run iterative min-label propagation on Ray")
    stages: dict[str, StageEngine] = Field(default_factory=dict,
                                           description="per-stage overrides, e.g. {dedup: {engine: ray}}")

    @field_validator("runtime_env")
    @classmethod
    def _no_secret_values(cls, v: dict[str, Any]) -> dict[str, Any]:
        env = v.get("env_vars") or {}
        bad = [k for k in env if any(s in k.upper() for s in ("KEY", "TOKEN", "SECRET", "PASSWORD"))]
        if bad:
            raise ValueError(f"runtime_env.env_vars.{bad[0]}: secrets never go in params; export them on the "
                             f"cluster nodes instead")
        return v

    def for_stage(self, stage: str) -> "EngineParams":
        """These settings with `stages[stage]` applied."""
        o = self.stages.get(stage)
        if o is None:
            return self
        upd = {k: v for k, v in o.model_dump().items() if v is not None}
        return self.model_copy(update=upd)
