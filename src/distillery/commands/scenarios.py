"""scenarios: ideas -> context documents -> trait-showing responses -> trait check."""

from __future__ import annotations

import click

from distillery.core.stage import stage_options, stage_run


@click.command()
@stage_options
@click.option("--output", required=True, type=click.Path(file_okay=False),
              help="Output directory: records.jsonl and quarantine.jsonl (no ideas, missing traits, ...).")
@click.option("--ideas-per-category", type=int, default=None,
              help="Scenario ideas asked per category (synthesize.scenarios.ideas_per_category).")
@click.option("--refresh", is_flag=True, help="Ignore cached answers and call the teachers again.")
@click.option("--dry-run", is_flag=True,
              help="Count the tokens and cost of the calls not yet cached (tokenizer-counted prompts; output from a pilot or max_tokens); call nothing and leave the outputs untouched.")
def main(params_path, overrides, output, ideas_per_category, refresh, dry_run):
    """Generate scenario documents and responses that show the traits in params, checked by the judge."""
    from distillery.generation.common import run_llm_stage
    from distillery.generation.scenarios import run_scenarios

    options = {"synthesize.scenarios.ideas_per_category": ideas_per_category}
    with stage_run("synthesize", params_path, overrides, options, metrics_name="scenarios", output=output,
                   sections=("synthesize", "score", "llm", "engine"), gate="synthesize.scenarios") as run:
        run_llm_stage(run, "scenarios", output,
                      lambda out, eng, counter: run_scenarios(run.params, out, eng, counter=counter),
                      refresh=refresh, dry_run=dry_run,
                      log_params=run.params.synthesize.scenarios.model_dump(mode="json"))


if __name__ == "__main__":
    main()
