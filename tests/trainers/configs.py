"""Trainer configs built from the snippets the export ships (registry.AXOLOTL_SFT / AXOLOTL_DPO), as a user
pastes them into a minimal config for the base model."""

from __future__ import annotations

from pathlib import Path

import yaml

from distillery.export import registry


def axolotl_config(bundle: Path, fmt: str, model: Path, work: Path) -> Path:
    """A full axolotl config whose `datasets:` is the shipped snippet for `fmt` (SFT or DPO) on the bundle's file."""
    dpo = fmt in registry.AXOLOTL_DPO
    lines = (registry.AXOLOTL_DPO if dpo else registry.AXOLOTL_SFT)[fmt]
    rel = f"{'dpo' if dpo else 'sft'}/{fmt}.jsonl"
    snippet = "\n".join(["datasets:", *registry._entry(str(bundle), rel, lines)])
    cfg = {"base_model": str(model), "chat_template": "tokenizer_default", "sequence_len": 2048,
           "dataset_prepared_path": str(work / f"prepared_{fmt}"), "output_dir": str(work / f"out_{fmt}"),
           "dataset_num_proc": 1, "micro_batch_size": 1, "gradient_accumulation_steps": 1, "num_epochs": 1,
           "learning_rate": 1e-4, **({"rl": "dpo"} if dpo else {}), **yaml.safe_load(snippet)}
    path = work / f"axolotl_{fmt}.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path
