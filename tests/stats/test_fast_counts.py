"""The fast token count equals the Rust tokenizer's on every character and on tokenizer shapes it copies,
and falls back to the tokenizer itself where pieces are not independent."""

import json
import unicodedata

import pytest
from tokenizers import Tokenizer

from distillery.stats import pretok
from distillery.stats.tokens import PROBE, TokenCounter


class Tok:
    """What TokenCounter reads from a transformers tokenizer."""

    def __init__(self, backend: Tokenizer):
        self.backend_tokenizer = backend


def rust(bt: Tokenizer, texts: list[str]) -> list[int]:
    return [len(e.ids) for e in bt.encode_batch(texts, add_special_tokens=False)]


@pytest.fixture(scope="module")
def smol_json(smollm2_path) -> dict:
    return json.loads((smollm2_path / "tokenizer.json").read_text(encoding="utf-8"))


def variant(cfg: dict, **changes) -> Tokenizer:
    c = json.loads(json.dumps(cfg))
    c.update(changes)
    return Tokenizer.from_str(json.dumps(c))


def assigned_chars(step: int = 1) -> list[str]:
    return [chr(c) for c in range(0, 0x110000, step)
            if not 0xD800 <= c < 0xE000 and unicodedata.category(chr(c)) != "Cn"]


CONTEXTS = ("a{}b", " {}x", "1{}1", "'{}", "{}{}", "  {}  x", "\n{}s")
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
          r"\s*[\r\n]+|\s+(?!\S)|\s+")
SHAPED = ["<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWhat's 12345 + 678?<|im_end|>\n"
          "<|im_start|>assistant\n12345 + 678 = 13023.\n\n```python\nprint(12345 + 678)\n```<|im_end|>\n",
          "<|im_start|>user\n  leading spaces\t\ttabs\r\nCRLF   \n\n\n<|im_end|><|im_start|>assistant\n",
          *PROBE]


def check_pretokens(counter: TokenCounter, bt: Tokenizer, chars: list[str], chunk: int = 2000) -> None:
    """The Python splitter cuts text where the tokenizer's pre-tokenizer does (pieces compared by their
    UTF-8 length: the tokenizer's pieces are byte-mapped)."""
    for ctx in CONTEXTS:
        for i in range(0, len(chars), chunk):
            s = "".join(ctx.format(ch, ch) for ch in chars[i:i + chunk])
            want = [len(w) for w, _ in bt.pre_tokenizer.pre_tokenize_str(s)]
            if [len(w.encode()) for w in counter.pre(s)] != want:
                bad = [hex(ord(ch)) for ch in chars[i:i + chunk] if [len(w.encode()) for w in counter.pre(ctx.format(
                    ch, ch))] != [len(w) for w, _ in bt.pre_tokenizer.pre_tokenize_str(ctx.format(ch, ch))]]
                pytest.fail(f"context {ctx!r}: pre-tokens differ for {bad[:10]}")


def check_counts(counter: TokenCounter, bt: Tokenizer, chars: list[str], chunk: int = 400) -> None:
    for ctx in CONTEXTS + ("<|im_start|>{}<|im_end|>",):
        texts = ["".join(ctx.format(ch, ch) for ch in chars[i:i + chunk]) for i in range(0, len(chars), chunk)]
        got, want = counter.count(texts), rust(bt, texts)
        bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
        if bad:   # name the characters
            sub = [ch for ch in chars[bad[0] * chunk:(bad[0] + 1) * chunk]
                   if counter.count([ctx.format(ch, ch)]) != rust(bt, [ctx.format(ch, ch)])]
            pytest.fail(f"context {ctx!r}: counts differ for {[hex(ord(c)) for c in sub[:10]]}")


@pytest.mark.slow
def test_every_assigned_character_smollm2(smollm2_path):
    """SmolLM2 (ByteLevel, GPT-2 regex): every character this Python's Unicode database assigns, in
    contexts that exercise each branch of the pattern, is cut into the pre-tokens the tokenizer cuts,
    and a sample counts as the tokenizer counts it."""
    bt = Tokenizer.from_file(str(smollm2_path / "tokenizer.json"))
    c = TokenCounter(Tok(bt))
    assert c.mode == "words"
    check_pretokens(c, bt, assigned_chars())
    check_counts(c, bt, assigned_chars(step=53))
    assert c.count(SHAPED) == rust(bt, SHAPED)


