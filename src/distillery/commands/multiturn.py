"""multiturn: conversations of exactly N turns, persona x flow, generated turn by turn."""

from __future__ import annotations

import click

from distillery.core.stage import stage_run
from distillery.generation.command import llm_stage_options, run_llm_command


@click.command()
@llm_stage_options("Output directory: records.jsonl and quarantine.jsonl (truncated/empty turns, ...).")
@click.option("--conversations", type=int, default=None,
              help="Conversations to generate (synthesize.multiturn.conversations).")
def main(params_path, overrides, output, refresh, dry_run, conversations):
    """Generate multi-turn conversations: a user-simulator call then an assistant call per turn."""

    def work(run, out, engine, counter):
        from distillery.generation.multiturn import run_multiturn

        return run_multiturn(run.params, out, engine, counter=counter)

    with stage_run("synthesize", params_path, overrides, {"synthesize.multiturn.conversations": conversations},
                   metrics_name="multiturn", output=output, sections=("synthesize", "score", "llm", "engine"),
                   gate="synthesize.multiturn") as run:
        run_llm_command(run, output, work, refresh=refresh, dry_run=dry_run,
                        log_params=lambda params: params.synthesize.multiturn.model_dump(mode="json"))


if __name__ == "__main__":
    main()
