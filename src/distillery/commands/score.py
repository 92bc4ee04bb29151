"""score: heuristics on every record + the LLM judge on generated records (and a few others)."""

from __future__ import annotations

import click

from distillery.core.stage import stage_options, stage_run


@click.command()
@stage_options
@click.option("--input", "inputs", multiple=True, required=True, type=click.Path(exists=True),
              help="Record files or directories (every records.jsonl below). Repeatable.")
@click.option("--output", required=True, type=click.Path(file_okay=False),
              help="Output directory: records.jsonl (kept, with scores) and quarantine.jsonl (reasons).")
@click.option("--keep-above", type=float, default=None,
              help="Keep records whose judge overall score is above this (score.judge.keep_above).")
@click.option("--max-judged", type=int, default=None,
              help="Records without generation lineage sent to the judge at most (score.judge.max_records).")
@click.option("--refresh", is_flag=True, help="Ignore cached judge answers and call the judge again.")
@click.option("--dry-run", is_flag=True,
              help="Count the tokens and cost of the calls not yet cached (tokenizer-counted prompts; output from a pilot or max_tokens); call nothing and leave the outputs untouched.")
def main(params_path, overrides, inputs, output, keep_above, max_judged, refresh, dry_run):
    """Score records: heuristics always, the LLM judge on generated ones; quarantine the rest with reasons."""
    from distillery.generation.common import run_llm_stage
    from distillery.generation.score import run_score

    options = {"score.judge.keep_above": keep_above, "score.judge.max_records": max_judged}
    with stage_run("score", params_path, overrides, options, output=output,
                   sections=("score", "llm", "engine")) as run:
        plots_path = run.plots_dir / "judge_scores.csv"
        run_llm_stage(run, "score", output,
                      lambda out, eng, counter: run_score(run.params, list(inputs), out, eng, plots_path, counter=counter),
                      refresh=refresh, dry_run=dry_run, extra_artifacts=[plots_path])


if __name__ == "__main__":
    main()
