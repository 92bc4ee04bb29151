"""--dry-run: tokens and cost of the requests not yet cached, counted without calling anything.

Prompt tokens are counted with a tokenizer (the teacher's `tokenizer`, else the local model's own,
else SmolLM2's as an approximation), on the text the model would see (chat template applied).
Output tokens: the mean of this teacher's cached answers when at least `llm.pilot_min_samples`
exist (a pilot run), else `max_tokens` (an upper bound).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

from .types import ChatRequest

_TOKENIZERS: dict[str, Any] = {}


def _tokenizer(name: str):
    if name not in _TOKENIZERS:
        from ..models import load_tokenizer

        _TOKENIZERS[name] = load_tokenizer(name)
    return _TOKENIZERS[name]


def _count(tok: Any, mode: str, payload: Any) -> int:
    if mode == "chat":
        try:
            text = tok.apply_chat_template(payload, add_generation_prompt=True, tokenize=False)
        except Exception:  # noqa: BLE001 - tokenizer without a chat template
            text = "\n".join(f"{m['role']}: {m['content']}" for m in payload)
    else:
        text = payload
    return len(tok(text, add_special_tokens=False)["input_ids"])


def estimate(engine: Any, requests: Sequence[ChatRequest]) -> dict:
    from .engine import Item, cost_usd

    per: dict[str, dict] = defaultdict(lambda: {"requests": 0, "cached": 0, "to_call": 0, "prompt_tokens": 0,
                                                "output_tokens": 0, "cost_usd": 0.0})
    items = [engine._item(i, r) for i, r in enumerate(requests)]
    items = [it for it in items if isinstance(it, Item)]
    hits = {} if engine.refresh else engine.cache.get_many({it.key for it in items})
    pilot: dict[str, float | None] = {}
    for it in items:
        t = it.teacher
        row = per[t.name]
        row["requests"] += 1
        if it.key in hits:
            row["cached"] += 1
            continue
        row["to_call"] += 1
        tok = _tokenizer(t.tokenizer or (t.model if t.provider == "local" else "smollm2"))
        pt = _count(tok, it.mode, it.payload)
        if t.name not in pilot:
            seen = engine.cache.completion_token_stats(t.name, t.model)
            pilot[t.name] = sum(seen) / len(seen) if len(seen) >= engine.llm.pilot_min_samples else None
            row["output_source"] = "pilot (cached answers)" if pilot[t.name] is not None else "max_tokens"
        out = pilot[t.name] if pilot[t.name] is not None else int(it.gen.get("max_tokens") or 0)
        row["prompt_tokens"] += pt
        row["output_tokens"] += int(round(out))
        row["cost_usd"] += cost_usd(t, pt, out, batch=t.batch)
    total = {"requests": 0, "cached": 0, "to_call": 0, "prompt_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
    for row in per.values():
        row["cost_usd"] = round(row["cost_usd"], 8)
        for k in total:
            total[k] += row[k]
    total["cost_usd"] = round(total["cost_usd"], 8)
    b = engine.budget
    fits = (b.stage_max_usd is None or total["cost_usd"] <= b.stage_max_usd) and (
        b.overall_max_usd is None or b.overall_spent_before + total["cost_usd"] <= b.overall_max_usd)
    return {"stage": engine.stage, "teachers": dict(sorted(per.items())), "totals": total,
            "budget": {**b.as_metrics(), "estimate_fits": fits}}
