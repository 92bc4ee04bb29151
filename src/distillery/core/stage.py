"""The stage contract: every stage script runs inside one `StageRun`, which counts, gates and reports.

A command stays thin:

    @click.command()
    @stage_options
    @click.option("--output", ...)
    def main(params_path, overrides, output, ...):
        with stage_run("dedup", params_path, overrides, {"dedup.threshold": threshold},
                       output=output, sections=("dedup", "engine")) as run:
            ...                                   # library calls, counting into run.counter,
            q = run.quarantine(out / "quarantine.jsonl")   # rejects counted once, by reason
            run.finish({"exact_duplicates": 12, "per_bucket": {...}})

`finish` is the one place that (1) writes the flat headline metrics to `--metrics` (dvc.yaml passes
`metrics/<stage>.json`; a standalone run writes `OUTPUT/metrics.json` and never touches `metrics/`),
(2) writes the nested breakdowns to the details JSON beside it, (3) applies the gate — the stage's
`max_reject_rate`, else `project.max_reject_rate` — and (4) logs the run to MLflow with its true
status. A stage that raises is logged FAILED with its one-line error.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import click

from .errors import DistilleryError, RejectRateError
from .io import remove_stale_tmp, write_json
from .params import SECTIONS, get_section, load_params, section_dict
from .quarantine import Gate, Quarantine, StageCounter

log = logging.getLogger("distillery")

METRICS_META = "distillery.metrics_path"
# Figures every stage reports first in its headline, in this order.
COUNT_KEYS = ("records_in", "records_out", "rejected", "reject_rate", "max_reject_rate")
MAX_HEADLINE_KEYS = 24


def setup_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=os.environ.get("DISTILLERY_LOG", "INFO"),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                            stream=sys.stderr)
    for noisy in ("httpx", "httpx2", "openai", "urllib3", "filelock", "datasets", "transformers", "alembic",
                  "mlflow", "great_expectations"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _remember_metrics_path(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    ctx.meta[METRICS_META] = value


def stage_options(f: Callable) -> Callable:
    """Add --params, --set and --metrics to a click command and turn user errors into one line."""
    f = click.option("--metrics", "metrics_path", type=click.Path(dir_okay=False), default=None,
                     expose_value=False, callback=_remember_metrics_path, is_eager=True,
                     help="Write the stage's metrics JSON here (dvc.yaml: metrics/<stage>.json); "
                          "default OUTPUT/metrics.json, so a standalone run never touches metrics/.")(f)
    f = click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                     help="Override any params value, e.g. --set dedup.threshold=0.7 (repeatable).")(f)
    f = click.option("--params", "params_path", type=click.Path(dir_okay=False), default=None,
                     help="Params file (default: params.yaml in the current directory, if present).")(f)
    return one_line_errors(f)


def under_dvc() -> bool:
    """True inside `dvc repro` / `dvc exp run` (dvc sets DVC_ROOT for every stage command)."""
    return bool(os.environ.get("DVC_ROOT"))


def interrupted_message() -> str:
    if under_dvc():
        return ("error: interrupted. DVC removed this stage's previous outputs before running it; "
                "`dvc checkout <stage>` restores them from the DVC cache (outputs with cache: false are not kept)")
    return "error: interrupted; outputs were not replaced (writes are atomic)"


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
            click.echo(interrupted_message(), err=True)
            sys.exit(130)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM):
                raise
            where = e.filename or "output"
            click.echo(f"error: {where}: {e.strerror or e}", err=True)
            sys.exit(2)
    return wrapper


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not (isinstance(v, float) and not math.isfinite(v))


def split_metrics(metrics: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Headline = flat numbers (what `dvc metrics diff` shows); details = everything nested or textual."""
    headline = {k: v for k, v in metrics.items() if _is_number(v)}
    details = {k: v for k, v in metrics.items() if k not in headline}
    return headline, details


