"""preferences: DPO pairs from several answers per prompt (judge, pairwise or teacher rank) + DPO->SFT."""

from __future__ import annotations

import click

from distillery.core.stage import stage_run
from distillery.generation.command import llm_stage_options, run_llm_command


@click.command()
@llm_stage_options("Output directory: records.jsonl (pairs + SFT from DPO) and quarantine.jsonl (ties, leaks).",
                   "Ignore cached judge answers and call the judge again.")
@click.option("--input", "inputs", multiple=True, required=True, type=click.Path(exists=True),
              help="Distill output (records with labels.prompt_id) and/or preference records. Repeatable.")
@click.option("--mode", type=click.Choice(["judge", "pairwise", "teacher_rank"]), default=None,
              help="How answers are ranked (preferences.mode).")
@click.option("--min-margin", type=float, default=None,
              help="Score gap needed between chosen and rejected; smaller is a tie (preferences.min_margin).")
def main(params_path, overrides, output, refresh, dry_run, inputs, mode, min_margin):
    """Build DPO pairs (ties dropped) and their SFT conversions with the identity system prompt."""

    def work(run, out, engine, counter):
        from distillery.generation.preferences import run_preferences

        return run_preferences(run.params, list(inputs), out, engine, counter=counter)

    with stage_run("preferences", params_path, overrides,
                   {"preferences.mode": mode, "preferences.min_margin": min_margin},
                   output=output, sections=("preferences", "score", "llm", "engine")) as run:
        run_llm_command(run, output, work, refresh=refresh, dry_run=dry_run)


if __name__ == "__main__":
    main()
