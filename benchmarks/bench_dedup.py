"""Dedup benchmark (`make bench-dedup`): our stage vs per-record datasketch, speed and accuracy.

1. Generate (once, cached in benchmarks/out/) the synthetic corpus of benchmarks/dedup_corpus.py.
2. Run `scripts/dedup.py` on it in a subprocess on all cores: wall time, records/s, peak RSS of the
   whole process tree (parent + workers, sampled) and of the largest single process.
3. Precision/recall against exact Jaccard >= threshold, computed independently on Python sets of
   shingle strings for every pair inside injected clusters and every pair the stage reported.
4. Per-record `datasketch.MinHash.update` + `MinHashLSH` on a subsample, extrapolated to n.
5. rensa (Rust MinHash, `pip install rensa`, optional): `RMinHash.update` per record on the same 5-word
   shingles, `RMinHashLSH` query + insert, every candidate verified by exact Jaccard; same corpus, same run.
6. The stage with decontamination off (its share of the default run) and on a 1K-record corpus (fixed
   start-up, tracking on, a fresh MLflow database: a user's first run).
7. Print a markdown table and write it to benchmarks/out/dedup.md, with the machine load. The stage runs
   with the shipped defaults; the serial share is the part of its wall time outside the parallel
   per-record phase (start-up, eval index, then the parent-driven exact/LSH/verify/cluster/write phases).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from itertools import combinations
from pathlib import Path

import click
import numpy as np
import psutil
import xxhash

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "src"))

from dedup_corpus import generate  # noqa: E402
from measure import run_measured  # noqa: E402

from distillery.dedup.shingle import shingle_strings  # noqa: E402
from distillery.testing.jaccard_ref import union_find_labels  # noqa: E402


def load_texts(path: Path, which: set[int] | None = None) -> dict[int, str]:
    out = {}
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if which is None or i in which:
                rec = json.loads(line)
                out[i] = "\n".join(m["content"] for m in rec["messages"])
    return out


def real_text_rates(repeat: int = 8192) -> dict[str, float] | None:
    """Per-process records/s of the per-batch step (`steps.prepare_batch`) on the shipped OASST sample as
    ingested (multilingual, ~22% non-ASCII), all records and only the non-ASCII ones: the synthetic corpus
    is ASCII. None before the ingest stage has run (`make repro`)."""
    from distillery.dedup.config import DedupParams
    from distillery.dedup.steps import Settings, prepare_batch

    path = REPO / "data" / "ingest" / "oasst" / "records.jsonl"
    if not path.exists():
        return None
    lines = [ln for ln in path.read_bytes().splitlines() if ln.strip()]
    non_ascii = [ln for ln in lines if not all(m["content"].isascii() for m in json.loads(ln)["messages"])]
    st = Settings(DedupParams(), 0, 13, 7, 1 << 26)
    out = {}
    for name, pool in (("all", lines), ("non_ascii", non_ascii)):
        batch = [(i, pool[i % len(pool)]) for i in range(repeat)]
        prepare_batch(batch[:64], st, None)  # warm up (code-point tables)
        t = time.perf_counter()
        for k in range(0, repeat, 2048):
            prepare_batch(batch[k:k + 2048], st, None)
        out[name] = repeat / (time.perf_counter() - t)
        out[name + "_kb"] = sum(len(b) for _, b in batch) / repeat / 1024
    out["share"] = len(non_ascii) / len(lines)
    return out


def busy_cpu() -> float:
    """Machine-wide busy CPU seconds so far (all processes, all cores)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def run_stage(corpus: Path, out: Path, workers: int, extra: list[str], tracking: bool = False) -> dict:
    """Run the stage as a subprocess; sample the RSS of its process tree every 50 ms."""
    env = dict(os.environ, DISTILLERY_PROGRESS="0", DISTILLERY_TRACKING="1" if tracking else "0",
               PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, str(REPO / "scripts" / "dedup.py"), "--input", str(corpus), "--output", str(out / "dedup"),
           "--workers", str(workers), "--metrics", f"{out}/metrics/dedup.json", *extra]
    m = run_measured(cmd, cwd=REPO, env=env)  # the eval sets of the shipped params are repo-relative
    if m.returncode != 0:
        raise SystemExit(f"dedup stage failed ({m.returncode}):\n{m.log[-3000:]}")
    metrics = json.loads((out / "metrics" / "dedup.json").read_text())  # headline + details + settings
    details = json.loads((out / "metrics" / "dedup.details.json").read_text())
    metrics.update(details, **details.get("settings", {}))
    return {"wall": m.wall, "cpu": m.cpu, "peak_tree_mb": m.peak_tree_mb, "peak_one_mb": m.peak_one_mb,
            "metrics": metrics}


