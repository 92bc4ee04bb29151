"""Report stage (last): log the finished pipeline to its MLflow parent run.

    python scripts/report.py --card data/export/README.md
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from distillery.core.io import write_json
from distillery.core.params import get_section, section_dict
from distillery.core.stage import stage_options, stage_run
from distillery.track import LAST_RUN, tracking_enabled
from distillery.track.context import dvc_lock_hashes, git_info, project_root
from distillery.track.report import metrics_files, render_plots
from distillery.track.spool import wait_drained


@click.command()
@stage_options
@click.option("--metrics-dir", "metrics_dir", default=None, type=click.Path(file_okay=False),
              help="Folder of metrics JSON files and plots/ data to attach (default: project.metrics_dir).")
@click.option("--card", default="data/export/README.md", show_default=True, type=click.Path(dir_okay=False),
              help="Dataset card to attach as an artifact (skipped with a warning when absent).")
@click.option("--plots/--no-plots", "with_plots", default=True, show_default=True,
              help="Render `dvc plots show` HTML (what `make plots` writes) and attach it.")
@click.option("--output", default="reports/tracking.json", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the run ids, tracking URI, git commit and DVC output hashes that were logged.")
def main(params_path, overrides, metrics_dir, card, with_plots, output):
    """Attach the final state of the pipeline to the MLflow parent run of this `dvc repro`: git commit
    and dirty flag, the output hashes in dvc.lock, every metrics JSON and plot data file, the dataset
    card and the rendered DVC plots. Writes nothing under metrics/ (so it never re-triggers a stage)."""
    with stage_run("report", params_path, overrides, output=output, sections=()) as run:
        root = project_root()
        if tracking_enabled(run.params):
            # every earlier stage's log is spooled: drain it, then log this stage directly (it reads LAST_RUN)
            wait_drained(root)
            get_section(run.params, "tracking").defer = False
        mdir = Path(metrics_dir or run.params.project.metrics_dir)
        hashes = dvc_lock_hashes(root)
        artifacts: list[Path] = [*metrics_files(mdir), *sorted((mdir / "plots").glob("*"))]
        if Path(card).exists():
            artifacts.append(Path(card))
        else:
            click.echo(f"report: warning: {card} not found; the dataset card is not attached", err=True)
        with tempfile.TemporaryDirectory(prefix="distillery-plots-") as tmp:
            if with_plots:
                index = render_plots(Path(tmp) / "dvc_plots", root)
                if index is not None:
                    artifacts.append(index.parent)
            metrics = {"metrics_files": len(metrics_files(mdir)), "dvc_outputs": len(hashes),
                       "card_present": Path(card).exists()}
            run.finish(metrics, artifacts=artifacts, log_params=section_dict(run.params, "tracking"), write=False)
        info = {"git": git_info(root), "dvc_outputs": hashes, "mlflow": dict(LAST_RUN),
                "tracking_enabled": tracking_enabled(run.params)}
        write_json(output, info)
        where = f"MLflow parent run {LAST_RUN['parent_run_id']}" if LAST_RUN else "tracking off or failed"
        click.echo(f"report: {len(artifacts)} artifacts, {len(hashes)} DVC outputs -> {where}; {output}", err=True)


if __name__ == "__main__":
    main()
