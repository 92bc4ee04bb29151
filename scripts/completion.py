"""completion: few-shot completion prompts for base models (seed 003), sent and stored verbatim."""

from __future__ import annotations

import click

from distillery.stage import stage_options, stage_run


@click.command()
@stage_options
@click.option("--input", "inputs", multiple=True, required=True, type=click.Path(exists=True),
              help="Records whose single-turn instructions are completed, e.g. data/ingest. Repeatable.")
@click.option("--output", required=True, type=click.Path(file_okay=False),
              help="Output directory: records.jsonl and quarantine.jsonl (copies of exemplars, empty, ...).")
@click.option("--sample", type=int, default=None, help="Instructions to complete, 0 = all "
              "(synthesize.completion.sample).")
@click.option("--refresh", is_flag=True, help="Ignore cached answers and call the teacher again.")
@click.option("--dry-run", is_flag=True,
              help="Count the tokens and cost of the calls not yet cached (tokenizer-counted prompts; output from a pilot or max_tokens); call nothing and leave the outputs untouched.")
def main(params_path, overrides, inputs, output, sample, refresh, dry_run):
    """Complete instructions with a base model from rotated few-shot exemplars (no chat template)."""
    from pathlib import Path

    from distillery.generation.common import check_stage_reject_rate, cost_by_teacher
    from distillery.generation.completion import run_completion
    from distillery.distributed import make_engine
    from distillery.generation.common import dry_run_dir, print_dry_run

    options = {"synthesize.completion.sample": sample}
    with stage_run("synthesize", params_path, overrides, options, metrics_name="completion") as run:
        out = dry_run_dir() if dry_run else Path(output)
        engine = make_engine(run.params, "completion", refresh=refresh, dry_run=dry_run,
                                    failed_path=out / "failed_requests.jsonl")
        try:
            metrics = run_completion(run.params, list(inputs), out, engine)
            metrics["cost"] = cost_by_teacher(engine.metrics())
            if dry_run:
                return print_dry_run(engine, "completion")
        finally:
            engine.close()
        run.finish(metrics, [out / "records.jsonl"],
                   log_params=run.params.synthesize.completion.model_dump(mode="json"))
        check_stage_reject_rate("completion", metrics, run.params.synthesize.completion.max_reject_rate,
                                out / "quarantine.jsonl", "synthesize.completion.max_reject_rate")


if __name__ == "__main__":
    main()
