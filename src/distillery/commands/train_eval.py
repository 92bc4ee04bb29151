"""train_eval stage: LoRA SFT (+ DPO) on the production mix, base-vs-tuned eval with one harness.

Writes metrics/train_eval.json (per eval metric: base, tuned, paired delta with its 95% interval and a
verdict), the per-item scores (--output/items.jsonl, what `distillery compare` reads), the loss curve
(metrics/plots/train_loss.csv, a DVC plot) and the adapter under --output/adapter; prints the table.
"""

import click

from distillery.core.stage import stage_options, stage_run

HEADLINE_LIMIT = 64   # 6 keys x up to 9 eval metrics + the record counts and wall_s


@click.command()
@stage_options
@click.option("--mix", "mix", type=click.Path(), default="data/mix", show_default=True,
              help="Mix directory (production.jsonl + eval.jsonl) or a production JSONL file.")
@click.option("--eval", "eval_path", type=click.Path(), default=None,
              help="Held-out split JSONL (default: eval.jsonl beside the production file).")
@click.option("--export", "export", type=click.Path(), default="data/export", show_default=True,
              help="Export directory (reads dpo/trl.jsonl) or a TRL DPO JSONL file.")
@click.option("--model", "model", default=None,
              help="Base model: 'smollm2', a local Hugging Face model dir or a hub id (train_eval.base_model).")
@click.option("--output", "output", type=click.Path(), default="data/train_eval", show_default=True,
              help="Output directory: adapter/ and summary.json.")
@click.option("--steps", type=int, default=None, help="SFT optimizer steps (train_eval.steps).")
@click.option("--batch-size", type=int, default=None, help="Training batch size (train_eval.batch_size).")
@click.option("--dpo", type=click.Choice(["auto", "required", "off"]), default=None,
              help="DPO on the preference export: auto (skip with a note when empty), required, off (train_eval.dpo).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Training device; auto = CUDA when available (train_eval.device).")
def main(params_path, overrides, mix, eval_path, export, model, output, steps, batch_size, dpo, device):
    """LoRA-tune the base model on the mix and compare it with the base on held-out and benchmark sets."""
    options = {"train_eval.base_model": model, "train_eval.steps": steps, "train_eval.batch_size": batch_size,
               "train_eval.dpo": dpo, "train_eval.device": device}
    with stage_run("train_eval", params_path, overrides, options, output=output,
                   sections=("train_eval", "llm", "score")) as run:
        from distillery.train.pipeline import run_train_eval

        metrics, artifacts = run_train_eval(run.params, mix, export, output, eval_path)
        text = metrics.pop("_table")
        # headline: six flat keys per eval metric (<m>_base/_tuned/_delta/_delta_ci_low/_delta_ci_high/_verdict)
        run.finish(metrics, artifacts=artifacts, outputs=[output], headline_limit=HEADLINE_LIMIT)
        click.echo(f"train_eval: base vs tuned, paired 95% bootstrap intervals over eval items\n{text}")


if __name__ == "__main__":
    main()
