"""Counts the arithmetic of the offline teacher, for `benchmarks/bench_generation_floor.py` only.

That benchmark puts this folder first on PYTHONPATH, so every Python process of its `dvc repro` imports this
file at start-up. It waits for `distillery.models` to be imported, wraps `load_causal_lm` so each model it
returns counts its forward passes, and at exit appends one JSON line per process that ran one to the file
named by DISTILLERY_FLOOR_LOG. Nothing here changes what the model computes. (Being first on PYTHONPATH, it
hides any other sitecustomize for that run.)
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.util
import json
import os
import sys

LOG = os.environ.get("DISTILLERY_FLOOR_LOG")
COUNTS = {"forwards": 0, "real_tokens": 0, "decode_tokens": 0, "computed_tokens": 0, "lm_head_rows": 0,
          "attended_real": 0}
CONFIG: dict = {}


def _count(module, args, kwargs):
    """Real tokens: new positions the mask marks as tokens (holes excluded), decode steps among them (one new
    position per row). Computed: every position fed, holes included."""
    ids, mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
    if ids is None or mask is None:
        return None
    b, w = ids.shape
    t = mask.shape[1]
    new = mask[:, t - w:].sum(1)
    past = mask[:, :t - w].sum(1)
    keep = kwargs.get("logits_to_keep") or 0
    COUNTS["forwards"] += 1
    COUNTS["real_tokens"] += int(new.sum())
    if w == 1:                       # one new position per row: a decode step
        COUNTS["decode_tokens"] += int(new.sum())
    COUNTS["computed_tokens"] += b * w
    COUNTS["lm_head_rows"] += int((new.clamp(max=keep) if keep else new).sum())
    # keys each real query attends to: the row's real past, then the causal part of its new tokens
    COUNTS["attended_real"] += int((new * past + new * (new + 1) // 2).sum())
    return None


def _wrap(models) -> None:
    load = models.load_causal_lm

    def load_counted(*a, **k):
        model = load(*a, **k)
        c = model.config
        CONFIG.update(hidden=c.hidden_size, intermediate=c.intermediate_size, layers=c.num_hidden_layers,
                      heads=c.num_attention_heads, kv_heads=c.num_key_value_heads, vocab=c.vocab_size,
                      head_dim=getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads)
        model.register_forward_pre_hook(_count, with_kwargs=True)
        return model

    models.load_causal_lm = load_counted


class _AfterImport(importlib.abc.MetaPathFinder):
    """Patch `distillery.models` right after it executes, before any module imports names from it."""

    def find_spec(self, name, path, target=None):
        if name != "distillery.models":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _wrap(module)

        spec.loader.exec_module = exec_module
        return spec


def _write() -> None:
    if COUNTS["forwards"]:
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps({"script": os.path.basename(sys.argv[0]), **COUNTS, "config": CONFIG}) + "\n")


if LOG:
    sys.meta_path.insert(0, _AfterImport())
    atexit.register(_write)
