"""Local provider benchmark (`make bench-local`): generated tokens/s on the offline model (SmolLM2-135M).

The same chat prompts, the same max_tokens, greedy, in one run:
1. ours (the provider's batched loop: KV cache, finished rows leave the batch) at batch 1, at the
   shipped `llm.teachers.local-smollm2.batch_size` and at batch 16;
2. plain `transformers` `model.generate` on the same batches (left padding, KV cache);
3. both at batch 16 on a mix of short and long answers (twice max_tokens), where ours drops the
   finished rows and `generate` computes them until the longest is done.
Targets (issue 14): ours at batch 16 >= 3x ours at batch 1; ours >= HF generate at batch 16.

Prints a markdown table, writes benchmarks/out/local.md, and ends with one line for scripts:
`local tok_s_b1=X tok_s_b16=X speedup_b16=X vs_hf_b16=X vs_hf_mixed_b16=X`. Timings depend on machine load; the load
average before and after is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("DISTILLERY_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from distillery.core.params import load_params  # noqa: E402
from distillery.llm.config import TeacherParams  # noqa: E402
from distillery.llm.provider_local import cores, generate, load, render  # noqa: E402

TOPICS = ["photosynthesis", "the French revolution", "how a bicycle stays upright", "black holes", "compound interest",
          "the water cycle", "how vaccines work", "the rules of chess", "why the sky is blue", "plate tectonics",
          "how a compiler works", "the Roman empire", "machine learning", "how bread rises", "the moon's phases",
          "electric cars", "the human heart", "volcanoes", "the internet", "honey bees"]


SHORT = ["Answer with one word: what colour is the sky?", "Reply yes or no: is fire hot?",
         "Answer with one number: how many legs does a cat have?", "Say hello.", "Reply with one word: the opposite of up?",
         "Answer with one word: what animal says moo?", "Reply yes or no: is ice cold?", "Name the capital of Italy."]


def mixed(n: int) -> list[list[dict]]:
    """Half short answers (end on EOS within a few tokens), half long ones, interleaved: the batch a
    real stage sends, where padded generation pays every row for the longest."""
    longs = prompts(n)
    return [[{"role": "user", "content": SHORT[(i // 2) % len(SHORT)]}] if i % 2 else longs[i] for i in range(n)]


def prompts(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"Explain {TOPICS[i % len(TOPICS)]} to a ten-year-old."}] for i in range(n)]


def ours(teacher: TeacherParams, payloads: list, batch: int, max_tokens: int) -> tuple[int, float]:
    gen = {"temperature": 0.0, "max_tokens": max_tokens}
    start, n = time.perf_counter(), 0
    for s in range(0, len(payloads), batch):
        n += sum(o.completion_tokens for o in generate(teacher, "chat", payloads[s:s + batch], gen))
    return n, time.perf_counter() - start


def hf(teacher: TeacherParams, payloads: list, batch: int, max_tokens: int) -> tuple[int, float]:
    """Plain `generate`; counted like ours: tokens up to each row's EOS (the padding after it is not output)."""
    import torch

    model, tok = load(teacher)
    start, n = time.perf_counter(), 0
    for s in range(0, len(payloads), batch):
        texts = [render(tok, "chat", p) for p in payloads[s:s + batch]]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        for row in out[:, enc["input_ids"].shape[1]:].tolist():
            n += row.index(tok.eos_token_id) if tok.eos_token_id in row else len(row)
    return n, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=16, help="prompts at batch 8 and 16 (a multiple of 16)")
    ap.add_argument("--b1-prompts", type=int, default=4, help="prompts at batch 1 (the first ones; tokens/s "
                                                               "at batch 1 barely depends on how many)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: every core)")
    ap.add_argument("--out", default="benchmarks/out/local.md")
    a = ap.parse_args()
    shipped = load_params(None, sections=("llm",)).llm.teachers["local-smollm2"]
    teacher = shipped.model_copy(update={"device": "cpu", "threads": a.threads})
    load(teacher)
    payloads = prompts(a.prompts)
    generate(teacher, "chat", payloads[:2], {"temperature": 0.0, "max_tokens": 4})    # warm up
    load0 = os.getloadavg()
    sizes = sorted({1, shipped.batch_size, 16})
    rows, rate = [], {}
    for b in sizes:
        for name, fn in (("ours", ours), ("hf generate", hf)):
            some = payloads[:a.b1_prompts] if b == 1 else payloads
            n, dt = fn(teacher, some, b, a.max_tokens)
            rate[name, b] = n / dt
            rows.append(f"| {name} | {b} | {len(some)} | {n} | {dt:.1f} | {n / dt:.1f} |")
            print(rows[-1], flush=True)
    for name, fn in (("ours", ours), ("hf generate", hf)):
        n, dt = fn(teacher, mixed(16), 16, 2 * a.max_tokens)
        rate[name, "mixed"] = n / dt
        rows.append(f"| {name}, half short answers, max_tokens {2 * a.max_tokens} | 16 | 16 | {n} | {dt:.1f} | "
                    f"{n / dt:.1f} |")
        print(rows[-1], flush=True)
    load1 = os.getloadavg()
    import torch

    table = "\n".join([
        f"SmolLM2-135M-Instruct float32 on CPU, {torch.get_num_threads()} torch threads ({cores()} cores), "
        f"greedy, max_tokens {a.max_tokens}; load average {load0[0]:.2f} before, {load1[0]:.2f} after",
        "", "| decoder | batch | prompts | generated tokens | seconds | tokens/s |", "|---|---|---|---|---|---|",
        *rows, ""])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(table)
    print(table)
    b1, b16 = rate["ours", 1], rate["ours", 16]
    print(f"local tok_s_b1={b1:.1f} tok_s_b16={b16:.1f} speedup_b16={b16 / b1:.2f} "
          f"vs_hf_b16={b16 / rate['hf generate', 16]:.2f} "
          f"vs_hf_mixed_b16={rate['ours', 'mixed'] / rate['hf generate', 'mixed']:.2f}")


if __name__ == "__main__":
    main()
