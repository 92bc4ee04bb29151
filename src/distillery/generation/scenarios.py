"""scenarios: ideas per category -> a realistic context document (memo, email, report)
for each idea -> a response showing the traits named in params -> the judge scores each trait.

Every step is an engine call, so every step is cached: a rerun after a crash resumes where it
stopped without paying again. Each record keeps the lineage of all four steps.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.io import AtomicWriter
from ..core.quarantine import Quarantine, StageCounter
from ..core.records import stable_id
from .common import gen_with_seed, lineage_entry, summary
from .config import ScenariosParams
from .judge import JudgeCall, parse_scores, run_with_retries
from .templates import load_template

STAGE = "scenarios"
_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*\u2022])\s+(.*\S)\s*$")


def parse_ideas(text: str, n: int) -> list[str]:
    """Up to n ideas from a numbered or bulleted list (plain non-empty lines if there is no list)."""
    lines = (text or "").splitlines()
    items = [m.group(1).strip() for m in map(_ITEM.match, lines) if m]
    if not items:
        items = [ln.strip() for ln in lines if len(ln.split()) >= 3]
    seen, out = set(), []
    for it in items:
        key = it.lower()
        if key not in seen:
            seen.add(key)
            out.append(it.strip("*\" "))
    return out[:n]


@dataclass
class Scenario:
    category: str
    idea: str
    doc_type: str
    lineage: list[dict] = field(default_factory=list)
    document: str = ""
    response: str = ""
    traits: dict[str, float] | None = None
    reason: str = ""
    detail: str = ""

    @property
    def id(self) -> str:
        return stable_id(STAGE, self.category, self.idea, self.doc_type)


def _failed(res: Any) -> str:
    if not res.ok and res.error != "truncated":
        return "teacher_failed"
    if not (res.text or "").strip():
        return "empty_response"
    return ""


def run_scenarios(params: Any, output: str | Path, engine: Any, *, counter: StageCounter | None = None) -> dict[str, Any]:
    from ..llm import ChatRequest

    p: ScenariosParams = params.synthesize.scenarios
    seed = params.project.seed
    key = "synthesize.scenarios"
    idea_t, doc_t = p.idea_teacher or p.teacher, p.document_teacher or p.teacher
    for t in (p.teacher, idea_t, doc_t):
        params.llm.teacher(t)
    t_idea = load_template(p.idea_template, f"{key}.idea_template")
    t_doc = load_template(p.document_template, f"{key}.document_template")
    t_sys = load_template(p.response_system_template, f"{key}.response_system_template")
    t_resp = load_template(p.response_template, f"{key}.response_template")
    g_idea, g_doc, g_resp = (gen_with_seed(g.as_gen(), seed) for g in (p.idea_gen, p.document_gen, p.response_gen))
    counter = counter if counter is not None else StageCounter()
    early: list[tuple[str, dict]] = []

    # 1. ideas
    reqs = [ChatRequest(teacher=idea_t, gen=g_idea, tag=f"scenarios:ideas:{c}", messages=[
        {"role": "user", "content": t_idea.render(category=c, n=p.ideas_per_category, traits=p.traits)}])
        for c in p.categories]
    scen: list[Scenario] = []
    for ci, (cat, res) in enumerate(zip(p.categories, engine.run(reqs))):
        step = lineage_entry(STAGE, res, g_idea, (t_idea,), role="ideas", llm=params.llm)
        ideas = parse_ideas(res.text or "", p.ideas_per_category) if res.ok or res.text else []
        if not ideas:
            early.append(("no_ideas", {"category": cat, "lineage": [step], "text": res.text}))
            continue
        for ii, idea in enumerate(ideas):
            scen.append(Scenario(cat, idea, p.doc_types[(ci + ii) % len(p.doc_types)], [step]))
    counter.records_in = len(scen) + len(early)

    # 2. documents
    live = scen
    reqs = [ChatRequest(teacher=doc_t, gen=g_doc, tag=f"scenarios:doc:{s.id}", messages=[
        {"role": "user", "content": t_doc.render(idea=s.idea, category=s.category, doc_type=s.doc_type)}]) for s in live]
    for s, res in zip(live, engine.run(reqs)):
        s.lineage.append(lineage_entry(STAGE, res, g_doc, (t_doc,), role="document", llm=params.llm))
        s.reason = _failed(res)
        s.document = (res.text or "").strip()
        if not s.reason and len(s.document.split()) < p.min_document_words:
            s.reason, s.detail = "document_too_short", f"{len(s.document.split())} words"

    # 3. responses
    system = t_sys.render(traits=p.traits)
    live = [s for s in scen if not s.reason]

    def resp_messages(s: Scenario) -> list[dict]:
        return [{"role": "system", "content": system},
                {"role": "user", "content": t_resp.render(document=s.document, doc_type=s.doc_type, idea=s.idea)}]
    reqs = [ChatRequest(teacher=p.teacher, gen=g_resp, tag=f"scenarios:response:{s.id}", messages=resp_messages(s))
            for s in live]
    for s, res in zip(live, engine.run(reqs)):
        s.lineage.append(lineage_entry(STAGE, res, g_resp, (t_sys, t_resp), role="answer", llm=params.llm))
        s.reason = _failed(res)
        if not s.reason and (res.truncated or res.finish_reason == "length"):
            s.reason = "truncated_response"
        s.response = (res.text or "").strip()
        if not s.reason and len(s.response.split()) < p.min_response_words:
            s.reason, s.detail = "response_too_short", f"{len(s.response.split())} words"

    # 4. trait check
    tc = p.trait_check
    trait_scores: dict[str, list[float]] = {t: [] for t in p.traits}
    if tc.enabled:
        live = [s for s in scen if not s.reason]
        t_judge = load_template(tc.template, f"{key}.trait_check.template")
        judge_t = tc.teacher or params.score.judge.teachers[0]
        params.llm.teacher(judge_t)
        g_judge = gen_with_seed(tc.gen.as_gen(), seed)
        calls = [JudgeCall(key=s.id, messages=[{"role": "user", "content": t_judge.render(
            traits=p.traits, document=s.document, response=s.response)}]) for s in live]

        def ask(cs):
            return engine.run([ChatRequest(teacher=judge_t, gen=g_judge, tag=f"scenarios:traits:{c.key}",
                                           messages=c.messages) for c in cs])
        run_with_retries(calls, ask, lambda t: parse_scores(t, list(p.traits)), params.score.judge.parse_retries)
        for s, c in zip(live, calls):
            s.lineage.extend(lineage_entry(STAGE, r, g_judge, (t_judge,), role="judge", llm=params.llm, attempt=n + 1)
                             for n, r in enumerate(c.results))
            if c.scores is None:
                if tc.on_parse_failure == "quarantine":
                    s.reason, s.detail = "trait_check_unparsed", c.reason
                continue
            s.traits = {t: c.scores[t] for t in p.traits}
            for t, v in s.traits.items():
                trait_scores[t].append(v)
            missing = [t for t, v in s.traits.items() if v < tc.min_score]
            if missing:
                s.reason, s.detail = "trait_missing", ", ".join(missing)

    out = Path(output)
    with Quarantine(out / "quarantine.jsonl", STAGE, counter) as q, AtomicWriter(out / "records.jsonl") as w:
        for reason, data in early:
            q.reject(reason, data)
        for i, s in enumerate(scen):
            rec = {"id": s.id, "kind": "sft",
                   "messages": resp_messages(s) + [{"role": "assistant", "content": s.response}],
                   "bucket": p.bucket, "source": {"dataset": "synth/scenarios", "row": i},
                   "lineage": s.lineage, "scores": {"traits": s.traits} if s.traits else {},
                   "labels": {"category": s.category, "doc_type": s.doc_type, "idea": s.idea}}
            if s.reason:
                q.reject(s.reason, rec, detail=s.detail)
                continue
            counter.records_out += 1
            w.write_record(rec)
    m = counter.as_metrics()
    m["traits"] = {t: summary(v) for t, v in trait_scores.items()}
    return m

