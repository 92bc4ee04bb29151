"""preferences: DPO pairs from several answers to the same prompt, plus DPO->SFT.

Answers are grouped by `labels.prompt_id` (set by distill). They are ranked by the judge
(pointwise overall score, or pairwise wins with both orders asked), or by teacher strength
(`teacher_rank`). A prompt gives up to `pairs_per_prompt` pairs (0 = every pair over `min_margin`);
a prompt with none (ties, identical answers, too few answers, chosen answers that leak a forbidden
identity) is quarantined once. The accounting unit is the prompt: records_in = prompts (+ passed-through
preferences), records_out = prompts paired (+ passed through); `outputs.pairs` counts the pairs. Every
pair (and passed-through preference) also yields an SFT record, once per chosen answer: prompt +
chosen with the identity system prompt from score.identity.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from ..core.io import AtomicWriter
from ..core.quarantine import Quarantine, StageCounter
from ..core.records import prompt_messages, response_text
from .common import JudgeStats, read_records
from .config import PreferencesParams
from .heuristics import find_identity_leak, identity_leak_pattern, record_teacher
from .judge import Judge, record_prompt_answer
from .pairs import Candidate, build_pair, dpo_to_sft, pick_pairs, teacher_rank_scores

STAGE = "preferences"


def _as_rejected(step: dict) -> dict:
    return {**step, "role": "rejected"}


def _score_groups(groups: list[list[Candidate]], p: PreferencesParams, judge: Judge | None,
                  judge_lineage: dict[str, list[dict]]) -> Counter:
    """Fill Candidate.score for every group; returns judge outcome counts."""
    outcome: Counter[str] = Counter()
    if p.mode == "teacher_rank":
        for g in groups:
            teacher_rank_scores(g, p.teacher_rank)
        return outcome
    assert judge is not None
    if p.mode == "judge":
        items, owners = [], []
        for g in groups:
            for c in g:
                prompt, answer = record_prompt_answer(c.record)
                items.append((c.record["id"], prompt, answer, record_teacher(c.record)))
                owners.append(c)
        for c, v in zip(owners, judge.score(items)):
            c.score = v.scores["overall"] if v.scores else None
            outcome["scored" if v.scores else v.reason] += 1
            judge_lineage[c.record["id"]] = v.lineage or []
            if v.scores:
                c.record.setdefault("scores", {})["judge"] = {**v.scores, "judge": v.judge}
        return outcome
    # pairwise: every pair within a group, both orders; score = wins
    items, refs = [], []
    for g in groups:
        for c in g:
            c.score = 0.0
        for x, y in itertools.combinations(g, 2):
            prompt, _ = record_prompt_answer(x.record)
            items.append(((x.record["id"], y.record["id"]), prompt, x.answer, y.answer,
                          record_teacher(x.record), record_teacher(y.record)))
            refs.append((g, x, y))
    for (g, x, y), v in zip(refs, judge.compare(items) if items else []):
        outcome["compared" if v.scores else v.reason] += 1
        if v.scores is None:
            for c in g:
                c.score = None
            continue
        if x.score is not None and y.score is not None:
            x.score += v.scores["x"]
            y.score += v.scores["y"]
        for c in (x, y):
            judge_lineage.setdefault(c.record["id"], []).extend(v.lineage or [])
    return outcome


def run_preferences(params: Any, inputs: list[str | Path], output: str | Path, engine: Any, *,
                    counter: StageCounter | None = None) -> dict[str, Any]:
    p: PreferencesParams = params.preferences
    identity = params.score.identity
    leak = identity_leak_pattern(identity)
    out = Path(output)
    judge = None
    if p.mode in ("judge", "pairwise"):
        judge = Judge(engine, params.score.judge, params.llm, params.project.seed, STAGE)
    counter = counter if counter is not None else StageCounter()
    counts: Counter[str] = Counter()
    stats = JudgeStats()
    with Quarantine(out / "quarantine.jsonl", STAGE, counter) as q, AtomicWriter(out / "records.jsonl") as w:
        groups: dict[str, list[dict]] = defaultdict(list)
        passthrough: list[dict] = []
        scanned = StageCounter()
        for rec in read_records(inputs, q, scanned, params.project.max_line_bytes):
            if rec.get("kind") == "preference":
                passthrough.append(rec)
            else:
                pid = (rec.get("labels") or {}).get("prompt_id")
                if pid and response_text(rec).strip():
                    groups[pid].append(rec)
                else:
                    counter.records_in += 1
                    q.reject("no_prompt_id", rec)
        ordered = [groups[k] for k in sorted(groups)]
        cand_groups = [[Candidate(r, response_text(r), record_teacher(r)[0], None)
                        for r in sorted(g, key=lambda r: r["id"])] for g in ordered]
        judge_lineage: dict[str, list[dict]] = {}
        judge_calls = _score_groups([g for g in cand_groups if len(g) >= 2], p, judge, judge_lineage)
        counter.records_in += len(cand_groups) + len(passthrough)
        for g in cand_groups:
            for c in g:
                if c.score is not None and c.record.get("scores", {}).get("judge"):
                    stats.add(c.record["scores"]["judge"], c.teacher, c.record.get("bucket"))
            picked = pick_pairs(g, p.min_margin, limit=0)
            first = g[0].record
            if isinstance(picked, str):
                q.reject(picked, first, prompt_id=first["labels"]["prompt_id"],
                         answers=[{"teacher": c.teacher, "score": c.score, "id": c.record["id"]} for c in g])
                continue
            # a chosen answer that leaks a forbidden identity never becomes a pair
            leaks = {id(c): find_identity_leak(c.answer, leak) for c, _, _ in picked}
            clean = [x for x in picked if not leaks[id(x[0])]][:p.pairs_per_prompt or None]
            if not clean:
                q.reject("identity_leak", picked[0][0].record, detail=leaks[id(picked[0][0])])
                continue
            counter.records_out += 1          # the group (one prompt) paired; outputs.pairs counts its pairs
            sft_done: set[str] = set()
            for chosen, rejected, margin in clean:
                pair = _pair(chosen, rejected, margin, p, judge_lineage)
                _write(pair, p, identity, w, counts, sft=chosen.record["id"] not in sft_done)
                sft_done.add(chosen.record["id"])
        for rec in passthrough:
            counts["passed_through"] += 1
            counter.records_out += 1
            _write(rec, p, identity, w, counts, count_pair=False)
    m = counter.as_metrics()
    # records_out counts prompts paired; the pairs written are the headline a user looks for
    m.update({"input_records": scanned.records_in, "groups": len(cand_groups), "pairs": counts["pairs"],
              "outputs": dict(sorted(counts.items())),
              "judge": {**stats.as_metrics(), "calls": dict(sorted(judge_calls.items()))}, "mode": p.mode})
    return m


def _pair(chosen: Candidate, rejected: Candidate, margin: float, p: PreferencesParams,
          judge_lineage: dict[str, list[dict]]) -> dict:
    """The DPO record: the chosen answer's lineage, the rejected one's distill steps and both verdicts."""
    rej_steps = [_as_rejected(s) for s in rejected.record.get("lineage") or [] if s.get("stage") == "distill"]
    lineage = (list(chosen.record.get("lineage") or []) + rej_steps
               + judge_lineage.get(chosen.record["id"], []) + judge_lineage.get(rejected.record["id"], [])
               + [{"stage": STAGE, "mode": p.mode, "margin": round(margin, 4), "min_margin": p.min_margin}])
    return build_pair(prompt_messages(chosen.record), chosen, rejected, margin,
                      bucket=chosen.record.get("bucket"), source=chosen.record.get("source") or {},
                      prompt_id=chosen.record["labels"]["prompt_id"], mode=p.mode, lineage=lineage)


def _write(pair: dict, p: PreferencesParams, identity, w: AtomicWriter, counts: Counter,
           count_pair: bool = True, sft: bool = True) -> None:
    """The pair, and its SFT twin (prompt + chosen) once per chosen answer."""
    w.write_record(pair)
    if count_pair:
        counts["pairs"] += 1
    if sft and p.dpo_to_sft.enabled:
        w.write_record(dpo_to_sft(pair, identity.system_prompt, p.dpo_to_sft.system_mode))
        counts["sft_from_dpo"] += 1
