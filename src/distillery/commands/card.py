"""Card stage: regenerate the dataset card (data/export/README.md) from metrics and the export.

    python scripts/card.py --export data/export --output data/export/README.md
"""

from __future__ import annotations

import click

from distillery.export.card import build_card
from distillery.core.io import write_text
from distillery.core.params import section_dict
from distillery.core.stage import stage_options, stage_run


@click.command()
@stage_options
@click.option("--export", "export_dir", default="data/export", show_default=True,
              type=click.Path(file_okay=False), help="Export bundle folder written by scripts/export.py.")
@click.option("--metrics-dir", "metrics_dir", default=None, type=click.Path(file_okay=False),
              help="Folder of metrics/*.json (default: project.metrics_dir). Absent files show as 'not run'.")
@click.option("--mix", "mix_dir", default="data/mix", show_default=True, type=click.Path(file_okay=False),
              help="Mix stage folder; its composition.json (if present) fills the target-vs-realised table.")
@click.option("--output", default="data/export/README.md", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the card (Markdown).")
def main(params_path, overrides, export_dir, metrics_dir, mix_dir, output):
    """Write the dataset card: files and how to load them, composition, sources with licenses and
    revisions, generation models, filters and reject counts, dedup/decontamination, token statistics,
    downstream eval, intended use and limitations. Texts come from params export.card."""
    with stage_run("card", params_path, overrides, output=output, sections=("export", "ingest")) as run:
        sources = section_dict(run.params, "ingest").get("sources") or {}
        text = build_card(export_dir, metrics_dir or run.params.project.metrics_dir, mix_dir, sources,
                          run.params.export.card)
        write_text(output, text)
        run.finish({"card_lines": len(text.splitlines())}, artifacts=[output], write=False, outputs=[output])
        click.echo(f"card: wrote {output} ({len(text.splitlines())} lines)", err=True)


if __name__ == "__main__":
    main()
