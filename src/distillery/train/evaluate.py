"""One eval harness for the base and the tuned model, so before/after numbers are comparable.

- completion loss/perplexity: mean NLL of the assistant tokens given the prompt (chat template)
- GSM8K exact match: greedy, batched, left-padded generation; the last number vs the gold answer
- preference accuracy / reward margin: summed completion log-probs of chosen vs rejected
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from .data import Example, Pair, last_number


def _ids(tok, messages: list[dict], generation_prompt: bool) -> list[int]:
    out = tok.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def encode(tok, ex: Example, max_length: int) -> tuple[list[int], int] | None:
    """Token ids of prompt+completion, at most max_length, and where the completion starts.

    Too long, the prompt loses its start (as greedy generation's prompts do) before the completion loses its
    end, but keeps at least half the window while the completion needs it: so every item with an answer is
    scored. Cutting only the end made 69 of 200 held-out records, 54 of 100 pairs and 31 of 60 MT-Bench turns
    unscorable at max_length 128. None only when there is no completion token."""
    prompt = _ids(tok, ex.prompt, True)
    full = _ids(tok, ex.prompt + [{"role": "assistant", "content": ex.completion}], False)
    if full[:len(prompt)] != prompt:  # template renders the prompt differently: fall back to concatenation
        full = prompt + tok(ex.completion + (tok.eos_token or ""), add_special_tokens=False)["input_ids"]
    completion = full[len(prompt):]
    if not completion or max_length < 2:
        return None
    keep_prompt = min(len(prompt), max(max_length - len(completion), max_length // 2))
    keep_completion = min(len(completion), max_length - keep_prompt)
    return prompt[len(prompt) - keep_prompt:] + completion[:keep_completion], keep_prompt


@torch.no_grad()
def completion_logps(model, tok, examples: Sequence[Example], max_length: int, batch_size: int
                     ) -> list[tuple[float, int] | None]:
    """Per example: (sum of completion-token log-probs, completion token count), or None if unscorable."""
    device = next(model.parameters()).device
    enc = [encode(tok, ex, max_length) for ex in examples]
    out: list[tuple[float, int] | None] = [None] * len(examples)
    order = sorted((i for i, e in enumerate(enc) if e is not None), key=lambda i: len(enc[i][0]))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(enc[i][0]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        labels = torch.full((len(idx), width), -100, dtype=torch.long)
        attn = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            toks, p = enc[i]
            ids[row, :len(toks)] = torch.tensor(toks)
            attn[row, :len(toks)] = 1
            labels[row, p:len(toks)] = torch.tensor(toks[p:])
        ids, labels, attn = ids.to(device), labels.to(device), attn.to(device)
        logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
        tgt = labels[:, 1:]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tgt.clamp(min=0), reduction="none")
        mask = (tgt != -100).float()
        sums = (-(nll * mask)).sum(dim=1).tolist()
        counts = mask.sum(dim=1).long().tolist()
        for row, i in enumerate(idx):
            out[i] = (sums[row], counts[row])
    return out


def loss_items(model, tok, examples: Sequence[Example], max_length: int, batch_size: int
               ) -> list[tuple[str, float, int]]:
    """Per scorable example: (item id, per-token NLL of the completion, completion token count).
    The token-weighted mean of the NLLs (weights = counts) is exactly `loss_metrics`' loss."""
    scored = completion_logps(model, tok, examples, max_length, batch_size)
    return [(ex.id or str(i), -s[0] / s[1], s[1]) for i, (ex, s) in enumerate(zip(examples, scored))
            if s is not None and s[1] > 0]


def loss_metrics(model, tok, examples: Sequence[Example], max_length: int, batch_size: int) -> dict[str, Any]:
    """Token-weighted completion loss and perplexity over a set of examples."""
    scored = [s for s in completion_logps(model, tok, examples, max_length, batch_size) if s is not None]
    tokens = sum(n for _, n in scored)
    if not tokens:
        return {"loss": None, "perplexity": None, "examples": 0, "tokens": 0}
    loss = -sum(s for s, _ in scored) / tokens
    return {"loss": round(loss, 6), "perplexity": round(math.exp(min(loss, 50.0)), 4),
            "examples": len(scored), "tokens": tokens}


def pair_logps(model, tok, pairs: Sequence[Pair], max_length: int, batch_size: int
               ) -> list[tuple[float, float] | None]:
    """(logp chosen, logp rejected) per pair; None when either side cannot be scored."""
    exs = [Example(p.prompt, p.chosen) for p in pairs] + [Example(p.prompt, p.rejected) for p in pairs]
    lp = completion_logps(model, tok, exs, max_length, batch_size)
    n = len(pairs)
    return [(lp[i][0], lp[n + i][0]) if lp[i] is not None and lp[n + i] is not None else None for i in range(n)]


def preference_metrics(policy: Sequence, reference: Sequence | None, beta: float) -> dict[str, Any]:
    """Preference accuracy (chosen more likely than rejected) and the DPO implicit reward margin.

    reward(y) = beta * (logp_policy(y) - logp_ref(y)); for the base model the policy *is* the
    reference, so its reward margin is 0 by definition and `logp_margin` carries the raw gap.
    """
    rows = [(i, p) for i, p in enumerate(policy) if p is not None and (reference is None or reference[i] is not None)]
    if not rows:
        return {"pref_accuracy": None, "reward_margin": None, "logp_margin": None, "pairs": 0}
    acc = sum(1 for _, (c, r) in rows if c > r) / len(rows)
    logp_margin = sum(c - r for _, (c, r) in rows) / len(rows)
    if reference is None:
        margin = 0.0
    else:
        margin = sum(beta * ((c - reference[i][0]) - (r - reference[i][1])) for i, (c, r) in rows) / len(rows)
    return {"pref_accuracy": round(acc, 6), "reward_margin": round(margin, 6),
            "logp_margin": round(logp_margin, 6), "pairs": len(rows)}


def preference_items(pairs: Sequence[Pair], policy: Sequence, reference: Sequence | None, beta: float
                     ) -> dict[str, list[tuple[str, float, int]]]:
    """Per pair: chosen-over-rejected (1/0), the log-prob gap, and the DPO implicit reward margin
    (0 for the base model, whose policy is its own reference)."""
    out: dict[str, list[tuple[str, float, int]]] = {"pref_accuracy": [], "logp_margin": [], "reward_margin": []}
    for i, (pr, lp) in enumerate(zip(pairs, policy)):
        if lp is None or (reference is not None and reference[i] is None):
            continue
        c, r = lp
        key = pr.id or str(i)
        out["pref_accuracy"].append((key, float(c > r), 1))
        out["logp_margin"].append((key, c - r, 1))
        rm = 0.0 if reference is None else beta * ((c - reference[i][0]) - (r - reference[i][1]))
        out["reward_margin"].append((key, rm, 1))
    return out


@torch.no_grad()
def generate(model, tok, prompts: Sequence[list[dict]], max_new_tokens: int, batch_size: int,
             max_length: int) -> list[str]:
    """Greedy answers to chat prompts (left padding, batched; deterministic)."""
    device = next(model.parameters()).device
    side = tok.padding_side
    tok.padding_side = "left"
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    answers: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            batch = [_ids(tok, p, True)[-max_length:] for p in prompts[start:start + batch_size]]
            width = max(len(b) for b in batch)
            ids = torch.tensor([[pad] * (width - len(b)) + b for b in batch], device=device)
            attn = torch.tensor([[0] * (width - len(b)) + [1] * len(b) for b in batch], device=device)
            gen = model.generate(input_ids=ids, attention_mask=attn, max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=pad)
            answers.extend(tok.batch_decode(gen[:, width:], skip_special_tokens=True))
    finally:
        tok.padding_side = side
    return answers


GSM8K_INSTRUCTION = "Solve the problem step by step. End with the final answer on its own line as '#### <number>'."


def gsm8k_prompt(question: str) -> list[dict]:
    return [{"role": "user", "content": f"{question}\n\n{GSM8K_INSTRUCTION}"}]


def gsm8k_em_items(model, tok, items: Sequence[dict], max_new_tokens: int, batch_size: int,
                   max_length: int) -> list[tuple[str, float, int]]:
    """Per question: (item id, 1.0 when the last number of the greedy answer is the gold answer else 0.0, 1)."""
    if not items:
        return []
    answers = generate(model, tok, [gsm8k_prompt(it["question"]) for it in items], max_new_tokens,
                       batch_size, max_length)
    out = []
    for i, (it, a) in enumerate(zip(items, answers)):
        g = last_number(it["final"])
        out.append((it.get("id") or str(i), float(g is not None and last_number(a.split("####")[-1]) == g), 1))
    return out


def gsm8k_exact_match(model, tok, items: Sequence[dict], max_new_tokens: int, batch_size: int,
                      max_length: int) -> dict[str, Any]:
    """Exact match of the last number of a greedy answer against the gold final answer."""
    if not items:
        return {"gsm8k_em": None, "gsm8k_n": 0}
    hits = gsm8k_em_items(model, tok, items, max_new_tokens, batch_size, max_length)
    return {"gsm8k_em": round(sum(h for _, h, _ in hits) / len(items), 6), "gsm8k_n": len(items)}
