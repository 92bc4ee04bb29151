"""Stats benchmark: our `stats` stage vs what a user writes in ten lines with Hugging Face `datasets`.

Generates N exported rows (75% SFT `{"id", "messages"}` with system prompts and multi-turn
conversations, 25% DPO TRL `{"id", "prompt", "chosen", "rejected"}`; text from
benchmarks/dedup_corpus.py's Zipf pseudo-word generator) plus a mix file giving each id a bucket, then
measures, each in its own subprocess on the same rows:

* `stats`: `python scripts/stats.py --input EXPORT --mix MIX --output OUT` (tracking and progress off),
  with an empty length cache;
* `stats rerun`: the same stage after a mix change (10% of the rows replaced by new ones), with the cache
  the first run filled (only when the stage has `stats.cache_path`);
* `hf`: `datasets.Dataset.from_json(f).map(lambda r: {"n": len(apply_chat_template(..., tokenize=True))},
  num_proc=2)` over the SFT conversations and the DPO prompt+chosen / prompt+rejected, with a fresh
  `datasets` cache (a user's first run). It measures full lengths only; the stage also measures prompts.

CPU seconds are user + sys of the process and its children (getrusage), peak RSS is the process tree's.
The last line is `stats n=N cpu_s=X wall_s=X hf_cpu_s=X stats_vs_hf=X`, where stats_vs_hf is
hf_cpu_s / cpu_s (how many times less CPU the stage spends than the anchor).

    python benchmarks/bench_stats.py --n 100000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dedup_corpus import Gen, conversation, text as _text  # noqa: E402
from measure import run_measured  # noqa: E402

BUCKETS = ["instruction", "code", "cot_math", "tool_use", "analytical", "creative", "factual", "red_team"]


def generate(root: Path, n: int, seed: int = 11, tag: str = "r") -> tuple[Path, Path]:
    """Write root/export/{sft/messages,dpo/trl}.jsonl and root/mix/production.jsonl; n rows in all."""
    g = Gen(seed)
    exp, mix = root / "export", root / "mix"
    (exp / "sft").mkdir(parents=True, exist_ok=True)
    (exp / "dpo").mkdir(parents=True, exist_ok=True)
    mix.mkdir(parents=True, exist_ok=True)
    dumps = lambda o: json.dumps(o, ensure_ascii=False, separators=(",", ":"))  # noqa: E731 (the export's)
    with open(exp / "sft" / "messages.jsonl", "w") as sft, open(exp / "dpo" / "trl.jsonl", "w") as dpo, \
            open(mix / "production.jsonl", "w") as mx:
        for i in range(n):
            rid = f"{tag}{i:07d}"
            prompt = conversation(g, i, reply=(40, 200))
            bucket = BUCKETS[g.rnd.randrange(len(BUCKETS))]
            if g.rnd.random() < 0.75:
                row = {"id": rid, "messages": prompt + [{"role": "assistant", "content": _text(g, 60, 300, 7 * i + 99)}]}
                sft.write(dumps(row) + "\n")
                mx.write(dumps({"id": rid, "kind": "sft", "bucket": bucket, "messages": row["messages"]}) + "\n")
            else:
                row = {"id": rid, "prompt": prompt,
                       "chosen": [{"role": "assistant", "content": _text(g, 60, 300, 7 * i + 98)}],
                       "rejected": [{"role": "assistant", "content": _text(g, 20, 200, 7 * i + 97)}]}
                dpo.write(dumps(row) + "\n")
                mx.write(dumps({"id": rid, "kind": "preference", "bucket": bucket, "messages": prompt}) + "\n")
    return exp, mix


def change_mix(root: Path, dst: Path, share: float, seed: int = 5) -> tuple[Path, Path]:
    """A copy of root's export and mix with `share` of the rows replaced by new ones (a mix change)."""
    n_new = 0
    rnd = random.Random(seed)
    fresh = dst / "_fresh"
    counts = {}
    for rel in ("export/sft/messages.jsonl", "export/dpo/trl.jsonl"):
        counts[rel] = sum(1 for _ in open(root / rel))
    n_new = int(sum(counts.values()) * share)
    generate(fresh, n_new, seed=seed + 1000, tag="n")
    for rel in ("export/sft/messages.jsonl", "export/dpo/trl.jsonl", "mix/production.jsonl"):
        old = [ln for ln in open(root / rel) if rnd.random() >= share]
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        with open(dst / rel, "w") as fh:
            fh.writelines(old)
            fh.writelines(open(fresh / rel))
    shutil.rmtree(fresh)
    return dst / "export", dst / "mix"


HF_CHILD = """
import sys, datasets
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
n = lambda conv: len(tok.apply_chat_template(conv, tokenize=True)["input_ids"])
sft = datasets.Dataset.from_json(sys.argv[2]).map(lambda r: {"n": n(r["messages"])}, num_proc=2)
dpo = datasets.Dataset.from_json(sys.argv[3]).map(
    lambda r: {"nc": n(r["prompt"] + r["chosen"]), "nr": n(r["prompt"] + r["rejected"])}, num_proc=2)
lens = list(sft["n"]) + list(dpo["nc"]) + list(dpo["nr"])
print("RESULT", sum(lens), max(lens))
"""


