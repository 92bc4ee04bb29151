"""How fast could the offline generation stages be on this machine? (`make bench-floor`; README, issue 14).

Runs the six generation stages of the shipped params (`dvc repro` of distill, completion, multiturn,
scenarios, preferences and score, with their upstream stages) in a fresh clone of this checkout, with an
empty LLM cache. `floor_hook/sitecustomize.py` counts what every forward pass of the offline teacher
computes. This script then measures the fastest float32 matrix product this machine runs and gives each
stage a floor: the arithmetic its tokens need, at that rate.

- real tokens: prompt and generated positions, each once (holes and padding excluded, shared prefixes
  counted where they were computed);
- FLOPs: the linears of every layer per real token, the LM head per row whose logits were taken, and
  attention per real key each real query attends to;
- floor s = FLOPs / peak float32 GEMM rate. No decoder can beat it in float32 on these cores: it assumes every
  multiply runs at the speed of a large square GEMM and that model loading, tokenising and sampling cost
  nothing;
- floor at 64 rows: the same, but the decode steps' products at the rate the teacher's own linears reach with
  64 rows (the shipped batch), 256 rows in brackets (a batch no stage's requests fill). A decode step
  multiplies only as many rows as there are requests in flight, so this is the floor of a decoder that
  keeps the shipped batch full at every step.

Prints a table (also written to benchmarks/out/floor.md) and ends with one line:
`floor total_floor_s=F total_wall_s=W peak_gflops=P target_s=240 ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import run_measured  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HOOK = Path(__file__).resolve().parent / "floor_hook"
STAGES = ["distill", "completion", "multiturn", "scenarios", "preferences", "score"]
TARGET_S = 240.0     # issue 14: all generation stages together, 2 idle cores


def peak_gflops(repeats: int = 5) -> tuple[float, str]:
    """The best float32 GEMM rate over a large square product and the teacher's widest linears at 4096 rows."""
    import torch

    best, where = 0.0, ""
    for m, k, n in ((4096, 4096, 4096), (4096, 576, 1536), (4096, 1536, 576), (2048, 2048, 2048)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        torch.mm(a, b)
        for _ in range(repeats):
            t = time.perf_counter()
            torch.mm(a, b)
            rate = 2 * m * k * n / (time.perf_counter() - t) / 1e9
            if rate > best:
                best, where = rate, f"{m}x{k}x{n}"
    return best, where


def rate_at_rows(rows: int, repeats: int = 20) -> float:
    """float32 GFLOPS of the teacher's own products (one layer's seven linears and the LM head) at `rows` rows:
    what one decode step of a `rows`-row batch can reach, however the rest is done."""
    import torch

    shapes = [(576, 576), (576, 192), (576, 192), (576, 576), (576, 1536), (576, 1536), (1536, 576), (576, 49152)]
    mats = [(torch.randn(rows, k), torch.randn(k, n)) for k, n in shapes]
    for a, b in mats:
        torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for a, b in mats:
            torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return sum(2 * rows * k * n for k, n in shapes) / best / 1e9


def flops(c: dict, cfg: dict) -> tuple[float, float]:
    """Arithmetic of one process's counts (multiply-add = 2 FLOPs): (all of it, the decode steps' linears and
    LM head among it)."""
    h, i, L, v = cfg["hidden"], cfg["intermediate"], cfg["layers"], cfg["vocab"]
    q = cfg["heads"] * cfg["head_dim"]
    kv = cfg["kv_heads"] * cfg["head_dim"]
    per_token = 2 * L * (h * q + 2 * h * kv + q * h + 3 * h * i)
    attention = 2 * 2 * L * q                      # QK^T and AV per (query, key) pair
    total = c["real_tokens"] * per_token + c["lm_head_rows"] * 2 * h * v + c["attended_real"] * attention
    return total, c["decode_tokens"] * (per_token + 2 * h * v)


def run_stages(work: Path, stages: list[str], log: Path) -> tuple[float, float]:
    clone = work / "p"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    os.symlink(ROOT / ".venv", clone / ".venv")
    env = {**os.environ, "PATH": f"{clone / '.venv' / 'bin'}:{os.environ['PATH']}",
           "PYTHONPATH": f"{HOOK}:{clone / 'src'}", "DISTILLERY_FLOOR_LOG": str(log),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DISTILLERY_PROGRESS": "0"}
    m = run_measured(["dvc", "repro", *stages], env=env, cwd=clone)
    if m.returncode:
        sys.exit(f"dvc repro failed ({m.returncode}):\n{m.log[-3000:]}")
    return m.load_start, m.load_peak


def report(rows: list[dict], walls: dict[str, float], loads: tuple[float, float]) -> list[str]:
    """The table: per stage its wall, its floors and what the hook counted; then the one summary line."""
    import torch

    peak, shape = peak_gflops()
    at64, at256 = rate_at_rows(64), rate_at_rows(256)
    out = [f"load average before: {loads[0]:.2f}, peak while it ran {loads[1]:.2f}; peak float32 GEMM {peak:.1f} "
           f"GFLOPS ({shape}), {torch.get_num_threads()} threads; the teacher's linears at 64 rows (a full decode "
           f"step of the shipped batch): {at64:.1f} GFLOPS; at 256 rows {at256:.1f}",
           f"{'stage':<12} {'wall s':>8} {'floor s':>8} {'at 64 rows (256)':>17} {'real tok':>9} {'decode tok':>10} "
           f"{'computed tok':>12} {'TFLOP':>6}"]
    tot = dict.fromkeys(("wall", "floor", "f64", "f256"), 0.0)
    for stage, wall in walls.items():
        mine = [r for r in rows if r["script"] == f"{stage}.py"]
        both = [flops(r, r["config"]) for r in mine]
        fl, dec = sum(x for x, _ in both), sum(d for _, d in both)
        floors = (fl / peak / 1e9, (fl - dec) / peak / 1e9 + dec / at64 / 1e9, (fl - dec) / peak / 1e9 + dec / at256 / 1e9)
        for k, x in zip(tot, (wall, *floors)):
            tot[k] += x
        count = {k: sum(r[k] for r in mine) for k in ("real_tokens", "decode_tokens", "computed_tokens")}
        out.append(f"{stage:<12} {wall:>8.1f} {floors[0]:>8.1f} {floors[1]:>9.1f} ({floors[2]:>5.1f}) "
                   f"{count['real_tokens']:>9} {count['decode_tokens']:>10} {count['computed_tokens']:>12} {fl / 1e12:>6.2f}")
    out.append(f"{'total':<12} {tot['wall']:>8.1f} {tot['floor']:>8.1f} {tot['f64']:>9.1f} ({tot['f256']:>5.1f})")
    out.append(f"floor total_floor_s={tot['floor']:.1f} floor_64_rows_s={tot['f64']:.1f} "
               f"floor_256_rows_s={tot['f256']:.1f} total_wall_s={tot['wall']:.1f} peak_gflops={peak:.1f} "
               f"gflops_64_rows={at64:.1f} gflops_256_rows={at256:.1f} target_s={TARGET_S:.0f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stages", default=",".join(STAGES), help="generation stages to run (comma-separated)")
    ap.add_argument("--keep", action="store_true", help="keep the clone (its metrics/ and data/)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "floor.md"),
                    help="where the table is written as well")
    a = ap.parse_args()
    stages = a.stages.split(",")
    work = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    log = work / "counts.jsonl"
    try:
        loads = run_stages(work, stages, log)
        rows = [json.loads(x) for x in log.read_text().splitlines()]
        walls = {st: json.loads((work / "p" / "metrics" / f"{st}.json").read_text())["wall_s"] for st in stages}
        lines = report(rows, walls, loads)
        print("\n".join(lines))
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    finally:
        if a.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
