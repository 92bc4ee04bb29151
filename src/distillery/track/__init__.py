"""MLflow tracking for every stage: `StageRun.finish()` calls `log_stage`.

Each stage becomes a child run (params, numeric metrics, artifacts, its status and real start/end
times) of one parent run per `dvc repro` / `dvc exp run` (see context.run_group); a stage run by hand
is one top-level run. The parent carries the git commit, the dirty flag, the hashes of the outputs
its stages wrote and, prefixed with the stage name, each stage's top-level (headline) metrics.
Importing this package is cheap: mlflow is imported only when a stage logs. Tracking problems are
warnings unless `tracking.strict` is true; secrets never leave (see flatten.py).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger("distillery.track")

# ids of the last logged stage in this process: {"run_id", "parent_run_id", "experiment_id", "tracking_uri"};
# parent_run_id is the top-level run: the group's parent, or the run itself when standalone
LAST_RUN: dict[str, str] = {}
_STATUSES = ("FINISHED", "FAILED", "KILLED")


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
              params_root: Any, *, status: str = "FINISHED", error: str | None = None,
              outputs: Iterable[Path] = (), started: float | None = None, ended: float | None = None,
              extra_tags: dict[str, str] | None = None) -> str | None:
    """Log one stage run; returns its MLflow run id (None when tracking is off, deferred or failed).

    status: "FINISHED", or "FAILED" (the stage raised or broke its reject gate) with `error`, its
    one-line message (tag `distillery.error`); metrics are logged either way. outputs: the files and
    folders THIS run wrote, the only `dvc.out.*` tags it adds. started/ended: time.time() of the stage,
    the run's MLflow start/end times (ended defaults to now, started to ended), taken here so that
    deferred logging keeps them. Under `dvc repro` (and `tracking.defer`), the payload is spooled and
    logged by one background flusher (see spool.py): importing mlflow in every stage process would
    cost minutes per pipeline."""
    if status not in _STATUSES:
        raise ValueError(f"log_stage: status must be one of {_STATUSES}, not {status!r}")
    if not tracking_enabled(params_root):
        return None
    tp = tracking_params(params_root)
    ended = time.time() if ended is None else ended
    try:
        payload = _payload(tp, metrics_name, params, metrics, artifacts, extra_tags or {}, status=status,
                           error=error, outputs=list(outputs), started=ended if started is None else started,
                           ended=ended)
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
             artifacts: list[Path], extra_tags: dict[str, str], *, status: str = "FINISHED",
             error: str | None = None, outputs: list[Path] = (), started: float | None = None,
             ended: float | None = None) -> dict[str, Any]:
    """Everything a log needs, flattened, redacted and hashed here (in the stage process: the outputs
    may change and dvc.lock is rewritten once the stage exits), JSON-able."""
    from .context import dvc_env, git_info, output_hashes, project_root, run_group
    from .flatten import flatten_metrics, flatten_params, redact_text, secret_env_values

    root = project_root()
    secrets = secret_env_values()
    group = run_group()
    group.command = redact_text(group.command, secrets)
    ended = time.time() if ended is None else ended
    return {"metrics_name": metrics_name, "root": str(root), "tracking": tp.model_dump(mode="json"),
            "group": {"key": group.key, "kind": group.kind, "command": group.command, "pid": group.pid},
            "git": git_info(root), "tags": {**dvc_env(), **extra_tags},
            "params": flatten_params(params, tp.secret_key_parts), "metrics": flatten_metrics(metrics),
            # the parent gets the headline only: top-level numbers, never nested breakdowns or lists
            "headline": flatten_metrics({k: v for k, v in metrics.items() if not isinstance(v, (dict, list, tuple))}),
            "artifacts": [str(Path(a).resolve()) for a in artifacts],
            "outputs": output_hashes(root, list(outputs)), "status": status,
            "error": redact_text(" ".join(str(error).split()), secrets)[:1000] if error else None,
            "started": ended if started is None else started, "ended": ended}


def _ms(t: float | None) -> int | None:
    return None if t is None else round(t * 1000)


def log_payload(payload: dict[str, Any]) -> str:
    """Write one stage payload to MLflow: a child run under the group's parent run, or one top-level
    run tagged distillery.standalone=true for a stage run by hand. (Payloads spooled by an older
    version lack status/times/outputs/headline: defaults below.)"""
    from .config import TrackingParams
    from .context import RunGroup
    from .flatten import redact_text, secret_env_values
    from .mlflow_log import TAG_ERROR, TAG_KIND, TAG_STANDALONE, Tracker, resolve_uri

    tp = TrackingParams(**payload["tracking"])
    root = Path(payload["root"])
    metrics_name = payload["metrics_name"]
    uri = resolve_uri(tp.tracking_uri, root)
    # artifact root of a new experiment: `mlruns` relative to the project root for a store inside the
    # project (so a moved or cloned project keeps its artifacts), <root>/mlruns for another local store
    tracker = Tracker(uri, tp.experiment, tp.artifact_location, root=root)

    secrets = secret_env_values()
    git = payload["git"]
    g = payload["group"]
    group = RunGroup(g["key"], g["kind"], g["command"], g.get("pid"))
    status, error = payload.get("status", "FINISHED"), payload.get("error")
    end_ms = _ms(payload.get("ended")) or int(time.time() * 1000)
    start_ms = _ms(payload.get("started")) or end_ms
    outputs = payload.get("outputs", {})
    flat_metrics = payload["metrics"]
    headline = payload.get("headline", {k: v for k, v in flat_metrics.items() if "." not in k})

    tags = {**git, **payload["tags"], **outputs, **({TAG_ERROR: error} if error else {})}
    if group.kind == "standalone":    # run by hand: its own top-level run, never under a pipeline parent
        parent = None
        tags.update({TAG_STANDALONE: "true", TAG_KIND: "standalone", "distillery.project": str(root)})
    else:
        parent = tracker.parent_run(group, {**git, "distillery.project": str(root)}, first_stage=metrics_name,
                                    start_ms=start_ms)
    child = tracker.child_run(parent, metrics_name, tags, start_ms,
                              run_name=None if parent else f"{metrics_name} (standalone)")
    try:
        tracker.log(child, params=payload["params"], metrics=flat_metrics, timestamp_ms=end_ms)
        if tp.log_artifacts and payload["artifacts"]:
            tracker.log_artifacts(child, [Path(a) for a in payload["artifacts"]], tp.max_artifact_mb, secrets)
    except Exception:
        tracker.finish(child, "FAILED", end_ms)   # half-logged: say so instead of leaving it RUNNING
        raise
    tracker.finish(child, status, end_ms)

    if parent:
        parent_metrics = {f"{metrics_name}.{k}": v for k, v in headline.items()} if tp.parent_metrics else {}
        tracker.log(parent, metrics=parent_metrics, tags={**git, **outputs}, timestamp_ms=end_ms)
        tracker.finish_parent(parent, metrics_name, status, error, end_ms)
    LAST_RUN.clear()
    LAST_RUN.update(run_id=child, parent_run_id=parent or child, experiment_id=tracker.experiment_id,
                    tracking_uri=redact_text(uri, secrets))
    log.info("tracking: %s -> MLflow run %s (%s) at %s", metrics_name, child[:8],
             f"parent {parent[:8]}" if parent else "standalone", redact_text(uri, secrets))
    return child


__all__ = ["LAST_RUN", "log_payload", "log_stage", "tracking_enabled", "tracking_params"]
