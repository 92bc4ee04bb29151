"""MLflow writes: one parent run per run group, one child run per stage (a standalone stage: one
top-level run). Run times are the stage's own (given, not "now"), so deferred logging keeps them true.

Uses MlflowClient with an explicit tracking URI (no global fluent state), so a stage process never
leaves an "active run" behind and tests can point each call at their own store.

Artifacts of a project-local store (a sqlite file inside the project) are stored under paths RELATIVE
to the project root (`mlruns/<run>/artifacts`), so a moved, copied or cloned project keeps them: MLflow
resolves a relative artifact URI against the reader's working directory, and `make ui` serves from the
project root. MLflow itself always stores absolute paths, so the experiment row is rewritten after
creation, and rows an older version (or another checkout) stored absolute are rewritten on open
(`relativize_artifacts`; also `python -m distillery.track.mlflow_log relativize`, run by `make ui`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path, PurePosixPath
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


ARTIFACT_DIR = "mlruns"   # artifact root of new experiments, relative to the project root


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite tracking URI (`sqlite:///rel.db`, `sqlite:////abs.db`), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(urllib.parse.unquote(path)).resolve() if path and path != ":memory:" else None


def project_db(uri: str, root: Path) -> Path | None:
    """The sqlite file of `uri` when it lies inside the project root: only such a store gets relative
    artifact paths (a store elsewhere may be read from anywhere, so it keeps absolute ones)."""
    db = sqlite_path(uri)
    return db if db is not None and db.is_relative_to(Path(root).resolve()) else None


def _is_relative_path(location: str) -> bool:
    return "://" not in location and ":" not in location.split("/", 1)[0] and not location.startswith("/")


def _local_path(location: str) -> str | None:
    """The absolute filesystem path of a `file://` URI or absolute path, else None."""
    if location.startswith("file://"):
        return urllib.parse.unquote(urllib.parse.urlsplit(location).path)
    return location if location.startswith("/") else None


def relative_artifact_location(location: str, root: Path, artifact_dir: str = ARTIFACT_DIR) -> str | None:
    """`mlruns/...` for an absolute location under <root>/mlruns, or under the `mlruns` folder of a
    project that has since moved or been copied (what follows its last `mlruns` component exists under
    this project's mlruns, or the old path exists no more); None when the location is relative already,
    not a local path, or points elsewhere (another project's artifacts this one has no copy of)."""
    path = _local_path(location)
    if path is None:
        return None
    base = (Path(root).resolve() / artifact_dir)
    p = PurePosixPath(os.path.normpath(path))
    if p == PurePosixPath(base) or PurePosixPath(base) in p.parents:
        return PurePosixPath(artifact_dir, p.relative_to(PurePosixPath(base))).as_posix()
    parts = p.parts
    if artifact_dir in parts:                        # the project moved: <old root>/mlruns/<tail>
        i = len(parts) - 1 - parts[::-1].index(artifact_dir)
        tail = parts[i + 1:]
        if base.joinpath(*tail).exists() or not os.path.exists(path):
            return PurePosixPath(artifact_dir, *tail).as_posix()
    return None


def relativize_artifacts(db: Path, root: Path, artifact_dir: str = ARTIFACT_DIR) -> int:
    """Rewrite the absolute artifact locations of experiments and runs in a project's sqlite store
    that point into the project's mlruns (or a moved copy of it) to paths relative to the project
    root. Returns how many rows changed; reads first and writes only when something changes."""
    if not Path(db).is_file():
        return 0
    con = sqlite3.connect(str(db), timeout=60)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"experiments", "runs"} <= tables:
            return 0
        changes = []
        for table, key, col in (("experiments", "experiment_id", "artifact_location"),
                                ("runs", "run_uuid", "artifact_uri")):
            for row_id, location in con.execute(f"SELECT {key}, {col} FROM {table} WHERE {col} LIKE '/%' "
                                                f"OR {col} LIKE 'file:%'"):
                rel = relative_artifact_location(location, root, artifact_dir)
                if rel is not None:
                    changes.append((table, key, col, rel, row_id))
        if changes:
            with con:
                for table, key, col, rel, row_id in changes:
                    con.execute(f"UPDATE {table} SET {col} = ? WHERE {key} = ?", (rel, row_id))
        return len(changes)
    finally:
        con.close()


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
    """The MLflow side of one stage run.

    root: the project root. With a project-local sqlite store, a new experiment's artifact root is
    `mlruns` (or a relative `artifact_location`) RELATIVE to it, and artifacts are written below it
    whatever the cwd; without root (or another store) locations are MLflow's usual absolute ones."""

    def __init__(self, uri: str, experiment: str, artifact_location: str | None = None, root: Path | None = None):
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.root = Path(root).resolve() if root is not None else None
        self.db = project_db(uri, self.root) if self.root is not None else None
        self._artifact_uris: dict[str, str] = {}
        self.client = MlflowClient(tracking_uri=uri)
        create_at, self._relative_location = self._locations(artifact_location)
        self.experiment_id = self._experiment(experiment, create_at)
        if self.db is not None and (artifact_location is None or _is_relative_path(artifact_location)):
            relativize_artifacts(self.db, self.root)   # an absolute artifact_location is the user's: left alone

    def _locations(self, configured: str | None) -> tuple[str | None, str | None]:
        """(location to create a new experiment with, relative location to store instead or None)."""
        if self.root is None:
            return configured, None
        if configured is None:
            if self.db is not None:
                return (self.root / ARTIFACT_DIR).as_uri(), ARTIFACT_DIR
            return ((self.root / ARTIFACT_DIR).as_uri() if _is_local(self.uri) else None), None
        if _is_relative_path(configured):
            rel = PurePosixPath(os.path.normpath(configured)).as_posix()
            return (self.root / rel).resolve().as_uri(), (rel if self.db is not None else None)
        return configured, None

    def _experiment(self, name: str, artifact_location: str | None) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":   # deleted in the UI: bring it back rather than fail
                self.client.restore_experiment(exp.experiment_id)
            if TAG_KIND_EXPERIMENT not in exp.tags:
                self.client.set_experiment_tag(exp.experiment_id, TAG_KIND_EXPERIMENT, EXPERIMENT_KIND)
            return exp.experiment_id
        try:
            exp_id = self.client.create_experiment(name, artifact_location=artifact_location,
                                                   tags={TAG_KIND_EXPERIMENT: EXPERIMENT_KIND})
        except Exception:  # created by a concurrent stage meanwhile
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id
        if self._relative_location is not None:   # MLflow stores it absolute; make it relative to the root
            con = sqlite3.connect(str(self.db), timeout=60)
            try:
                with con:
                    con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                                (self._relative_location, int(exp_id)))
            finally:
                con.close()
        return exp_id

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
        self._artifact_uris[run.info.run_id] = run.info.artifact_uri
        return run.info.run_id

    def _artifact_repo(self, run_id: str):
        """A relative artifact URI is relative to the project root, not to this process's cwd."""
        uri = self._artifact_uris.get(run_id) or self.client.get_run(run_id).info.artifact_uri
        if self.root is not None and _is_relative_path(uri):
            from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

            return LocalArtifactRepository(str(self.root / uri))
        return None

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
        repo = self._artifact_repo(run_id) if paths else None
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
                sub = None if sub in (None, ".") else sub
                if repo is not None:
                    repo.log_artifact(str(f), sub)
                else:
                    self.client.log_artifact(run_id, str(f), artifact_path=sub)
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


