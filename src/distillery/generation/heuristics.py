"""Cheap checks that run on every record: empty/truncated/too short or long answers, repetition,
refusals, "as an AI language model", identity leaks, unbalanced code fences, required patterns.

`heuristic_flags` returns every flag that fired (kept in scores.heuristic for analysis); the first
one in CHECK_ORDER is the reject reason.
"""

from __future__ import annotations

import re
from typing import Any

from ..core.records import response_text
from .config import HeuristicParams, IdentityParams

REFUSAL = re.compile(
    r"^\W*(?:I'?m sorry,? but I can(?:no|')t|I (?:can(?:no|')t|won'?t|am unable to|'m unable to) "
    r"(?:help|assist|provide|comply|do that|fulfil)|I must (?:decline|refuse)|Sorry, I can(?:no|')t)", re.I)
AI_DISCLAIMER = re.compile(r"\bas an? (?:AI|artificial intelligence)(?: language)? model\b|"
                           r"\bI(?:'m| am) (?:just )?an? AI language model\b", re.I)
_SELF_CLAIM = (r"(?:\bI(?:'m| am| was)\b|\bmy name is\b|\bas an?\b|\b(?:built|created|developed|trained|made)"
               r" by\b|\bI(?:'m| am) (?:a |an )?(?:model|product|version) (?:of|from|by)\b)")

CHECK_ORDER = ("empty_response", "truncated", "too_short", "too_long", "repetition", "identity_leak",
               "ai_disclaimer", "refusal", "unbalanced_code_fence", "missing_required_pattern")


def identity_leak_pattern(identity: IdentityParams) -> re.Pattern | None:
    """A regex for the answer claiming to be (or be made by) a forbidden identity."""
    if not identity.check or not identity.forbidden:
        return None
    names = sorted({re.escape(n) for n in identity.forbidden if n.strip()}, key=len, reverse=True)
    if not names:
        return None
    own = re.escape(identity.name)
    return re.compile(rf"{_SELF_CLAIM}(?:(?!{own})[^.!?\n]){{0,40}}?\b(?:{'|'.join(names)})\b", re.I)


def find_identity_leak(text: str, pattern: re.Pattern | None) -> str:
    """The offending phrase, or '' (a denial like "I am NOT a GPT model" is not a leak)."""
    if pattern is None:
        return ""
    for m in pattern.finditer(text):
        phrase = m.group(0)
        if re.search(r"\b(?:not|n't|never|no)\b", phrase, re.I):
            continue
        return phrase
    return ""


def repeated_trigram_ratio(text: str) -> float:
    """Share of word trigrams that are repeats of an earlier trigram (0 = none, ->1 = a loop)."""
    return _repeated_share(text.lower().split())


def _repeated_share(words: list[str]) -> float:
    """`repeated_trigram_ratio` of the lower-cased words (split once for the word count too)."""
    if len(words) < 8:
        return 0.0
    total = len(words) - 2
    return (total - len(set(zip(words, words[1:], words[2:])))) / total


def is_truncated(rec: dict) -> bool:
    """True when the step that wrote the answer stopped at max_tokens (or a label says so)."""
    labels = rec.get("labels") or {}
    if "truncated" in labels:   # set by the stage that knows best (completion trims run-ons)
        return bool(labels["truncated"])
    for step in reversed(rec.get("lineage") or []):
        if "finish_reason" in step:
            return step.get("finish_reason") == "length"
    return False


def generated_by(rec: dict, stages: list[str] | tuple[str, ...]) -> str:
    """The generation stage in the record's lineage, or '' for human-written records."""
    for step in reversed(rec.get("lineage") or []):
        if step.get("stage") in stages:
            return step["stage"]
    return ""


def record_teacher(rec: dict) -> tuple[str, str]:
    """(teacher, model) that wrote the record's answer, from the last lineage step naming one."""
    for step in reversed(rec.get("lineage") or []):
        if step.get("teacher") and step.get("role", "answer") == "answer":
            return step["teacher"], step.get("model", "")
    return "", ""


class HeuristicScorer:
    """Compiled heuristics for one params set."""

    def __init__(self, params: HeuristicParams, identity: IdentityParams, generated_stages: list[str]):
        self.p = params
        self.leak = identity_leak_pattern(identity)
        # An ASCII answer can only match the leak pattern (case-insensitive) if it holds one of the names
        # in lower case: a substring test skips the slow regex scan for almost every record. Not for other
        # text: re.I also equates i with dotless ı, s with long ſ.
        names = [n.lower() for n in identity.forbidden if n.strip()]
        self.leak_names = tuple(names) if all(n.isascii() for n in names) else None
        self.generated_stages = tuple(generated_stages)
        self.required = [(re.compile(r.pattern, re.I | re.M), set(r.buckets), set(r.stages)) for r in params.required]

    def answers(self, rec: dict) -> list[str]:
        """Every assistant text of the record (all turns of a conversation, or the chosen answer)."""
        if rec.get("kind") == "preference":
            return [response_text(rec)]
        return [m.get("content") or "" for m in rec.get("messages") or [] if m.get("role") == "assistant"]

    def flags(self, rec: dict) -> dict[str, Any]:
        p = self.p
        answers = self.answers(rec)
        answer = response_text(rec)
        everything = "\n".join(answers)
        lower_words = answer.lower().split()   # as many as answer.split(): no character cases into a space
        words = len(lower_words)
        out: dict[str, Any] = {"words": words}
        if not answer.strip() or any(not a.strip() for a in answers):
            out["empty_response"] = True
        if p.reject_truncated and is_truncated(rec):
            out["truncated"] = True
        if words < p.min_response_words:
            out["too_short"] = True
        if words > p.max_response_words:
            out["too_long"] = True
        rep = _repeated_share(lower_words)
        out["repeated_trigram_ratio"] = round(rep, 4)
        if rep > p.max_repeated_trigram_ratio:
            out["repetition"] = True
        ascii_lower = everything.lower() if everything.isascii() else None
        if self.leak is not None and not (ascii_lower is not None and self.leak_names is not None
                                          and not any(n in ascii_lower for n in self.leak_names)):
            leak = find_identity_leak(everything, self.leak)
            if leak:
                out["identity_leak"] = leak[:120]
        # every AI_DISCLAIMER match ends with "model" (the same substring shortcut for ASCII text)
        if (p.reject_ai_disclaimer and (ascii_lower is None or "model" in ascii_lower)
                and AI_DISCLAIMER.search(everything)):
            out["ai_disclaimer"] = True
        if p.reject_refusals and rec.get("bucket") not in p.refusal_exempt_buckets and REFUSAL.search(answer):
            out["refusal"] = True
        if p.check_code_fences and any(a.count("```") % 2 for a in answers):
            out["unbalanced_code_fence"] = True
        if self.required:
            stage = generated_by(rec, self.generated_stages)
            for rx, buckets, stages in self.required:
                if buckets and rec.get("bucket") not in buckets:
                    continue
                if stages and stage not in stages:
                    continue
                if not rx.search(everything):
                    out["missing_required_pattern"] = rx.pattern
                    break
        return out

    @staticmethod
    def reason(flags: dict[str, Any]) -> str | None:
        for name in CHECK_ORDER:
            if flags.get(name):
                return name
        return None
