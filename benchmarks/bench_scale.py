"""Scale benchmark (`make bench-scale`): the dedup corpus on the local engine vs Ray (a local cluster).

Runs `distillery.distributed.dedup.run_dedup` in a subprocess per engine (same corpus, same params),
samples the RSS of the whole process tree (driver + pool workers, or driver + raylet + Ray workers;
Ray's object store lives in /dev/shm and is counted where workers map it), checks that both kept the
same ids, and writes a side-by-side table with per-stage timings and the machine load to
benchmarks/out/scale.md. The corpus is benchmarks/dedup_corpus.py's (cached in benchmarks/out/).

    python benchmarks/bench_scale.py              # 600K records
    python benchmarks/bench_scale.py --n 100000   # smaller
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import click

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import run_measured  # noqa: E402

STAGES = ("prepare_s", "exact_s", "lsh_s", "verify_s", "cluster_s", "write_s", "reports_s")


def _child(engine: str, corpus: str, out: str, cpus: int, chunk_mb: float) -> None:
    from distillery.distributed.dedup import run_dedup
    from distillery.core.params import load_params

    p = load_params(None, ["dedup.decontaminate.enabled=false", f"engine.engine={engine}",
                           f"engine.num_cpus={cpus}", f"engine.chunk_mb={chunk_mb}", f"dedup.workers={cpus}"])
    res = run_dedup(p, [corpus], out)
    print("RESULT " + json.dumps(res.metrics))


def run_engine(engine: str, corpus: Path, out: Path, cpus: int, chunk_mb: float) -> dict:
    env = dict(os.environ, DISTILLERY_PROGRESS="0", RAY_USAGE_STATS_ENABLED="0")
    cmd = [sys.executable, __file__, "--child", engine, "--corpus", str(corpus), "--out", str(out),
           "--cpus", str(cpus), "--chunk-mb", str(chunk_mb)]
    m = run_measured(cmd, env=env, interval=0.1)
    line = [l for l in m.log.splitlines() if l.startswith("RESULT ")]
    if m.returncode != 0 or not line:
        raise SystemExit(f"{engine} run failed ({m.returncode}):\n{m.log[-3000:]}")
    return {"wall": m.wall, "peak_mb": m.peak_tree_mb, "metrics": json.loads(line[-1][7:]),
            "load": (m.load_start, m.load_peak),
            "kept_sha": hashlib.sha256((out / "records.jsonl").read_bytes()).hexdigest()}


def table(n: int, cpus: int, runs: dict[str, dict]) -> str:
    rows = ["| | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]

    def row(name, f):
        rows.append(f"| {name} | " + " | ".join(f(r) for r in runs.values()) + " |")

    row("wall time (s, whole process incl. start-up)", lambda r: f"{r['wall']:.1f}")
    row("records/s", lambda r: f"{n / r['wall']:,.0f}")
    row("peak RSS, process tree (MB)", lambda r: f"{r['peak_mb']:,.0f}")
    for s in STAGES:
        row(f"stage {s[:-2]} (s)", lambda r, s=s: f"{r['metrics']['timings_s'].get(s, 0):.1f}")
    row("records out", lambda r: f"{r['metrics']['records_out']:,}")
    row("candidate / verified pairs", lambda r: f"{r['metrics']['candidate_pairs']:,} / {r['metrics']['verified_pairs']:,}")
    row("load avg 1 min (start / peak)", lambda r: f"{r['load'][0]:.1f} / {r['load'][1]:.1f}")
    same = len({r["kept_sha"] for r in runs.values()}) == 1
    return (f"Dedup of {n:,} synthetic records (benchmarks/dedup_corpus.py), {cpus} CPUs, "
            f"{os.cpu_count()} cores on the machine, decontamination off.\n\n" + "\n".join(rows)
            + f"\n\nSame records.jsonl bytes on both engines: **{'yes' if same else 'NO'}**.\n")


@click.command()
@click.option("--n", default=600_000, show_default=True, help="Records in the synthetic corpus.")
@click.option("--cpus", default=None, type=int, help="Workers / Ray CPUs (default: all cores).")
@click.option("--chunk-mb", default=64.0, show_default=True, help="Ray read range size (engine.chunk_mb).")
@click.option("--engines", default="local,ray", show_default=True, help="Comma-separated engines to run.")
@click.option("--out-dir", default=str(REPO / "benchmarks" / "out"), show_default=True, type=click.Path())
@click.option("--child", default=None, hidden=True)
@click.option("--corpus", default=None, hidden=True)
@click.option("--out", default=None, hidden=True)
def main(n, cpus, chunk_mb, engines, out_dir, child, corpus, out):
    """Local engine vs Ray on the dedup corpus: wall time, peak memory, per-stage times."""
    cpus = cpus or os.cpu_count() or 1
    if child:
        _child(child, corpus, out, cpus, chunk_mb)
        return
    from dedup_corpus import generate

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus_path = out_dir / f"dedup_corpus_{n}_777.jsonl"  # shared with bench_dedup.py
    if not corpus_path.exists():
        click.echo(f"generating {n:,} records -> {corpus_path}", err=True)
        generate(corpus_path, n, seed=777)
    runs = {}
    for e in engines.split(","):
        click.echo(f"running {e} ...", err=True)
        runs[e] = run_engine(e, corpus_path, out_dir / f"scale_{e}", cpus, chunk_mb)
        click.echo(f"  {e}: {runs[e]['wall']:.1f}s, peak {runs[e]['peak_mb']:.0f} MB", err=True)
    md = table(n, cpus, runs)
    (out_dir / "scale.md").write_text(md)
    (out_dir / "scale.json").write_text(json.dumps({"n": n, "cpus": cpus, "runs": runs}, indent=1))
    click.echo(md)


if __name__ == "__main__":
    main()