def accuracy(corpus: Path, out: Path, source_of: np.ndarray, ids: list[str], threshold: float, n: int) -> dict:
    """Doc-level precision/recall vs 'has a partner with exact Jaccard >= threshold'."""
    pos = {rid: i for i, rid in enumerate(ids)}
    # predicted: every doc in an exact/near cluster (kept or removed)
    pred: set[int] = set()
    pairs: set[tuple[int, int]] = set()
    with open(out / "dedup" / "clusters.jsonl", encoding="utf-8") as fh:
        for line in fh:
            c = json.loads(line)
            if c["kind"] not in ("exact_duplicate", "near_duplicate"):
                continue
            k = pos[c["kept"]]
            pred.add(k)
            for r in c["removed"]:
                pred.add(pos[r["id"]])
                pairs.add((min(k, pos[r["id"]]), max(k, pos[r["id"]])))
    # injected clusters: union of dup -> source
    dups = np.flatnonzero(source_of >= 0)
    groups = defaultdict(list)
    for i, label in enumerate(union_find_labels(n, zip(dups, source_of[dups]))):
        groups[label].append(i)
    direct = {(int(min(i, s)), int(max(i, s))) for i, s in enumerate(source_of) if s >= 0}
    for g in groups.values():
        if 1 < len(g) <= 60:
            pairs.update(combinations(sorted(g), 2))
        elif len(g) > 60:
            pairs.update(p for p in direct if p[0] in g)
    need = {i for p in pairs for i in p}
    # shingle *strings* hashed with xxh64 (independent of the stage's token-hash combine), sorted unique
    sets = {i: np.unique(np.fromiter(map(xxhash.xxh64_intdigest, map(str.encode, shingle_strings(t, 5))),
                                     dtype=np.uint64))
            for i, t in load_texts(corpus, need).items()}
    truth: set[int] = set()
    jd: dict[tuple[int, int], float] = {}
    for a, b in pairs:
        sa, sb = sets[a], sets[b]
        inter = np.intersect1d(sa, sb, assume_unique=True).size
        j = inter / (len(sa) + len(sb) - inter) if (len(sa) or len(sb)) else 1.0
        jd[(a, b)] = j
        if j >= threshold:
            truth.update((a, b))
    tp = len(pred & truth)
    # empirical S-curve on direct injected pairs: share ending in one cluster (both predicted dup)
    bins = [0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.01]
    removed_to: dict[int, int] = {}
    with open(out / "dedup" / "clusters.jsonl", encoding="utf-8") as fh:
        for line in fh:
            c = json.loads(line)
            for r in c["removed"]:
                removed_to[pos[r["id"]]] = pos[c["kept"]]

    def survivor(x: int) -> int:
        seen = set()
        while x in removed_to and x not in seen:
            seen.add(x)
            x = removed_to[x]
        return x

    curve = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        sel = [p for p in direct if lo <= jd.get(p, -1) < hi]
        same = sum(1 for a, b in sel if survivor(a) == survivor(b))
        curve.append((lo, min(hi, 1.0), len(sel), same / len(sel) if sel else float("nan")))
    return {"precision": tp / len(pred) if pred else 1.0, "recall": tp / len(truth) if truth else 1.0,
            "pred": len(pred), "truth": len(truth), "pairs_checked": len(pairs), "curve": curve}


