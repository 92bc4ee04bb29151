"""The one parser of judge answers: rubric scores (pointwise) and A/B/tie verdicts (pairwise).

Every judge caller (score, preferences, the distill pilot, the scenario trait check, the multiturn
persona check, train_eval's win rate) parses through here, so a reply means the same everywhere.
JSON is found with `llm.parsing.iter_json` (the engine's extractor: whole text, ``` fences, any
balanced object, trailing commas), after curly quotes are made straight. Pure functions, no I/O.

Verdict rules, the first tier that finds anything decides; within a tier the verdict stated LAST
wins (models reason first and conclude last):

1. JSON: an object with a `winner` / `verdict` / `choice` / ... key whose value is a verdict token.
2. The whole reply is a token: "A", "b.", "**B**", "Tie", "Answer: A", "[[B]]".
3. Explicit markers: `[[A]]` / `[[B]]` / `[[C]]` (tie), a labelled verdict ("Final verdict: B",
   "Winner is Response A", "Answer: tie"), or a line holding only A or B.
4. Statements: "I prefer B", "go with A", "B is (much) better", "A wins", "A is worse" (-> B),
   and tie phrases ("tie", "equally good", "no clear winner", "on par").
5. Mentions ("Assistant A", "Response B", "**A**"): a verdict only when one letter is named.

A lower-case "a"/"b" counts only where it cannot be the article: the whole reply, or followed by
the end, punctuation or "is/wins" ("b is better"); "As a judge, I prefer B." is B. "Neither",
"both are fine" and replies naming both letters without a stated preference are unparsed (None).
"""

from __future__ import annotations

import re
from typing import Literal, Mapping

from ..llm.parsing import iter_json

Winner = Literal["A", "B", "tie"]

_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
                         "\u00ab": '"', "\u00bb": '"', "\u2018": "'", "\u2019": "'", "\u201a": "'",
                         "\u201b": "'", "\u2032": "'"})


def normalise(text: str | None) -> str:
    """Straight quotes for curly ones, so JSON and the patterns below see one alphabet."""
    return (text or "").translate(_QUOTES)


def find_json_objects(text: str | None) -> list[dict]:
    """Every JSON object in the text, best candidate first (the engine's extractor, objects only)."""
    return [o for o in iter_json(normalise(text)) if isinstance(o, dict)]


def norm_key(k: object) -> str:
    return re.sub(r"[\s-]+", "_", str(k).strip().lower())


# -- pointwise rubric scores ---------------------------------------------------------------------------

_NUM = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:(?:/|out\s+of)\s*10)?\s*$", re.I)
_LINE = re.compile(r"^[\s\-*#\"'>]*([A-Za-z_][A-Za-z _-]*?)[\"'*]*\s*[:=]\s*[\"'*]*(-?\d+(?:\.\d+)?)"
                   r"\s*(?:(?:/|out\s+of)\s*10)?", re.M | re.I)


