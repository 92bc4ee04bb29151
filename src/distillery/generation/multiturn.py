"""multiturn: conversations of N turns from personas x flow types, generated turn by turn.

Each turn is a user-simulator call followed by an assistant call, batched across conversations.
The number of turns is fixed before generation (from params), so a conversation has exactly that
many turns by construction; no model ever returns a whole conversation as JSON to be parsed.
A failed, empty or truncated turn ends its conversation in the quarantine with the reason.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.quarantine import StageCounter
from ..core.records import check_roles, stable_id
from ..llm import ChatRequest, ChatResult
from .common import gen_with_seed
from .config import MultiturnParams
from .judge import find_json_objects
from .routing import unit_hash
from .step import RedrawnStep, Reject, Resend, Sink, Step, classify, run_step
from .templates import Template, load_template

STAGE = "multiturn"
_PREFIX = re.compile(r"^\s*(?:\*\*)?(?:user|human|me|message(?: \d+)?)(?:\*\*)?\s*[:\-]\s*", re.I)


@dataclass
class Conversation:
    index: int
    id: str
    persona: str
    flow: str
    topic: str
    turns: int
    messages: list[dict] = field(default_factory=list)   # user/assistant only
    lineage: list[dict] = field(default_factory=list)
    reason: str = ""
    detail: str = ""


def plan(p: MultiturnParams, seed: int) -> list[Conversation]:
    """Which persona, flow, topic and turn count each conversation gets: every persona x flow
    combination once (in a seeded order) before any repeats; turn counts spread over the range."""
    combos = sorted(itertools.product(p.personas, p.flows),
                    key=lambda c: unit_hash(seed, "multiturn-combo", c[0], c[1]))
    span = p.max_turns - p.min_turns + 1
    out = []
    for i in range(p.conversations):
        persona, flow = combos[i % len(combos)]
        cid = stable_id(STAGE, seed, i, persona, flow)
        topic = p.topics[int(unit_hash(seed, "topic", cid) * len(p.topics))] if p.topics else ""
        turns = p.min_turns + (i + int(unit_hash(seed, "turns", cid) * span)) % span
        out.append(Conversation(i, cid, persona, flow, topic, turns))
    return out


def clean_user_turn(text: str) -> str:
    """The simulator's message without role prefixes or wrapping quotes."""
    t = _PREFIX.sub("", (text or "").strip())
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'":
        t = t[1:-1]
    return t.strip()


def validate(conv: Conversation, p: MultiturnParams) -> tuple[str, str]:
    """Reason code and detail for a finished conversation ('' when it is good)."""
    if len(conv.messages) != 2 * conv.turns:
        return "wrong_turn_count", f"{len(conv.messages) // 2} turns, planned {conv.turns}"
    reason = check_roles("sft", conv.messages)
    if reason:
        return reason, ""
    for i, m in enumerate(conv.messages):
        n = len(m["content"].split())
        if n < p.min_words:
            return "turn_too_short", f"message {i + 1}: {n} words < {p.min_words}"
        if n > p.max_words:
            return "turn_too_long", f"message {i + 1}: {n} words > {p.max_words}"
    answers = "\n".join(m["content"] for m in conv.messages if m["role"] == "assistant")
    for pat in p.required_patterns:
        if not re.search(pat, answers, re.I | re.M):
            return "missing_required_pattern", pat
    return "", ""


class _TurnStep(RedrawnStep[Conversation]):
    """One turn's call for every live conversation: a looping sampled answer is redrawn
    (`resample_truncated`), then a failed, empty or still truncated answer ends the conversation."""

    stage = STAGE

    def __init__(self, teacher: str, gen: dict, templates: tuple[Template, ...], llm: Any, turn: int,
                 redraws: int = 0):
        self.teacher, self.gen, self.templates, self.llm, self.turn = teacher, gen, templates, llm, turn
        self.tpls, self.redraws = templates, redraws

    def lineage_extra(self, item: Conversation) -> dict[str, Any]:
        return {"turn": self.turn}

    def answer(self, c: Conversation, results: list[ChatResult]) -> str | Reject | Resend:
        res = results[-1]
        return (self.redraw(c, results) or classify(res, empty="empty_turn", truncated="truncated_turn")
                or (res.text or ""))


class UserTurn(_TurnStep):
    """The user simulator writes the next user message (persona, flow, topic, transcript so far)."""

    role = "user_sim"

    def __init__(self, *a: Any, p: MultiturnParams):
        super().__init__(*a)
        self.p = p

    def prompt(self, c: Conversation) -> ChatRequest:
        return ChatRequest(teacher=self.teacher, gen=self.gen, tag=f"multiturn:{c.id}:user{self.turn}", messages=[
            {"role": "user", "content": self.tpls[0].render(
                persona=c.persona, flow=c.flow, flow_description=self.p.flows[c.flow], topic=c.topic,
                turn=self.turn, turns=c.turns, transcript=c.messages)}])

    def parse(self, c: Conversation, results: list[ChatResult]) -> Conversation | Reject | Resend:
        text = self.answer(c, results)
        if not isinstance(text, str):
            return text
        text = clean_user_turn(text)
        c.messages.append({"role": "user", "content": text})
        return c if text else Reject("empty_turn")


