"""distill: teacher answers for prompts of ingested records (routing, failover, pilot comparison)."""

from __future__ import annotations

import click

from distillery.core.stage import stage_options, stage_run


@click.command()
@stage_options
@click.option("--input", "inputs", multiple=True, required=True, type=click.Path(exists=True),
              help="Record files or directories (every records.jsonl below), e.g. data/ingest. Repeatable.")
@click.option("--output", required=True, type=click.Path(file_okay=False),
              help="Output directory: records.jsonl, quarantine.jsonl, failed_requests.jsonl, comparison.json.")
@click.option("--sample", type=int, default=None, help="Prompts to distil, 0 = all (distill.sample).")
@click.option("--responses-per-prompt", type=int, default=None,
              help="Distinct teachers answering each prompt (distill.responses_per_prompt).")
@click.option("--pilot-size", type=int, default=None,
              help="Prompts every teacher answers for the comparison, 0 = off (distill.pilot.size).")
@click.option("--refresh", is_flag=True, help="Ignore cached answers and call the teachers again.")
@click.option("--dry-run", is_flag=True,
              help="Count the tokens and cost of the calls not yet cached (tokenizer-counted prompts; output from a pilot or max_tokens); call nothing and leave the outputs untouched.")
def main(params_path, overrides, inputs, output, sample, responses_per_prompt, pilot_size, refresh, dry_run):
    """Distil answers from teacher models, routed deterministically by record id and seed."""
    from distillery.generation.distill import run_distill
    from distillery.generation.common import run_llm_stage

    options = {"distill.sample": sample, "distill.responses_per_prompt": responses_per_prompt,
               "distill.pilot.size": pilot_size}
    with stage_run("distill", params_path, overrides, options, output=output,
                   sections=("distill", "score", "llm", "engine")) as run:
        run_llm_stage(run, "distill", output,
                      lambda out, eng, counter: run_distill(run.params, list(inputs), out, eng, counter=counter),
                      refresh=refresh, dry_run=dry_run,
                      artifacts=("records.jsonl", "comparison.json"))


if __name__ == "__main__":
    main()
