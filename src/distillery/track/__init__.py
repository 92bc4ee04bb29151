"""MLflow tracking for every stage: `StageRun.finish()` calls `log_stage`.

Each stage becomes a child run (params, numeric metrics, artifacts) of one parent run per
`dvc repro` / `dvc exp run` (see context.run_group). The parent carries the git commit, the dirty
flag, the DVC output hashes from dvc.lock and, prefixed with the stage name, every stage's metrics.
Importing this package is cheap: mlflow is imported only when a stage logs. Tracking problems are
warnings unless `tracking.strict` is true; secrets never leave (see flatten.py).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("distillery.track")

# ids of the last logged stage in this process: {"run_id", "parent_run_id", "experiment_id", "tracking_uri"}
LAST_RUN: dict[str, str] = {}


def tracking_params(params_root: Any):
    from ..core.params import get_section
    from .config import TrackingParams

    try:
        return get_section(params_root, "tracking")
    except AttributeError:
        return TrackingParams()


def tracking_enabled(params_root: Any) -> bool:
    if os.environ.get("DISTILLERY_TRACKING", "1").lower() in ("0", "false", "no", "off"):
        return False
    return bool(tracking_params(params_root).enabled)


def log_stage(metrics_name: str, params: dict[str, Any], metrics: dict[str, Any], artifacts: list[Path],
              params_root: Any, *, extra_tags: dict[str, str] | None = None) -> str | None:
    """Log one finished stage; returns the child run id (None when tracking is off, deferred or failed).

    Under `dvc repro` (and `tracking.defer`), the payload is spooled and logged by one background
    flusher (see spool.py): importing mlflow in every stage process would cost minutes per pipeline."""
    if not tracking_enabled(params_root):
        return None
    tp = tracking_params(params_root)
    try:
        payload = _payload(tp, metrics_name, params, metrics, artifacts, extra_tags or {})
        group = payload["group"]
        if tp.defer and group["kind"] == "dvc":
            from .spool import spool_payload, start_flusher

            spool_payload(Path(payload["root"]), payload)
            start_flusher(Path(payload["root"]), group.get("pid"))
            log.info("tracking: %s spooled for MLflow (logged by the background flusher)", metrics_name)
            return None
        return log_payload(payload)
    except Exception as e:  # tracking must not break a pipeline unless asked to
        if tp.strict:
            from ..core.errors import DistilleryError

            raise DistilleryError(f"tracking: {metrics_name}: {type(e).__name__}: {e} (tracking.strict is true)") from e
        log.warning("tracking: %s not logged to MLflow: %s: %s", metrics_name, type(e).__name__,
                    str(e).splitlines()[0] if str(e) else "")
        return None


def _payload(tp: Any, metrics_name: str, params: dict[str, Any], metrics: dict[str, Any],
             artifacts: list[Path], extra_tags: dict[str, str]) -> dict[str, Any]:
    """Everything a log needs, flattened and redacted here (in the stage process), JSON-able."""
    from .context import dvc_env, git_info, project_root, run_group
    from .flatten import flatten_metrics, flatten_params, redact_text, secret_env_values

    root = project_root()
    secrets = secret_env_values()
    group = run_group()
    group.command = redact_text(group.command, secrets)
    return {"metrics_name": metrics_name, "root": str(root), "tracking": tp.model_dump(mode="json"),
            "group": {"key": group.key, "kind": group.kind, "command": group.command, "pid": group.pid},
            "git": git_info(root), "tags": {**dvc_env(), **extra_tags},
            "params": flatten_params(params, tp.secret_key_parts), "metrics": flatten_metrics(metrics),
            "artifacts": [str(Path(a).resolve()) for a in artifacts]}


def log_payload(payload: dict[str, Any]) -> str:
    """Write one stage payload to MLflow: child run under the group's parent run."""
    from .config import TrackingParams
    from .context import RunGroup, dvc_lock_hashes
    from .flatten import redact_text, secret_env_values
    from .mlflow_log import Tracker, _is_local, resolve_uri

    tp = TrackingParams(**payload["tracking"])
    root = Path(payload["root"])
    metrics_name = payload["metrics_name"]
    uri = resolve_uri(tp.tracking_uri, root)
    location = tp.artifact_location
    if location is None and _is_local(uri):
        location = (root / "mlruns").resolve().as_uri()
    tracker = Tracker(uri, tp.experiment, location)

    secrets = secret_env_values()
    git = payload["git"]
    g = payload["group"]
    group = RunGroup(g["key"], g["kind"], g["command"], g.get("pid"))
    parent = tracker.parent_run(group, {**git, "distillery.project": str(root)}, first_stage=metrics_name)

    flat_metrics = payload["metrics"]
    child = tracker.child_run(parent, metrics_name, {**git, **payload["tags"]})
    try:
        tracker.log(child, params=payload["params"], metrics=flat_metrics)
        if tp.log_artifacts and payload["artifacts"]:
            tracker.log_artifacts(child, [Path(a) for a in payload["artifacts"]], tp.max_artifact_mb, secrets)
    except Exception:
        tracker.finish(child, "FAILED")   # half-logged: say so instead of leaving it RUNNING
        raise
    tracker.finish(child)

    parent_metrics = {f"{metrics_name}.{k}": v for k, v in flat_metrics.items()} if tp.parent_metrics else {}
    tracker.log(parent, metrics=parent_metrics, tags={**git, **dvc_lock_hashes(root)})
    tracker.finish(parent)   # keeps the parent's end time current; the next stage extends it
    LAST_RUN.clear()
    LAST_RUN.update(run_id=child, parent_run_id=parent, experiment_id=tracker.experiment_id,
                    tracking_uri=redact_text(uri, secrets))
    log.info("tracking: %s -> MLflow run %s (parent %s) at %s", metrics_name, child[:8], parent[:8],
             redact_text(uri, secrets))
    return child


__all__ = ["LAST_RUN", "log_payload", "log_stage", "tracking_enabled", "tracking_params"]
