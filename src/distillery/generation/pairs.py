"""DPO pairs from several answers to one prompt, and DPO -> SFT with an identity system prompt.

A pair needs a real preference: the chosen and rejected answers must differ (normalised text) and
their gap must reach `min_margin`; otherwise it is a tie and dropped, never emitted with
chosen == rejected.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ..core.records import stable_id
from ..core.text import dedup_key_text


@dataclass
class Candidate:
    record: dict          # the distill record (sft: prompt + answer)
    answer: str
    teacher: str
    score: float | None   # judge overall / wins / rank score (higher is better)


def pick_pairs(cands: list[Candidate], min_margin: float,
               limit: int = 1) -> list[tuple[Candidate, Candidate, float]] | str:
    """Up to `limit` (chosen, rejected, margin) pairs, widest margin first (0 = every pair), or a reason
    code: too_few_answers, unscored, identical_answers, tie.

    limit 1 is best against worst. More pairs per prompt (InstructGPT's K-choose-2 comparisons of K
    answers) get more preference signal from answers already paid for; each pair still needs two
    different texts and a gap of at least `min_margin`.
    """
    scored = [c for c in cands if c.score is not None]
    if len(cands) < 2:
        return "too_few_answers"
    if len(scored) < 2:
        return "unscored"
    # stable order: score desc, then teacher name, so equal scores never depend on input order
    ranked = sorted(scored, key=lambda c: (-c.score, c.teacher, c.record.get("id", "")))
    texts = [dedup_key_text(c.answer) for c in ranked]
    # each chosen against the lowest-ranked first, so equal margins keep best-vs-worst in front
    distinct = [(ranked[i], ranked[j], ranked[i].score - ranked[j].score)
                for i in range(len(ranked)) for j in reversed(range(i + 1, len(ranked))) if texts[i] != texts[j]]
    if not distinct:
        return "identical_answers"
    kept = sorted((p for p in distinct if p[2] > 0 and p[2] >= min_margin), key=lambda p: -p[2])
    if not kept:
        return "tie"
    return kept[:limit] if limit else kept


def teacher_rank_scores(cands: list[Candidate], rank: list[str]) -> None:
    """Strong-vs-weak: score = position from the bottom of `rank` (unknown teachers unscored)."""
    n = len(rank)
    for c in cands:
        c.score = float(n - rank.index(c.teacher)) if c.teacher in rank else None


def build_pair(prompt: list[dict], chosen: Candidate, rejected: Candidate, margin: float, *,
               bucket: str | None, source: dict, prompt_id: str, mode: str,
               lineage: list[dict]) -> dict[str, Any]:
    return {
        "id": stable_id("preferences", prompt_id, chosen.record.get("id"), rejected.record.get("id")),
        "kind": "preference",
        "messages": copy.deepcopy(prompt),
        "chosen": {"role": "assistant", "content": chosen.answer},
        "rejected": {"role": "assistant", "content": rejected.answer},
        **({"bucket": bucket} if bucket else {}),
        "source": source,
        "lineage": lineage,
        "scores": {"preference": {"mode": mode, "margin": round(margin, 4), "chosen": chosen.score,
                                  "rejected": rejected.score}},
        "labels": {"prompt_id": prompt_id, "chosen_teacher": chosen.teacher, "rejected_teacher": rejected.teacher},
    }


def dpo_to_sft(pair: dict, identity_prompt: str, system_mode: str = "replace") -> dict[str, Any]:
    """prompt + chosen as an SFT conversation; the identity system prompt is injected when missing
    (inject) or always replaces the pair's own system prompt (replace)."""
    msgs = copy.deepcopy(pair.get("messages") or [])
    has_system = bool(msgs) and msgs[0].get("role") == "system"
    if identity_prompt:
        if has_system and system_mode == "replace":
            msgs[0] = {"role": "system", "content": identity_prompt}
        elif not has_system:
            msgs.insert(0, {"role": "system", "content": identity_prompt})
    msgs.append({"role": "assistant", "content": (pair.get("chosen") or {}).get("content", "")})
    out = {k: copy.deepcopy(v) for k, v in pair.items() if k not in ("chosen", "rejected", "messages", "id")}
    out["id"] = stable_id("dpo_to_sft", pair.get("id"))
    out["kind"] = "sft"
    out["messages"] = msgs
    out.setdefault("lineage", []).append({"stage": "preferences", "step": "dpo_to_sft", "from": pair.get("id"),
                                          "system_mode": system_mode})
    out.setdefault("labels", {})["derived_from"] = "dpo"
    return out