def rensa_verified(corpus: Path, threshold: float, num_perm: int, bands: int) -> dict | None:
    """rensa per record (RMinHash over the 5-word shingle strings, RMinHashLSH query then insert), each
    candidate verified by exact Jaccard of xxh64 shingle-hash sets. None when rensa is not installed."""
    try:
        from rensa import RMinHash, RMinHashLSH
    except ImportError:
        return None
    t0, c0 = time.perf_counter(), time.process_time()
    lsh = RMinHashLSH(threshold=threshold, num_perm=num_perm, num_bands=bands)  # bands must divide num_perm
    sets: list[np.ndarray] = []
    dups = candidates = 0
    with open(corpus, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            rec = json.loads(line)
            sh = shingle_strings("\n".join(x["content"] for x in rec["messages"]), 5)
            mh = RMinHash(num_perm=num_perm, seed=42)
            mh.update(sh)
            s = np.unique(np.fromiter((xxhash.xxh64_intdigest(x.encode()) for x in sh), dtype=np.uint64, count=len(sh)))
            sets.append(s)
            found = False
            for j in lsh.query(mh):
                candidates += 1
                inter = np.intersect1d(s, sets[j], assume_unique=True).size
                if inter / (len(s) + len(sets[j]) - inter) >= threshold:
                    found = True
                    break
            dups += found
            lsh.insert(i, mh)
    return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "dups": dups,
            "candidates": candidates, "n": len(sets)}


def serial_share(m: dict) -> float:
    """Share of the stage's wall time outside the parallel per-record phase."""
    return 1 - m["timings_s"].get("prepare_s", 0) / m["wall_s"] if m.get("wall_s") else float("nan")