class AssistantTurn(_TurnStep):
    """The assistant answers the conversation so far (its system prompt first, when there is one)."""

    def __init__(self, *a: Any, systems: dict[str, str]):
        super().__init__(*a)
        self.systems = systems

    def prompt(self, c: Conversation) -> ChatRequest:
        system = self.systems[c.id]
        return ChatRequest(teacher=self.teacher, gen=self.gen, tag=f"multiturn:{c.id}:assistant{self.turn}",
                           messages=([{"role": "system", "content": system}] if system else []) + c.messages)

    def parse(self, c: Conversation, results: list[ChatResult]) -> Conversation | Reject | Resend:
        text = self.answer(c, results)
        if not isinstance(text, str):
            return text
        c.messages.append({"role": "assistant", "content": text.strip()})
        return c


def _advance(step: Step[Conversation], convs: list[Conversation], engine: Any) -> None:
    for c, v in run_step(step, convs, engine):
        if isinstance(v, Reject):
            c.reason, c.detail = v.reason, v.detail


def run_multiturn(params: Any, output: str | Path, engine: Any, *,
                  counter: StageCounter | None = None) -> dict[str, Any]:
    """Every turn is two steps through the runner (user simulator, then assistant) over the live
    conversations; then the persona check and the validation; each conversation ends as one record
    or one quarantine entry."""
    p: MultiturnParams = params.synthesize.multiturn
    seed = params.project.seed
    user_teacher = p.user_teacher or p.teacher
    for t in (p.teacher, user_teacher):
        params.llm.teacher(t)
    user_tpl = load_template(p.user_template, "synthesize.multiturn.user_template")
    sys_tpl = load_template(p.assistant_system_template, "synthesize.multiturn.assistant_system_template")
    identity = params.score.identity.system_prompt
    ugen = gen_with_seed(p.user_gen.as_gen(), seed)
    agen = gen_with_seed(p.assistant_gen.as_gen(), seed)
    convs = plan(p, seed)
    systems = {c.id: sys_tpl.render(identity=identity, persona=c.persona, flow=c.flow, topic=c.topic) for c in convs}

    for turn in range(1, p.max_turns + 1):
        active = [c for c in convs if not c.reason and c.turns >= turn]
        if not active:
            break
        _advance(UserTurn(user_teacher, ugen, (user_tpl,), params.llm, turn, p.resample_truncated, p=p), active, engine)
        _advance(AssistantTurn(p.teacher, agen, (sys_tpl,), params.llm, turn, p.resample_truncated, systems=systems),
                 [c for c in active if not c.reason], engine)

    if p.persona_judge:
        _persona_check([c for c in convs if not c.reason], p, params, engine)

    counter = counter if counter is not None else StageCounter()
    turns_hist: Counter[int] = Counter()
    with Sink(output, STAGE, counter) as sink:
        for c in convs:
            if not c.reason:
                c.reason, c.detail = validate(c, p)
            rec = {"id": c.id, "kind": "sft",
                   "messages": ([{"role": "system", "content": systems[c.id]}] if systems[c.id] else []) + c.messages,
                   "bucket": p.bucket, "source": {"dataset": "synth/multiturn", "row": c.index},
                   "lineage": c.lineage, "scores": {},
                   "labels": {"persona": c.persona, "flow": c.flow, "topic": c.topic, "turns": c.turns}}
            if sink.settle(rec, Reject(c.reason, c.detail) if c.reason else c):
                turns_hist[c.turns] += 1
    m = counter.as_metrics()
    m["turns"] = {str(k): v for k, v in sorted(turns_hist.items())}
    return m


class PersonaCheck(Step[Conversation]):
    """The judge reads the user turns and says whether they keep the persona; inconsistent ones fail."""

    stage = STAGE
    role = "judge"

    def __init__(self, teacher: str, gen: dict, tpl: Template, llm: Any):
        self.teacher, self.gen, self.templates, self.llm = teacher, gen, (tpl,), llm
        self.tpl = tpl

    def prompt(self, c: Conversation) -> ChatRequest:
        return ChatRequest(teacher=self.teacher, gen=self.gen, tag=f"multiturn:{c.id}:persona", messages=[
            {"role": "user", "content": self.tpl.render(
                persona=c.persona, user_turns=[m["content"] for m in c.messages if m["role"] == "user"])}])

    def parse(self, c: Conversation, results: list[ChatResult]) -> Conversation | Reject:
        text = results[-1].text or ""
        objs = find_json_objects(text)
        verdict = objs[0].get("consistent") if objs else None
        if verdict is None:
            return Reject("persona_unjudged", text[:200])
        if verdict is False or str(verdict).lower() == "false":
            return Reject("persona_inconsistent", text[:200])
        return c


def _persona_check(convs: list[Conversation], p: MultiturnParams, params: Any, engine: Any) -> None:
    """Run the persona check (the first score.judge teacher) over the finished conversations."""
    tpl = load_template(p.persona_template, "synthesize.multiturn.persona_template")
    gen = gen_with_seed(params.score.judge.gen.as_gen(), params.project.seed)
    _advance(PersonaCheck(params.score.judge.teachers[0], gen, tpl, params.llm), convs, engine)
