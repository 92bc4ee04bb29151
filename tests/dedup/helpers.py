"""Record builders for the dedup tests."""

import json
import random
from pathlib import Path

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey xray yankee zulu apple banana cherry grape lemon "
         "mango orange peach pear plum river mountain forest desert ocean island valley canyon meadow").split()


def text(seed: int, n: int = 60) -> str:
    rnd = random.Random(seed)
    return " ".join(rnd.choice(WORDS) + str(rnd.randrange(50)) for _ in range(n))


def edit(t: str, k: int, seed: int = 0) -> str:
    """Replace k words (each change kills up to 5 shingles)."""
    rnd = random.Random(seed)
    w = t.split()
    for i in rnd.sample(range(len(w)), k):
        w[i] = "zz" + str(rnd.randrange(10**6))
    return " ".join(w)


def rec(rid: str, prompt: str, answer: str = "An answer that is long enough to matter here.", *,
        source: str = "src", score: float | None = None, kind: str = "sft") -> dict:
    r = {"id": rid, "kind": kind, "source": {"dataset": source}}
    if kind == "sft":
        r["messages"] = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    else:
        r["messages"] = [{"role": "user", "content": prompt}]
        r["chosen"] = {"role": "assistant", "content": answer}
        r["rejected"] = {"role": "assistant", "content": "No."}
    if score is not None:
        r["scores"] = {"judge": {"overall": score}}
    return r


def write(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False))
            fh.write("\n")
    return path


def read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
