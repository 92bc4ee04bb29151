"""Bundle size per 100K records, by format and file type: the numbers in docs/export.md ("Size").

Not a test (pytest collects test_*.py only): a measurement, run by hand.

    python benchmarks/export_sizes.py --n 100000 [--keep DIR]

Generates N records in the record shape (docs/records.md), realistic in length and structure:
75% SFT / 25% preference pairs, 30% with a system prompt, 30% multi-turn (2-4 user turns), user turns
of 10-80 words, answers of 60-300 words (rejected answers 20-200), text from the Zipf pseudo-word
generator of benchmarks/dedup_corpus.py (imported). Then runs `scripts/export.py` on them (one file
-> the train bundle) in its own measured process once per configuration: the default params, every
format as .jsonl, as .jsonl.gz and as .parquet. Prints one table row per configuration (files, MB,
MB per 100K records, CPU s, wall s, peak RSS) and one per file, as markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from dedup_corpus import Gen, conversation, text as _text  # noqa: E402
from measure import run_measured  # noqa: E402

SFT = ["messages", "sharegpt", "alpaca", "chatml_text"]
DPO = ["trl", "messages_pair", "prompt_pairs", "alpaca_pref"]
BUCKETS = ["instruction", "code", "cot_math", "analytical", "creative", "factual", "red_team"]


def generate(path: Path, n: int, seed: int = 11) -> dict[str, int]:
    g = Gen(seed)
    kinds = {"sft": 0, "preference": 0}
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            rec = {"id": f"r{i:07d}", "bucket": BUCKETS[g.rnd.randrange(len(BUCKETS))],
                   "source": {"dataset": f"synth_{i % 3}", "revision": "v1", "row": i},
                   "messages": conversation(g, i)}
            if g.rnd.random() < 0.75:
                rec["kind"] = "sft"
                rec["messages"].append({"role": "assistant", "content": _text(g, 60, 300, 7 * i + 99)})
            else:
                rec["kind"] = "preference"
                rec["chosen"] = {"role": "assistant", "content": _text(g, 60, 300, 7 * i + 98)}
                rec["rejected"] = {"role": "assistant", "content": _text(g, 20, 200, 7 * i + 97)}
            kinds[rec["kind"]] += 1
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return kinds


CONFIGS = {
    "default (messages + trl, .jsonl)": None,
    "all 8 formats, .jsonl": ("", ""),
    "all 8 formats, .jsonl.gz": (".jsonl.gz", ".jsonl.gz"),
    "all 8 formats, .parquet": (".parquet", ".parquet"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="records to generate")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp folder, removed)")
    a = ap.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix="export-sizes-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / "records.jsonl"
    kinds = generate(src, a.n)
    per100k = 100_000 / a.n
    print(f"n={a.n} ({kinds['sft']} SFT, {kinds['preference']} preference); input {src.stat().st_size / 1e6:.1f} MB "
          f"({src.stat().st_size / 1e6 * per100k:.1f} MB per 100K)\n")
    env = dict(os.environ, DISTILLERY_TRACKING="0", DISTILLERY_PROGRESS="0", HF_HUB_OFFLINE="1")
    summary, files = [], []
    for name, ext in CONFIGS.items():
        out = work / f"out{len(summary)}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, str(REPO / "scripts/export.py"), "--input", str(src), "--output", str(out),
               "--no-eval", "--metrics", str(work / "metrics.json")]
        if ext is not None:
            cmd += ["--set", f"export.sft_formats=[{','.join(f + ext[0] for f in SFT)}]",
                    "--set", f"export.dpo_formats=[{','.join(f + ext[1] for f in DPO)}]"]
        m = run_measured(cmd, env=env, cwd=work)
        if m.returncode != 0:
            raise SystemExit(m.log[-3000:])
        written = sorted(p for d in ("sft", "dpo") for p in (out / d).iterdir())
        total = sum(p.stat().st_size for p in written)
        summary.append([name, len(written), f"{total / 1e6:.1f}", f"{total / 1e6 * per100k:.1f}", f"{m.cpu:.1f}",
                        f"{m.wall:.1f}", f"{m.peak_tree_mb:.0f}"])
        if ext is not None:
            files += [[f"{p.parent.name}/{p.name}", f"{p.stat().st_size / 1e6 * per100k:.1f}"] for p in written]
    print("| configuration | files | MB | MB per 100K records | CPU s | wall s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for r in summary:
        print("| " + " | ".join(map(str, r)) + " |")
    print("\n| file | MB per 100K records |\n|---|---|")
    for r in sorted(files):
        print(f"| `{r[0]}` | {r[1]} |")
    if not a.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
