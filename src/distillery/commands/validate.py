"""Validate stage: Great Expectations suites over the SFT/DPO export and the mix; Data Docs HTML.

    python scripts/validate.py --export data/export --mix data/mix --output reports/validation
    python scripts/validate.py --export /tmp/bundle --output /tmp/report      # export only
"""

from __future__ import annotations

import click

from distillery.core.params import get_section
from distillery.core.stage import stage_options, stage_run
from distillery.validate.run import ValidationFailed, run_validate


@click.command()
@stage_options
@click.option("--export", "export_dir", type=click.Path(file_okay=False), default=None,
              help="Export folder; validates validate.sft_file and validate.dpo_file below it.")
@click.option("--mix", "mix_dir", type=click.Path(file_okay=False), default=None,
              help="Mix stage folder: checks bucket shares against the manifest (mix.*) and that no eval id "
                   "is in any mix; also gives exported rows their bucket and judge score by id.")
@click.option("--output", default="reports/validation", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the Great Expectations Data Docs (open index.html); replaced on every run.")
@click.option("--mix-tolerance", type=float, default=None,
              help="Allowed gap between realised and manifest bucket shares (validate.mix_tolerance).")
def main(params_path, overrides, export_dir, mix_dir, output, mix_tolerance):
    """Flatten the exports (role sequence, turn counts, empty turns, lengths, scores, buckets, ids,
    chosen == rejected) and the mix (bucket shares vs manifest, eval leakage), validate them with
    Great Expectations, write Data Docs and metrics/validate.json. Exits 4 naming each failed
    expectation and its first failing rows."""
    with stage_run("validate", params_path, overrides, {"validate.mix_tolerance": mix_tolerance}, output=output,
                   sections=("validate", "mix", "buckets")) as run:
        buckets = get_section(run.params, "buckets").names
        metrics, failures = run_validate(export_dir, mix_dir, output, run.section,
                                         get_section(run.params, "mix"), buckets)
        # every row is checked by the suites; their expectations are this stage's gate (exit 4 below)
        rows = sum(s["rows"] for s in metrics["suites"].values())
        run.counter.records_in = run.counter.records_out = rows
        run.finish(metrics, artifacts=[output], outputs=[output])
        if failures:
            raise ValidationFailed(f"validation failed ({len(failures)} expectation(s); Data Docs: "
                                   f"{output}/index.html): " + " | ".join(failures))
        click.echo(f"validate: {metrics['expectations_passed']}/{metrics['expectations_evaluated']} expectations "
                   f"passed -> {output}/index.html", err=True)


if __name__ == "__main__":
    main()
