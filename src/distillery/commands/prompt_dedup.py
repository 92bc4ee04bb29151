"""prompt_dedup stage: the ingested prompts, exact- and near-deduplicated on the prompt key and
decontaminated against the eval sets, before distill and completion pay a teacher for them.
Writes OUTPUT/{records,quarantine,clusters,contamination}.jsonl and metrics with the calls saved."""

from __future__ import annotations

from pathlib import Path

import click

from distillery.commands.dedup import count_bad_input_only, finish_dedup, input_option, output_option
from distillery.core.stage import stage_options, stage_run


@click.command()
@stage_options
@input_option
@output_option
@click.option("--threshold", type=float, default=None,
              help="Jaccard at or above which two prompts are near-duplicates (prompt_dedup.threshold; 0.8).")
@click.option("--decontaminate/--no-decontaminate", default=None,
              help="Drop prompts matching the eval sets of dedup.decontaminate (prompt_dedup.decontaminate; on).")
def main(params_path, overrides, inputs, output, threshold, decontaminate):
    """Deduplicate and decontaminate prompts before any teacher or judge call."""
    options = {"prompt_dedup.threshold": threshold, "prompt_dedup.decontaminate": decontaminate}
    with stage_run("prompt_dedup", params_path, overrides, options, output=output,
                   sections=("prompt_dedup", "dedup", "distill", "synthesize", "score", "llm")) as run:
        from distillery.dedup.prompts import run_prompt_dedup

        out = Path(output)
        m = run_prompt_dedup(run.params, inputs, out, plots_path=run.plots_dir / "prompt_dedup_similarity.csv")
        count_bad_input_only(run, m)
        click.echo(f"prompt_dedup: {m['prompts_in']} prompts, {m['unique_prompts']} to answer; "
                   f"duplicates {m['duplicates_skipped']}, contaminated {m['contaminated_skipped']}; "
                   f"saves ~{m['calls_saved']} calls (~${m['usd_saved_estimate']:.4f})", err=True)
        finish_dedup(run, m, out)


if __name__ == "__main__":
    main()
