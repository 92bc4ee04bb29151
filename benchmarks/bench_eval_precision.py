"""train_eval's scoring pass in float32 and in bf16 mixed precision (`train_eval.dtype`), on the same records.

Scores the SFT records of a JSONL file (default: the held-out split of the mix) with the base model, once
in float32 and once under bf16 autocast, with the harness train_eval uses (`evaluate.loss_items`), and
prints CPU seconds per item for each and how far the per-item losses move: whether the bf16 eval is both
faster and telling the same story on this machine. bf16 is only fast where the CPU runs it natively
(AVX512-BF16 or AMX); elsewhere torch emulates it and this benchmark shows it slower.

    python benchmarks/bench_eval_precision.py --records data/mix/eval.jsonl --n 96

Last line, for scripts: `eval_precision n=N f32_cpu_s_item=X bf16_cpu_s_item=X speedup=X mean_abs_diff=X
mean_diff=X`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", default="data/mix/eval.jsonl", help="JSONL of records (SFT ones are scored)")
    ap.add_argument("--n", type=int, default=96, help="records scored")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    a = ap.parse_args()

    import torch

    from distillery.models import load_causal_lm, load_tokenizer
    from distillery.train.data import load_mix
    from distillery.train.evaluate import loss_items

    examples, _ = load_mix(a.records, limit=a.n)
    tok = load_tokenizer(a.model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = load_causal_lm(a.model, device="cpu")
    loss_items(model, tok, examples[:a.batch_size], a.max_length, a.batch_size)   # warm-up
    scores, cpu = {}, {}
    for name, bf16 in (("float32", False), ("bf16-mixed", True)):
        start = time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            scores[name] = {k: v for k, v, _ in loss_items(model, tok, examples, a.max_length, a.batch_size)}
        cpu[name] = (time.process_time() - start) / max(1, len(scores[name]))
        print(f"{name}: {len(scores[name])} items, {cpu[name]:.3f} CPU s per item", flush=True)
    f32, bf = scores["float32"], scores["bf16-mixed"]
    diffs = [bf[k] - f32[k] for k in f32]
    print(f"eval_precision n={len(diffs)} f32_cpu_s_item={cpu['float32']:.3f} bf16_cpu_s_item={cpu['bf16-mixed']:.3f} "
          f"speedup={cpu['float32'] / cpu['bf16-mixed']:.2f} mean_abs_diff={statistics.mean(map(abs, diffs)):.4f} "
          f"mean_diff={statistics.mean(diffs):+.4f}")


if __name__ == "__main__":
    main()
