"""The judge as a service over the engine: pointwise rubric scores for records and pairwise
comparisons in both orders, with judge selection that refuses self-judging unless allowed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .common import gen_with_seed, lineage_entry
from .config import JudgeParams
from .judge import (JudgeCall, combine_orders, pairwise_messages, parse_scores, parse_winner,
                    pointwise_messages, run_with_retries)
from .templates import load_template


@dataclass
class Verdict:
    scores: dict[str, float] | None
    reason: str            # '' when scored; a reason code otherwise
    judge: str = ""
    lineage: list[dict] | None = None


class Judge:
    def __init__(self, engine: Any, params: JudgeParams, llm: Any, seed: int, stage: str,
                 key: str = "score.judge"):
        self.engine = engine
        self.llm = llm
        self.models = {name: t.model for name, t in llm.teachers.items()}
        self.p = params
        self.stage = stage
        self.gen = gen_with_seed(params.gen.as_gen(), seed)
        self.system = load_template(params.system_template, f"{key}.system_template")
        self.pointwise = load_template(params.template, f"{key}.template")
        self._pairwise = None
        self._pairwise_key = f"{key}.pairwise_template"
        self.dims = list(params.dimensions)

    @property
    def pairwise(self):
        if self._pairwise is None:
            self._pairwise = load_template(self.p.pairwise_template, self._pairwise_key)
        return self._pairwise

    def pick(self, *authors: tuple[str, str]) -> str | None:
        """The first judge teacher that wrote none of the answers (by teacher name or model), or the
        first judge when self-judging is allowed; None = refused."""
        for j in self.p.teachers:
            model = self.models.get(j, "")
            if all(j != t and (not model or model != m) for t, m in authors if t):
                return j
        return self.p.teachers[0] if self.p.allow_self_judge and self.p.teachers else None

    def _schema(self, teacher: str, schema: dict) -> dict | None:
        """The answer schema for guided decoding: local judges only, when `guided` is on."""
        t = self.llm.teachers.get(teacher)
        return schema if self.p.guided and t is not None and t.provider == "local" else None

    def _ask(self, teacher_of: dict[int, str], tag: str, schema: dict):
        from ..llm import ChatRequest

        def ask(calls: list[JudgeCall]):
            reqs = [ChatRequest(teacher=teacher_of[id(c)], messages=c.messages, gen=self.gen, tag=f"{tag}:{c.key}",
                                schema=self._schema(teacher_of[id(c)], schema))
                    for c in calls]
            return self.engine.run(reqs)
        return ask

    def score(self, items: list[tuple[Any, str, str, tuple[str, str]]]) -> list[Verdict]:
        """items: (key, prompt text, answer text, (teacher, model) of the answer) -> verdicts in order."""
        out: list[Verdict | None] = [None] * len(items)
        calls, teacher_of, index = [], {}, {}
        for i, (key, prompt, answer, author) in enumerate(items):
            j = self.pick(author)
            if j is None:
                out[i] = Verdict(None, "judge_refused_self")
                continue
            c = JudgeCall(key=key, messages=pointwise_messages(self.system, self.pointwise, prompt, answer,
                                                                self.p.dimensions))
            calls.append(c)
            teacher_of[id(c)] = j
            index[id(c)] = i
        rubric = {"type": "object", "properties": {
            d: {"type": "integer", "minimum": 1, "maximum": 10} for d in [*self.dims, "overall"]}}
        run_with_retries(calls, self._ask(teacher_of, f"{self.stage}:judge", rubric),
                         lambda t: parse_scores(t, self.dims), self.p.parse_retries)
        for c in calls:
            lin = [lineage_entry(self.stage, r, self.gen, (self.system, self.pointwise), role="judge", llm=self.llm,
                                 attempt=n + 1)
                   for n, r in enumerate(c.results)]
            out[index[id(c)]] = Verdict(c.scores, c.reason, teacher_of[id(c)], lin)
        return out  # type: ignore[return-value]

    def compare(self, items: list[tuple[Any, str, str, str, tuple[str, str], tuple[str, str]]]) -> list[Verdict]:
        """items: (key, prompt, x, y, author_x, author_y). Asks (x=A, y=B) and (y=A, x=B);
        verdict.scores = {"x": 1, "y": 0} style wins (ties and disagreements give 0.5 each)."""
        out: list[Verdict | None] = [None] * len(items)
        calls, teacher_of, index = [], {}, {}
        for i, (key, prompt, x, y, ax, ay) in enumerate(items):
            j = self.pick(ax, ay)
            if j is None:
                out[i] = Verdict(None, "judge_refused_self")
                continue
            for order, (a, b) in (("xy", (x, y)), ("yx", (y, x))):
                c = JudgeCall(key=(key, order), messages=pairwise_messages(self.system, self.pairwise, prompt, a, b,
                                                                           self.p.dimensions))
                calls.append(c)
                teacher_of[id(c)] = j
                index[id(c)] = i

        def parse(text: str):
            w = parse_winner(text)
            return (w, "") if w else (None, "judge_no_winner")

        winner = {"type": "object", "properties": {"winner": {"enum": ["A", "B", "tie"]}}}
        run_with_retries(calls, self._ask(teacher_of, f"{self.stage}:pairwise", winner), parse, self.p.parse_retries)
        by_item: dict[int, list[JudgeCall]] = {}
        for c in calls:
            by_item.setdefault(index[id(c)], []).append(c)
        for i, (first, second) in by_item.items():
            lin = [lineage_entry(self.stage, r, self.gen, (self.system, self.pairwise), role="judge",
                                 llm=self.llm, order=c.key[1], attempt=n + 1)
                   for c in (first, second) for n, r in enumerate(c.results)]
            verdict = combine_orders(first.scores, second.scores)
            if verdict is None:
                out[i] = Verdict(None, first.reason or second.reason or "judge_no_winner", teacher_of[id(first)], lin)
            else:
                wins = {"x": 1.0, "y": 0.0} if verdict == "x" else {"x": 0.0, "y": 1.0} if verdict == "y" \
                    else {"x": 0.5, "y": 0.5}
                out[i] = Verdict(wins, "", teacher_of[id(first)], lin)
        return out  # type: ignore[return-value]
