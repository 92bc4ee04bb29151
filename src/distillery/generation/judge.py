"""The LLM judge: the one module every stage judges through (score, preferences, the distill pilot,
scenarios' trait check, multiturn's persona check, train_eval's win rate).

- Pointwise: a rubric of named dimensions scored 1-10 plus `overall`.
- Pairwise: every comparison asked in BOTH orders (x as A, then y as A); a preference counts only
  when the two orders agree. Disagreement is the judge's position bias: reported as `inconsistent`
  and scored as a tie.
- Guided or free text, with ONE repair loop: a request carrying the judge's JSON schema (`guided`)
  is enforced by the engine (guided decoding for local teachers, structured output for API ones, and
  the engine's own bounded repair rounds, `llm.max_parse_retries`), so the judge never re-asks it.
  A free-text answer that does not parse is re-asked here, `parse_retries` times, with the previous
  answer and a correction (a new prompt, so a new cache key: a retry is a real new call).

Parsing (one parser for every caller) is in judge_parse.py; prompts are templates under
prompts/judge/ rendered through templates.py.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

from ..core.records import prompt_messages, response_text
from ..llm import ChatRequest, ChatResult
from .common import gen_with_seed, lineage_entry
from .config import JudgeParams
from .judge_parse import Winner, find_json_objects, parse_scores, parse_verdict
from .step import ChatEngine, Reject, Resend, Step, run_step
from .templates import Template, load_template

if TYPE_CHECKING:
    from ..llm.config import LLMParams

__all__ = ["ChatEngine", "Judge", "JudgeCall", "Outcome", "Verdict", "Winner", "combine_orders",
           "find_json_objects", "parse_scores", "parse_verdict", "parse_winner", "record_prompt_answer",
           "run_with_retries", "swap_verdict", "transcript"]

parse_winner = parse_verdict  # the name older callers import; the same single parser

T = TypeVar("T")
Outcome = Literal["x", "y", "tie", "inconsistent"]
Messages = list[dict[str, str]]

RETRY_MESSAGE = ("Your previous reply could not be parsed. Reply again with ONLY the JSON object, "
                 "with every key and an integer from 1 to 10.")
VERDICT_RETRY_MESSAGE = "Your previous reply could not be parsed. Reply again with ONLY your verdict: A, B or tie."
WINNER_SCHEMA = {"type": "object", "properties": {"winner": {"enum": ["A", "B", "tie"]}}, "required": ["winner"]}
_WINS: dict[Outcome, dict[str, float]] = {"x": {"x": 1.0, "y": 0.0}, "y": {"x": 0.0, "y": 1.0},
                                          "tie": {"x": 0.5, "y": 0.5}, "inconsistent": {"x": 0.5, "y": 0.5}}
# engine failures that still carry the model's text, which the parser may read
_TEXT_ERRORS = ("truncated", "parse_error")


def rubric_schema(dimensions: Sequence[str], scores: Literal["expected", "greedy"] = "greedy") -> dict:
    """The rubric as a JSON schema; every key required, so what the engine accepts the parser accepts.
    `expected`: each score is a number in [1, 10] that a local guided judge writes as its expected
    score over the integers 1..10 (`llm/guided.py`, "x-guided"); an API judge may write any number."""
    keys = [*dimensions, "overall"]
    prop: dict = {"type": "integer", "minimum": 1, "maximum": 10} if scores == "greedy" else \
        {"type": "number", "minimum": 1, "maximum": 10, "x-guided": "expected"}
    return {"type": "object", "properties": {d: dict(prop) for d in keys}, "required": keys}


def transcript(messages: list[dict]) -> str:
    """A conversation as plain text for judge prompts (system prompts left out)."""
    parts = []
    for m in messages:
        if m.get("role") == "system":
            continue
        who = "User" if m.get("role") == "user" else "Assistant"
        parts.append(f"{who}: {m.get('content', '')}")
    return "\n\n".join(parts)


def record_prompt_answer(rec: dict) -> tuple[str, str]:
    """(prompt text, answer text) of a record as the judge sees them."""
    prompt = prompt_messages(rec)
    if len(prompt) == 1 or (len(prompt) == 2 and prompt[0].get("role") == "system"):
        ptxt = prompt[-1].get("content", "")
    else:
        ptxt = transcript(prompt)
    return ptxt, response_text(rec)


# -- the repair loop ---------------------------------------------------------------------------------------

@dataclass
class JudgeCall(Generic[T]):
    """One judged item across its attempts: the current attempt's messages and the outcome."""

    key: Hashable
    messages: Messages
    teacher: str = ""
    enforced: bool = False      # the engine enforces a schema on this call: never re-asked here
    attempts: int = 0
    scores: T | None = None     # the parsed value (rubric scores, or a verdict)
    reason: str = ""
    sent: list[object] = field(default_factory=list)
    results: list[ChatResult] = field(default_factory=list)


