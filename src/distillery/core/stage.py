"""What every stage script shares: params options, one-line errors, metrics, tracking.

A script stays thin:

    @click.command()
    @stage_options
    @click.option("--threshold", type=float, help="... (dedup.threshold)")
    def main(params_path, overrides, threshold, ...):
        with stage_run("dedup", params_path, overrides, {"dedup.threshold": threshold}) as run:
            ...                                   # library calls
            run.finish({"records_in": ...})       # metrics/dedup.json + MLflow
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from .errors import DistilleryError
from .io import write_json
from .params import SECTIONS, get_section, load_params, section_dict

log = logging.getLogger("distillery")


def setup_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=os.environ.get("DISTILLERY_LOG", "INFO"),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                            stream=sys.stderr)
    for noisy in ("httpx", "httpx2", "openai", "urllib3", "filelock", "datasets", "transformers", "alembic",
                  "mlflow", "great_expectations"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def stage_options(f: Callable) -> Callable:
    """Add --params and --set to a click command and turn DistilleryError into one line."""
    f = click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                     help="Override any params value, e.g. --set dedup.threshold=0.7 (repeatable).")(f)
    f = click.option("--params", "params_path", type=click.Path(dir_okay=False), default=None,
                     help="Params file (default: params.yaml in the current directory, if present).")(f)
    return one_line_errors(f)


def one_line_errors(f: Callable) -> Callable:
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        setup_logging()
        try:
            return f(*args, **kwargs)
        except DistilleryError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("error: interrupted; outputs were not replaced (writes are atomic)", err=True)
            sys.exit(130)
    return wrapper


class StageRun:
    """One run of a stage: its params, timing and the metrics file it writes at the end."""

    def __init__(self, stage: str, params: Any, metrics_name: str | None = None):
        self.stage = stage
        self.params = params
        self.metrics_name = metrics_name or stage
        self.started = time.time()
        self.finished = False

    @property
    def section(self) -> Any:
        name = self.stage.split("/")[0]
        return get_section(self.params, name) if name in SECTIONS else None

    @property
    def seed(self) -> int:
        return self.params.project.seed

    @property
    def metrics_path(self) -> Path:
        return Path(self.params.project.metrics_dir) / f"{self.metrics_name}.json"

    def finish(self, metrics: dict[str, Any], artifacts: list[str | Path] = (), *,
               log_params: dict[str, Any] | None = None, write: bool = True) -> dict[str, Any]:
        metrics = dict(metrics)
        metrics.setdefault("wall_s", round(time.time() - self.started, 3))
        if write:
            write_json(self.metrics_path, metrics)
        name = self.stage.split("/")[0]
        params_logged = log_params if log_params is not None else (
            section_dict(self.params, name) if name in SECTIONS else {})
        try:
            from ..track import log_stage
        except ImportError:  # tracking is optional for standalone use
            log_stage = None
        if log_stage is not None:
            log_stage(self.metrics_name, params_logged, metrics, [Path(a) for a in artifacts], self.params)
        self.finished = True
        log.info("%s: done in %.1fs", self.metrics_name, metrics["wall_s"])
        return metrics


@contextlib.contextmanager
def stage_run(stage: str, params_path: str | None, overrides: tuple[str, ...] = (),
              options: dict[str, Any] | None = None, metrics_name: str | None = None) -> Iterator[StageRun]:
    """Load params (file < options < --set) and yield a StageRun."""
    extra = {k: v for k, v in (options or {}).items() if v is not None}
    params = load_params(params_path, overrides, extra=extra)
    yield StageRun(stage, params, metrics_name)


def progress(iterable=None, *, desc: str = "", total: int | None = None, unit: str = "rec"):
    """A tqdm bar on stderr that stays quiet when DISTILLERY_PROGRESS=0."""
    from tqdm.auto import tqdm

    disable = os.environ.get("DISTILLERY_PROGRESS", "1") == "0"
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable, mininterval=1.0,
                dynamic_ncols=True, file=sys.stderr)