def as_score(v: object) -> float | None:
    """A number, "7", "7/10", "7 out of 10" or {"score": 7} as a float; anything else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        m = _NUM.match(v)
        return float(m.group(1)) if m else None
    if isinstance(v, dict):
        for k in ("score", "rating", "value"):
            if k in v:
                return as_score(v[k])
    return None


def parse_scores(text: str | None, dimensions: list[str], low: float = 1, high: float = 10,
                 require_overall: bool = False) -> tuple[dict[str, float] | None, str]:
    """Scores for every dimension plus `overall` (the mean when the judge left it out), or (None, reason).

    Out-of-range scores are REJECTED, never clamped (`judge_score_out_of_range`): a judge writing 80
    or 0 misread the scale, and a clamped 10 would be kept by `keep_above` as if it were meant.
    """
    text = normalise(text)
    wanted = [norm_key(d) for d in dimensions]
    candidates: list[Mapping[str, object]] = [{norm_key(k): v for k, v in o.items()} for o in find_json_objects(text)]
    lines = {norm_key(k): v for k, v in _LINE.findall(text)}
    if lines:
        candidates.append(lines)
    if not candidates:
        return None, "judge_no_scores"
    reason = "judge_missing_dimension"
    for cand in candidates:
        scores: dict[str, float] = {}
        for d, key in zip(dimensions, wanted):
            s = as_score(cand.get(key))
            if s is None:
                break
            scores[d] = s
        else:
            ov = as_score(cand.get("overall"))
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


# -- pairwise verdicts ---------------------------------------------------------------------------------

_VERDICT_KEYS = ("winner", "verdict", "final_verdict", "better", "best", "preferred", "preference", "choice",
                 "decision", "answer", "result")
_TOKENS: dict[str, Winner] = {"a": "A", "b": "B", "tie": "tie", "tied": "tie", "draw": "tie", "equal": "tie",
                              "equally good": "tie", "both equally good": "tie", "it s a tie": "tie"}
_LABEL_WORDS = r"(?:the\s+)?(?:final\s+)?(?:verdict|winner|answer|response|assistant|option|output|model|choice)"
_SIDE = r"(?:(?:answer|response|assistant|option|output|model|candidate)\s+)?"
_LETTER = r"(?<![\w])(?P<v>[AaBb])(?!\w)"
_BRACKET = re.compile(r"\[\[\s*(?P<v>A|B|C|tie)\s*\]\]", re.I)
_LABELLED = re.compile(
    r"\b(?:final\s+verdict|verdict|winner|final\s+answer|answer|choice|decision|preference|"
    r"preferred(?:\s+(?:answer|response))?|better\s+(?:answer|response|one)|my\s+(?:pick|vote|choice))"
    r"[\"'*\s]*(?:is\b|:|=|-)[\"'*\s]*" + _SIDE + r"(?P<v>(?<![\w])(?:[AaBb]|tie|draw)(?!\w))", re.I)
_ALONE = re.compile(r"^[\s*_>#\"'`(\[]*(?P<v>[AB])[\s*_\"'`)\].!]*$", re.M)
_PREFER = re.compile(r"\b(?:prefer|preferring|choose|chose|pick|picked|select|selected|go\s+with|going\s+with|"
                     r"vote\s+for|favou?r)\s+" + _SIDE + _LETTER, re.I)
_BETTER = re.compile(_SIDE + _LETTER + r"(?:'s\s+(?:answer|response))?\s+(?:is|was|seems|looks|appears)\s+"
                     r"(?:(?!not\b)\w+\s+)?(?P<how>better|best|superior|preferable|preferred|stronger|"
                     r"the\s+(?:winner|better\s+\w+|best\s+\w+)|more\s+(?:helpful|accurate|correct|complete|useful)|"
                     r"worse|weaker|inferior|less\s+(?:helpful|accurate|correct))\b", re.I)
_WINS = re.compile(_SIDE + _LETTER + r"\s+wins\b", re.I)
_TIE = re.compile(r"\b(?:it'?s\s+a\s+tie|tie(?!-)|tied|(?<!not\s)equally|equal\s+quality|the\s+same\s+quality|"
                  r"no\s+(?:clear\s+)?(?:winner|preference)|on\s+par)\b", re.I)
_MENTION = re.compile(r"\b(?i:assistant|answer|response|option|output|candidate)\s+(?P<v>[AB])(?!\w)|"
                      r"\*\*(?P<w>[AB])\*\*")


def _letter(v: str) -> Winner:
    """'A'/'a' -> A, 'B'/'b' -> B; anything else the patterns capture (tie, draw, [[C]]) is a tie."""
    return "A" if v.upper() == "A" else "B" if v.upper() == "B" else "tie"


def _lower_ok(text: str, m: re.Match[str]) -> bool:
    """An upper-case letter always counts; a lower-case one only where it cannot be the article."""
    v = m.group("v")
    if v not in ("a", "b"):
        return True
    return re.match(r"\s*(?:$|[^\w\s]|(?:is|was|wins|seems|looks)\b)", text[m.end("v"):]) is not None


def _token(s: object) -> Winner | None:
    """A verdict written alone: 'A', 'b.', '**Tie**', 'Answer: A', 'Response B', '[[A]]'."""
    if not isinstance(s, str):
        return None
    t = re.sub(r"[\s*_`'\"\[\]().:!,;]+", " ", s).strip().lower()
    t = re.sub(r"^" + _LABEL_WORDS + r"\s+(?:is\s+)?", "", t)
    return _TOKENS.get(t)


def _last(hits: list[tuple[int, Winner]]) -> Winner | None:
    return max(hits)[1] if hits else None


def parse_verdict(text: str | None) -> Winner | None:
    """'A', 'B' or 'tie' from a pairwise judge's reply, or None when it states no verdict (rules above)."""
    t = normalise(text).strip()
    for obj in find_json_objects(t):
        for k, v in obj.items():
            if norm_key(k) in _VERDICT_KEYS and (w := _token(v)) is not None:
                return w
    if len(t) <= 64 and (w := _token(t)) is not None:
        return w
    explicit = [(m.start(), _letter(m.group("v"))) for m in _BRACKET.finditer(t)]
    explicit += [(m.start(), _letter(m.group("v"))) for m in _LABELLED.finditer(t) if _lower_ok(t, m)]
    explicit += [(m.start(), _letter(m.group("v"))) for m in _ALONE.finditer(t)]
    if explicit:
        return _last(explicit)
    stated: list[tuple[int, Winner]] = [(m.start(), "tie") for m in _TIE.finditer(t)]
    for rx in (_PREFER, _WINS):
        stated += [(m.start(), _letter(m.group("v"))) for m in rx.finditer(t) if _lower_ok(t, m)]
    for m in _BETTER.finditer(t):
        if _lower_ok(t, m):
            worse = re.match(r"worse|weaker|inferior|less", m.group("how"), re.I) is not None
            side = _letter(m.group("v"))
            stated.append((m.start(), {"A": "B", "B": "A"}[side] if worse else side))
    if stated:
        return _last(stated)
    named = {_letter(m.group("v") or m.group("w")) for m in _MENTION.finditer(t)}
    return named.pop() if len(named) == 1 else None
