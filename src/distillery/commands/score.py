"""score: heuristics on every record + the LLM judge on generated records (and a few others)."""

from __future__ import annotations

import click

from distillery.core.stage import stage_run
from distillery.generation.command import llm_stage_options, run_llm_command


@click.command()
@llm_stage_options("Output directory: records.jsonl (kept, with scores) and quarantine.jsonl (reasons).",
                   "Ignore cached judge answers and call the judge again.")
@click.option("--input", "inputs", multiple=True, required=True, type=click.Path(exists=True),
              help="Record files or directories (every records.jsonl below). Repeatable.")
@click.option("--keep-above", type=float, default=None,
              help="Keep records whose judge overall score is above this (score.judge.keep_above).")
@click.option("--max-judged", type=int, default=None,
              help="Records without generation lineage sent to the judge at most (score.judge.max_records).")
def main(params_path, overrides, output, refresh, dry_run, inputs, keep_above, max_judged):
    """Score records: heuristics always, the LLM judge on generated ones; quarantine the rest with reasons."""

    def work(run, out, engine, counter):
        from distillery.generation.score import run_score

        return run_score(run.params, list(inputs), out, engine, run.plots_dir / "judge_scores.csv", counter=counter)

    with stage_run("score", params_path, overrides,
                   {"score.judge.keep_above": keep_above, "score.judge.max_records": max_judged},
                   output=output, sections=("score", "llm", "engine")) as run:
        run_llm_command(run, output, work, refresh=refresh, dry_run=dry_run,
                        extra_artifacts=[run.plots_dir / "judge_scores.csv"])


if __name__ == "__main__":
    main()
