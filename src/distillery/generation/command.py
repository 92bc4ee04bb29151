"""The one shape of an LLM stage's command (distill, completion, multiturn, scenarios, preferences,
score): the shared options (--output, --refresh, --dry-run) and one call that runs the stage's work
on an engine and reports (`run_llm_stage`). Kept free of the stage code so
`--help` stays fast: the work function is imported only when the command runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from ..core.stage import StageRun, stage_options

DRY_RUN_HELP = ("Count the tokens and cost of the calls not yet cached (tokenizer-counted prompts; output from a "
                "pilot or max_tokens); call nothing and leave the outputs untouched.")
Work = Callable[[StageRun, Path, Any, Any], dict[str, Any]]


def llm_stage_options(output_help: str, refresh_help: str = "Ignore cached answers and call the teachers again."
                      ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """stage_options plus --output, --refresh and --dry-run: what every LLM stage command takes."""

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option("--dry-run", is_flag=True, help=DRY_RUN_HELP)(f)
        f = click.option("--refresh", is_flag=True, help=refresh_help)(f)
        f = click.option("--output", required=True, type=click.Path(file_okay=False), help=output_help)(f)
        return stage_options(f)
    return wrap


def run_llm_command(run: StageRun, output: str, work: Work, *, refresh: bool, dry_run: bool,
                    log_params: Callable[[Any], dict] | None = None, artifacts: Iterable[str] = ("records.jsonl",),
                    extra_artifacts: Iterable[Path] = ()) -> None:
    """Run `work(run, out, engine, counter)` on an engine and report: one summary line, the metrics,
    the gate (see run_llm_stage). The command opens `run` with `stage_run(..., sections=(...))` itself:
    the literal sections are how the stage-deps tool knows which params modules the stage loads."""
    from .common import run_llm_stage

    run_llm_stage(run, run.metrics_name, output, lambda out, eng, counter: work(run, out, eng, counter),
                  refresh=refresh, dry_run=dry_run, artifacts=artifacts, extra_artifacts=extra_artifacts,
                  log_params=log_params(run.params) if log_params else None)