def datasketch_naive(corpus: Path, m: int, threshold: float, num_perm: int) -> dict:
    """Per-record MinHash objects, `update` per shingle, MinHashLSH query + insert (the slow path)."""
    import xxhash
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    flagged = 0
    with open(corpus, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i >= m:
                break
            rec = json.loads(line)
            text = "\n".join(x["content"] for x in rec["messages"])
            mh = MinHash(num_perm=num_perm, hashfunc=xxhash.xxh32_intdigest)
            for s in shingle_strings(text, 5):
                mh.update(s.encode("utf-8"))
            if lsh.query(mh):
                flagged += 1
            lsh.insert(str(i), mh)
    wall = time.perf_counter() - t0
    return {"m": m, "wall": wall, "rate": m / wall, "flagged": flagged}


@click.command()
@click.option("--n", default=600_000, show_default=True, help="corpus size (records)")
@click.option("--seed", default=777, show_default=True)
@click.option("--workers", default=0, show_default=True, help="stage workers (0 = all cores)")
@click.option("--ds-sample", default=50_000, show_default=True, help="datasketch per-record subsample")
@click.option("--out", "out_dir", default=str(HERE / "out"), show_default=True, type=click.Path())
@click.option("--skip-accuracy", is_flag=True, help="speed only")
def main(n, seed, workers, ds_sample, out_dir, skip_accuracy):
    """Benchmark the dedup stage on a synthetic corpus with injected near-duplicates."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    corpus = out / f"dedup_corpus_{n}_{seed}.jsonl"
    truth_path = out / f"dedup_corpus_{n}_{seed}.source_of.npy"
    if not (corpus.exists() and truth_path.exists()):
        t = time.perf_counter()
        np.save(truth_path, generate(corpus, n, seed))
        print(f"generated {corpus} ({corpus.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.0f}s")
    source_of = np.load(truth_path)
    size_mb = corpus.stat().st_size / 2**20
    workers = workers or os.cpu_count()
    work = out / "dedup_run"
    work.mkdir(exist_ok=True)

    load_before, f0 = os.getloadavg(), busy_cpu()
    stage = run_stage(corpus, work, workers, [])
    foreign = busy_cpu() - f0 - stage["cpu"]
    load_after = os.getloadavg()
    m = stage["metrics"]
    print(f"stage: {stage['wall']:.1f}s wall, {stage['cpu']:.1f} CPU s, {n / stage['wall']:.0f} rec/s, peak RSS tree "
          f"{stage['peak_tree_mb']:.0f} MiB (largest process {stage['peak_one_mb']:.0f} MiB); "
          f"foreign CPU during run {foreign:.0f}s; serial share {serial_share(m):.0%} "
          f"({', '.join(f'{k} {v:.1f}' for k, v in m['timings_s'].items())})")
    (out / "dedup_run_nodc").mkdir(exist_ok=True)
    nodc = run_stage(corpus, out / "dedup_run_nodc", workers, ["--no-decontaminate"])
    dc_share = 1 - nodc["cpu"] / stage["cpu"]
    print(f"without decontamination: {nodc['wall']:.1f}s wall, {nodc['cpu']:.1f} CPU s; decontamination "
          f"{dc_share:.0%} of the default run's CPU; serial share {serial_share(nodc['metrics']):.0%}")
    rs = rensa_verified(corpus, m["threshold"], m["num_perm"], 16)  # 16 x 8: P(candidate | J=0.8) = 0.95, as ours
    if rs:
        print(f"rensa + exact verification: {rs['wall']:.1f}s wall, {rs['cpu']:.1f} CPU s, {rs['dups']:,} duplicates; "
              f"ours {rs['wall'] / stage['wall']:.2f}x faster (wall), {rs['cpu'] / stage['cpu']:.2f}x less CPU")
    small = out / "dedup_corpus_1000_start.jsonl"
    if not small.exists():
        with open(corpus, "rb") as fi, open(small, "wb") as fo:
            fo.writelines(line for _, line in zip(range(1000), fi))
    (out / "dedup_run_1k").mkdir(exist_ok=True)
    for f in (out / "dedup_run_1k").glob("mlflow.db*"):
        f.unlink()
    start = run_stage(small, out / "dedup_run_1k", workers, ["--set", f"tracking.tracking_uri=sqlite:///{out}/dedup_run_1k/mlflow.db"], tracking=True)
    print(f"1K records, tracking on, fresh MLflow database: {start['cpu']:.2f} CPU s, {start['wall']:.1f}s wall")

    real = real_text_rates()
    if real:
        print(f"real text (OASST): {real['all']:,.0f} rec/s per process, non-ASCII only {real['non_ascii']:,.0f}")

    acc = None
    if not skip_accuracy:
        ids = [f"r{i:07d}" for i in range(n)]
        acc = accuracy(corpus, work, source_of, ids, m["threshold"], n)
        print(f"accuracy: precision {acc['precision']:.4f} recall {acc['recall']:.4f}")

    ds_m = min(ds_sample, n)
    f1 = busy_cpu()
    c0 = time.process_time()
    ds = datasketch_naive(corpus, ds_m, m["threshold"], m["num_perm"])
    ds["cpu"] = time.process_time() - c0
    ds_foreign = busy_cpu() - f1 - ds["cpu"]
    ds_extrap = n / ds["rate"]
    print(f"datasketch per-record: {ds_m} in {ds['wall']:.1f}s -> {ds_extrap:.0f}s extrapolated")

    ours_rate = n / stage["wall"]
    lines = [
        f"# Dedup benchmark: {n:,} synthetic records ({size_mb:.0f} MiB JSONL), seed {seed}",
        "",
        f"Machine: {os.cpu_count()} cores; load average before/after our run "
        f"{load_before[0]:.2f}/{load_after[0]:.2f}; CPU seconds used by other processes during our run: "
        f"{foreign:.0f} s of {os.cpu_count() * stage['wall']:.0f} available (during datasketch: {ds_foreign:.0f} s of "
        f"{os.cpu_count() * ds['wall']:.0f}). Timings with foreign CPU >> 0 are upper bounds.",
        "",
        f"Params: key={m['key']}, num_perm={m['num_perm']}, bands x rows = {m['bands']} x {m['rows']}, "
        f"threshold={m['threshold']}, verification exact Jaccard, workers={m['workers']}, decontamination on "
        f"(shipped defaults); decontamination off: {nodc['wall']:.1f} s wall, {nodc['cpu']:.1f} CPU s, so "
        f"decontamination is {dc_share:.0%} of the default run's CPU.",
        "",
        f"Serial share (wall outside the parallel per-record phase): {serial_share(m):.0%} with decontamination, "
        f"{serial_share(nodc['metrics']):.0%} without. Fixed start-up, 1K records (tracking on, fresh MLflow "
        f"database): {start['cpu']:.2f} CPU s, {start['wall']:.1f} s wall.",
        "",
        "| | our stage (all cores) | datasketch per-record MinHash + MinHashLSH |",
        "|---|---:|---:|",
        f"| records | {n:,} | {ds_m:,} measured, extrapolated to {n:,} |",
        f"| wall time | {stage['wall']:.1f} s | {ds['wall']:.1f} s measured; {ds_extrap:.0f} s extrapolated |",
        f"| records/s | {ours_rate:,.0f} | {ds['rate']:,.0f} |",
        f"| CPU time (user+sys, all processes) | {stage['cpu']:.1f} s | {ds['cpu']:.1f} s measured; "
        f"{ds['cpu'] * n / ds_m:.0f} s extrapolated |",
        f"| records per CPU-second | {n / stage['cpu']:,.0f} | {ds_m / ds['cpu']:,.0f} |",
        f"| speed-up, wall / CPU | {ours_rate / ds['rate']:.1f}x / {(n / stage['cpu']) / (ds_m / ds['cpu']):.1f}x | 1x |",
        f"| peak RSS | {stage['peak_tree_mb']:.0f} MiB all processes; {stage['peak_one_mb']:.0f} MiB largest | - |",
    ]
    if rs:
        lines += [f"| rensa {rs['n']:,} records (RMinHash + RMinHashLSH, exact-Jaccard verified, one process) | "
                  f"{rs['wall']:.1f} s wall, {rs['cpu']:.1f} CPU s, {rs['dups']:,} duplicates | our stage "
                  f"{rs['wall'] / stage['wall']:.2f}x faster (wall), {rs['cpu'] / stage['cpu']:.2f}x less CPU |"]
    if acc:
        lines += [
            f"| precision vs exact J >= {m['threshold']} (doc level) | {acc['precision']:.4f} | - |",
            f"| recall vs exact J >= {m['threshold']} (doc level) | {acc['recall']:.4f} | - |",
        ]
    lines += [
        f"| removed: exact / near | {m['exact_duplicates']:,} / {m['near_duplicates']:,} | - |",
        f"| candidate pairs / verified | {m['candidate_pairs']:,} / {m['verified_pairs']:,} | - |",
        "",
        "Stage phases (s): " + ", ".join(f"{k} {v}" for k, v in m["timings_s"].items()),
    ]
    if real:
        lines += ["", f"Real text, per-batch step on one process (`steps.prepare_batch`, shipped OASST sample as "
                      f"ingested, replicated to 8,192 records; {real['share']:.0%} of them non-ASCII): "
                      f"{real['all']:,.0f} records/s ({real['all_kb']:.1f} KiB each); non-ASCII records only: "
                      f"{real['non_ascii']:,.0f} records/s ({real['non_ascii_kb']:.1f} KiB each)."]
    if acc:
        lines += ["", f"Ground truth: {acc['truth']:,} docs with a partner at exact J >= {m['threshold']} among "
                      f"{acc['pairs_checked']:,} checked pairs (all pairs in injected clusters + every reported pair); "
                      f"{acc['pred']:,} docs predicted.", "",
                  "Detection rate of injected (copy, source) pairs by exact Jaccard:", "",
                  "| exact J | pairs | in one cluster |", "|---|---:|---:|"]
        lines += [f"| {lo:.2f}-{hi:.2f} | {cnt:,} | {rate:.3f} |" for lo, hi, cnt, rate in acc["curve"] if cnt]
    table = "\n".join(lines) + "\n"
    print()
    print(table)
    (out / "dedup.md").write_text(table, encoding="utf-8")


if __name__ == "__main__":
    main()
