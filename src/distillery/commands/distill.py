"""distill: teacher answers for prompts of ingested records (routing, failover, pilot comparison)."""

from __future__ import annotations

import click

from distillery.core.stage import stage_run
from distillery.generation.command import llm_stage_options, run_llm_command


@click.command()
@llm_stage_options("Output directory: records.jsonl, quarantine.jsonl, failed_requests.jsonl, comparison.json.")
@click.option("--input", "inputs", multiple=True, required=True, type=click.Path(exists=True),
              help="Record files or directories (every records.jsonl below), e.g. data/ingest. Repeatable.")
@click.option("--sample", type=int, default=None, help="Prompts to distil, 0 = all (distill.sample).")
@click.option("--responses-per-prompt", type=int, default=None,
              help="Distinct teachers answering each prompt (distill.responses_per_prompt).")
@click.option("--pilot-size", type=int, default=None,
              help="Prompts every teacher answers for the comparison, 0 = off (distill.pilot.size).")
def main(params_path, overrides, output, refresh, dry_run, inputs, sample, responses_per_prompt, pilot_size):
    """Distil answers from teacher models, routed deterministically by record id and seed."""

    def work(run, out, engine, counter):
        from distillery.generation.distill import run_distill

        return run_distill(run.params, list(inputs), out, engine, counter=counter)

    with stage_run("distill", params_path, overrides,
                   {"distill.sample": sample, "distill.responses_per_prompt": responses_per_prompt,
                    "distill.pilot.size": pilot_size},
                   output=output, sections=("distill", "score", "llm", "engine")) as run:
        run_llm_command(run, output, work, refresh=refresh, dry_run=dry_run,
                        artifacts=("records.jsonl", "comparison.json"))


if __name__ == "__main__":
    main()
