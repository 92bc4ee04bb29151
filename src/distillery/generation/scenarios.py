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

from ..core.quarantine import StageCounter
from ..core.records import stable_id
from ..llm import ChatRequest, ChatResult
from .common import gen_with_seed, lineage_entry, summary
from .config import ScenariosParams
from .judge import JudgeCall, parse_scores, rubric_schema, run_with_retries
from .step import RedrawnStep, Reject, Resend, Sink, classify, run_step
from .templates import Template, load_template

STAGE = "scenarios"
_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*\u2022])\s+(.*\S)\s*$")
_INLINE_ITEM = re.compile(r"\s+(?=\d{1,2}[.)]\s+\S)")


def parse_ideas(text: str, n: int) -> list[str]:
    """Up to n ideas from a numbered or bulleted list (plain non-empty lines if there is no list). A
    list item that runs on into the next numbers ("1. A ... 2. B ...", as small models write) is
    split there."""
    lines = [part for ln in (text or "").splitlines()
             for part in (_INLINE_ITEM.split(ln) if _ITEM.match(ln) else [ln])]
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
    messages: list[dict] = field(default_factory=list)   # the response prompt as sent
    traits: dict[str, float] | None = None

    @property
    def id(self) -> str:
        return stable_id(STAGE, self.category, self.idea, self.doc_type)


@dataclass
class Category:
    index: int
    name: str
    ideas: list[str] = field(default_factory=list)
    text: str | None = None
    lineage: list[dict] = field(default_factory=list)


class _ScenarioStep(RedrawnStep[Any]):
    """What the scenario steps share: the stage, its params and templates (the response step redraws a
    looping answer, `resample_truncated`)."""

    stage = STAGE

    def __init__(self, p: ScenariosParams, teacher: str, gen: dict, templates: tuple[Template, ...], llm: Any):
        self.p, self.teacher, self.gen, self.templates, self.llm = p, teacher, gen, templates, llm
        self.tpls = templates

    def ask(self, tag: str, messages: list[dict]) -> ChatRequest:
        return ChatRequest(teacher=self.teacher, gen=self.gen, tag=f"scenarios:{tag}", messages=messages)


class IdeasStep(_ScenarioStep):
    """1. A list of scenario ideas per category."""

    role = "ideas"

    def prompt(self, item: Category) -> ChatRequest:
        return self.ask(f"ideas:{item.name}", [{"role": "user", "content": self.tpls[0].render(
            category=item.name, n=self.p.ideas_per_category, traits=self.p.traits)}])

    def parse(self, item: Category, results: list[ChatResult]) -> Category | Reject:
        res = results[-1]
        item.text = res.text
        item.ideas = parse_ideas(res.text or "", self.p.ideas_per_category) if res.ok or res.text else []
        return item if item.ideas else Reject("no_ideas", (classify(res) or Reject("")).detail)


class DocumentStep(_ScenarioStep):
    """2. A realistic context document (memo, email, report) for an idea."""

    role = "document"

    def prompt(self, item: Scenario) -> ChatRequest:
        return self.ask(f"doc:{item.id}", [{"role": "user", "content": self.tpls[0].render(
            idea=item.idea, category=item.category, doc_type=item.doc_type)}])

    def parse(self, item: Scenario, results: list[ChatResult]) -> Scenario | Reject:
        res = results[-1]
        item.document = (res.text or "").strip()
        bad = classify(res, truncated=None)
        if bad:
            return bad
        n = len(item.document.split())
        return Reject("document_too_short", f"{n} words") if n < self.p.min_document_words else item


class ResponseStep(_ScenarioStep):
    """3. The response that shows the traits, to the document (system prompt names the traits)."""

    def __init__(self, *a: Any, system: str):
        super().__init__(*a)
        self.system, self.redraws = system, self.p.resample_truncated

    def messages(self, item: Scenario) -> list[dict]:
        return [{"role": "system", "content": self.system},
                {"role": "user", "content": self.tpls[1].render(document=item.document, doc_type=item.doc_type,
                                                                     idea=item.idea)}]

    def prompt(self, item: Scenario) -> ChatRequest:
        item.messages = self.messages(item)
        return self.ask(f"response:{item.id}", item.messages)

    def parse(self, item: Scenario, results: list[ChatResult]) -> Scenario | Reject | Resend:
        res = results[-1]
        item.response = (res.text or "").strip()
        bad = self.redraw(item, results) or classify(res)
        if bad:
            return bad
        n = len(item.response.split())
        return Reject("response_too_short", f"{n} words") if n < self.p.min_response_words else item


