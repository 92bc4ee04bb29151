"""scenarios: ideas -> context documents -> trait-showing responses -> trait check (seed 002)."""

from __future__ import annotations

import click

from distillery.stage import stage_options, stage_run


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
    from pathlib import Path

    from distillery.generation.common import check_stage_reject_rate, cost_by_teacher
    from distillery.generation.scenarios import run_scenarios
    from distillery.distributed import make_engine
    from distillery.generation.common import dry_run_dir, print_dry_run

    options = {"synthesize.scenarios.ideas_per_category": ideas_per_category}
    with stage_run("synthesize", params_path, overrides, options, metrics_name="scenarios") as run:
        out = dry_run_dir() if dry_run else Path(output)
        engine = make_engine(run.params, "scenarios", refresh=refresh, dry_run=dry_run,
                                    failed_path=out / "failed_requests.jsonl")
        try:
            metrics = run_scenarios(run.params, out, engine)
            metrics["cost"] = cost_by_teacher(engine.metrics())
            if dry_run:
                return print_dry_run(engine, "scenarios")
        finally:
            engine.close()
        run.finish(metrics, [out / "records.jsonl"],
                   log_params=run.params.synthesize.scenarios.model_dump(mode="json"))
        check_stage_reject_rate("scenarios", metrics, run.params.synthesize.scenarios.max_reject_rate,
                                out / "quarantine.jsonl", "synthesize.scenarios.max_reject_rate")


if __name__ == "__main__":
    main()
