"""Stats stage: token lengths under the target model's chat template, and a recommended max_length.

    python scripts/stats.py --input data/export --mix data/mix --output data/stats
    python scripts/stats.py --input my_sft.jsonl --output /tmp/stats --tokenizer path/to/hf-model
"""

from __future__ import annotations

from pathlib import Path

import click

from distillery.core.stage import stage_options, stage_run
from distillery.stats.run import run_stats


@click.command()
@stage_options
@click.option("--input", "inputs", multiple=True, required=True, type=click.Path(),
              help="Export folder (its stats.sft_files and stats.dpo_files, e.g. sft/messages.jsonl and "
                   "dpo/trl.jsonl) or any SFT/DPO/record JSONL file. Repeatable.")
@click.option("--output", default="data/stats", show_default=True, type=click.Path(file_okay=False),
              help="Folder for summary.json, lengths.jsonl (per row) and quarantine.jsonl.")
@click.option("--mix", "mix_dir", type=click.Path(file_okay=False), default=None,
              help="Mix stage folder used to find each exported row's bucket by id (exports drop buckets).")
@click.option("--tokenizer", default=None,
              help="'smollm2' or a local Hugging Face tokenizer/model folder (stats.tokenizer).")
@click.option("--chat-template", default=None,
              help="Jinja chat template text or .jinja file replacing the tokenizer's (stats.chat_template).")
@click.option("--round-to", type=int, default=None,
              help="Round the recommended max_length up to a multiple of this (stats.round_to).")
@click.option("--workers", type=int, default=None,
              help="Processes measuring rows; 0 = every core (stats.workers).")
@click.option("--cache-path", default=None, type=click.Path(dir_okay=False),
              help="SQLite file remembering measured rows across runs, so a rerun tokenises only new rows "
                   "(stats.cache_path; --set stats.cache_path=null turns it off).")
def main(params_path, overrides, inputs, output, mix_dir, tokenizer, chat_template, round_to, workers, cache_path):
    """Tokenise every exported conversation with the target chat template (special tokens once) and
    report p50/p95/p99/max per kind and bucket for full sequences, prompts and completions, the share
    truncated at each candidate max_length, and recommended_max_length in metrics/stats.json."""
    options = {"stats.tokenizer": tokenizer, "stats.chat_template": chat_template, "stats.round_to": round_to,
               "stats.workers": workers, "stats.cache_path": cache_path}
    with stage_run("stats", params_path, overrides, options, output=output, sections=("stats",)) as run:
        metrics = run_stats(list(inputs), output, run.section, mix_dir, run.params.project.max_line_bytes,
                            run.plots_dir, counter=run.counter)
        cached = metrics["run"]["rows_from_cache"]
        click.echo(f"stats: {run.counter.records_out} rows ({cached} from the length cache), p99 "
                   f"{metrics['token_p99']} tokens, recommended max_length {metrics['recommended_max_length']}",
                   err=True)
        run.finish(metrics, artifacts=[f"{output}/summary.json"], outputs=[output])


if __name__ == "__main__":
    main()
