"""Mix stage: bucket records, hold out an eval split, sample the production mix and curriculum phases.

    python scripts/mix.py --input data/dedup --output data/mix
    python scripts/mix.py --input any/records.jsonl --output /tmp/mix --eval-fraction 0.1 --size 500
"""

from __future__ import annotations

import click

from distillery.mix.run import run_mix, unused_warning
from distillery.core.params import get_section
from distillery.core.stage import stage_options, stage_run


@click.command()
@stage_options
@click.option("--input", "inputs", multiple=True, required=True, type=click.Path(),
              help="Record file, or a directory whose records.jsonl files (sorted) are mixed. Repeatable.")
@click.option("--output", default="data/mix", show_default=True, type=click.Path(file_okay=False),
              help="Folder for production.jsonl, eval.jsonl, phases/<phase>.jsonl, composition.json, "
                   "quarantine.jsonl.")
@click.option("--eval-fraction", type=float, default=None,
              help="Share of record ids held out for eval, by id hash (mix.eval_fraction).")
@click.option("--size", type=click.IntRange(min=1), default=None,
              help="Records in the production mix (mix.production.size); default from params, where null means "
                   "every eligible record of the weighted buckets (--set mix.production.size=null).")
@click.option("--strict/--no-strict", default=None,
              help="Fail when a bucket cannot reach its target count (mix.strict); default: report it.")
@click.option("--embeddings/--no-embeddings", default=None,
              help="Classify records no rule matched with the MiniLM nearest-centroid model "
                   "(buckets.embedding.enabled).")
def main(params_path, overrides, inputs, output, eval_fraction, size, strict, embeddings):
    """Give every record a bucket (existing field, source default, rules, optional embeddings, default),
    label red-team records for safety, split off eval ids, and sample the production mix and every
    phase of the manifest in params (mix.*). Writes metrics/mix.json with target vs realised shares."""
    options = {"mix.eval_fraction": eval_fraction, "mix.strict": strict, "buckets.embedding.enabled": embeddings}
    with stage_run("mix", params_path, overrides, options, output=output, sections=("buckets", "mix")) as run:
        if size is not None:
            run.section.production.size = size
        metrics = run_mix(list(inputs), output, get_section(run.params, "buckets"), run.section, run.seed,
                          run.params.project.max_line_bytes, run.gate, run.plots_dir, counter=run.counter)
        run.finish(metrics, artifacts=[f"{output}/composition.json"], outputs=[output])
        warning = unused_warning(metrics, run.section)
        if warning:
            click.echo(warning, err=True)
        click.echo(f"mix: {metrics['records_in']} records in, {metrics['production_records']} in production, "
                   f"{metrics['eval_records']} held out for eval, {metrics['unused_eligible']} eligible in no mix "
                   f"-> {output}", err=True)


if __name__ == "__main__":
    main()
