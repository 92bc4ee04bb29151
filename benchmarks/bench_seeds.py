"""Seed-to-seed spread of the train_eval deltas: the noise floor of one training run.

Trains and evaluates twice on the same data with two training seeds (same eval items), then reports per
eval metric both deltas (tuned - base), their spread |delta_1 - delta_2|, and each run's paired 95%
interval. A dataset change whose delta is smaller than this spread cannot be told from training noise,
even when one run's interval excludes 0 (the bootstrap covers eval-item noise, not seed noise).

    python benchmarks/bench_seeds.py --mix data/mix --export data/export --seeds 1 2 --out /tmp/seeds \
        --set train_eval.eval.heldout_limit=64        # any --set is passed to both runs

Writes <out>/seeds.md (the table for docs/train_eval.md) and <out>/seeds.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_seed(seed: int, args: argparse.Namespace) -> tuple[dict, float]:
    out = Path(args.out) / f"seed{seed}"
    metrics = out / "metrics" / "train_eval.json"
    cmd = [sys.executable, str(ROOT / "scripts" / "train_eval.py"), "--mix", args.mix, "--export", args.export,
           "--output", str(out / "train_eval"), "--metrics", str(metrics),
           "--set", f"train_eval.seed={seed}", "--set", f"train_eval.loss_csv={out / 'train_loss.csv'}"]
    for s in args.set or []:
        cmd += ["--set", s]
    if args.params:
        cmd += ["--params", args.params]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"seed {seed}: train_eval failed:\n{p.stderr[-3000:]}")
    details = json.loads(metrics.with_name("train_eval.details.json").read_text())
    return details, time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mix", default="data/mix")
    ap.add_argument("--export", default="data/export")
    ap.add_argument("--params", default=None)
    ap.add_argument("--seeds", type=int, nargs=2, default=[1, 2])
    ap.add_argument("--out", default="/tmp/bench_seeds")
    ap.add_argument("--set", action="append", help="SECTION.KEY=VALUE passed to both runs")
    args = ap.parse_args()
    runs = {s: run_seed(s, args) for s in args.seeds}
    (a, ta), (b, tb) = runs[args.seeds[0]], runs[args.seeds[1]]
    s1, s2 = args.seeds
    lines = [f"| metric | n | delta seed {s1} [95% CI] | delta seed {s2} [95% CI] | spread | verdicts |",
             "|---|---|---|---|---|---|"]
    out = {}
    for m, ea in a["evals"].items():
        eb = b["evals"].get(m)
        if not eb:
            continue
        spread = abs(ea["delta"] - eb["delta"])
        out[m] = {"n": ea["n"], "delta": [ea["delta"], eb["delta"]], "delta_ci": [ea["delta_ci"], eb["delta_ci"]],
                  "spread": round(spread, 6), "verdicts": [ea["verdict"], eb["verdict"]]}
        ci = lambda e: f"[{e['delta_ci'][0]:+.4f}, {e['delta_ci'][1]:+.4f}]"  # noqa: E731
        lines.append(f"| {m} | {ea['n']} | {ea['delta']:+.4f} {ci(ea)} | {eb['delta']:+.4f} {ci(eb)} | "
                     f"{spread:.4f} | {ea['verdict']} / {eb['verdict']} |")
    cpu = [r[0].get("timing", {}).get("cpu_total_s") for r in runs.values()]
    lines += ["", f"wall s per run: {ta:.0f}, {tb:.0f}; process CPU s per run: {cpu[0]}, {cpu[1]}"]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "seeds.md").write_text("\n".join(lines) + "\n")
    (Path(args.out) / "seeds.json").write_text(json.dumps({"seeds": args.seeds, "metrics": out,
                                                           "wall_s": [ta, tb], "cpu_s": cpu}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
