"""preferences: DPO pairs from several answers per prompt (judge, pairwise or teacher rank) + DPO->SFT."""

from __future__ import annotations

import click

from distillery.core.stage import stage_options, stage_run


@click.command()
@stage_options
@click.option("--input", "inputs", multiple=True, required=True, type=click.Path(exists=True),
              help="Distill output (records with labels.prompt_id) and/or preference records. Repeatable.")
@click.option("--output", required=True, type=click.Path(file_okay=False),
              help="Output directory: records.jsonl (pairs + SFT from DPO) and quarantine.jsonl (ties, leaks).")
@click.option("--mode", type=click.Choice(["judge", "pairwise", "teacher_rank"]), default=None,
              help="How answers are ranked (preferences.mode).")
@click.option("--min-margin", type=float, default=None,
              help="Score gap needed between chosen and rejected; smaller is a tie (preferences.min_margin).")
@click.option("--refresh", is_flag=True, help="Ignore cached judge answers and call the judge again.")
@click.option("--dry-run", is_flag=True,
              help="Count the tokens and cost of the calls not yet cached (tokenizer-counted prompts; output from a pilot or max_tokens); call nothing and leave the outputs untouched.")
def main(params_path, overrides, inputs, output, mode, min_margin, refresh, dry_run):
    """Build DPO pairs (ties dropped) and their SFT conversions with the identity system prompt."""
    from distillery.generation.common import run_llm_stage
    from distillery.generation.preferences import run_preferences

    options = {"preferences.mode": mode, "preferences.min_margin": min_margin}
    with stage_run("preferences", params_path, overrides, options, output=output,
                   sections=("preferences", "score", "llm", "engine")) as run:
        run_llm_stage(run, "preferences", output,
                      lambda out, eng, counter: run_preferences(run.params, list(inputs), out, eng, counter=counter),
                      refresh=refresh, dry_run=dry_run)


if __name__ == "__main__":
    main()
