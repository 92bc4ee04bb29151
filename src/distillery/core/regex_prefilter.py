"""Substrings a regular expression cannot match without: a cheap `in` test before a slow regex scan.

`re` tries every alternative at every position of the text; rules made of word lists (the mix bucket
rules) spend ~1 ms a record that way. Every match of `(kill|bomb)\\b.{0,9}now` holds "kill" or "bomb",
so a text holding neither cannot match, and that takes a substring test of the lower-cased text.
Sound for ASCII text only: with IGNORECASE `re` also equates some ASCII letters with other characters
(k with the Kelvin sign, s with long s), which an ASCII text does not hold. The needles are read from the
pattern's parse tree (`re`'s own parser); anything not understood gives no needles (always scan).
"""

from __future__ import annotations

from typing import Any

try:  # the parser `re.compile` uses (a private module: any surprise means "no needles", never a wrong one)
    from re import _constants as _C, _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # Python < 3.11
    import sre_constants as _C  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

Needles = frozenset[str] | None  # lower-case ASCII strings, one of which is in every match; None = unknown
_REPEATS = tuple(op for op in (getattr(_C, "MAX_REPEAT", None), getattr(_C, "MIN_REPEAT", None),
                               getattr(_C, "POSSESSIVE_REPEAT", None)) if op is not None)


def required_substrings(pattern: str, flags: int = 0) -> Needles:
    """Lower-cased strings such that every match of `pattern` holds one of them (None: no such set known)."""
    try:
        return _sequence(_sre_parse.parse(pattern, flags))
    except Exception:  # noqa: BLE001 — an unknown parse tree only costs the shortcut
        return None


def may_match(text_lower_ascii: str, needles: Needles) -> bool:
    """False only when the pattern cannot match: none of its needles is in the (ASCII, lower-cased) text."""
    return needles is None or any(n in text_lower_ascii for n in needles)


def _sequence(items: Any) -> Needles:
    """The most selective requirement of a sequence: a run of literal characters, or one element's needles."""
    best: Needles = None

    def consider(cand: Needles) -> None:
        nonlocal best
        if cand and (best is None or min(map(len, cand)) > min(map(len, best))):
            best = cand

    run: list[str] = []
    for op, av in items:
        if op is _C.LITERAL and av < 128:
            run.append(chr(av).lower())
            continue
        if run:
            consider(frozenset(["".join(run)]))
            run = []
        if op is _C.AT:  # ^, $, \b: zero width, requires no character
            continue
        consider(_element(op, av))
    if run:
        consider(frozenset(["".join(run)]))
    return best


def _element(op: Any, av: Any) -> Needles:
    if op is _C.SUBPATTERN:
        return _sequence(av[-1])
    if op is _C.BRANCH:
        out: set[str] = set()
        for alt in av[1]:
            sub = _sequence(alt)
            if sub is None:
                return None
            out |= sub
        return frozenset(out)
    if op in _REPEATS:
        low, _high, sub = av
        return _sequence(sub) if low >= 1 else None
    return None
