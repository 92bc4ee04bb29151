"""Params of MLflow tracking (`tracking:`). Pydantic only: cheap to import.

Where runs go, in order of precedence (first that is set wins):
  1. the MLFLOW_TRACKING_URI environment variable (so CI, a shell or `make ui` can redirect
     one run without editing a versioned file),
  2. `tracking.tracking_uri` in params.yaml,
  3. `sqlite:///<project root>/mlflow.db` (project root = DVC_ROOT, else the nearest folder
     above the cwd holding dvc.yaml or .dvc, else the cwd).
"""

from __future__ import annotations

from pydantic import Field

from ..core.params import Section

DEFAULT_SECRET_KEY_PARTS = ["secret", "password", "passwd", "pwd", "token", "apikey", "api_key", "access_key",
                            "private_key", "secret_key", "session_key", "credential", "credentials",
                            "authorization", "auth", "bearer", "cookie"]


class TrackingParams(Section):
    """tracking: log every stage to MLflow as a child run of one parent run per `dvc repro`."""

    enabled: bool = Field(True, description="log stages to MLflow (env DISTILLERY_TRACKING=0 also turns it off)")
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; MLFLOW_TRACKING_URI wins over it; none = sqlite:///<project>/mlflow.db")
    experiment: str = Field("distillery", min_length=1, description="MLflow experiment name")
    artifact_location: str | None = Field(
        None, description="where a NEW experiment stores artifacts; none = mlruns/ in the project, stored relative "
                          "to the project root when the store is a sqlite file inside the project (a relative path "
                          "here is too), so a moved or cloned project keeps its artifacts")
    defer: bool = Field(True, description="under dvc repro, spool each stage's log and let one background "
                                          "process write them all (importing mlflow per stage costs minutes)")
    strict: bool = Field(False, description="a tracking failure fails the stage (default: a warning only)")
    log_artifacts: bool = Field(True, description="upload the reports/plots/cards a stage names")
    max_artifact_mb: float = Field(50.0, gt=0, description="larger artifact files are skipped with a warning")
    parent_metrics: bool = Field(True, description="also log each stage's metrics on the parent run as "
                                                   "<stage>.<metric>, so one row compares whole pipelines")
    secret_key_parts: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SECRET_KEY_PARTS),
        description="params keys containing one of these words (split on _ . -) are redacted; keys ending "
                    "in _env hold a variable NAME and are kept")