def _env(extra: dict | None = None) -> dict:
    env = dict(os.environ, DISTILLERY_TRACKING="0", DISTILLERY_PROGRESS="0", HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", HF_DATASETS_DISABLE_PROGRESS_BARS="1")
    env.update(extra or {})
    return env


def run_stats(exp: Path, mix: Path, out: Path, tok: str, cache: Path | None) -> dict:
    cmd = [sys.executable, str(REPO / "scripts" / "stats.py"), "--input", str(exp), "--mix", str(mix),
           "--output", str(out), "--tokenizer", tok, "--params", str(REPO / "params.yaml")]
    if cache is not None:
        cmd += ["--set", f"stats.cache_path={cache}"]
    m = run_measured(cmd, env=_env(), cwd=REPO, interval=0.1)
    if m.returncode != 0:
        raise SystemExit(f"stats failed ({m.returncode}):\n{m.log[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {"cpu": m.cpu, "wall": m.wall, "peak_mb": m.peak_tree_mb, "load": m.load_peak,
            "p99": summary["token_p99"], "max": summary["token_max"], "rows": summary["records_out"]}


def run_hf(exp: Path, tok: str, tmp: Path) -> dict:
    cache = tmp / "hf_cache"
    shutil.rmtree(cache, ignore_errors=True)
    cmd = [sys.executable, "-c", HF_CHILD, tok, str(exp / "sft" / "messages.jsonl"), str(exp / "dpo" / "trl.jsonl")]
    m = run_measured(cmd, env=_env({"HF_DATASETS_CACHE": str(cache), "HF_HOME": str(tmp / "hf_home")}),
                     cwd=tmp, interval=0.1)
    line = [ln for ln in m.log.splitlines() if ln.startswith("RESULT ")]
    if m.returncode != 0 or not line:
        raise SystemExit(f"hf anchor failed ({m.returncode}):\n{m.log[-3000:]}")
    total, mx = map(int, line[-1].split()[1:])
    return {"cpu": m.cpu, "wall": m.wall, "peak_mb": m.peak_tree_mb, "load": m.load_peak, "tokens": total, "max": mx}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="exported rows (SFT + DPO)")
    ap.add_argument("--repeat", type=int, default=1, help="measure each run this many times (best CPU kept)")
    ap.add_argument("--no-hf", action="store_true", help="skip the datasets anchor")
    ap.add_argument("--keep", default=None, help="generate/reuse the rows in this folder")
    a = ap.parse_args()

    from distillery.models import resolve_model_path
    from distillery.stats.config import StatsParams

    tok = str(Path(resolve_model_path("smollm2")).resolve())
    has_cache = "cache_path" in StatsParams.model_fields
    with tempfile.TemporaryDirectory(prefix="bench-stats-") as d:
        tmp = Path(d)
        root = Path(a.keep) if a.keep else tmp / "rows"
        if not (root / "export" / "sft" / "messages.jsonl").exists():
            generate(root, a.n)
        exp, mix = root / "export", root / "mix"
        size_mb = sum(f.stat().st_size for f in exp.rglob("*.jsonl")) / 2**20

        def best(fn):
            runs = [fn() for _ in range(a.repeat)]
            return min(runs, key=lambda r: r["cpu"])

        def cold():
            cache = tmp / "cache" / "lengths.sqlite"
            shutil.rmtree(cache.parent, ignore_errors=True)
            return run_stats(exp, mix, tmp / "out", tok, cache if has_cache else None)

        st = best(cold)
        rows = [("stats (empty cache)" if has_cache else "stats", st)]
        if has_cache:  # the first run's cache, then 10% of the rows changed
            exp2, mix2 = change_mix(root, tmp / "changed", 0.10)
            warm = tmp / "cache" / "lengths.sqlite"
            base = tmp / "cache_base.sqlite"
            shutil.copy(warm, base)

            def rerun():
                shutil.copy(base, warm)
                return run_stats(exp2, mix2, tmp / "out2", tok, warm)

            rows.append(("stats rerun, 10% rows new (cached)", best(rerun)))
        hf = None if a.no_hf else best(lambda: run_hf(exp, tok, tmp))
        if hf:
            rows.append(("hf datasets map(apply_chat_template), num_proc=2", hf))
        print(f"{a.n} rows ({st['rows']} measured), {size_mb:.0f} MB of JSONL; {os.cpu_count()} cores; "
              f"best of {a.repeat} by CPU")
        print(f"{'run':52s} {'cpu_s':>8s} {'wall_s':>8s} {'peak_mb':>8s} {'load':>5s}")
        for name, r in rows:
            print(f"{name:52s} {r['cpu']:8.1f} {r['wall']:8.1f} {r['peak_mb']:8.0f} {r['load']:5.1f}")
        print(f"stats: p99 {st['p99']} max {st['max']}" + (f"; hf: max {hf['max']}" if hf else ""))
        hf_cpu = hf["cpu"] if hf else float("nan")
        print(f"stats n={a.n} cpu_s={st['cpu']:.1f} wall_s={st['wall']:.1f} hf_cpu_s={hf_cpu:.1f} "
              f"stats_vs_hf={hf_cpu / st['cpu']:.2f}")


if __name__ == "__main__":
    main()
