"""compare: did the model get better between two dataset commits? Paired deltas with 95% intervals.

    distillery compare HEAD~1 HEAD            # train_eval per-item scores of both revisions

Prints per eval metric: A, B, the paired delta with its interval and a verdict (better / worse /
within noise); writes the same table as Markdown (--output, the dataset card includes it) and logs it
to MLflow as a comparison run (tag distillery.compare).
"""

import time

import click

from distillery.core.stage import one_line_errors


@click.command()
@click.argument("rev_a")
@click.argument("rev_b")
@click.option("--items", "items_path", default="data/train_eval/items.jsonl", show_default=True,
              help="The train_eval per-item scores (a DVC out), as a path in the repository.")
@click.option("--repo", default=".", show_default=True, help="The git + DVC repository.")
@click.option("--output", type=click.Path(dir_okay=False), default="metrics/compare.md", show_default=True,
              help="Markdown table; metrics/compare.md is included in the dataset card.")
@click.option("--params", "params_path", type=click.Path(dir_okay=False), default=None,
              help="Params file (tracking section; default params.yaml when present).")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--n-boot", type=int, default=2000, show_default=True, help="Bootstrap replicates.")
@one_line_errors
def main(rev_a, rev_b, items_path, repo, output, params_path, seed, n_boot):
    """Paired deltas (REV_B vs REV_A) of every train_eval metric, with intervals and a verdict."""
    from pathlib import Path

    from distillery.core.io import write_json, write_text
    from distillery.core.params import load_params
    from distillery.train.compare import compare

    started = time.time()
    params = load_params(params_path, sections=("tracking",))
    cmp = compare(rev_a, rev_b, items_path, repo, n_boot=n_boot, seed=seed)
    click.echo(f"compare: tuned model at B={rev_b} vs A={rev_a} ({items_path}), paired 95% bootstrap intervals\n"
               f"{cmp.text()}")
    out = Path(output)
    write_text(out, cmp.markdown())
    details = out.with_suffix(".json")
    write_json(details, {"rev_a": rev_a, "rev_b": rev_b, "items": items_path, "paired_items": cmp.counts,
                         "evals": {r.metric: r.details("a", "b") for r in cmp.results}})
    from distillery.track import log_stage

    log_stage("compare", {"rev_a": rev_a, "rev_b": rev_b, "items": items_path, "n_boot": n_boot, "seed": seed},
              cmp.flat(), [out, details], params, started=started,
              extra_tags={"distillery.compare": "1", "distillery.compare.rev_a": rev_a,
                          "distillery.compare.rev_b": rev_b})
    click.echo(f"compare: table written to {out}")