class StageRun:
    """One run of a stage: its params, its counter, its gate, and the metrics it writes at the end."""

    def __init__(self, stage: str, params: Any, *, metrics_name: str | None = None,
                 output: str | Path | None = None, metrics_path: str | Path | None = None,
                 gate_section: str | None = None):
        self.stage = stage
        self.params = params
        self.metrics_name = metrics_name or stage
        self.output = Path(output) if output is not None else None
        self.standalone = metrics_path is None
        if metrics_path is not None:
            self.metrics_path = Path(metrics_path)
        elif self.output is not None:
            self.metrics_path = (self.output / "metrics.json" if not self.output.suffix
                                 else self.output.with_name(self.output.stem + ".metrics.json"))
        else:
            self.metrics_path = Path("metrics.json")
        self.counter = StageCounter()
        self.gate = self._gate(gate_section if gate_section is not None else stage.split("/")[0])
        self.started = time.time()
        self.finished = False
        self.outputs: list[Path] = []

    # -- where things go ---------------------------------------------------------------------------
    @property
    def details_path(self) -> Path:
        return self.metrics_path.with_name(self.metrics_path.name.removesuffix(".json") + ".details.json")

    @property
    def plots_dir(self) -> Path:
        """dvc plots data: metrics/plots/ under the pipeline, OUTPUT/plots/ for a standalone run."""
        return self.metrics_path.parent / "plots"

    @property
    def section(self) -> Any:
        name = self.stage.split("/")[0]
        return get_section(self.params, name) if name in SECTIONS else None

    @property
    def seed(self) -> int:
        return self.params.project.seed

    def quarantine(self, path: str | Path) -> Quarantine:
        """The stage's quarantine file; its rejects are counted by this run's counter."""
        return Quarantine(path, self.metrics_name, self.counter)

    # -- the gate -----------------------------------------------------------------------------------
    def _gate(self, dotted: str) -> Gate:
        """The stage's own `max_reject_rate` (at `dotted`, e.g. "synthesize.multiturn"), else the project's."""
        obj: Any = None
        parts = dotted.split(".") if dotted else []
        if parts and parts[0] in SECTIONS:
            try:
                obj = get_section(self.params, parts[0])
                for part in parts[1:]:
                    obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part, None)
            except (AttributeError, RuntimeError):
                obj = None
        rate = getattr(obj, "max_reject_rate", None) if obj is not None else None
        if rate is not None:
            return Gate(float(rate), f"{dotted}.max_reject_rate")
        return Gate(float(self.params.project.max_reject_rate), "project.max_reject_rate")

    # -- the end ------------------------------------------------------------------------------------
    def finish(self, metrics: dict[str, Any] | None = None, artifacts: Iterable[str | Path] = (), *,
               counter: StageCounter | None = None, outputs: Iterable[str | Path] = (),
               log_params: dict[str, Any] | None = None, quarantine_path: str | Path | None = None,
               write: bool = True, headline_limit: int = MAX_HEADLINE_KEYS) -> dict[str, Any]:
        """Write headline + details metrics, log to MLflow, then apply the gate (exit 3 when over it).
        `write=False` is for steps that count no records (prepare_model, card, report): MLflow only.
        `headline_limit` raises the headline cap for a stage whose figures come in fixed groups
        (train_eval: six keys per eval metric)."""
        c = counter if counter is not None else self.counter
        metrics = dict(metrics or {})
        for k in ("records_in", "records_out", "rejected", "reject_rate", "rejects_by_reason"):
            metrics.pop(k, None)
        counts = {"records_in": c.records_in, "records_out": c.records_out, "rejected": c.rejected,
                  "reject_rate": round(c.reject_rate, 6), "max_reject_rate": self.gate.max_rate}
        headline, details = split_metrics(metrics)
        headline = {**counts, **headline}
        headline["wall_s"] = round(time.time() - self.started, 3)
        details = {"rejects_by_reason": dict(sorted(c.rejects.items())), "gate": self.gate.key, **details}
        if len(headline) > headline_limit:
            raise DistilleryError(f"{self.metrics_name}: {len(headline)} headline metrics (max {headline_limit}); "
                                  "move breakdowns into a nested dict")
        if write:
            write_json(self.metrics_path, headline)
            write_json(self.details_path, details)
            self.outputs.extend([self.metrics_path, self.details_path])
        self.outputs.extend(Path(o) for o in outputs)
        error = None
        try:
            self.gate.check(self.metrics_name, c, quarantine_path or self._default_quarantine())
        except RejectRateError as e:
            error = str(e)
        self._log(headline, [Path(a) for a in artifacts] + ([self.details_path] if write else []), log_params,
                  "FAILED" if error else "FINISHED", error)
        self.finished = True
        if error:
            raise RejectRateError(error)
        log.info("%s: done in %.1fs", self.metrics_name, headline["wall_s"])
        return headline

    def fail(self, error: str) -> None:
        """Log the run FAILED with its one-line error (metrics files are left as they were)."""
        if self.finished:
            return
        self.finished = True
        self._log({"wall_s": round(time.time() - self.started, 3)}, [], None, "FAILED", error)

    def _default_quarantine(self) -> Path | None:
        if self.output is not None and not self.output.suffix:
            return self.output / "quarantine.jsonl"
        return None

    def _log(self, headline: dict[str, Any], artifacts: list[Path], log_params: dict[str, Any] | None,
             status: str, error: str | None) -> None:
        import importlib

        name = self.stage.split("/")[0]
        try:
            params_logged = log_params if log_params is not None else (
                section_dict(self.params, name) if name in SECTIONS else {})
        except RuntimeError:
            params_logged = {}
        # tracking is a plug-in of the stage run, found by name: core imports no subpackage
        try:
            log_stage = importlib.import_module("distillery.track").log_stage
        except ImportError:
            return
        log_stage(self.metrics_name, params_logged, headline, artifacts, self.params, status=status, error=error,
                  outputs=self.outputs, started=self.started, ended=time.time())


