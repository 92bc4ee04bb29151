"""The LLM judge: rubric prompts, robust parsing of the judge's answer, re-asks, pairwise both orders.

Parsing accepts a JSON object anywhere in the text (code fences, chatter around it), numbers as
strings or "8/10", keys in any case, or plain "name: 8" lines. A score outside 1-10 or a missing
dimension is a parse failure; the judge is then re-asked (the previous answer plus a correction),
which changes the prompt and therefore the cache key, so a retry is a real new call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ..core.records import prompt_messages, response_text
from .templates import Template

_NUM = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:/\s*10)?\s*$")
_LINE = re.compile(r"^[\s\-*#\"']*([A-Za-z_][A-Za-z _-]*?)[\"']?\s*[:=]\s*\"?(-?\d+(?:\.\d+)?)\s*(?:/\s*10)?", re.M)

RETRY_MESSAGE = ("Your previous reply could not be parsed. Reply again with ONLY the JSON object, "
                 "with every key and an integer from 1 to 10.")


def find_json_objects(text: str) -> list[dict]:
    """Every JSON object that decodes at some '{' in the text, outermost first."""
    dec = json.JSONDecoder()
    out: list[dict] = []
    i = text.find("{")
    while i != -1:
        try:
            obj, end = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict):
            out.append(obj)
        i = text.find("{", end)
    return out


def _as_score(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        m = _NUM.match(v)
        if m:
            return float(m.group(1))
    if isinstance(v, dict):
        for k in ("score", "rating", "value"):
            if k in v:
                return _as_score(v[k])
    return None


def _norm_key(k: str) -> str:
    return re.sub(r"[\s-]+", "_", str(k).strip().lower())


def parse_scores(text: str, dimensions: list[str], low: float = 1, high: float = 10,
                 require_overall: bool = False) -> tuple[dict[str, float] | None, str]:
    """Scores for every dimension (+ overall, the mean when the judge omitted it) or (None, reason)."""
    wanted = [_norm_key(d) for d in dimensions]
    candidates: list[dict[str, Any]] = [{_norm_key(k): v for k, v in o.items()} for o in find_json_objects(text)]
    lines = {_norm_key(k): v for k, v in _LINE.findall(text)}
    if lines:
        candidates.append(lines)
    if not candidates:
        return None, "judge_no_scores"
    reason = "judge_missing_dimension"
    for cand in candidates:
        scores: dict[str, float] = {}
        for d, key in zip(dimensions, wanted):
            s = _as_score(cand.get(key))
            if s is None:
                break
            scores[d] = s
        else:
            ov = _as_score(cand.get("overall"))
            if ov is None:
                if require_overall:
                    continue
                ov = round(sum(scores.values()) / len(scores), 3)
            scores["overall"] = ov
            if any(not (low <= s <= high) for s in scores.values()):
                reason = "judge_score_out_of_range"
                continue
            return scores, ""
    return None, reason


def parse_winner(text: str) -> str | None:
    """'A', 'B' or 'tie' from a pairwise answer, else None."""
    for obj in find_json_objects(text):
        w = {_norm_key(k): v for k, v in obj.items()}.get("winner")
        if isinstance(w, str) and w.strip().upper() in ("A", "B"):
            return w.strip().upper()
        if isinstance(w, str) and w.strip().lower() in ("tie", "draw", "equal"):
            return "tie"
    m = re.search(r"\bwinner\W+(A|B|tie)\b", text, re.I)
    if m:
        return m.group(1).upper() if m.group(1).upper() in ("A", "B") else "tie"
    return None


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


@dataclass
class JudgeCall:
    """One judged item across its attempts: messages of the current attempt and the outcome."""

    key: Any
    messages: list[dict]
    attempts: int = 0
    scores: dict[str, float] | None = None
    reason: str = ""
    sent: list[Any] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)


def run_with_retries(calls: list[JudgeCall], ask: Callable[[list[JudgeCall]], list[Any]],
                     parse: Callable[[str], tuple[Any, str]], retries: int) -> None:
    """Ask every call, re-ask the unparseable ones (previous answer + correction) up to `retries` times.

    `ask` sends the calls' current messages and returns engine results in order. On success
    `call.scores` holds the parsed value; otherwise `call.reason` holds the last reason code.
    """
    pending = list(calls)
    for attempt in range(retries + 1):
        if not pending:
            break
        results = ask(pending)
        nxt = []
        for call, res in zip(pending, results):
            call.attempts += 1
            call.results.append(res)
            call.sent.append(res.sent)
            if not res.ok and not (res.error == "truncated" and res.text):
                call.reason = f"judge_error_{res.error or 'unknown'}"
                continue  # the engine already retried transport errors
            parsed, reason = parse(res.text or "")
            if parsed is not None:
                call.scores, call.reason = parsed, ""
                continue
            call.reason = reason
            if attempt < retries:
                call.messages = call.messages + [{"role": "assistant", "content": res.text or ""},
                                                 {"role": "user", "content": RETRY_MESSAGE}]
                nxt.append(call)
        pending = nxt


def pointwise_messages(system: Template, user: Template, prompt: str, answer: str,
                       dimensions: dict[str, str]) -> list[dict]:
    msgs = []
    sys_txt = system.render(dimensions=dimensions)
    if sys_txt:
        msgs.append({"role": "system", "content": sys_txt})
    msgs.append({"role": "user", "content": user.render(prompt=prompt, answer=answer, dimensions=dimensions)})
    return msgs


def pairwise_messages(system: Template, user: Template, prompt: str, a: str, b: str,
                      dimensions: dict[str, str]) -> list[dict]:
    msgs = []
    sys_txt = system.render(dimensions=dimensions)
    if sys_txt:
        msgs.append({"role": "system", "content": sys_txt})
    msgs.append({"role": "user", "content": user.render(prompt=prompt, answer_a=a, answer_b=b,
                                                        dimensions=dimensions)})
    return msgs


def combine_orders(first: str | None, second: str | None) -> str | None:
    """Verdict from (x as A, y as B) and (y as A, x as B): 'x', 'y', 'tie', or None if unparsed.

    Only a preference that survives swapping the positions counts; disagreement is a tie.
    """
    if first is None or second is None:
        return None
    x_first = {"A": "x", "B": "y", "tie": "tie"}[first]
    x_second = {"A": "y", "B": "x", "tie": "tie"}[second]
    return x_first if x_first == x_second else "tie"
