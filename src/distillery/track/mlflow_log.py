"""MLflow writes: one parent run per run group, one child run per stage (a standalone stage: one
top-level run). Run times are the stage's own (given, not "now"), so deferred logging keeps them true.

Uses MlflowClient with an explicit tracking URI (no global fluent state), so a stage process never
leaves an "active run" behind and tests can point each call at their own store.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from .context import RunGroup
from .flatten import sanitize_key

log = logging.getLogger("distillery.track")

TAG_GROUP = "distillery.run_group"
TAG_KIND = "distillery.kind"
TAG_STAGE = "distillery.stage"
TAG_PARENT = "mlflow.parentRunId"
TAG_STANDALONE = "distillery.standalone"
TAG_ERROR = "distillery.error"          # on a failed run; on the parent: distillery.error.<stage>
# MLflow 3's UI opens an experiment on its GenAI (traces) view unless told it holds training-style runs
TAG_KIND_EXPERIMENT = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def resolve_uri(configured: str | None, root: Path) -> str:
    """MLFLOW_TRACKING_URI > tracking.tracking_uri > sqlite:///<root>/mlflow.db."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if configured:
        return configured
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


def _is_local(uri: str) -> bool:
    return uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri


@contextlib.contextmanager
def _group_lock(uri: str) -> Iterator[None]:
    """Serialise find-or-create of the parent run between stage processes on this machine."""
    from filelock import FileLock

    name = hashlib.sha1(uri.encode()).hexdigest()[:16]
    lock = FileLock(os.path.join(tempfile.gettempdir(), f"distillery-mlflow-{name}.lock"), timeout=120)
    with lock:
        yield


def _chunks(items: list, n: int) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


class Tracker:
    """The MLflow side of one stage run."""

    def __init__(self, uri: str, experiment: str, artifact_location: str | None = None):
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        self.experiment_id = self._experiment(experiment, artifact_location)

    def _experiment(self, name: str, artifact_location: str | None) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":   # deleted in the UI: bring it back rather than fail
                self.client.restore_experiment(exp.experiment_id)
            if TAG_KIND_EXPERIMENT not in exp.tags:
                self.client.set_experiment_tag(exp.experiment_id, TAG_KIND_EXPERIMENT, EXPERIMENT_KIND)
            return exp.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=artifact_location,
                                                 tags={TAG_KIND_EXPERIMENT: EXPERIMENT_KIND})
        except Exception:  # created by a concurrent stage meanwhile
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    def parent_run(self, group: RunGroup, tags: dict[str, str], first_stage: str = "",
                   start_ms: int | None = None) -> str:
        """The parent run of this group, created on first use (starting when its first stage started)."""
        with _group_lock(self.uri):
            found = self.client.search_runs(
                [self.experiment_id], filter_string=f"tags.`{TAG_GROUP}` = '{group.key}'", max_results=1)
            if found:
                return found[0].info.run_id
            name = {"dvc": group.command, "env": f"group {group.key}"}.get(group.kind,
                                                                          f"{first_stage} (standalone)")
            short = tags.get("git.commit", "")[:8]
            run = self.client.create_run(
                self.experiment_id, run_name=f"{name} @ {short}" if short else name, start_time=start_ms,
                tags={TAG_GROUP: group.key, TAG_KIND: group.kind, "distillery.command": group.command,
                      "mlflow.user": _user(), **tags})
            return run.info.run_id

    def child_run(self, parent_id: str | None, stage: str, tags: dict[str, str], start_ms: int | None = None,
                  run_name: str | None = None) -> str:
        """The stage's run: a child of parent_id, or top-level when parent_id is None (standalone)."""
        link = {TAG_PARENT: parent_id} if parent_id else {}
        run = self.client.create_run(
            self.experiment_id, run_name=run_name or stage, start_time=start_ms,
            tags={**link, TAG_STAGE: stage, "mlflow.source.name": os.path.basename(sys.argv[0]),
                  "mlflow.source.type": "LOCAL", **tags})
        return run.info.run_id

    def log(self, run_id: str, params: dict[str, str] | None = None, metrics: dict[str, float] | None = None,
            tags: dict[str, str] | None = None, timestamp_ms: int | None = None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = timestamp_ms or int(time.time() * 1000)
        for batch in _chunks([Param(k, v) for k, v in sorted((params or {}).items())], 100):
            self.client.log_batch(run_id, params=batch)
        for batch in _chunks([Metric(k, v, now, 0) for k, v in sorted((metrics or {}).items())], 1000):
            self.client.log_batch(run_id, metrics=batch)
        tag_list = [RunTag(sanitize_key(k), str(v)[:5000]) for k, v in sorted((tags or {}).items())]
        for batch in _chunks(tag_list, 100):
            self.client.log_batch(run_id, tags=batch)

    def log_artifacts(self, run_id: str, paths: list[Path], max_mb: float, secrets: list[str]) -> list[str]:
        """Upload files/dirs; skip missing, oversized or secret-containing files (with a warning)."""
        logged: list[str] = []
        for p in paths:
            if not p.exists():
                log.warning("tracking: artifact %s does not exist; skipped", p)
                continue
            files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
            for f in files:
                size_mb = f.stat().st_size / 1e6
                if size_mb > max_mb:
                    log.warning("tracking: artifact %s is %.1f MB (> tracking.max_artifact_mb); skipped", f, size_mb)
                    continue
                if secrets and _contains_any(f, secrets):
                    log.warning("tracking: artifact %s contains the value of a secret env var; skipped", f)
                    continue
                sub = None if p.is_file() else str(Path(p.name) / f.parent.relative_to(p))
                self.client.log_artifact(run_id, str(f), artifact_path=None if sub in (None, ".") else sub)
                logged.append(str(f))
        return logged

    def finish(self, run_id: str, status: str = "FINISHED", end_ms: int | None = None) -> None:
        self.client.set_terminated(run_id, status, end_time=end_ms)

    def finish_parent(self, parent_id: str, stage: str, status: str, error: str | None, end_ms: int) -> None:
        """The parent is FAILED while the latest run of any of its stages did not finish (one
        `distillery.error.<stage>` tag each; a later successful run of that stage clears it), and it
        ends when its last stage ended."""
        key = sanitize_key(f"{TAG_ERROR}.{stage}")
        with _group_lock(self.uri):
            run = self.client.get_run(parent_id)
            failing = {k for k in run.data.tags if k.startswith(TAG_ERROR + ".")} - {key}
            if status != "FINISHED":
                self.client.set_tag(parent_id, key, error or status)
                failing.add(key)
            elif key in run.data.tags:
                self.client.delete_tag(parent_id, key)
            self.finish(parent_id, "FAILED" if failing else "FINISHED", max(run.info.end_time or 0, end_ms))


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _contains_any(path: Path, needles: list[str]) -> bool:
    data = path.read_bytes()
    return any(n.encode() in data for n in needles)
