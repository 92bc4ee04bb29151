"""Synthetic instruction/response corpus for the dedup benchmark, with known near-duplicates.

Mirrors the corpus of ../shared/reference/dedup_perf.md: 60K Zipf-Mandelbrot pseudo-words, records
of 150-250 words (~1.4 KB of JSONL), shared instruction templates and response openings, 4% hard
negatives from 60 template families sharing a 40-80% passage, and ~20% injected near-duplicates
(copies of earlier records, 10% of them copies of copies) with 0-12 word edits and optional added
sentences, so that their exact Jaccard spans ~0.5-1.0. `source_of[i]` is the record a duplicate
was copied from (-1 for originals). Deterministic for a given (n, seed).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

SYL = ["ka", "lo", "mi", "ne", "ru", "ta", "po", "si", "ve", "do", "an", "el", "or", "un", "is", "ba", "qu",
       "ze", "ha", "ji", "fo", "gu", "ly", "wo", "xi", "pe", "ro", "sa", "te", "ni"]


def _vocab(rnd: random.Random, size: int) -> tuple[np.ndarray, np.ndarray]:
    words: set[str] = set()
    out = []
    while len(out) < size:
        k = 1 + min(int(rnd.expovariate(1 / 1.2)), 5)
        w = "".join(rnd.choices(SYL, k=k))
        if w not in words:
            words.add(w)
            out.append(w)
    out.sort(key=len)  # frequent words are short
    ranks = np.arange(1, size + 1)
    p = 1.0 / (ranks + 2.7) ** 1.07
    return np.array(out, dtype=object), p / p.sum()


class Gen:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.rnd = random.Random(seed)
        self.vocab, self.p = _vocab(self.rnd, 60_000)
        self.vlist = list(self.vocab)
        self.cdf = np.cumsum(self.p)
        self.templates = [self.words(int(self.rnd.randrange(5, 12))) for _ in range(200)]
        self.openings = [self.words(int(self.rnd.randrange(6, 15))) for _ in range(30)]
        self.families = [self.words(int(self.rnd.randrange(120, 180))) for _ in range(60)]

    def words(self, n: int) -> list[int]:
        """Word ids; id + V means the upper-cased word (stored as ids to keep 600K records small)."""
        idx = np.searchsorted(self.cdf, self.rng.random(n))
        return np.minimum(idx, len(self.vocab) - 1).tolist()

    def render(self, ids: list[int]) -> list[str]:
        v = len(self.vocab)
        return [self.vocab[i - v].upper() if i >= v else self.vocab[i] for i in ids]

    def sentences(self, ids: list[int], render_seed: int) -> str:
        """Sentence breaks and punctuation come from `render_seed`: a copy rendered with its source's
        seed is byte-identical when unedited (an exact duplicate) and mostly aligned when edited."""
        v, voc, rnd = len(self.vlist), self.vlist, random.Random(render_seed)
        words = [voc[i - v].upper() if i >= v else voc[i] for i in ids]
        out, i = [], 0
        while i < len(words):
            k = rnd.randint(6, 20)
            s = words[i:i + k]
            s[0] = s[0].capitalize()
            out.append(" ".join(s) + rnd.choice(".....?!;"))
            i += k
        return " ".join(out)

    def original(self) -> tuple[list[int], list[int]]:
        n_ins = int(self.rnd.randrange(15, 41))
        total = int(self.rnd.randrange(170, 281))
        if self.rnd.random() < 0.04:  # hard negative: shares a family passage
            fam = self.families[int(self.rnd.randrange(60))]
            share = int(total * self.rnd.uniform(0.4, 0.8))
            body = fam[:share] + self.words(max(total - share, 1))
            return body[:n_ins], body[n_ins:]
        ins = self.words(n_ins)
        if self.rnd.random() < 0.4:
            t = self.templates[int(self.rnd.randrange(200))]
            ins = t + ins[len(t):]
        resp = self.words(total - n_ins)
        if self.rnd.random() < 0.3:
            o = self.openings[int(self.rnd.randrange(30))]
            resp = o + resp[len(o):]
        return ins, resp

    def edit(self, ins, resp) -> tuple[list[int], list[int], bool]:
        ins, resp = list(ins), list(resp)
        u = self.rnd.random()
        k = 0 if u < 0.05 else -1 if u < 0.10 else int(self.rnd.randrange(1, 4)) if u < 0.5 else \
            int(self.rnd.randrange(4, 7)) if u < 0.8 else int(self.rnd.randrange(7, 13))
        upper = False
        if k == -1:  # format only
            upper = True
            k = 0
        for _ in range(k):
            part = ins if self.rnd.random() < len(ins) / (len(ins) + len(resp)) else resp
            if len(part) < 3:
                continue
            i = int(self.rnd.randrange(len(part)))
            op = int(self.rnd.randrange(5))
            if op == 0:
                part[i] = self.words(1)[0]
            elif op == 1:
                del part[i]
            elif op == 2:
                part.insert(i, self.words(1)[0])
            elif op == 3 and i + 1 < len(part):
                part[i], part[i + 1] = part[i + 1], part[i]
            else:
                part[i] = part[i] % len(self.vocab) + len(self.vocab)
        if self.rnd.random() < 0.15:
            extra = self.words(int(self.rnd.randrange(5, 11)))
            if self.rnd.random() < 0.5:
                ins = extra + ins
            else:
                resp = resp + extra
        return ins, resp, upper


def text(g: Gen, lo: int, hi: int, seed: int) -> str:
    """Sentences of lo..hi-1 Zipf words (the shared filler of the benchmarks' corpora)."""
    return g.sentences(g.words(g.rnd.randrange(lo, hi)), seed)


def conversation(g: Gen, i: int, reply: tuple[int, int] = (60, 300)) -> list[dict]:
    """Optional system prompt (30%), then 1 user turn (70%) or 2-4 with assistant replies of `reply` words
    between them; ends with the user (the caller appends the answer)."""
    msgs = []
    if g.rnd.random() < 0.3:
        msgs.append({"role": "system", "content": text(g, 8, 40, 7 * i)})
    turns = 1 if g.rnd.random() < 0.7 else g.rnd.randrange(2, 5)
    for t in range(turns):
        if t:
            msgs.append({"role": "assistant", "content": text(g, *reply, 7 * i + 2 * t)})
        msgs.append({"role": "user", "content": text(g, 10, 80, 7 * i + 2 * t + 1)})
    return msgs


def pairs(n: int, seed: int = 777, dup_rate: float = 0.2):
    """Yield (i, source_of_i, user, assistant, g) for n instruction/response pairs, ~dup_rate of them
    near-duplicates of earlier ones (see the module doc); `g` is the generator, for callers adding text."""
    g = Gen(seed)
    base: list[tuple[np.ndarray, np.ndarray]] = []
    n_dup = int(n * dup_rate)
    is_dup = np.zeros(n, bool)
    is_dup[g.rng.choice(np.arange(n // 20, n), n_dup, replace=False)] = True
    dup_list: list[int] = []
    rseed = np.arange(n, dtype=np.int64) * 2 + seed * 1_000_003
    for i in range(n):
        src = -1
        if is_dup[i]:
            # copy an earlier record; 10% copy an earlier duplicate (copies of copies)
            if dup_list and g.rnd.random() < 0.1:
                src = dup_list[g.rnd.randrange(len(dup_list))]
            else:
                src = g.rnd.randrange(i)
            dup_list.append(i)
            rseed[i] = rseed[src]
            ins, resp, upper = g.edit(base[src][0].tolist(), base[src][1].tolist())
        else:
            ins, resp = g.original()
            upper = False
        base.append((np.array(ins, np.int32), np.array(resp, np.int32)))
        user, asst = g.sentences(list(ins), int(rseed[i])), g.sentences(list(resp), int(rseed[i]) + 1)
        if upper:
            user, asst = user.upper(), "  " + asst.replace(" ", "  ")
        yield i, src, user, asst, g


def generate(path: Path, n: int, seed: int = 777, dup_rate: float = 0.2) -> np.ndarray:
    """Write n records to `path` (JSONL) and return source_of (int64, -1 for originals)."""
    source_of = np.full(n, -1, np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for i, src, user, asst, _ in pairs(n, seed, dup_rate):
            source_of[i] = src
            fh.write(json.dumps({"id": f"r{i:07d}", "kind": "sft",
                                 "messages": [{"role": "user", "content": user},
                                              {"role": "assistant", "content": asst}],
                                 "source": {"dataset": f"synth_{i % 3}"}}) + "\n")
    tmp.replace(path)
    return source_of