class RepairStep(Step[JudgeCall[T]]):
    """A judge call as a step: parse the answer; an unparseable free-text answer is re-asked (the
    previous answer plus a correction), at most `retries` times. Engine failures are not re-asked
    (the engine already retried transport errors and repaired schema answers); a truncated or
    schema-invalid answer is still read by the tolerant parser. Lineage stays on the call (the
    caller writes it with its own template, see Judge._lineage)."""

    def __init__(self, request: Callable[[JudgeCall[T]], ChatRequest], parse: Callable[[str], tuple[T | None, str]],
                 retries: int, retry_message: str):
        self.request, self.parse_text, self.retries, self.retry_message = request, parse, retries, retry_message

    def prompt(self, item: JudgeCall[T]) -> ChatRequest:
        return self.request(item)

    def parse(self, item: JudgeCall[T], results: list[ChatResult]) -> JudgeCall[T] | Reject | Resend:
        res = results[-1]
        item.attempts += 1
        item.results.append(res)
        item.sent.append(res.sent)
        if not res.ok and not (res.error in _TEXT_ERRORS and res.text):
            item.reason = f"judge_error_{res.error or 'unknown'}"
            return Reject(item.reason)
        parsed, reason = self.parse_text(res.text or "")
        if parsed is not None:
            item.scores, item.reason = parsed, ""
            return item
        item.reason = reason
        if item.attempts <= self.retries and not item.enforced:
            item.messages = item.messages + [{"role": "assistant", "content": res.text or ""},
                                             {"role": "user", "content": self.retry_message}]
            return Resend.of(self.request(item))
        return Reject(reason)

    def attach(self, item: JudgeCall[T], entries: list[dict]) -> None:
        return None

    def lineage(self, item: JudgeCall[T], results: list[ChatResult]) -> list[dict]:
        return []


def run_with_retries(calls: list[JudgeCall[T]], engine: ChatEngine, request: Callable[[JudgeCall[T]], ChatRequest],
                     parse: Callable[[str], tuple[T | None, str]], retries: int,
                     retry_message: str = RETRY_MESSAGE) -> None:
    """Ask every call through the step runner, re-asking unparseable free-text answers up to `retries`.

    On success `call.scores` holds the parsed value; otherwise `call.reason` holds the last reason code."""
    for _ in run_step(RepairStep(request, parse, retries, retry_message), calls, engine):
        pass


# -- position swap -----------------------------------------------------------------------------------------

def swap_verdict(first: Winner | None, second: Winner | None) -> Outcome | None:
    """Outcome of (x as A, y as B) then (y as A, x as B): 'x', 'y', 'tie' when both orders agree,
    'inconsistent' when they do not (position bias), None when either order gave no verdict."""
    if first is None or second is None:
        return None
    x_first = {"A": "x", "B": "y", "tie": "tie"}[first]
    x_second = {"A": "y", "B": "x", "tie": "tie"}[second]
    return x_first if x_first == x_second else "inconsistent"  # type: ignore[return-value]


def combine_orders(first: Winner | None, second: Winner | None) -> Literal["x", "y", "tie"] | None:
    """swap_verdict with disagreement scored as a tie (what ranking needs)."""
    v = swap_verdict(first, second)
    return "tie" if v == "inconsistent" else v


def _winner(text: str) -> tuple[Winner | None, str]:
    w = parse_verdict(text)
    return (w, "") if w is not None else (None, "judge_no_winner")


# -- the service ---------------------------------------------------------------------------------------------

@dataclass
class Verdict:
    """A judged item. Pointwise: `scores` = rubric scores. Pairwise: `scores` = {"x": w, "y": 1 - w}
    (a tie or an inconsistent pair gives 0.5 each), `outcome` and the verdict of each `orders`."""

    scores: dict[str, float] | None
    reason: str            # '' when judged; a reason code otherwise
    judge: str = ""
    lineage: list[dict] | None = None
    outcome: Outcome | None = None
    orders: tuple[Winner | None, Winner | None] = (None, None)
    results: list[ChatResult] = field(default_factory=list)


