"""Viewer stage: one static HTML page showing what the run kept, rejected and merged.

    python scripts/viewer.py --input data/mix --dedup data/dedup --quarantine data/score ... --output reports/viewer
    python scripts/viewer.py --input my_records.jsonl --output /tmp/viewer     # any record file
"""

from __future__ import annotations

from pathlib import Path

import click

from distillery.core.stage import stage_options, stage_run
from distillery.viewer.run import PAGE, run_viewer


@click.command()
@stage_options
@click.option("--input", "inputs", multiple=True, required=True, type=click.Path(),
              help="Kept records: a record JSONL file, or a folder (its viewer.record_files, e.g. the mix stage's "
                   "production.jsonl and eval.jsonl, else every records.jsonl below it). Repeatable.")
@click.option("--output", default="reports/viewer", show_default=True, type=click.Path(file_okay=False),
              help="Folder for index.html (the page) and quarantine.jsonl (lines the viewer could not use).")
@click.option("--dedup", "dedup_dir", type=click.Path(file_okay=False), default=None,
              help="Dedup stage folder: clusters.jsonl and contamination.jsonl are shown; its records.jsonl and "
                   "quarantine.jsonl give the texts compared.")
@click.option("--quarantine", "quarantines", multiple=True, type=click.Path(),
              help="A quarantine.jsonl, or a folder: every quarantine.jsonl below it. Shown by stage and reason. "
                   "Repeatable.")
@click.option("--examples-per-group", type=int, default=None,
              help="Sample records shown per (bucket, source) group (viewer.examples_per_group).")
@click.option("--max-chars", type=int, default=None,
              help="Characters shown of one message, prompt or raw line (viewer.max_chars).")
@click.option("--title", default=None, help="Page title (viewer.title).")
def main(params_path, overrides, inputs, output, dedup_dir, quarantines, examples_per_group, max_chars, title):
    """Write one self-contained HTML page (no network, no server): samples per bucket and source with judge
    scores and lineage (models, the exact prompts sent), rejects by stage and reason, near-duplicate
    clusters side by side, contamination hits beside the benchmark item, and the generated vs ingested
    share. Examples are a seeded, capped sample, so the page stays small on any input size."""
    options = {"viewer.examples_per_group": examples_per_group, "viewer.max_chars": max_chars, "viewer.title": title}
    with stage_run("viewer", params_path, overrides, options, output=output, sections=("viewer",)) as run:
        out = Path(output)
        with run.quarantine(out / "quarantine.jsonl") as q:
            metrics = run_viewer(inputs, out, run.section, run.seed, run.params.project.max_line_bytes,
                                 dedup=dedup_dir, quarantines=quarantines, counter=run.counter, quarantine=q)
        click.echo(f"viewer: {out / PAGE}: {metrics['kept_records']} kept records, {metrics['quarantined_records']} "
                   f"rejects, {metrics['duplicate_clusters']} clusters, {metrics['contamination_hits']} contamination "
                   f"hits; {metrics['examples_rendered']} examples shown", err=True)
        run.finish(metrics, artifacts=[out / PAGE], outputs=[out])


if __name__ == "__main__":
    main()
