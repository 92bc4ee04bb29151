"""Local provider benchmark (`make bench-local`): generated tokens/s on the offline model (SmolLM2-135M).

The same chat prompts, the same max_tokens, greedy, in one run:
1. ours (the provider's batched loop: KV cache, finished rows leave the batch) at batch 1 and at
   batch 16;
2. plain `transformers` `model.generate` on the same batches (left padding, KV cache);
3. both at batch 16 on a mix of short and long answers (twice max_tokens), where ours drops the
   finished rows and `generate` computes them until the longest is done;
4. ours at batch 64 (sampled, temperature 0.7: the distill setting), the shipped batch size;
5. the guided judge (four expected-score dimensions + overall, as score.judge sends them) on the same
   number of prompts: one prompt at a time (the loop before batching) and as one batch;
6. shared prompt prefixes (`decoding.prefill`) off and on: 64 verdicts with the shipped judge templates on
   16 questions x 4 answers (preferences' shape), and 16 questions x 4 sampling seeds (distill's); off and
   on alternate twice and the faster of each is kept, since one pair of runs is within this machine's noise.
Targets (issue 14): ours at batch 16 >= 3x ours at batch 1; ours >= HF generate at batch 16.

Prints a markdown table, writes benchmarks/out/local.md, and ends with one line for scripts:
`local tok_s_b1=X tok_s_b16=X tok_s_b64=X speedup_b16=X vs_hf_b16=X vs_hf_mixed_b16=X judge_batched_vs_single=X
prefix_sharing_judge=X prefix_sharing_sampled=X` (one line).
Timings depend on machine load; the load average before and after is printed beside them.
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


def judge_prompts(n: int) -> list[list[dict]]:
    """Pointwise judge requests of a realistic length (~250 tokens): a question and a paragraph answer."""
    answer = ("{t} is a topic many children ask about. In simple words, it is about how things around us work, "
              "why they happen and what we can learn from them. A good explanation uses an everyday example, "
              "avoids long words and checks that the listener followed each step before moving on. ") * 3
    return [[{"role": "user", "content": f"Rate the answer to the question on helpfulness, accuracy, clarity and "
                                         f"completeness, then overall, each from 1 to 10. Reply with JSON.\n\n"
                                         f"Question: Explain {TOPICS[i % len(TOPICS)]} to a ten-year-old.\n\n"
                                         f"Answer: {answer.format(t=TOPICS[i % len(TOPICS)].capitalize())}"}]
            for i in range(n)]


def shipped_judge_prompts(questions: int, answers: int) -> list[list[dict]]:
    """Pointwise judge requests as score.judge sends them (the shipped system and rubric templates):
    `answers` different answers to each of `questions` questions, as preferences ranks distill's."""
    from distillery.generation.templates import load_template

    p = load_params(None, sections=("score",)).score.judge
    system = load_template(p.system_template).render(dimensions=p.dimensions) if p.system_template else ""
    rubric = load_template(p.template)
    out = []
    for q in range(questions):
        topic = TOPICS[q % len(TOPICS)]
        for a in range(answers):
            answer = f"{topic.capitalize()} is about how things work. " + "An everyday example helps. " * (2 + 3 * a)
            user = rubric.render(dimensions=p.dimensions, prompt=f"Explain {topic} to a ten-year-old.", answer=answer)
            out.append(([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}])
    return out


def prefix_sharing(teacher: TeacherParams, share: bool) -> tuple[float, float]:
    """(seconds for 64 judge verdicts on 16 questions x 4 answers, seconds for 16 questions x 4 sampled
    answers of 64 tokens) with shared prompt prefixes prefilled once (`decoding.prefill`) or not."""
    from distillery.llm import decoding

    decoding.SHARE_PREFIXES = share
    try:
        judged = judge(teacher, shipped_judge_prompts(16, 4), 64)
        start = time.perf_counter()
        generate(teacher, "chat", [p for p in prompts(16) for _ in range(4)], {"temperature": 0.7, "max_tokens": 64},
                 seeds=[s for _ in range(16) for s in range(4)])
        return judged, time.perf_counter() - start
    finally:
        decoding.SHARE_PREFIXES = True


