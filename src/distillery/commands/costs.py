"""Costs stage: sum the per-teacher LLM usage of every stage into one cost-per-teacher table.

    python scripts/costs.py --metrics-dir metrics --output metrics/plots/cost_per_teacher.csv
"""

from __future__ import annotations

from pathlib import Path

import click

from distillery.core.stage import stage_options, stage_run
from distillery.track.report import collect_costs, cost_metrics, write_cost_csv


@click.command()
@stage_options
@click.option("--metrics-dir", "metrics_dir", default=None, type=click.Path(file_okay=False),
              help="Folder of stage metrics JSON files to read `cost` entries from (default: project.metrics_dir).")
@click.option("--output", default="metrics/plots/cost_per_teacher.csv", show_default=True,
              type=click.Path(dir_okay=False),
              help="CSV for the cost-per-teacher DVC plot: teacher, model, stages, requests, cached, "
                   "prompt_tokens, completion_tokens, cost_usd.")
def main(params_path, overrides, metrics_dir, output):
    """Read the `cost` entries ({teacher: {model, requests, prompt_tokens, completion_tokens, cost_usd}})
    of every metrics JSON, sum them per teacher across stages, write the plot CSV and metrics/costs.json
    (total and per-teacher cost, so `dvc metrics diff` shows what a change cost)."""
    with stage_run("costs", params_path, overrides, output=output, sections=()) as run:
        rows = collect_costs(Path(metrics_dir or run.params.project.metrics_dir))
        write_cost_csv(rows, Path(output))
        metrics = cost_metrics(rows)
        run.finish(metrics, artifacts=[output], outputs=[output])
        click.echo(f"costs: {len(rows)} teachers, ${metrics['total_usd']:.4f} in all -> {output}", err=True)


if __name__ == "__main__":
    main()
