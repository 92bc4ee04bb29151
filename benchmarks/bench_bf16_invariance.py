"""Why the offline teacher stays float32 (`make bench-bf16`; docs/llm.md "Precision").

bf16 decodes ~2x faster on an AVX512-BF16/AMX CPU, but a request's text then depends on its batch mates.
This measures where that comes from, in one run on the offline model:
1. bf16 GEMM kernels by row count: for each projection shape of SmolLM2, how many row counts 1..256 give
   each row the bits it gets in a 256-row product, and whether a row's output at a fixed 64 rows changes
   with its batch mates;
2. float32 is not bitwise batch-invariant either: a row's prefill logits alone vs in a batch of four;
3. sampled texts alone vs batched (5 prompts, 48 tokens) and tokens/s at batch 64 for: float32, bf16,
   bf16 linears in fixed 64-row blocks (the GEMM made row-invariant) with the rest in bf16, and the same
   blocked linears in an otherwise float32 model.
Ends with one line: `bf16 gemm_rowcounts_invariant=A/B fp32_prefill_maxdiff=X texts_equal=fp32:5/5,... tok_s=...`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("DISTILLERY_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from bench_local import prompts  # noqa: E402
from distillery.llm import provider_local  # noqa: E402
from distillery.llm.config import TeacherParams  # noqa: E402
from distillery.llm.decoding import Sampling, decode_batch, prefill  # noqa: E402

BLOCK = 64
QUESTIONS = ["What is the capital of France?", "Name a primary colour.", "Write a haiku about the sea.",
             "Explain gravity in one sentence.", "List three fruits."]
SHAPES = [(576, 1536), (1536, 576), (576, 576), (576, 192), (576, 49152)]   # (in, out) of SmolLM2's linears


def gemm_rowcounts() -> tuple[int, int, bool]:
    """(row counts matching the 256-row product, row counts tried, fixed-64 rows independent of mates)."""
    g = torch.Generator().manual_seed(0)
    match = tried = 0
    independent = True
    for k, n in SHAPES:
        w = torch.randn(n, k, generator=g).bfloat16()
        x = torch.randn(256, k, generator=g).bfloat16()
        ref = torch.nn.functional.linear(x, w)
        for m in range(1, 257):
            tried += 1
            match += torch.equal(torch.nn.functional.linear(x[:m], w), ref[:m])
        mates = torch.randn(BLOCK, k, generator=g).bfloat16()
        mates[5] = x[0]
        independent &= torch.equal(torch.nn.functional.linear(mates, w)[5], ref[0])
    return match, tried, independent


def blocked_linear(bf16_weights: bool):
    """nn.Linear.forward computing in bf16, always on exactly BLOCK rows (zero-padded), output in the input dtype."""
    def forward(self, x):
        w = self.__dict__.get("_bf16")
        if w is None:
            w = self.__dict__["_bf16"] = self.weight.detach().bfloat16()
        flat = x.reshape(-1, x.shape[-1]).bfloat16()
        n = flat.shape[0]
        if n % BLOCK:
            flat = torch.cat([flat, flat.new_zeros(BLOCK - n % BLOCK, flat.shape[1])])
        out = torch.cat([torch.nn.functional.linear(b, w) for b in flat.split(BLOCK)])[:n]
        return out.to(x.dtype).reshape(*x.shape[:-1], -1)
    return forward


def texts_and_speed(dtype: str) -> tuple[int, float]:
    provider_local._MODELS.clear()
    t = TeacherParams(name="b", provider="local", model="smollm2", device="cpu", batch_size=8, dtype=dtype)
    chat = [[{"role": "user", "content": q}] for q in QUESTIONS]
    gen = {"temperature": 0.9, "top_p": 0.95, "max_tokens": 48, "seed": 7}
    alone = [provider_local.generate(t, "chat", [c], gen)[0].text for c in chat]
    together = [o.text for o in provider_local.generate(t, "chat", chat, gen)]
    model, tok = provider_local.load(t)
    ids = [tok(provider_local.render(tok, "chat", m), add_special_tokens=False)["input_ids"] for m in prompts(64)]
    start = time.perf_counter()
    outs = decode_batch(model, tok, ids, 200, Sampling(temperature=0.7), seeds=list(range(64)))
    return sum(a == b for a, b in zip(alone, together)), sum(len(o.ids) for o in outs) / (time.perf_counter() - start)


def fp32_prefill_maxdiff() -> float:
    provider_local._MODELS.clear()
    model, tok = provider_local.load(TeacherParams(name="b", provider="local", model="smollm2", device="cpu"))
    ids = [tok(provider_local.render(tok, "chat", [{"role": "user", "content": q}]), add_special_tokens=False)
           ["input_ids"] for q in QUESTIONS[:4]]
    with torch.inference_mode():
        batch = prefill(model, tok, ids, 4)[3]
        return max(float((prefill(model, tok, [p], 4)[3][0] - batch[i]).abs().max()) for i, p in enumerate(ids))


def main() -> None:
    match, tried, independent = gemm_rowcounts()
    print(f"bf16 GEMM: {match}/{tried} row counts give the 256-row bits; fixed {BLOCK} rows independent of "
          f"batch mates: {independent}")
    diff = fp32_prefill_maxdiff()
    print(f"float32 prefill logits, alone vs batch of 4: max |diff| {diff:.1e}")
    plain = torch.nn.Linear.forward
    rows = []
    for name, dtype, patch in [("float32", "float32", False), ("bf16", "bfloat16", False),
                               ("bf16, blocked linears", "bfloat16", True),
                               ("float32, blocked bf16 linears", "float32", True)]:
        torch.nn.Linear.forward = blocked_linear(True) if patch else plain
        try:
            same, tok_s = texts_and_speed(dtype)
        finally:
            torch.nn.Linear.forward = plain
        rows.append((name, same, tok_s))
    print("\n| setting | sampled texts alone = batched | tokens/s at batch 64 |\n|---|---|---|")
    for name, same, tok_s in rows:
        print(f"| {name} | {same}/{len(QUESTIONS)} | {tok_s:.0f} |")
    print(f"bf16 gemm_rowcounts_invariant={match}/{tried} fixed_block_row_invariant={independent} "
          f"fp32_prefill_maxdiff={diff:.1e} texts_equal=" + ",".join(f"{n.replace(' ', '')}:{s}/{len(QUESTIONS)}"
                                                                for n, s, _ in rows)
          + " tok_s=" + ",".join(f"{n.replace(' ', '')}:{t:.0f}" for n, _, t in rows))


if __name__ == "__main__":
    main()