def _main(argv: list[str] | None = None) -> int:
    """`python -m distillery.track.mlflow_log relativize [DB_URI_OR_PATH] [--root DIR]`: make the artifact
    paths of a project's sqlite store relative to the project root (run by `make ui`). Fast: no mlflow import."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m distillery.track.mlflow_log")
    ap.add_argument("command", choices=["relativize"])
    ap.add_argument("store", nargs="?", default="mlflow.db", help="sqlite URI or file (default mlflow.db)")
    ap.add_argument("--root", default=".", help="project root (default: the cwd)")
    args = ap.parse_args(argv)
    root = Path(args.root).resolve()
    try:   # an absolute tracking.artifact_location is the user's choice (maybe a share not mounted now)
        import yaml

        configured = ((yaml.safe_load((root / "params.yaml").read_text()) or {}).get("tracking") or {}).get(
            "artifact_location")
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        configured = None
    if configured and not _is_relative_path(str(configured)):
        return 0
    db = project_db(args.store if args.store.startswith("sqlite:") else f"sqlite:///{Path(args.store).resolve()}", root)
    if db is None or not db.is_file():
        return 0      # a server or a store outside the project: nothing to do
    n = relativize_artifacts(db, root)
    if n:
        print(f"{db.name}: {n} artifact location(s) made relative to {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
