"""LoRA SFT and DPO with TRL + peft at a fixed compute budget.

SFT uses TRL's prompt-completion format (loss on the final assistant turn only), the same
tokens the eval harness scores. DPO continues the SFT adapter; TRL copies it into a frozen
"ref" adapter, so the DPO reference is the SFT model.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from .config import TrainEvalParams
from .data import Example

log = logging.getLogger(__name__)


def pick_device(choice: str) -> str:
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        from ..core.errors import ParamsError

        raise ParamsError("train_eval.device: cuda requested but no CUDA device is available")
    return choice


def mixed_bf16(p: TrainEvalParams, device: str) -> bool:
    """bf16 mixed precision for training and eval (`train_eval.dtype`). `auto` takes it where bf16 runs natively:
    CUDA with bf16, or a CPU with AVX512-BF16 or AMX, where a scoring pass takes ~0.65x the float32 CPU time.
    A CPU without them emulates bf16 several times slower than float32, so `auto` stays float32 there."""
    if p.dtype != "auto":
        return p.dtype == "bfloat16"
    if device == "cuda":
        import torch

        return bool(torch.cuda.is_bf16_supported())
    return _cpu_has_bf16()


@functools.cache
def _cpu_has_bf16() -> bool:
    try:
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    except OSError:  # not Linux: float32
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def _common_args(p: TrainEvalParams, device: str, seed: int, out_dir: str) -> dict[str, Any]:
    bf16 = mixed_bf16(p, device)
    return dict(
        output_dir=out_dir, per_device_train_batch_size=p.batch_size, gradient_accumulation_steps=p.grad_accum,
        warmup_steps=p.warmup_steps, logging_steps=p.log_every, save_strategy="no", report_to="none",
        seed=seed, data_seed=seed, use_cpu=device == "cpu", bf16=bf16, fp16=False,
        gradient_checkpointing=False, dataloader_num_workers=0, remove_unused_columns=True,
        disable_tqdm=os.environ.get("DISTILLERY_PROGRESS", "1") == "0", max_grad_norm=1.0,
    )


def _losses(history: list[dict], phase: str, offset: int) -> list[dict]:
    return [{"step": offset + int(h["step"]), "phase": phase, "loss": round(float(h["loss"]), 6)}
            for h in history if "loss" in h and "step" in h]


def add_lora(model, p: TrainEvalParams, seed: int):
    """Wrap the base model with a fresh LoRA adapter (seeded init)."""
    from peft import LoraConfig, get_peft_model
    from transformers import set_seed

    set_seed(seed)
    cfg = LoraConfig(r=p.lora.r, lora_alpha=p.lora.alpha, lora_dropout=p.lora.dropout,
                     target_modules=list(p.lora.target_modules), task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, cfg)
    except ValueError as e:
        from ..core.errors import ParamsError

        raise ParamsError(f"train_eval.lora.target_modules: {str(e).splitlines()[0][:200]}") from None


def train_sft(model, tok, examples: list[Example], p: TrainEvalParams, device: str, seed: int,
              max_length: int) -> list[dict]:
    """Run p.steps SFT steps on the LoRA model in place; returns the loss curve."""
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    set_seed(seed)
    ds = Dataset.from_list([{"prompt": ex.prompt, "completion": [{"role": "assistant", "content": ex.completion}]}
                            for ex in examples])
    with tempfile.TemporaryDirectory(prefix="distillery-sft-") as tmp:
        args = SFTConfig(max_steps=p.steps, learning_rate=p.learning_rate, max_length=max_length,
                         packing=False, completion_only_loss=True, dataset_num_proc=None,
                         **_common_args(p, device, seed, tmp))
        trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
        trainer.train()
        return _losses(trainer.state.log_history, "sft", 0)


def train_dpo(model, tok, rows: list[dict], p: TrainEvalParams, device: str, seed: int, max_length: int,
              step_offset: int) -> list[dict]:
    """Run p.dpo_steps DPO steps continuing the SFT adapter; returns the loss curve."""
    from datasets import Dataset
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer

    set_seed(seed)
    ds = Dataset.from_list(rows)
    with tempfile.TemporaryDirectory(prefix="distillery-dpo-") as tmp:
        args = DPOConfig(max_steps=p.dpo_steps, learning_rate=p.dpo_learning_rate, beta=p.dpo_beta,
                         max_length=max_length, **_common_args(p, device, seed, tmp))
        trainer = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
        trainer.train()
        curve = _losses(trainer.state.log_history, "dpo", step_offset)
    if "ref" in getattr(model, "peft_config", {}):
        model.delete_adapter("ref")
    model.set_adapter("default")
    return curve
