"""Normalise a draft's text and decide whether it is usable: one reason code or None.

Every adapter's output passes through here, so the rules (NFC + whitespace, empty and
near-empty turns, placeholder answers, role order, size) are the same for every source.
"""

from __future__ import annotations

import re

from ..core.records import check_roles
from ..core.text import normalize_text
from .adapters import Draft
from .config import NormalizeParams


_ALNUM = re.compile(r"[^\W_]")  # a letter or digit in any script


def _enough_alnum(content: str, n: int) -> bool:
    """True once `n` letters/digits are seen (stops early: turns can be megabytes)."""
    if n <= 0:
        return True
    for i, _ in enumerate(_ALNUM.finditer(content), start=1):
        if i >= n:
            return True
    return False


def _turn_reason(content: str, rules: NormalizeParams, placeholders: frozenset[str]) -> str | None:
    if not content:
        return "empty_turn"
    if content.lower() in placeholders:
        return "placeholder_turn"
    if len(content) < rules.min_turn_chars or not _enough_alnum(content, rules.min_alnum_chars):
        return "near_empty_turn"
    return None


def _clean(msg: dict) -> dict:
    content = msg["content"]
    try:
        content.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("invalid_unicode") from None
    return {"role": msg["role"], "content": normalize_text(content)}


class Normalizer:
    """Applies `ingest.defaults` to drafts: `check(draft) -> reason | None` (draft edited in place)."""

    def __init__(self, rules: NormalizeParams):
        self.rules = rules
        self.placeholders = frozenset(p.strip().lower() for p in rules.placeholder_turns)

    def check(self, d: Draft) -> tuple[str, str] | None:
        try:
            d.messages = [m for m in map(_clean, d.messages) if m["role"] != "system" or m["content"]]
            if d.chosen is not None:
                d.chosen = _clean(d.chosen)
            if d.rejected is not None:
                d.rejected = _clean(d.rejected)
        except ValueError:
            return "invalid_unicode", "text holds lone surrogates (not encodable as UTF-8)"
        reason = check_roles(d.kind, d.messages, d.chosen, d.rejected)
        if reason:
            return reason, "roles: " + ",".join(m["role"] for m in d.messages)
        turns = [*d.messages, *(m for m in (d.chosen, d.rejected) if m is not None)]
        size = sum(len(m["content"]) for m in turns)
        if size > self.rules.max_record_chars:
            return "record_too_large", f"{size} chars > ingest.defaults.max_record_chars={self.rules.max_record_chars}"
        for i, m in enumerate(turns):
            reason = _turn_reason(m["content"], self.rules, self.placeholders)
            if reason:
                return reason, f"turn {i} ({m['role']}): {m['content'][:80]!r}"
        if d.kind == "preference" and d.chosen["content"] == d.rejected["content"]:
            return "chosen_equals_rejected", "chosen and rejected answers are identical"
        return None