def test_ascii_pattern_matches_the_unicode_one():
    import random

    rnd = random.Random(3)
    alphabet = [chr(i) for i in range(128)] + ["'s", "'re", " ", "  ", "\n\n"]
    full = pretok._isolated(pretok.GPT2_PATTERN, total=True)
    for _ in range(2000):
        s = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(1, 40)))
        assert pretok.GPT2_ASCII.findall(s) == full(s), repr(s)


@pytest.mark.parametrize("shape", ["llama3_split", "digits", "nfc"])
def test_other_byte_level_shapes(smol_json, shape):
    """Shapes of other byte-level tokenizers (Llama 3 / Qwen 2: Split + ByteLevel without regex; digit
    splitting; an NFC normaliser) count as the Rust tokenizer does (a sample of all characters)."""
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    if shape == "llama3_split":
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3}, "behavior": "Isolated", "invert": False}, bl]}
        bt = variant(smol_json, pre_tokenizer=pre)
    elif shape == "digits":
        pre = {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                                     dict(bl, use_regex=True)]}
        bt = variant(smol_json, pre_tokenizer=pre)
    else:
        bt = variant(smol_json, normalizer={"type": "NFC"})
    c = TokenCounter(Tok(bt))
    assert c.mode == "words"
    if shape != "nfc":       # the normaliser is not part of pre_tokenize_str
        check_pretokens(c, bt, assigned_chars(step=11))
    check_counts(c, bt, assigned_chars(step=211))
    texts = SHAPED + ["e\u0301 cafe\u0301 \u212b 1234567 ٣٤٥٦"]
    assert c.count(texts) == rust(bt, texts)


def test_unknown_characters_go_to_the_tokenizer(smollm2_path):
    """A character this Python does not know (assigned in a later Unicode) may be classed differently by
    the two regex engines: such a segment is counted by the tokenizer itself."""
    bt = Tokenizer.from_file(str(smollm2_path / "tokenizer.json"))
    c = TokenCounter(Tok(bt))
    unknown = next(chr(x) for x in range(0x500, 0x110000) if unicodedata.category(chr(x)) == "Cn")
    assert pretok.has_unknown_chars("abc" + unknown) and not pretok.has_unknown_chars("abc é 東")
    texts = [f"a{unknown}b {unknown}{unknown} x", f"<|im_start|>user\n{unknown}<|im_end|>"]
    assert c.count(texts) == rust(bt, texts)


@pytest.mark.parametrize("case,mode", [
    ("lstrip_added_token", "whole"), ("metaspace_first", "whole"), ("whitespace_pretokenizer", "segments"),
    ("fast_off", "segments")])
def test_fallbacks_are_exact(smol_json, case, mode):
    """Where segments are not independent the text is counted whole; where the pre-tokenizer is not one
    this module copies, segments are counted by the Rust tokenizer. Counts stay exact either way."""
    fast = True
    if case == "lstrip_added_token":
        added = [dict(a, lstrip=True) if a["content"] == "<|im_end|>" else a for a in smol_json["added_tokens"]]
        bt = variant(smol_json, added_tokens=added)
    elif case == "metaspace_first":
        bt = variant(smol_json, pre_tokenizer={"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first",
                                               "split": True})
    elif case == "whitespace_pretokenizer":
        bt = variant(smol_json, pre_tokenizer={"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"}, {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False,
                                          "trim_offsets": True}]})
    else:
        bt, fast = variant(smol_json), False
    c = TokenCounter(Tok(bt), fast=fast)
    assert c.mode == mode
    texts = SHAPED + ["<|im_start|>user\n  spaced  <|im_end|>  \n<|im_start|>assistant\n ok"]
    assert c.count(texts) == rust(bt, texts)
