"""--dry-run: tokens and cost of the requests not yet cached, counted without calling anything.

Why an upper bound: a dry run answers the question "can I afford this?", so `cost_usd` must not
come in under the bill. Each distinct request the run would send is counted once (a repeat would
be served from the cache). Prompt tokens are counted with a tokenizer (the teacher's `tokenizer`,
else the local model's own, else SmolLM2's as an approximation) on the text the model would see
(chat template applied), plus `max_tokens` for every dry-run stand-in answer a later prompt embeds.
Output tokens are `max_tokens`. When a teacher has at least `llm.pilot_min_samples` cached
answers (a pilot), `expected_cost_usd` uses their mean output length instead: a likelier figure,
not a bound.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

from .budget import Budget
from .cache import ResponseCache
from .dryrun import embedded_tokens
from .items import Item, cost_usd

_TOKENIZERS: dict[str, Any] = {}
_ROW = ("requests", "cached", "to_call", "prompt_tokens", "output_tokens", "cost_usd", "expected_cost_usd")


def _tokenizer(name: str) -> Any:
    if name not in _TOKENIZERS:
        from ..models import load_tokenizer

        _TOKENIZERS[name] = load_tokenizer(name)
    return _TOKENIZERS[name]


def _text(tok: Any, mode: str, payload: Any) -> str:
    if mode != "chat":
        return str(payload)
    try:
        return tok.apply_chat_template(payload, add_generation_prompt=True, tokenize=False)
    except Exception:  # noqa: BLE001 - tokenizer without a chat template
        return "\n".join(f"{m['role']}: {m['content']}" for m in payload)


def _count(tok: Any, mode: str, payload: Any) -> int:
    text = _text(tok, mode, payload)
    return len(tok(text, add_special_tokens=False)["input_ids"]) + embedded_tokens(text)


def estimate(items: Sequence[Item], *, stage: str, cache: ResponseCache, budget: Budget, refresh: bool = False,
             pilot_min_samples: int = 20) -> dict[str, Any]:
    """Per teacher and in total: requests, cached, to call, prompt/output tokens, cost bound and likely
    cost of the resolved `items`; and whether the bound fits the budget."""
    per: dict[str, dict[str, Any]] = defaultdict(
        lambda: {k: 0 for k in _ROW} | {"cost_usd": 0.0, "expected_cost_usd": 0.0})
    hits = {} if refresh else cache.get_many({it.key for it in items})
    pilot: dict[str, float | None] = {}
    seen: set[str] = set()
    for it in items:
        t = it.teacher
        row = per[t.name]
        row["requests"] += 1
        if it.key in hits or it.key in seen:
            row["cached"] += 1
            continue
        seen.add(it.key)
        row["to_call"] += 1
        tok = _tokenizer(t.tokenizer or (t.model if t.provider == "local" else "smollm2"))
        pt = _count(tok, it.mode, it.payload)
        if t.name not in pilot:
            lens = cache.completion_token_stats(t.name, t.model)
            pilot[t.name] = sum(lens) / len(lens) if len(lens) >= pilot_min_samples else None
            row["output_source"] = "max_tokens"
            row["expected_output_source"] = "pilot (cached answers)" if pilot[t.name] is not None else "max_tokens"
        bound = int(it.gen.get("max_tokens") or 0)
        p = pilot[t.name]
        likely = p if p is not None else bound
        row["prompt_tokens"] += pt
        row["output_tokens"] += bound
        row["cost_usd"] += cost_usd(t, pt, bound, batch=t.batch)
        row["expected_cost_usd"] += cost_usd(t, pt, likely, batch=t.batch)
    total: dict[str, Any] = {k: 0 for k in _ROW} | {"cost_usd": 0.0, "expected_cost_usd": 0.0}
    for row in per.values():
        for k in ("cost_usd", "expected_cost_usd"):
            row[k] = round(row[k], 8)
        for k in total:
            total[k] += row[k]
    for k in ("cost_usd", "expected_cost_usd"):
        total[k] = round(total[k], 8)
    b = budget
    fits = (b.stage_max_usd is None or total["cost_usd"] <= b.stage_max_usd) and (
        b.overall_max_usd is None or cache.total_spend() + total["cost_usd"] <= b.overall_max_usd)
    return {"stage": stage, "teachers": dict(sorted(per.items())), "totals": total,
            "budget": {**b.as_metrics(), "estimate_fits": fits}}
