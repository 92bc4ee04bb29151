"""A Python copy of a byte-level BPE tokenizer's normaliser + pre-tokenizer, for counting tokens fast.

A byte-level BPE tokenizer (GPT-2, SmolLM, Llama 3, Qwen 2) cuts text into pre-tokens by regex and
encodes each pre-token on its own, so len(encode(text)) = sum over pre-tokens of their token
counts, and a pre-token's count can be remembered. Splitting with the `regex` module and summing
remembered counts is several times cheaper than the Rust pipeline, which builds offsets and
alignments per character. `build(config)` returns the splitter for the shapes it copies exactly
(normaliser none/NFC; pre-tokenizer ByteLevel, or a Sequence of Split(Isolated)/Digits/ByteLevel),
else None. The two regex engines agree on every character the running Python's Unicode database
assigns (tests/stats/test_fast_counts.py checks all of them), so text holding a character it does
not know goes to the Rust tokenizer instead (`has_unknown_chars`).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Callable

import regex

# tokenizers' ByteLevel(use_regex=True) pattern (GPT-2's); it matches every character somewhere
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# the same on ASCII text, for the standard library's engine (twice as fast as `regex` here)
GPT2_ASCII = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""", re.ASCII)

Split = Callable[[str], list[str]]


def _isolated(pattern: str, total: bool = False) -> Split:
    """Split(pattern, behavior=Isolated): matches and the gaps between them are pieces."""
    pat = regex.compile(pattern)
    findall, finditer = pat.findall, pat.finditer

    def split(s: str) -> list[str]:
        if not pat.groups:
            words = findall(s)
            if total or sum(map(len, words)) == len(s):
                return words
        out, pos = [], 0
        for m in finditer(s):
            if m.start() > pos:
                out.append(s[pos:m.start()])
            out.append(m.group())
            pos = m.end()
        if pos < len(s):
            out.append(s[pos:])
        return out
    return split


def _step(cfg: dict) -> Split | None:
    t = cfg.get("type")
    if t == "ByteLevel":
        if cfg.get("add_prefix_space"):
            return None
        return _isolated(GPT2_PATTERN, total=True) if cfg.get("use_regex", True) else (lambda s: [s])
    if t == "Split":
        pat = cfg.get("pattern", {})
        if cfg.get("behavior") != "Isolated" or cfg.get("invert"):
            return None
        if "Regex" in pat:
            return _isolated(pat["Regex"])
        if "String" in pat:
            return _isolated(regex.escape(pat["String"]))
        return None
    if t == "Digits":
        return _isolated(r"\p{N}" if cfg.get("individual_digits") else r"\p{N}+")
    return None


def build(config: dict) -> tuple[Callable[[str], str] | None, Split, Split | None] | None:
    """(normaliser or None, splitter into pre-tokens, splitter for ASCII text or None) copying the
    tokenizer config, or None when it has a shape this module does not copy."""
    norm = config.get("normalizer")
    if norm is None:
        normalize = None
    elif norm.get("type") == "NFC":
        normalize = lambda s: unicodedata.normalize("NFC", s)  # noqa: E731
    else:
        return None
    model = config.get("model") or {}
    if model.get("type") != "BPE" or model.get("dropout"):
        return None
    pre = config.get("pre_tokenizer") or {}
    steps_cfg = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    if not steps_cfg or steps_cfg[-1].get("type") != "ByteLevel" or \
            any(s.get("type") == "ByteLevel" for s in steps_cfg[:-1]):
        return None
    steps = [_step(s) for s in steps_cfg]
    if any(s is None for s in steps):
        return None
    if len(steps) == 1:
        return normalize, steps[0], GPT2_ASCII.findall if steps_cfg[0].get("use_regex", True) else None
    if len(steps) == 2 and steps_cfg[-1].get("use_regex") is False:
        return normalize, steps[0], None

    def chain(s: str) -> list[str]:
        pieces = [s]
        for step in steps:
            pieces = [w for p in pieces for w in step(p)]
        return pieces
    return normalize, chain, None


def bytes_to_unicode() -> dict[int, str]:
    """The byte -> printable character map of byte-level BPE (GPT-2's)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


_UNKNOWN: re.Pattern | None = None


def has_unknown_chars(s: str) -> bool:
    """Whether `s` holds a character unassigned in this Python's Unicode database (the two regex
    engines may class it differently) or a lone surrogate."""
    global _UNKNOWN
    if s.isascii():
        return False
    if _UNKNOWN is None:
        cat, ranges, start = unicodedata.category, [], None
        for c in range(0x110000):
            un = cat(chr(c)) in ("Cn", "Cs")
            if un and start is None:
                start = c
            elif not un and start is not None:
                ranges.append((start, c - 1))
                start = None
        if start is not None:
            ranges.append((start, 0x10FFFF))
        _UNKNOWN = re.compile("[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges) + "]")
    return _UNKNOWN.search(s) is not None
