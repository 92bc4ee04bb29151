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

from ..core.io import AtomicWriter
from ..core.quarantine import Quarantine, StageCounter
from ..core.records import check_roles, stable_id
from .common import gen_with_seed, lineage_entry
from .config import MultiturnParams
from .judge import find_json_objects
from .routing import unit_hash
from .templates import load_template

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


def _check_turn(res: Any) -> tuple[str, str]:
    if not res.ok and res.error != "truncated":
        return "teacher_failed", f"{res.error}: {res.detail or ''}"
    if res.truncated or res.finish_reason == "length":
        return "truncated_turn", "hit max_tokens"
    if not (res.text or "").strip():
        return "empty_turn", ""
    return "", ""


def run_multiturn(params: Any, output: str | Path, engine: Any, *, counter: StageCounter | None = None) -> dict[str, Any]:
    from ..llm import ChatRequest

    p: MultiturnParams = params.synthesize.multiturn
    seed = params.project.seed
    out = Path(output)
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
        reqs = [ChatRequest(teacher=user_teacher, gen=ugen, tag=f"multiturn:{c.id}:user{turn}", messages=[
            {"role": "user", "content": user_tpl.render(persona=c.persona, flow=c.flow, flow_description=p.flows[c.flow],
                                                        topic=c.topic, turn=turn, turns=c.turns,
                                                        transcript=c.messages)}]) for c in active]
        for c, res in zip(active, engine.run(reqs)):
            c.lineage.append(lineage_entry(STAGE, res, ugen, (user_tpl,), role="user_sim", llm=params.llm, turn=turn))
            c.reason, c.detail = _check_turn(res)
            if not c.reason:
                text = clean_user_turn(res.text)
                if not text:
                    c.reason = "empty_turn"
                c.messages.append({"role": "user", "content": text})
        active = [c for c in active if not c.reason]
        reqs = [ChatRequest(teacher=p.teacher, gen=agen, tag=f"multiturn:{c.id}:assistant{turn}",
                            messages=([{"role": "system", "content": systems[c.id]}] if systems[c.id] else [])
                            + c.messages) for c in active]
        for c, res in zip(active, engine.run(reqs)):
            c.lineage.append(lineage_entry(STAGE, res, agen, (sys_tpl,), role="answer", llm=params.llm, turn=turn))
            c.reason, c.detail = _check_turn(res)
            if not c.reason:
                c.messages.append({"role": "assistant", "content": res.text.strip()})

    if p.persona_judge:
        _persona_check([c for c in convs if not c.reason], p, params, engine)

    counter = counter if counter is not None else StageCounter()
    counter.records_in = len(convs)
    turns_hist: Counter[int] = Counter()
    with Quarantine(out / "quarantine.jsonl", STAGE, counter) as q, AtomicWriter(out / "records.jsonl") as w:
        for c in convs:
            if not c.reason:
                c.reason, c.detail = validate(c, p)
            rec = {"id": c.id, "kind": "sft",
                   "messages": ([{"role": "system", "content": systems[c.id]}] if systems[c.id] else []) + c.messages,
                   "bucket": p.bucket, "source": {"dataset": "synth/multiturn", "row": c.index},
                   "lineage": c.lineage, "scores": {},
                   "labels": {"persona": c.persona, "flow": c.flow, "topic": c.topic, "turns": c.turns}}
            if c.reason:
                q.reject(c.reason, rec, detail=c.detail)
                continue
            turns_hist[c.turns] += 1
            counter.records_out += 1
            w.write_record(rec)
    m = counter.as_metrics()
    m["turns"] = {str(k): v for k, v in sorted(turns_hist.items())}
    return m


def _persona_check(convs: list[Conversation], p: MultiturnParams, params: Any, engine: Any) -> None:
    """The judge reads the user turns and says whether they keep the persona; inconsistent ones fail."""
    from ..llm import ChatRequest

    tpl = load_template(p.persona_template, "synthesize.multiturn.persona_template")
    judge_t = params.score.judge.teachers[0]
    gen = gen_with_seed(params.score.judge.gen.as_gen(), params.project.seed)
    reqs = [ChatRequest(teacher=judge_t, gen=gen, tag=f"multiturn:{c.id}:persona", messages=[
        {"role": "user", "content": tpl.render(persona=c.persona,
                                               user_turns=[m["content"] for m in c.messages if m["role"] == "user"])}])
            for c in convs]
    for c, res in zip(convs, engine.run(reqs) if reqs else []):
        c.lineage.append(lineage_entry(STAGE, res, gen, (tpl,), role="judge", llm=params.llm))
        objs = find_json_objects(res.text or "")
        verdict = objs[0].get("consistent") if objs else None
        if verdict is None:
            c.reason, c.detail = "persona_unjudged", (res.text or "")[:200]
        elif verdict is False or str(verdict).lower() == "false":
            c.reason, c.detail = "persona_inconsistent", (res.text or "")[:200]