def _trait_check(live: list[Scenario], p: ScenariosParams, params: Any, engine: Any,
                 trait_scores: dict[str, list[float]]) -> dict[str, Reject]:
    """4. The judge scores each trait; a trait under min_score fails. Like every judge call it goes
    guided when `score.judge.guided` (decoded under the traits' schema, so it always parses), and
    an unparseable free-text answer is re-asked."""
    tc = p.trait_check
    t_judge = load_template(tc.template, "synthesize.scenarios.trait_check.template")
    judge_t = tc.teacher or params.score.judge.teachers[0]
    params.llm.teacher(judge_t)
    g_judge = gen_with_seed(tc.gen.as_gen(), params.project.seed)
    schema = rubric_schema(list(p.traits), params.score.judge.guided_scores) if params.score.judge.guided else None
    calls: list[JudgeCall[dict[str, float]]] = [
        JudgeCall(key=s.id, teacher=judge_t, messages=[{"role": "user", "content": t_judge.render(
            traits=p.traits, document=s.document, response=s.response)}], enforced=schema is not None)
        for s in live]
    run_with_retries(calls, engine, lambda c: ChatRequest(teacher=judge_t, gen=g_judge, tag=f"scenarios:traits:{c.key}",
                                                          messages=c.messages, schema=schema),
                     lambda t: parse_scores(t, list(p.traits)), params.score.judge.parse_retries)
    rejects: dict[str, Reject] = {}
    for s, c in zip(live, calls):
        s.lineage.extend(lineage_entry(STAGE, r, g_judge, (t_judge,), role="judge", llm=params.llm, attempt=n + 1)
                         for n, r in enumerate(c.results))
        if c.scores is None:
            if tc.on_parse_failure == "quarantine":
                rejects[s.id] = Reject("trait_check_unparsed", c.reason)
            continue
        s.traits = {t: c.scores[t] for t in p.traits}
        for t, v in s.traits.items():
            trait_scores[t].append(v)
        missing = [t for t, v in s.traits.items() if v < tc.min_score]
        if missing:
            rejects[s.id] = Reject("trait_missing", ", ".join(missing))
    return rejects


def run_scenarios(params: Any, output: str | Path, engine: Any, *,
                  counter: StageCounter | None = None) -> dict[str, Any]:
    """ideas -> documents -> responses -> trait check, each a step through the runner; every idea ends
    as a record or a quarantine entry (a category with no ideas as one `no_ideas` entry)."""
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
    llm = params.llm

    rejects: dict[str, Reject] = {}
    scen: list[Scenario] = []
    empty: list[tuple[Category, Reject]] = []
    for cat, v in run_step(IdeasStep(p, idea_t, g_idea, (t_idea,), llm),
                           [Category(i, c) for i, c in enumerate(p.categories)], engine):
        if isinstance(v, Reject):
            empty.append((cat, v))
            continue
        scen.extend(Scenario(cat.name, idea, p.doc_types[(cat.index + ii) % len(p.doc_types)], list(cat.lineage))
                    for ii, idea in enumerate(cat.ideas))

    def live() -> list[Scenario]:
        return [s for s in scen if s.id not in rejects]

    responder = ResponseStep(p, p.teacher, g_resp, (t_sys, t_resp), llm, system=t_sys.render(traits=p.traits))
    for step in (DocumentStep(p, doc_t, g_doc, (t_doc,), llm), responder):
        for s, v in run_step(step, live(), engine):
            if isinstance(v, Reject):
                rejects[s.id] = v
    trait_scores: dict[str, list[float]] = {t: [] for t in p.traits}
    if p.trait_check.enabled:
        rejects.update(_trait_check(live(), p, params, engine, trait_scores))

    with Sink(output, STAGE, counter) as sink:
        for cat, rej in empty:
            sink.reject(Reject(rej.reason), {"category": cat.name, "lineage": cat.lineage, "text": cat.text})
        for i, s in enumerate(scen):
            rec = {"id": s.id, "kind": "sft",
                   "messages": (s.messages or responder.messages(s)) + [{"role": "assistant", "content": s.response}],
                   "bucket": p.bucket, "source": {"dataset": "synth/scenarios", "row": i},
                   "lineage": s.lineage, "scores": {"traits": s.traits} if s.traits else {},
                   "labels": {"category": s.category, "doc_type": s.doc_type, "idea": s.idea}}
            sink.settle(rec, rejects.get(s.id, s))
    m = counter.as_metrics()
    m["traits"] = {t: summary(v) for t, v in trait_scores.items()}
    return m