class Judge:
    """Judge selection (no self-judging unless allowed), rubric scoring and two-order comparison."""

    def __init__(self, engine: ChatEngine, params: JudgeParams, llm: LLMParams, seed: int, stage: str,
                 key: str = "score.judge"):
        self.engine = engine
        self.llm = llm
        self.models = {name: t.model for name, t in llm.teachers.items()}
        self.p = params
        self.stage = stage
        self.gen = gen_with_seed(params.gen.as_gen(), seed)
        self.system = load_template(params.system_template, f"{key}.system_template") \
            if params.system_template else None
        self.pointwise = load_template(params.template, f"{key}.template")
        self._pairwise: Template | None = None
        self._pairwise_key = f"{key}.pairwise_template"
        self.dims = list(params.dimensions)

    @property
    def pairwise(self) -> Template:
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

    def _messages(self, user: Template, **context: str) -> Messages:
        msgs = []
        sys_txt = self.system.render(dimensions=self.p.dimensions) if self.system else ""
        if sys_txt:
            msgs.append({"role": "system", "content": sys_txt})
        msgs.append({"role": "user", "content": user.render(dimensions=self.p.dimensions, **context)})
        return msgs

    def _run(self, calls: list[JudgeCall[T]], tag: str, schema: dict, parse: Callable[[str], tuple[T | None, str]],
             retry_message: str) -> None:
        """Send the calls; with `guided` the schema goes along and the engine alone repairs."""
        sent_schema = schema if self.p.guided else None
        for c in calls:
            c.enforced = sent_schema is not None

        def request(c: JudgeCall[T]) -> ChatRequest:
            return ChatRequest(teacher=c.teacher, messages=c.messages, gen=self.gen, tag=f"{tag}:{c.key}",
                               schema=sent_schema)
        run_with_retries(calls, self.engine, request, parse, self.p.parse_retries, retry_message)

    def _lineage(self, call: JudgeCall[T], tpl: Template, **extra: str) -> list[dict]:
        return [lineage_entry(self.stage, r, self.gen, (self.system, tpl), role="judge", llm=self.llm,
                              attempt=n + 1, **extra) for n, r in enumerate(call.results)]

    def score(self, items: Sequence[tuple[Hashable, str, str, tuple[str, str]]]) -> list[Verdict]:
        """items: (key, prompt text, answer text, (teacher, model) of the answer) -> verdicts in order."""
        out = [Verdict(None, "judge_refused_self") for _ in items]
        calls: list[tuple[int, JudgeCall[dict[str, float]]]] = []
        for i, (key, prompt, answer, author) in enumerate(items):
            j = self.pick(author)
            if j is not None:
                calls.append((i, JudgeCall(key, self._messages(self.pointwise, prompt=prompt, answer=answer),
                                           teacher=j)))
        self._run([c for _, c in calls], f"{self.stage}:judge", rubric_schema(self.dims, self.p.guided_scores),
                  lambda t: parse_scores(t, self.dims), RETRY_MESSAGE)
        for i, c in calls:
            out[i] = Verdict(c.scores, c.reason, c.teacher, self._lineage(c, self.pointwise), results=c.results)
        return out

    def _pair_call(self, key: Hashable, judge: str, prompt: str, a: str, b: str) -> JudgeCall[Winner]:
        return JudgeCall(key, self._messages(self.pairwise, prompt=prompt, answer_a=a, answer_b=b), teacher=judge)

    def compare(self, items: Sequence[tuple[Hashable, str, str, str, tuple[str, str], tuple[str, str]]]
                ) -> list[Verdict]:
        """items: (key, prompt, x, y, author_x, author_y). Asks (x=A, y=B) and (y=A, x=B); a preference
        counts only when both orders agree (Verdict.outcome says which way, or `inconsistent`)."""
        out = [Verdict(None, "judge_refused_self") for _ in items]
        pairs: list[tuple[int, JudgeCall[Winner], JudgeCall[Winner]]] = []
        for i, (key, prompt, x, y, ax, ay) in enumerate(items):
            j = self.pick(ax, ay)
            if j is not None:
                pairs.append((i, self._pair_call((key, "xy"), j, prompt, x, y),
                              self._pair_call((key, "yx"), j, prompt, y, x)))
        self._run([c for _, f, s in pairs for c in (f, s)], f"{self.stage}:pairwise", WINNER_SCHEMA, _winner,
                  VERDICT_RETRY_MESSAGE)
        for i, first, second in pairs:
            orders = (first.scores, second.scores)
            outcome = swap_verdict(*orders)
            out[i] = Verdict(dict(_WINS[outcome]) if outcome else None,
                             "" if outcome else first.reason or second.reason or "judge_no_winner",
                             first.teacher,
                             self._lineage(first, self.pairwise, order="xy")
                             + self._lineage(second, self.pairwise, order="yx"),
                             outcome, orders, first.results + second.results)
        return out
