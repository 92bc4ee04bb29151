"""score: heuristics on every record + the LLM judge on generated records (and a few others)."""

from __future__ import annotations

import click

from distillery.stage import stage_options, stage_run


@click.command()
@stage_options
@click.option("--input", "inputs", multiple=True, required=True, type=click.Path(exists=True),
              help="Record files or directories (every records.jsonl below). Repeatable.")
@click.option("--output", required=True, type=click.Path(file_okay=False),
              help="Output directory: records.jsonl (kept, with scores) and quarantine.jsonl (reasons).")
@click.option("--plots", default=None, type=click.Path(dir_okay=False),
              help="Judge-score histogram CSV (default: <score.plots_dir>/judge_scores.csv).")
@click.option("--keep-above", type=float, default=None,
              help="Keep records whose judge overall score is above this (score.judge.keep_above).")
@click.option("--max-judged", type=int, default=None,
              help="Records without generation lineage sent to the judge at most (score.judge.max_records).")
@click.option("--refresh", is_flag=True, help="Ignore cached judge answers and call the judge again.")
@click.option("--dry-run", is_flag=True,
              help="Count the tokens and cost of the calls not yet cached (tokenizer-counted prompts; output from a pilot or max_tokens); call nothing and leave the outputs untouched.")
def main(params_path, overrides, inputs, output, plots, keep_above, max_judged, refresh, dry_run):
    """Score records: heuristics always, the LLM judge on generated ones; quarantine the rest with reasons."""
    from pathlib import Path

    from distillery.generation.common import check_stage_reject_rate, cost_by_teacher
    from distillery.generation.score import run_score
    from distillery.distributed import make_engine
    from distillery.generation.common import dry_run_dir, print_dry_run

    options = {"score.judge.keep_above": keep_above, "score.judge.max_records": max_judged}
    with stage_run("score", params_path, overrides, options) as run:
        out = dry_run_dir() if dry_run else Path(output)
        p = run.params.score
        plots_path = Path(plots) if plots else Path(p.plots_dir) / "judge_scores.csv"
        engine = make_engine(run.params, "score", refresh=refresh, dry_run=dry_run,
                                    failed_path=out / "failed_requests.jsonl")
        try:
            metrics = run_score(run.params, list(inputs), out, engine, plots_path)
            metrics["cost"] = cost_by_teacher(engine.metrics())
            if dry_run:
                return print_dry_run(engine, "score")
        finally:
            engine.close()
        run.finish(metrics, [out / "records.jsonl", plots_path])
        check_stage_reject_rate("score", metrics, p.max_reject_rate, out / "quarantine.jsonl", "score.max_reject_rate")


if __name__ == "__main__":
    main()
