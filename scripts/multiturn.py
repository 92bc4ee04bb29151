"""multiturn: conversations of exactly N turns, persona x flow, generated turn by turn."""

from __future__ import annotations

import click

from distillery.stage import stage_options, stage_run


@click.command()
@stage_options
@click.option("--output", required=True, type=click.Path(file_okay=False),
              help="Output directory: records.jsonl and quarantine.jsonl (truncated/empty turns, ...).")
@click.option("--conversations", type=int, default=None,
              help="Conversations to generate (synthesize.multiturn.conversations).")
@click.option("--refresh", is_flag=True, help="Ignore cached answers and call the teachers again.")
@click.option("--dry-run", is_flag=True,
              help="Count the tokens and cost of the calls not yet cached (tokenizer-counted prompts; output from a pilot or max_tokens); call nothing and leave the outputs untouched.")
def main(params_path, overrides, output, conversations, refresh, dry_run):
    """Generate multi-turn conversations: a user-simulator call then an assistant call per turn."""
    from pathlib import Path

    from distillery.generation.common import check_stage_reject_rate, cost_by_teacher
    from distillery.generation.multiturn import run_multiturn
    from distillery.distributed import make_engine
    from distillery.generation.common import dry_run_dir, print_dry_run

    options = {"synthesize.multiturn.conversations": conversations}
    with stage_run("synthesize", params_path, overrides, options, metrics_name="multiturn") as run:
        out = dry_run_dir() if dry_run else Path(output)
        engine = make_engine(run.params, "multiturn", refresh=refresh, dry_run=dry_run,
                                    failed_path=out / "failed_requests.jsonl")
        try:
            metrics = run_multiturn(run.params, out, engine)
            metrics["cost"] = cost_by_teacher(engine.metrics())
            if dry_run:
                return print_dry_run(engine, "multiturn")
        finally:
            engine.close()
        run.finish(metrics, [out / "records.jsonl"],
                   log_params=run.params.synthesize.multiturn.model_dump(mode="json"))
        check_stage_reject_rate("multiturn", metrics, run.params.synthesize.multiturn.max_reject_rate,
                                out / "quarantine.jsonl", "synthesize.multiturn.max_reject_rate")


if __name__ == "__main__":
    main()
