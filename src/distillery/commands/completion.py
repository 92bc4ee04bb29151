"""completion: few-shot completion prompts for base models, sent and stored verbatim."""

from __future__ import annotations

import click

from distillery.core.stage import stage_run
from distillery.generation.command import llm_stage_options, run_llm_command


@click.command()
@llm_stage_options("Output directory: records.jsonl and quarantine.jsonl (copies of exemplars, empty, ...).",
                   "Ignore cached answers and call the teacher again.")
@click.option("--input", "inputs", multiple=True, required=True, type=click.Path(exists=True),
              help="Records whose single-turn instructions are completed, e.g. data/ingest. Repeatable.")
@click.option("--sample", type=int, default=None, help="Instructions to complete, 0 = all "
              "(synthesize.completion.sample).")
def main(params_path, overrides, output, refresh, dry_run, inputs, sample):
    """Complete instructions with a base model from rotated few-shot exemplars (no chat template)."""

    def work(run, out, engine, counter):
        from distillery.generation.completion import run_completion

        return run_completion(run.params, list(inputs), out, engine, counter=counter)

    with stage_run("synthesize", params_path, overrides, {"synthesize.completion.sample": sample},
                   metrics_name="completion", output=output, sections=("synthesize", "score", "llm", "engine"),
                   gate="synthesize.completion") as run:
        run_llm_command(run, output, work, refresh=refresh, dry_run=dry_run,
                        log_params=lambda params: params.synthesize.completion.model_dump(mode="json"))


if __name__ == "__main__":
    main()
