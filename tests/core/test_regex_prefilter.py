"""core.regex_prefilter: a text without any needle of a pattern never matches it (ASCII text)."""

import random
import re

import pytest

from distillery.core.regex_prefilter import may_match, required_substrings
from distillery.mix.config import BucketsParams

PATTERNS = [
    r"\b(kill|murder|bomb)\b", r"hack(ing)?( into)?", r"drugs?", r"<tool(_call)?>", r"\b(api|tool) call\b",
    r"^\s*(def|class) \w+.*:\s*$", r"\d+\s*[-+*/x]\s*\d+\s*=\s*\d+", r"(?:ab|ac)+d", r"a{2,3}b", r"x*yz?",
    r"(?=foo)fo", r"(?<!q)ba(?P<g>r)(?P=g)", r"[ab]c", r"(?i:CaT)|dog", r"\bI (can(no|')t|won't) help",
    r"(java|javascript)\b", r"(?x) s p a c e d", r".", r"",
]
ALPHABET = ["kill", "Bomb", "hack", " into", "drug", "<tool", "_call>", "API", " call", "def ", "class ", "x", ":",
            "\n", " ", "1", "=", "+", "ab", "ac", "d", "a", "b", "y", "z", "foo", "bar", "r", "c", "CAT", "dog",
            "I ", "can", "no", "'t", "won't", " help", "java", "script", "spaced", "s", "p", "e", "q"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_text_without_the_needles_never_matches(pattern):
    flags = re.IGNORECASE | re.MULTILINE
    rx, needles = re.compile(pattern, flags), required_substrings(pattern, flags)
    rng = random.Random(pattern)
    for _ in range(3000):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))
        if rx.search(text) is not None:
            assert may_match(text.lower(), needles), (text, needles)


def test_needles_of_the_shipped_bucket_rules():
    flags = re.IGNORECASE | re.MULTILINE
    got = {(r.bucket, i): required_substrings(p, flags) for r in BucketsParams().rules for i, p in enumerate(r.patterns)}
    assert got[("red_team", 2)] >= {"kill", "bomb", "drug", "hack", "terroris"}
    assert got[("code", 0)] == {"```"}
    assert got[("tool_use", 3)] == {" call"}
    assert all(n for n in got.values()), "every shipped pattern has needles (else its rule is always scanned)"
    assert required_substrings(r"[ab]c?") is None and required_substrings("(") is None