@contextlib.contextmanager
def stage_run(stage: str, params_path: str | None, overrides: tuple[str, ...] = (),
              options: dict[str, Any] | None = None, metrics_name: str | None = None, *,
              output: str | Path | None = None, sections: Iterable[str] | None = None,
              gate: str | None = None, clean: Iterable[str | Path] = ()) -> Iterator[StageRun]:
    """Load the params the stage reads (file < options < --set), clean temp files a killed run left
    beside the outputs, and yield a StageRun. A stage that raises is logged FAILED."""
    extra = {k: v for k, v in (options or {}).items() if v is not None}
    params = load_params(params_path, overrides, extra=extra, sections=sections)
    ctx = click.get_current_context(silent=True)
    metrics_path = ctx.meta.get(METRICS_META) if ctx is not None else None
    run = StageRun(stage, params, metrics_name=metrics_name, output=output, metrics_path=metrics_path,
                   gate_section=gate)
    folders = {run.metrics_path.parent, *(Path(c) for c in clean)}
    if run.output is not None:
        folders.add(run.output if not run.output.suffix else run.output.parent)
    for folder in folders:
        if remove_stale_tmp(folder):
            log.info("%s: removed temp files a killed run left in %s", run.metrics_name, folder)
    try:
        yield run
    except DistilleryError as e:
        run.fail(str(e))
        raise
    except KeyboardInterrupt:
        run.fail("interrupted")
        raise
    except Exception as e:
        run.fail(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        raise


def progress(iterable=None, *, desc: str = "", total: int | None = None, unit: str = "rec"):
    """A tqdm bar on stderr that stays quiet when DISTILLERY_PROGRESS=0."""
    from tqdm.auto import tqdm

    disable = os.environ.get("DISTILLERY_PROGRESS", "1") == "0"
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable, mininterval=1.0,
                dynamic_ncols=True, file=sys.stderr)
