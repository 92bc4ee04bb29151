"""Text normalisation: what ingest stores and dedup hashes. The shortcuts for the usual text (no per-line
work, no blank-line run) must give what the full per-line pass gives."""

import random
import re
import unicodedata

from distillery.core.text import normalize_text


def _reference(text: str) -> str:
    """The rules spelled out, with no shortcut: NFC, newlines, control characters, per line, blank lines, trim."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text)
    lines = []
    for line in text.split("\n"):
        body = line.lstrip(" \t")
        lines.append(line[:len(line) - len(body)] + re.sub(r"[ \t\u00a0\u2000-\u200b\u3000]+", " ", body).rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def test_what_normalisation_does_to_a_text():
    raw = "  Title\r\n\r\n\r\n\r\ndef f():\n    return  1   \n\x00\x07Cafe\u0301\u00a0\u00a0ok\t\n\n\n"
    assert normalize_text(raw) == "Title\n\ndef f():\n    return 1\nCafé ok"


def test_the_shortcuts_give_the_full_pass_on_any_mix_of_whitespace_and_controls():
    rng = random.Random(7)
    parts = ["a", "b c", " ", "  ", "\n", "\n\n", "\n\n\n", "\n \n\n", "\t", "\u00a0", "\u3000", "\r\n", "\r", "\x00",
             "\x0b", "é", "e\u0301", "x ", " \n", "    code", "\n    indented"]
    for _ in range(20000):
        text = "".join(rng.choice(parts) for _ in range(rng.randint(0, 30)))
        assert normalize_text(text) == _reference(text), repr(text)
