"""completion: few-shot completion prompts for base models, sent and stored verbatim."""

from __future__ import annotations

import click

from distillery.core.stage import stage_options, stage_run


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
    from distillery.generation.common import run_llm_stage
    from distillery.generation.completion import run_completion

    options = {"synthesize.completion.sample": sample}
    with stage_run("synthesize", params_path, overrides, options, metrics_name="completion", output=output,
                   sections=("synthesize", "score", "llm", "engine"), gate="synthesize.completion") as run:
        run_llm_stage(run, "completion", output,
                      lambda out, eng, counter: run_completion(run.params, list(inputs), out, eng, counter=counter),
                      refresh=refresh, dry_run=dry_run,
                      log_params=run.params.synthesize.completion.model_dump(mode="json"))


if __name__ == "__main__":
    main()
