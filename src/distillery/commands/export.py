"""Export stage: write the trainer-ready bundle (TRL, axolotl, LLaMA-Factory) from mixed records.

    python scripts/export.py --input data/mix --output data/export
    python scripts/export.py --input any/records.jsonl --output /tmp/bundle --no-phases
"""

from __future__ import annotations

import click

from distillery.export.run import QUARANTINE, run_export
from distillery.core.stage import progress, stage_options, stage_run


@click.command()
@stage_options
@click.option("--input", "inputs", multiple=True, required=True, type=click.Path(),
              help="Record file, or a directory: the mix stage's (production.jsonl -> train bundle, "
                   "eval.jsonl -> eval/, phases/*.jsonl -> phases/<name>/) or any folder whose "
                   "records.jsonl files all go into the train bundle. Repeatable.")
@click.option("--output", default="data/export", show_default=True, type=click.Path(file_okay=False),
              help="Bundle folder: sft/, dpo/, eval/, phases/, configs/, dataset_info.json, provenance.json, "
                   "quarantine.jsonl.")
@click.option("--eval/--no-eval", "with_eval", default=None,
              help="Export the held-out eval.jsonl into eval/ (export.eval, default on).")
@click.option("--phases/--no-phases", default=None,
              help="Export each curriculum phase file into phases/<name>/ (export.phases, default on).")
@click.option("--system-prompt", default=None,
              help="System prompt to inject (export.system_prompt; where, see --system-prompt-mode; empty: none).")
@click.option("--system-prompt-mode", type=click.Choice(["if_missing", "override"]), default=None,
              help="Inject only where a record has no system message, or replace all (export.system_prompt_mode).")
@click.option("--no-id", "no_id", is_flag=True, default=None,
              help="Drop the `id` string column from every row (export.keep_id=false).")
@click.option("--max-reject-rate", type=float, default=None,
              help="Fail when more records are rejected (export.max_reject_rate; default project.max_reject_rate).")
def main(params_path, overrides, inputs, output, with_eval, phases, system_prompt, system_prompt_mode, no_id,
         max_reject_rate):
    """Write the SFT/DPO files named by export.sft_formats / export.dpo_formats (default sft/messages.jsonl
    and dpo/trl.jsonl; opt-in sharegpt, alpaca, chatml_text, messages_pair, prompt_pairs, alpaca_pref, each also
    as NAME.jsonl.gz or NAME.parquet, e.g. --set 'export.sft_formats=[messages,sharegpt.parquet]'),
    LLaMA-Factory's dataset_info.json and configs for the files written, and the stage metrics.
    Unexportable records go to quarantine.jsonl."""
    options = {"export.eval": with_eval, "export.phases": phases, "export.system_prompt": system_prompt,
               "export.system_prompt_mode": system_prompt_mode, "export.keep_id": False if no_id else None,
               "export.max_reject_rate": max_reject_rate}
    with stage_run("export", params_path, overrides, options, output=output, sections=("export",)) as run:
        with progress(desc="export") as bar:
            metrics = run_export(list(inputs), output, run.section, max_line_bytes=run.params.project.max_line_bytes,
                                 tick=bar.update, counter=run.counter)
        c = run.counter
        click.echo(f"export: {c.records_out}/{c.records_in} records -> {output} (rejected {c.rejected})", err=True)
        run.finish(metrics, artifacts=[f"{output}/dataset_info.json", f"{output}/provenance.json"],
                   outputs=[output], quarantine_path=f"{output}/{QUARANTINE}")


if __name__ == "__main__":
    main()