def judge(teacher: TeacherParams, payloads: list, batch: int) -> float:
    """Seconds to judge `payloads` under the rubric schema, `batch` prompts per decode."""
    from distillery.generation.judge import rubric_schema
    from distillery.llm.guided import decode_batch, guided_fields, plan

    model, tok = load(teacher)
    steps = plan(tok, guided_fields(rubric_schema(["helpfulness", "accuracy", "clarity", "completeness"],
                                                  "expected")))
    ids = [tok(render(tok, "chat", p), add_special_tokens=False)["input_ids"] for p in payloads]
    start = time.perf_counter()
    for s in range(0, len(ids), batch):
        decode_batch(model, tok, ids[s:s + batch], steps)
    return time.perf_counter() - start


def ours(teacher: TeacherParams, payloads: list, batch: int, max_tokens: int, temperature: float = 0.0
         ) -> tuple[int, float]:
    gen = {"temperature": temperature, "max_tokens": max_tokens}
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
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="the teacher's dtype (docs/llm.md \"Precision\": bfloat16 is faster on an AVX512-BF16 CPU, "
                         "but a request's text then depends on its batch)")
    ap.add_argument("--out", default="benchmarks/out/local.md")
    a = ap.parse_args()
    shipped = load_params(None, sections=("llm",)).llm.teachers["local-smollm2"]
    teacher = shipped.model_copy(update={"device": "cpu", "threads": a.threads, "dtype": a.dtype})
    load(teacher)
    payloads = prompts(a.prompts)
    generate(teacher, "chat", payloads[:2], {"temperature": 0.0, "max_tokens": 4})    # warm up
    load0 = os.getloadavg()
    sizes = [1, 16]
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
    n, dt = ours(teacher, prompts(64), 64, 2 * a.max_tokens, temperature=0.7)
    rate["ours", 64] = n / dt
    rows.append(f"| ours, sampled (temperature 0.7), max_tokens {2 * a.max_tokens} | 64 | 64 | {n} | {dt:.1f} | "
                f"{n / dt:.1f} |")
    print(rows[-1], flush=True)
    judged = judge_prompts(a.prompts)
    for b in (1, len(judged)):
        dt = judge(teacher, judged, b)
        rate["judge", b] = len(judged) / dt
        rows.append(f"| guided judge (5 expected scores), {'one prompt at a time' if b == 1 else 'batched'} | {b} | "
                    f"{len(judged)} | – | {dt:.1f} | {len(judged) / dt:.2f} verdicts/s |")
        print(rows[-1], flush=True)
    runs = [(share, prefix_sharing(teacher, share)) for _ in range(2) for share in (False, True)]   # alternated
    shared = {share: tuple(min(r[i] for s, r in runs if s == share) for i in (0, 1)) for share in (False, True)}
    for what, i in (("guided judge, shipped rubric, 16 questions x 4 answers", 0),
                    ("ours, sampled, 16 questions x 4 seeds, max_tokens 64", 1)):
        rows.append(f"| {what}: prefixes prefilled per row / shared | 64 | 64 | – | {shared[False][i]:.1f} / "
                    f"{shared[True][i]:.1f} | {shared[False][i] / shared[True][i]:.2f}x |")
        print(rows[-1], flush=True)
    load1 = os.getloadavg()
    import torch

    table = "\n".join([
        f"SmolLM2-135M-Instruct {a.dtype} on CPU, {torch.get_num_threads()} torch threads ({cores()} cores), "
        f"greedy, max_tokens {a.max_tokens}; load average {load0[0]:.2f} before, {load1[0]:.2f} after",
        "", "| decoder | batch | prompts | generated tokens | seconds | tokens/s |", "|---|---|---|---|---|---|",
        *rows, ""])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(table)
    print(table)
    b1, b16 = rate["ours", 1], rate["ours", 16]
    print(f"local tok_s_b1={b1:.1f} tok_s_b16={b16:.1f} tok_s_b64={rate['ours', 64]:.1f} speedup_b16={b16 / b1:.2f} "
          f"vs_hf_b16={b16 / rate['hf generate', 16]:.2f} "
          f"vs_hf_mixed_b16={rate['ours', 'mixed'] / rate['hf generate', 'mixed']:.2f} "
          f"judge_batched_vs_single={rate['judge', len(judged)] / rate['judge', 1]:.2f} "
          f"prefix_sharing_judge={shared[False][0] / shared[True][0]:.2f} "
          f"prefix_sharing_sampled={shared[False][1] / shared[True][1]:.2f}")


if __name__ == "__main__":
    main()
