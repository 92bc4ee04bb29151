"""judge_eval stage: the configured judge on human-labelled pairs (HH chosen vs rejected, OASST ranked
siblings), both orders: agreement with the human label (95% interval), swap consistency, tie and parse
rates per judge and set; a judge under judge_eval.min_agreement is flagged (metrics, MLflow, the card)."""

import click

from distillery.core.stage import stage_options, stage_run

HEADLINE_LIMIT = 64   # 8 keys per judge x set + the record counts, `flagged` and wall_s


@click.command()
@stage_options
@click.option("--output", "output", type=click.Path(), default="data/judge_eval", show_default=True,
              help="Output directory: summary.json and quarantine.jsonl (unusable labelled records).")
@click.option("--sample", type=int, default=None, help="Pairs judged per set (judge_eval.sample).")
def main(params_path, overrides, output, sample):
    """Measure the judge against human preference labels: agreement, swap consistency, tie and parse rates."""
    from pathlib import Path

    with stage_run("judge_eval", params_path, overrides, {"judge_eval.sample": sample}, output=output,
                   sections=("judge_eval", "score", "llm")) as run:
        from distillery.core.io import write_json
        from distillery.train.judge_eval import headline, run_judge_eval, table

        out = Path(output)
        with run.quarantine(out / "quarantine.jsonl") as q:
            results = run_judge_eval(run.params, q)
        p = run.params.judge_eval
        judged = sum(s["pairs"] for by_set in results.values() for s in by_set.values())
        run.counter.records_in = judged + q.total
        run.counter.records_out = judged
        write_json(out / "summary.json", {"min_agreement": p.min_agreement, "results": results})
        flagged = [f"{j} on {s}" for j, by_set in results.items() for s, r in by_set.items() if r["flagged"]]
        run.finish({**headline(results), "results": results, "min_agreement": p.min_agreement,
                    "flagged_judges": flagged}, outputs=[out], headline_limit=HEADLINE_LIMIT)
        click.echo(f"judge_eval: agreement with human labels (both orders; chance = 0.5)\n"
                   f"{table(results, p.min_agreement)}")
        if flagged:
            click.echo(f"judge_eval: FLAGGED under judge_eval.min_agreement={p.min_agreement:g}: {', '.join(flagged)}",
                       err=True)


if __name__ == "__main__":
    main()
