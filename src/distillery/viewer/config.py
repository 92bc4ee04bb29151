"""Params of the data viewer stage (`viewer`). Pydantic only: cheap to import."""

from __future__ import annotations

from pydantic import Field

from ..core.params import Section


class ViewerParams(Section):
    """One static HTML page per run: samples, rejects, duplicate clusters, contamination hits.

    Every example on the page is chosen by a seeded hash (`project.seed`) of its id, so the same inputs
    give the same page, and every cap below bounds the page whatever the input size."""

    title: str = Field("distillery data viewer", description="page title")
    record_files: list[str] = Field(default_factory=lambda: ["production.jsonl", "eval.jsonl"],
                                    description="files read from an --input folder (the mix stage's); a folder "
                                                "holding none of them contributes every records.jsonl below it")
    examples_per_group: int = Field(3, ge=0, le=100,
                                    description="sample records shown per (bucket, source) group")
    max_groups: int = Field(60, ge=1, le=10_000,
                            description="(bucket, source) groups with examples; the counts table lists all "
                                        "groups up to max_table_rows")
    rejects_per_reason: int = Field(3, ge=0, le=100, description="examples shown per (stage, reason)")
    max_reject_groups: int = Field(80, ge=1, le=10_000, description="(stage, reason) groups with examples")
    clusters_per_kind: int = Field(12, ge=0, le=1000,
                                   description="duplicate clusters shown per kind (exact, near, semantic)")
    members_per_cluster: int = Field(3, ge=1, le=100,
                                     description="removed records shown beside a cluster's kept record "
                                                 "(least similar first)")
    contamination_per_set: int = Field(8, ge=0, le=1000, description="contamination hits shown per eval set")
    max_chars: int = Field(1200, ge=80, le=100_000,
                           description="characters shown of one message, prompt or raw line (the rest is "
                                       "counted, not shown)")
    max_lineage_steps: int = Field(12, ge=1, le=1000, description="lineage steps shown per record (the last ones)")
    max_table_rows: int = Field(400, ge=10, le=100_000, description="rows of a counts table (largest first)")
    generated_stages: list[str] = Field(default_factory=lambda: ["distill", "multiturn", "scenarios",
                                                                 "completion", "preferences"],
                                        description="a record with a lineage step of one of these stages is "
                                                    "generated; otherwise ingested")
