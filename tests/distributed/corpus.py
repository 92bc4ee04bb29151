"""A small corpus that exercises every dedup path: near and exact duplicates, scores and sources
(keep policy), records without ids, bad lines, a blank line, an eval-set item, gzip input."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

GSM8K_Q = ("Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for "
           "her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh "
           "duck egg. How much in dollars does she make every day at the farmers' market?")


def _rec(i: int, prompt: str, answer: str, rnd: random.Random, with_id: bool = True) -> dict:
    # every record is of the record model (dedup quarantines the others); `with_id` is kept for the call sites
    r = {"id": f"rec-{i:05d}" if with_id else f"noid-{i:05d}", "kind": "sft",
         "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
         "source": {"dataset": rnd.choice(["alpaca", "dolly", "oasst"])}}
    if rnd.random() < 0.3:
        r["scores"] = {"judge": {"overall": rnd.choice([3, 4, 5])}}
    return r


def make_corpus(root: Path, n: int = 600, seed: int = 5) -> list[Path]:
    """Write root/a/records.jsonl, root/b/records.jsonl and root/c.jsonl.gz; return the input list."""
    rnd = random.Random(seed)
    vocab = [f"w{k}" for k in range(3000)]
    lines: list[str] = []
    bases = []
    for i in range(n):
        words = [rnd.choice(vocab) for _ in range(rnd.randint(80, 120))]
        bases.append(words)
        lines.append(json.dumps(_rec(i, " ".join(words[:20]), " ".join(words[20:]), rnd, with_id=i % 97 != 0)))
    for j in range(n // 4):                       # near duplicates: a few words changed
        src = list(bases[rnd.randrange(n)])
        for _ in range(rnd.randint(1, 2)):
            src[rnd.randrange(len(src))] = rnd.choice(vocab)
        lines.append(json.dumps(_rec(n + j, " ".join(src[:20]), " ".join(src[20:]), rnd)))
    for j in range(n // 20):                      # exact duplicates (other id, other source)
        lines.append(json.dumps({**json.loads(lines[rnd.randrange(n)]), "id": f"dup-{j}"}))
    lines.append(json.dumps(_rec(9_999, GSM8K_Q, "She makes $18 every day.", rnd)))
    rnd.shuffle(lines)
    lines.insert(len(lines) // 3, '{"id": "broken", "messages": [')   # malformed
    lines.insert(len(lines) // 2, "")                                  # blank line
    a, b, c = len(lines) // 2, 3 * len(lines) // 4, len(lines)
    (root / "a").mkdir(parents=True, exist_ok=True)
    (root / "b").mkdir(parents=True, exist_ok=True)
    (root / "a" / "records.jsonl").write_text("\n".join(lines[:a]) + "\n")
    (root / "b" / "records.jsonl").write_text("\n".join(lines[a:b]))          # no final newline
    with gzip.open(root / "c.jsonl.gz", "wt") as f:
        f.write("\n".join(lines[b:c]) + "\n")
    return [root / "a", root / "b", root / "c.jsonl.gz"]
