"""Ingest one source into the record shape of docs/records.md (DVC stage `ingest@NAME`).

Examples:
  python scripts/ingest.py --source gsm8k --output data/ingest/gsm8k
  python scripts/ingest.py --input my.csv --adapter mapping --set ingest.sources.my.fields.prompt=question \\
      --set ingest.sources.my.fields.response=answer --output out/my
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import click

from distillery.core.errors import ParamsError
from distillery.sources.config import Adapter, Format
from distillery.sources.ingest import ingest_source
from distillery.core.stage import stage_options, stage_run

ADAPTERS = list(Adapter.__args__)
FORMATS = list(Format.__args__)
log = logging.getLogger("distillery.ingest")


def _name_for(input_path: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", Path(input_path).name.split(".")[0]) or "input"


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@stage_options
@click.option("--source", "source", metavar="NAME",
              help="Source to ingest, a key of params ingest.sources (its path, adapter, fields, bucket...).")
@click.option("--input", "input_path", type=click.Path(), default=None,
              help="Ingest this file or directory instead of (or overriding) the source's `path`. "
                   "Without --source the source is named after the file (or --name).")
@click.option("--name", default=None, help="Source name for --input (ids, metrics/ingest/NAME.json).")
@click.option("--adapter", metavar="NAME", default=None,
              help="How rows map to records (ingest.sources.NAME.adapter): " + ", ".join(ADAPTERS)
                   + ". Default `auto` picks it per row from the field names (record files included).")
@click.option("--format", "fmt", metavar="FORMAT", default=None,
              help="File format (ingest.sources.NAME.format): " + ", ".join(FORMATS) + "; default: from the suffix.")
@click.option("--bucket", default=None, help="Bucket given to every record (ingest.sources.NAME.bucket).")
@click.option("--limit", type=int, default=None, help="Read only the first N rows (ingest.sources.NAME.limit).")
@click.option("--max-reject-rate", type=float, default=None,
              help="Fail when more than this share is rejected (ingest.sources.NAME.max_reject_rate; "
                   "default project.max_reject_rate).")
@click.option("--output", required=True, type=click.Path(file_okay=False),
              help="Output directory: records.jsonl and quarantine.jsonl are written there atomically.")
def main(params_path, overrides, source, input_path, name, adapter, fmt, bucket, limit, max_reject_rate, output):
    """Read a public instruction/preference dataset and write normalised records.

    Each row is adapted (auto, alpaca, openai_messages, sharegpt, oasst_tree, hh, prompt_chosen_rejected,
    gsm8k, self_instruct, mapping, record), its text normalised (NFC, whitespace), and checked (roles,
    empty turns, size). Rejected rows go to quarantine.jsonl with a reason code and file:line;
    counts go to --metrics (dvc.yaml: metrics/ingest/NAME.json). Fields and speaker names of a new dataset are mapped
    in params (ingest.sources.NAME.fields / .roles), e.g.
    --set ingest.sources.NAME.roles.agent_1=user.
    """
    if not source and not input_path:
        raise ParamsError("give --source NAME (a key of ingest.sources) or --input FILE [--adapter X]")
    name = source or name or _name_for(input_path)
    key = f"ingest.sources.{name}"
    options = {f"{key}.path": input_path, f"{key}.adapter": adapter, f"{key}.format": fmt,
               f"{key}.bucket": bucket, f"{key}.limit": limit, f"{key}.max_reject_rate": max_reject_rate}
    with stage_run("ingest", params_path, overrides, options, metrics_name=f"ingest/{name}", output=output,
                   sections=("ingest",), gate=key) as run:
        ing = run.section
        spec = ing.sources.get(name)
        if spec is None:
            known = ", ".join(sorted(ing.sources)) or "none"
            raise ParamsError(f"{key}: no such source in params (known: {known}); or pass --input FILE")
        out = Path(output)
        result = ingest_source(name, spec, ing.defaults, out, max_row_bytes=run.params.project.max_line_bytes,
                               counter=run.counter)
        log.info("ingest@%s: %d records, %d rejected -> %s", name, run.counter.records_out,
                 run.counter.rejected, out / "records.jsonl")
        run.finish(result.metrics, [out / "records.jsonl", out / "quarantine.jsonl"], outputs=[out])


if __name__ == "__main__":
    main()
