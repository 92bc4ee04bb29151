"""The vectorised signature path equals plain datasketch, and shingling handles every script."""

import gzip
import json

import numpy as np
from datasketch import MinHash, MinHashLSH

from distillery.dedup.lsh import candidate_pairs
from distillery.dedup.minhash import band_keys, candidate_probability, choose_banding, permutations, signatures
from distillery.dedup.shingle import Batch, shingle_hash32, shingle_strings, shingles, tokenize

DATASETS = "/work/shared/datasets"


def sample_texts(n=60):
    texts = []
    with open(f"{DATASETS}/code_alpaca/code_alpaca_2k.jsonl", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            texts.append(" ".join(str(r.get(k, "")) for k in ("instruction", "input", "output")))
            if len(texts) >= n:
                break
    with gzip.open(f"{DATASETS}/gsm8k/train.jsonl.gz", "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            r = json.loads(line)
            texts.append(r["question"] + "\n" + r["answer"])
            if i >= n:
                break
    # near-copies, short, single-token, empty, CJK, mixed scripts
    texts += [texts[0] + " extra words here", texts[1].replace("the", "a"), "Hi", "", "   ",
              "今天天气很好，我们去公园散步吧。", "Mixed 中文 and English words 123", "สวัสดีครับ"]
    return texts


def datasketch_signature(text, num_perm, seed):
    m = MinHash(num_perm=num_perm, seed=seed, hashfunc=shingle_hash32)
    for s in shingle_strings(text, 5):
        m.update(s.encode("utf-8"))
    return m


def test_fast_signatures_equal_plain_datasketch_minhash():
    texts = sample_texts()
    sh, off = shingles(Batch.from_texts(texts), 5)
    for num_perm, seed in ((128, 1), (64, 42)):
        sig = signatures(sh, off, num_perm, seed)
        for i, t in enumerate(texts):
            assert np.array_equal(sig[i], datasketch_signature(t, num_perm, seed).hashvalues), (i, t[:60])


def test_permutations_are_datasketch_affine32():
    for num_perm, seed in ((128, 1), (64, 42), (256, 0)):
        a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
        mine = permutations(num_perm, seed)
        assert np.array_equal(mine[0], a) and np.array_equal(mine[1], b)


def test_candidate_pairs_equal_datasketch_lsh():
    """Same signatures + same banding => exactly datasketch MinHashLSH's candidate pairs."""
    texts = [t for t in sample_texts() if t.strip()]
    # add graded near-duplicates so that there are pairs on both sides of the threshold
    base = texts[:20]
    for k, t in enumerate(base):
        words = t.split()
        texts.append(" ".join(words[: max(1, len(words) - (k % 6) * 3)]))
    b, r = choose_banding(0.8, 128, 0.95)
    sh, off = shingles(Batch.from_texts(texts), 5)
    sig = signatures(sh, off, 128, 1)
    pairs = {tuple(p) for p in candidate_pairs(band_keys(sig, b, r).T, np.arange(len(texts))).tolist()}

    lsh = MinHashLSH(num_perm=128, params=(b, r))
    ds_pairs = set()
    for i, t in enumerate(texts):
        m = datasketch_signature(t, 128, 1)
        for j in lsh.query(m):
            ds_pairs.add((int(j), i))
        lsh.insert(str(i), m)
    assert pairs == ds_pairs
    assert len(pairs) >= 10


def test_cjk_is_shingled_by_character():
    assert tokenize("今天天气很好") == ["今", "天", "天", "气", "很", "好"]
    assert tokenize("Mixed 中文 words") == ["mixed", "中", "文", "words"]
    a = "我们今天一起去公园散步，然后在湖边吃午饭，下午回家休息一会儿。"
    b = a.replace("午饭", "晚饭")
    c = "机器学习是人工智能的一个分支，研究计算机如何从数据中学习规律。"
    sh, off = shingles(Batch.from_texts([a, b, c]), 5)
    sets = [set(sh[off[i]:off[i + 1]].tolist()) for i in range(3)]
    j_ab = len(sets[0] & sets[1]) / len(sets[0] | sets[1])
    j_ac = len(sets[0] & sets[2]) / len(sets[0] | sets[2])
    assert j_ab > 0.6 and j_ac == 0.0


def test_short_texts_have_one_whole_shingle_and_empty_none():
    sh, off = shingles(Batch.from_texts(["Hi", "two words", "", "one two three four five six"], ), 5)
    assert np.diff(off).tolist() == [1, 1, 0, 2]


def test_auto_banding_keeps_pairs_at_the_threshold():
    for t, n in ((0.8, 128), (0.7, 128), (0.9, 256)):
        b, r = choose_banding(t, n, 0.95)
        assert b * r <= n
        assert candidate_probability(t, b, r) >= 0.95
        assert candidate_probability(t - 0.3, b, r) < 0.35


def test_partial_signature_is_a_prefix_of_the_full_one():
    sh, off = shingles(Batch.from_texts(sample_texts(10)), 5)
    full = signatures(sh, off, 128, 1)
    assert np.array_equal(signatures(sh, off, 128, 1, used=91), full[:, :91])


def random_texts(n, seed=0):
    """ASCII, accented, CJK/Thai, odd whitespace and punctuation: every branch of the batch tokeniser."""
    import random

    rng = random.Random(seed)
    alphabet = ("abcXYZ019_ ,.;!\n\t\x0b\x1c\x1f-'éüÉ中文字ก’“”ßİK\u00a0\u3000"
                "ΣσςΩω\u0301\U0001F600\ud800฿。한글Жж٣\u0e3f")  # final sigma, combining mark, emoji, lone surrogate
    return ["", " ", "Hi", "İstanbul STRASSE Straße", "a_b c-d 12x", "ΟΔΟΣ ΟΔΟΣ.", "e\u0301te 中文ok"] + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120))) for _ in range(n)]


def test_batch_tokeniser_equals_regex_tokens_and_scalar_hash():
    """The numpy byte-table path (ASCII) and the regex path (other scripts) give the token hashes of
    `tokenize` + the scalar `token_hash`, doc by doc."""
    from distillery.dedup.shingle import token_hashes

    texts = random_texts(400)
    batch = Batch.from_texts(texts)
    for i, t in enumerate(texts):
        assert np.array_equal(batch.flat[batch.offsets[i]:batch.offsets[i + 1]], token_hashes(tokenize(t))), repr(t)


def test_token_hashes_separate_distinct_tokens():
    from distillery.dedup.shingle import token_hash

    words = {w for t in random_texts(300, seed=3) for w in tokenize(t)} | {"a", "aa", "ab", "ba", "a" * 40}
    assert len({token_hash(w) for w in words}) == len(words)


def test_blocked_signatures_equal_per_doc_minimum_including_docs_longer_than_a_block():
    from distillery.dedup.minhash import _BLOCK, EMPTY, fmix32

    rng = np.random.default_rng(0)
    lens = np.array([0, 5, 1, 0, _BLOCK + 1, 3, _BLOCK, 2 * _BLOCK + 7, 0, 7, 2])
    off = np.concatenate([[0], np.cumsum(lens)])
    sh = rng.integers(0, 2**32, off[-1], dtype=np.uint64).astype(np.uint32)
    got = signatures(sh, off, 64, 3)
    a, b = permutations(64, 3)
    mixed = fmix32(sh)
    for d in range(len(lens)):
        h = mixed[off[d]:off[d + 1]]
        want = (np.multiply.outer(h, a) + b).min(axis=0) if len(h) else np.full(64, EMPTY, np.uint32)
        assert np.array_equal(got[d], want), d
