"""Completion-style few-shot prompts for base models: exemplar rotation, trimming of
run-on continuations, and detection of outputs that copy an exemplar.

The prompt string built here is the exact text sent (completion mode: no chat template, no
special tokens) and the exact text stored in the record's lineage.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ..core.quarantine import StageCounter
from ..core.records import stable_id
from ..core.text import dedup_key_text
from ..llm import ChatRequest, ChatResult
from .common import lineage_entry
from .routing import unit_hash
from .step import Reject, Sink, Step, classify, run_step
from .templates import Template


def pick_exemplars(pool: list[dict], k: int, record_id: str, seed: int) -> list[dict]:
    """k exemplars from the pool, chosen and ordered by a RNG seeded from (seed, record id)."""
    rng = random.Random(int(unit_hash(seed, "exemplars", record_id) * 2 ** 53))
    return rng.sample(pool, k)


def build_prompt(rendered: str) -> str:
    """The rendered template ends with the instruction; the answer starts on the next line."""
    return rendered.rstrip() + "\n"


def trim_completion(text: str, stops: list[str], exemplar_prompts: list[str], max_chars: int) -> tuple[str, bool]:
    """Cut a base model's continuation to the answer alone; returns (answer, was_trimmed).

    Cuts at the first stop sequence (in case the backend ignored it), at a line that starts a new
    exemplar-like prompt, and at max_chars (then back to the last sentence end).
    """
    out = text
    for s in stops:
        if s and s in out:
            out = out.split(s, 1)[0]
    lines = out.split("\n")
    starts = {dedup_key_text(p) for p in exemplar_prompts}
    for i, line in enumerate(lines):
        if i > 0 and dedup_key_text(line) in starts:
            lines = lines[:i]
            break
    out = "\n".join(lines)
    if len(out) > max_chars:
        cut = out[:max_chars]
        end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "), cut.rfind("\n"))
        out = cut[: end + 1] if end > max_chars // 3 else cut
    out = out.strip()
    return out, out != text.strip()


def _trigrams(text: str) -> set[tuple[str, ...]]:
    w = dedup_key_text(text).split()
    if len(w) < 3:
        return {tuple(w)} if w else set()
    return set(zip(w, w[1:], w[2:]))


def copied_exemplar(answer: str, exemplars: list[dict], threshold: float) -> str:
    """The exemplar prompt whose completion the answer copies ('' if none).

    Copy = the answer equals an exemplar completion (normalised) or at least `threshold` of the
    answer's word trigrams occur in one exemplar's completion (or prompt + completion).
    """
    a = dedup_key_text(answer)
    if not a:
        return ""
    grams = _trigrams(answer)
    for ex in exemplars:
        comp = dedup_key_text(ex["completion"])
        if a == comp or a == dedup_key_text(ex["prompt"]):
            return ex["prompt"]
        ref = _trigrams(ex["prompt"] + " " + ex["completion"])
        if grams and len(grams & ref) / len(grams) >= threshold:
            return ex["prompt"]
    return ""


def _why_not(rec: dict, max_words: int) -> str | None:
    from ..core.records import prompt_messages

    msgs = [m for m in prompt_messages(rec) if m.get("role") != "system"]
    if len(msgs) != 1 or msgs[0].get("role") != "user":
        return "not_single_turn"
    text = (msgs[0].get("content") or "").strip()
    if not text:
        return "empty_prompt"
    if len(text.split()) > max_words:
        return "instruction_too_long"
    if "\n\n" in text:
        return "multi_paragraph"   # a blank line would read as the end of the few-shot block
    return None


@dataclass
class Unit:
    """One instruction to complete: its record, exemplars and the exact prompt text sent."""

    rec: dict
    instruction: str
    exemplars: list[dict]
    prompt: str
    record: dict = field(default_factory=dict)
    lineage: list[dict] = field(default_factory=list)


class CompletionStep(Step[Unit]):
    """Send the few-shot text raw; trim the continuation; reject failures, too-short answers and copies."""

    stage = "completion"

    def __init__(self, p: Any, tpl: Template, gen: dict, pool: list[dict], llm: Any):
        self.p, self.templates, self.gen, self.pool, self.llm = p, (tpl,), gen, pool, llm
        self.copies = 0

    def prompt(self, u: Unit) -> ChatRequest:
        return ChatRequest(teacher=self.p.teacher, prompt=u.prompt, gen=self.gen, tag=f"completion:{u.rec['id']}")

    def lineage(self, u: Unit, results: list[ChatResult]) -> list[dict]:
        raw = results[-1].text or ""
        answer, trimmed = trim_completion(raw, self.p.gen.stop, [e["prompt"] for e in self.pool],
                                          self.p.max_answer_chars)
        return [lineage_entry(self.stage, results[-1], self.gen, self.templates, llm=self.llm,
                              exemplars=[e["prompt"] for e in u.exemplars], raw_completion=raw, trimmed=trimmed)]

    def parse(self, u: Unit, results: list[ChatResult]) -> Unit | Reject:
        res = results[-1]
        p = self.p
        answer, trimmed = trim_completion(res.text or "", p.gen.stop, [e["prompt"] for e in self.pool],
                                          p.max_answer_chars)
        u.record = {"id": stable_id("completion", u.rec["id"], p.teacher), "kind": "sft",
                    "messages": [{"role": "user", "content": u.instruction}, {"role": "assistant", "content": answer}],
                    **({"bucket": u.rec["bucket"]} if u.rec.get("bucket") else {}),
                    "source": u.rec.get("source") or {"dataset": "unknown"},
                    "lineage": list(u.rec.get("lineage") or []), "scores": {},
                    "labels": {"prompt_id": u.rec["id"], "teacher": p.teacher, "completion_style": True}}
        bad = classify(res, empty=None, truncated=None)   # a truncated run-on is trimmed, not rejected
        if bad:
            return bad
        if len(answer.split()) < max(1, p.min_answer_words):
            return Reject("empty_response" if not answer else "too_short")
        copied = copied_exemplar(answer, u.exemplars, p.copy_threshold)
        if copied:
            self.copies += 1
            return Reject("copies_exemplar", copied)
        # a run-on cut by trimming is a complete answer; an untrimmed cut at max_tokens is not
        u.record["labels"]["truncated"] = bool(res.truncated and not trimmed)
        return u

    def attach(self, u: Unit, entries: list[dict]) -> None:
        u.record["lineage"].extend(entries)


def run_completion(params, inputs, output, engine, *, counter: StageCounter | None = None) -> dict:
    """completion stage: few-shot completion prompts from ingested instructions, sent raw."""
    from collections import Counter
    from pathlib import Path

    from ..core.records import prompt_messages
    from .common import gen_with_seed, hash_sample, read_records
    from .templates import load_template

    p = params.synthesize.completion
    seed = params.project.seed
    params.llm.teacher(p.teacher)
    tpl = load_template(p.template, "synthesize.completion.template")
    pool = [e.model_dump() for e in p.exemplars]
    gen = gen_with_seed(p.gen.as_gen(), seed)
    out = Path(output)
    counter = counter if counter is not None else StageCounter()
    skipped: Counter = Counter()
    step = CompletionStep(p, tpl, gen, pool, params.llm)
    with Sink(out, "completion", counter) as sink:
        scanned = StageCounter()
        recs = hash_sample(read_records(inputs, sink.quarantine, scanned, params.project.max_line_bytes), p.sample,
                           seed, "completion-sample", lambda r: _why_not(r, p.max_instruction_words), skipped)
        units = []
        for rec in recs:
            ex = pick_exemplars(pool, p.shots, rec["id"], seed)
            instruction = [m for m in prompt_messages(rec) if m["role"] == "user"][0]["content"].strip()
            units.append(Unit(rec, instruction, ex, build_prompt(tpl.render(exemplars=ex, instruction=instruction))))
        for u, v in run_step(step, units, engine):
            sink.settle(u.record, v)
    m = counter.as_metrics()
    m.update({"input_records": scanned.records_in, "skipped": dict(sorted(skipped.items())),
              "copies_flagged": step.copies})
    return m
