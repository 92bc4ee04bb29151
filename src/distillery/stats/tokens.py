"""Token counts of rendered conversations, exactly `len(tok(text, add_special_tokens=False).input_ids)`.

A fast tokenizer cuts the text at its added tokens (`<|im_start|>`, `<|im_end|>`, ...) first and
encodes the pieces between them independently. So a count is the number of added tokens plus the
counts of the segments between them, and a segment shared by several texts is counted once: the
prompt of a row is a prefix of its full rendering up to its last segment (`<|im_start|>assistant\\n`),
and DPO chosen and rejected share the whole prompt, so each row's text is tokenised once. Segments
are counted by the Python copy of the pre-tokenizer with remembered pre-token counts (`pretok`) when
the tokenizer has a shape it copies, else by the Rust tokenizer in batches. Tokenizers whose
pieces are not independent (added tokens that strip spaces, Metaspace prepending only to the first
piece, specials not split) are counted whole by the Rust tokenizer.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import re

from . import pretok

log = logging.getLogger(__name__)
MAX_WORDS = 300_000    # remembered pre-token counts per process (~30 MB), then start afresh

# texts the fast path must count as the Rust tokenizer does before it is used (a cheap self-check)
PROBE = ["Hello, world! It's 2024; we'll see 12345 apples.\n\n  Indented   text\tand tabs\r\n",
         "Ünïcödé façade — naïve café; 東京は晴れ。Привет, мир! مرحبا 😀👍🏽 x²+y³=z",
         "def f(x):\n    return x**2  # comment\n\n\n'quoted' \"double\" ’curly’ I'M YOU'RE",
         " \u00a0\u2003\u3000mixed spaces\u2028line sep\u0085nel", "1,000.50 $USD 3.14e-10 ٣٤٥ ⅷ"]


def _segments_independent(cfg: dict, bt) -> bool:
    if getattr(bt, "encode_special_tokens", False):
        return False
    added = cfg.get("added_tokens") or []
    if any(a.get("lstrip") or a.get("rstrip") or a.get("single_word") for a in added):
        return False
    if cfg.get("normalizer") is not None and any(a.get("normalized") for a in added):
        return False

    def first_only(node: Any) -> bool:
        if isinstance(node, dict):
            if node.get("type") == "Metaspace" and node.get("prepend_scheme", "always") == "first":
                return True
            return any(first_only(v) for v in node.values())
        if isinstance(node, list):
            return any(first_only(v) for v in node)
        return False
    return not first_only(cfg.get("pre_tokenizer")) and not first_only(cfg.get("normalizer"))


def _alternation(tokens: list[str]) -> re.Pattern | None:
    """Leftmost-longest match of literal tokens, as the tokenizer's Aho-Corasick finds them (at each
    position the longest alternative is tried first)."""
    if not tokens:
        return None
    return re.compile("(" + "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True)) + ")")


class TokenCounter:
    """Counts tokens of texts as the tokenizer's `encode(add_special_tokens=False)` does."""

    def __init__(self, tok, fast: bool = True):
        self.bt = tok.backend_tokenizer
        self.bt.no_truncation()
        self.bt.no_padding()
        cfg = json.loads(self.bt.to_str())
        added = cfg.get("added_tokens") or []
        self.split_raw = self.split_norm = None
        self.mode = "whole"
        if _segments_independent(cfg, self.bt):
            # non-normalised added tokens are cut first, normalised ones inside what is left
            self.split_raw = _alternation([a["content"] for a in added if not a.get("normalized")])
            self.split_norm = _alternation([a["content"] for a in added if a.get("normalized")])
            self.mode = "segments"
        self.normalize = self.pre = self.pre_ascii = None
        self.words: dict[str, int] = {}
        self.byte_map = pretok.bytes_to_unicode()
        built = pretok.build(cfg) if fast and self.mode == "segments" else None
        if built is not None:
            self.normalize, self.pre, self.pre_ascii = built
            self.mode = "words"
            if not self._probe_ok():
                log.warning("stats: the fast token count disagrees with the tokenizer on a probe text; "
                            "counting with the tokenizer itself")
                self.mode = "segments"

    def _probe_ok(self) -> bool:
        want = [len(e.ids) for e in self.bt.encode_batch(PROBE, add_special_tokens=False)]
        return self.count(PROBE) == want

    # ---- segments
    def _split(self, text: str) -> tuple[int, list[str]]:
        """(number of added tokens, the segments between them)."""
        parts = self.split_raw.split(text) if self.split_raw is not None else [text]
        n, segs = len(parts) // 2, parts[0::2]
        if self.split_norm is not None:
            out = []
            for s in segs:
                p = self.split_norm.split(s)
                n += len(p) // 2
                out.extend(p[0::2])
            segs = out
        return n, segs

    def _word_count(self, seg: str) -> int | None:
        """Tokens of one segment by remembered pre-token counts; None when Rust must count it."""
        if seg.isascii():       # NFC leaves ASCII alone
            ws = (self.pre_ascii or self.pre)(seg)
        elif pretok.has_unknown_chars(seg):
            return None
        else:
            ws = self.pre(self.normalize(seg) if self.normalize is not None else seg)
        words = self.words
        try:
            return sum(map(words.__getitem__, ws))
        except KeyError:
            pass
        if len(words) > MAX_WORDS:
            words.clear()
        tokenize, bmap = self.bt.model.tokenize, self.byte_map
        for w in ws:
            if w not in words:
                words[w] = len(tokenize("".join(bmap[b] for b in w.encode("utf-8"))))
        return sum(map(words.__getitem__, ws))

    def count(self, texts: list[str]) -> list[int]:
        """Token count of each text; segments repeated across the texts are counted once."""
        if self.mode == "whole":
            return [len(e.ids) for e in self.bt.encode_batch(texts, add_special_tokens=False)]
        split = [self._split(t) for t in texts]
        seen: dict[str, int] = {}
        rust: list[str] = []
        words = self.mode == "words"
        for _, segs in split:
            for s in segs:
                if s in seen:
                    continue
                n = (self._word_count(s) if words else None) if s else 0
                if n is None:
                    rust.append(s)
                seen[s] = n if n is not None else -1
        if rust:
            for s, e in zip(rust, self.bt.encode_batch(rust, add_special_tokens=False)):
                seen[s] = len(e.ids)
        return [n + sum(seen[s] for s in segs) for n, segs in split]
