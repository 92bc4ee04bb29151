"""multiturn: conversations of exactly N turns, persona x flow, generated turn by turn."""

from __future__ import annotations

import click

from distillery.core.stage import stage_options, stage_run


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
    from distillery.generation.common import run_llm_stage
    from distillery.generation.multiturn import run_multiturn

    options = {"synthesize.multiturn.conversations": conversations}
    with stage_run("synthesize", params_path, overrides, options, metrics_name="multiturn", output=output,
                   sections=("synthesize", "score", "llm", "engine"), gate="synthesize.multiturn") as run:
        run_llm_stage(run, "multiturn", output,
                      lambda out, eng, counter: run_multiturn(run.params, out, eng, counter=counter),
                      refresh=refresh, dry_run=dry_run,
                      log_params=run.params.synthesize.multiturn.model_dump(mode="json"))


if __name__ == "__main__":
    main()
