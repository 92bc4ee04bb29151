"""scenarios: ideas -> context documents -> trait-showing responses -> trait check."""

from __future__ import annotations

import click

from distillery.core.stage import stage_run
from distillery.generation.command import llm_stage_options, run_llm_command


@click.command()
@llm_stage_options("Output directory: records.jsonl and quarantine.jsonl (no ideas, missing traits, ...).")
@click.option("--ideas-per-category", type=int, default=None,
              help="Scenario ideas asked per category (synthesize.scenarios.ideas_per_category).")
def main(params_path, overrides, output, refresh, dry_run, ideas_per_category):
    """Generate scenario documents and responses that show the traits in params, checked by the judge."""

    def work(run, out, engine, counter):
        from distillery.generation.scenarios import run_scenarios

        return run_scenarios(run.params, out, engine, counter=counter)

    with stage_run("synthesize", params_path, overrides,
                   {"synthesize.scenarios.ideas_per_category": ideas_per_category}, metrics_name="scenarios",
                   output=output, sections=("synthesize", "score", "llm", "engine"),
                   gate="synthesize.scenarios") as run:
        run_llm_command(run, output, work, refresh=refresh, dry_run=dry_run,
                        log_params=lambda params: params.synthesize.scenarios.model_dump(mode="json"))


if __name__ == "__main__":
    main()
