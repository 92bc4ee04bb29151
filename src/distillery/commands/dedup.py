"""dedup stage: exact dedup, decontamination against eval sets, MinHash-LSH near-dup, optional
semantic dedup. Writes OUTPUT/{records,quarantine,clusters,contamination}.jsonl, metrics/dedup.json
and plots/dedup_similarity.csv beside the metrics. See docs/dedup.md."""

from __future__ import annotations

from pathlib import Path

import click

from distillery.core.stage import stage_options, stage_run

# shared with prompt_dedup, which runs the same library on prompts
input_option = click.option("--input", "inputs", multiple=True, required=True, type=click.Path(),
                            help="Record file or directory (every records.jsonl below it, sorted). Repeatable.")
output_option = click.option("--output", required=True, type=click.Path(file_okay=False),
                             help="Output directory: records, quarantine, clusters and contamination JSONL.")


def count_bad_input_only(run, metrics: dict) -> None:
    """The gate counts bad input only: duplicates and benchmark items are removed on purpose (quarantined
    with the id they duplicate), so they are not rejects. Moves the counts into the stage counter."""
    run.counter.records_in, run.counter.records_out = metrics.pop("records_in"), metrics.pop("records_out")
    run.counter.rejects.update(metrics.pop("bad_input_by_reason"))


def finish_dedup(run, metrics: dict, out: Path) -> None:
    run.finish(metrics, [out / "clusters.jsonl", out / "contamination.jsonl"], outputs=[out])


@click.command()
@stage_options
@input_option
@output_option
@click.option("--key", type=click.Choice(["prompt", "response", "conversation", "prompt_chosen"]), default=None,
              help="What counts as the same text (dedup.key; default conversation).")
@click.option("--threshold", type=float, default=None,
              help="Jaccard at or above which two records are near-duplicates (dedup.threshold; 0.8).")
@click.option("--num-perm", type=int, default=None, help="MinHash permutations (dedup.num_perm; 128).")
@click.option("--shingle-size", type=int, default=None, help="Word n-gram shingle size (dedup.shingle_size; 5).")
@click.option("--bands", type=int, default=None, help="LSH bands; needs --rows (dedup.bands; default auto).")
@click.option("--rows", type=int, default=None, help="LSH rows per band (dedup.rows; default auto).")
@click.option("--workers", type=int, default=None, help="Worker processes, 0 = all cores (dedup.workers).")
@click.option("--cross-source/--per-source", default=None,
              help="Compare records across sources, or only within one source.dataset (dedup.cross_source).")
@click.option("--decontaminate/--no-decontaminate", default=None,
              help="Remove records overlapping the eval sets (dedup.decontaminate.enabled; on).")
@click.option("--semantic/--no-semantic", default=None,
              help="MiniLM paraphrase dedup after MinHash (dedup.semantic.enabled; off).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default=None,
              help="Run on this machine's process pool or a Ray cluster (engine.stages.dedup.engine).")
def main(params_path, overrides, inputs, output, key, threshold, num_perm, shingle_size, bands, rows, workers,
         cross_source, decontaminate, semantic, engine):
    """Remove exact and near-duplicate records and records that contain evaluation items."""
    options = {"dedup.key": key, "dedup.threshold": threshold, "dedup.num_perm": num_perm,
               "dedup.shingle_size": shingle_size, "dedup.bands": bands, "dedup.rows": rows,
               "dedup.workers": workers, "dedup.cross_source": cross_source,
               "dedup.decontaminate.enabled": decontaminate, "dedup.semantic.enabled": semantic,
               "engine.stages.dedup.engine": engine}
    with stage_run("dedup", params_path, overrides, options, output=output, sections=("dedup", "engine")) as run:
        from distillery.distributed.dedup import run_dedup

        out = Path(output)
        res = run_dedup(run.params, inputs, out, plots_path=run.plots_dir / "dedup_similarity.csv")
        m = dict(res.metrics)
        count_bad_input_only(run, m)
        m["settings"] = {k: m.pop(k) for k in ("bands", "rows", "num_perm", "threshold", "workers") if k in m}
        click.echo(f"dedup: {run.counter.records_in} in, {run.counter.records_out} out; exact {m['exact_duplicates']}, "
                   f"near {m['near_duplicates']}, contaminated {m['contaminated']}, "
                   f"semantic {m['semantic_duplicates']}", err=True)
        finish_dedup(run, m, out)


if __name__ == "__main__":
    main()
