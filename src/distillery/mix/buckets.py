"""Give every record a bucket and label red-team records for safety.

Order of evidence: the record's own bucket (set at ingest) -> `buckets.source_defaults` for its
dataset -> the first matching rule -> the optional embedding classifier (applied in batches by the
caller, see `embed.py`) -> the default bucket. A record whose bucket is in `buckets.refine` (a
generic one such as instruction) is still offered to the rules and the classifier. Each rule's
patterns are compiled once into a single alternation: one regex scan per rule and record, and only
when the (ASCII) text holds one of the substrings a pattern cannot match without (`core.regex_prefilter`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core.records import prompt_messages, response_text
from ..core.regex_prefilter import Needles, may_match, required_substrings
from .config import BucketRule, BucketsParams

UNRESOLVED = None


@dataclass
class _CompiledRule:
    bucket: str
    text: str
    min_hits: int
    single: re.Pattern | None
    each: list[re.Pattern]
    needles: list[Needles]  # per pattern

    def matches(self, prompt: str, response: str) -> bool:
        text = prompt if self.text == "prompt" else response if self.text == "response" else f"{prompt}\n{response}"
        low = text.lower() if text.isascii() else None
        if self.single is not None:
            if low is not None and not any(may_match(low, n) for n in self.needles):
                return False
            return self.single.search(text) is not None
        return sum(1 for p, n in zip(self.each, self.needles)
                   if (low is None or may_match(low, n)) and p.search(text)) >= self.min_hits


def _compile(rule: BucketRule) -> _CompiledRule:
    flags = re.IGNORECASE | re.MULTILINE
    needles = [required_substrings(p, flags) for p in rule.patterns]
    if rule.min_hits == 1:
        joined = "|".join(f"(?:{p})" for p in rule.patterns)
        return _CompiledRule(rule.bucket, rule.text, 1, re.compile(joined, flags), [], needles)
    return _CompiledRule(rule.bucket, rule.text, rule.min_hits, None, [re.compile(p, flags) for p in rule.patterns],
                         needles)


def record_texts(rec: dict) -> tuple[str, str]:
    """(prompt text, answer text) of a record, the strings rules and embeddings look at."""
    prompt = "\n".join(m.get("content") or "" for m in prompt_messages(rec) if m.get("role") != "system")
    return prompt, response_text(rec)


class BucketAssigner:
    """Stateless per-record bucket decision (everything but the embedding fallback)."""

    def __init__(self, params: BucketsParams):
        self.params = params
        self.names = set(params.names)
        self.rules = [_compile(r) for r in params.rules]
        self.refusal = re.compile("|".join(f"(?:{p})" for p in params.refusal_cues), re.IGNORECASE) \
            if params.refusal_cues else None

    def by_rules(self, rec: dict) -> tuple[str | None, str]:
        """(bucket, how) from rules only; bucket None when no rule matched."""
        prompt, response = record_texts(rec)
        for i, rule in enumerate(self.rules):
            if rule.matches(prompt, response):
                return rule.bucket, f"rule[{i}]"
        return UNRESOLVED, ""

    def assign(self, rec: dict) -> tuple[str | None, str]:
        """(bucket, how): how is 'existing', 'source_default', 'rule[i]', 'refined:rule[i]' or ''
        when unresolved. A record whose existing bucket is in `refine` is re-examined by the rules;
        the caller may still refine it by embeddings (how == 'refine')."""
        current, how = None, ""
        if self.params.keep_existing and rec.get("bucket"):
            current, how = str(rec["bucket"]), "existing"
        else:
            dataset = (rec.get("source") or {}).get("dataset")
            if dataset and dataset in self.params.source_defaults:
                current, how = self.params.source_defaults[dataset], "source_default"
        if current is not None and current not in self.params.refine:
            return current, how
        bucket, rule = self.by_rules(rec)
        if bucket is not None:
            return bucket, rule if current is None else f"refined:{rule}"
        return (current, "refine") if current is not None else (UNRESOLVED, "")

    def safety_label(self, rec: dict) -> str:
        """'refusal' when the answer refuses (cue match), else 'unreviewed' (to be reviewed before training)."""
        answer = response_text(rec)
        return "refusal" if self.refusal is not None and self.refusal.search(answer) else "unreviewed"

    def finalize(self, rec: dict, bucket: str) -> dict:
        """Write the bucket (and the safety label for the safety bucket) onto the record."""
        rec["bucket"] = bucket
        if bucket == self.params.safety_bucket:
            labels = rec.setdefault("labels", {})
            labels.setdefault("safety", self.safety_label(rec))
        return rec
