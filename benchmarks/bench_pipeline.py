"""Pipeline benchmark (`make bench-pipeline`): every non-LLM stage on a realistic corpus, in pipeline order.

Generates raw source files (benchmarks/dedup_corpus.py's Zipf text with ~20% near-duplicates, 1 row in 12
a preference pair (~50K per 600K), SFT rows in the `messages` layout, 25% with one of ten shared system
prompts, five SFT sources in five buckets plus the pairs), then runs, each as `python scripts/<stage>.py`
in its own measured subprocess with the shipped params.yaml and command-line overrides only (tracking and
progress bars off, the LLM judge off: `--max-judged 0`, an empty stats length cache):

    ingest (one run per source) -> score -> dedup -> mix -> export -> stats -> validate

and prints per stage: wall s, CPU s (user + sys of the stage's processes, getrusage of the children) and peak
RSS (the whole process tree, sampled). Anchors measured in the same run: `pandas.read_json(lines=True)` +
`to_json` of the scored records file, and Hugging Face `datasets` `.map(apply_chat_template)` over the
export (bench_stats.py's anchor; over the first --hf-rows rows; when that is fewer than all, its per-row CPU
is scaled to all rows, with the fixed start-up taken from a 1,000-row run).
With --sizes the pipeline (no anchors) also runs at those sizes; rss_growth is the largest stage peak RSS
at the largest size over that at the smallest. Dedup's serial share (wall outside pass 1) is printed per size. The last line is

    pipeline n=N cpu_s=N wall_s=N max_rss_mb=N rss_growth=X stats_vs_hf=X

(stats_vs_hf = the anchor's CPU s / the stats stage's CPU s on the same rows).

    python benchmarks/bench_pipeline.py --n 100000
    python benchmarks/bench_pipeline.py --n 600000 --sizes 100000,1200000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dedup import serial_share  # noqa: E402
from bench_stats import run_hf  # noqa: E402
from dedup_corpus import pairs, text  # noqa: E402
from measure import run_measured  # noqa: E402

# (source name, bucket); the preference pairs are the last source
SOURCES = [("general", "instruction"), ("code", "code"), ("math", "cot_math"), ("analysis", "analytical"),
           ("writing", "creative")]
PREFS = ("prefs", "instruction")
PREF_EVERY = 12  # 1 row in 12 is a preference pair: 50K per 600K


def generate(raw: Path, n: int, seed: int = 777) -> dict[str, int]:
    """Write raw/<source>.jsonl (n rows in all); returns rows per source."""
    raw.mkdir(parents=True, exist_ok=True)
    fhs = {name: open(raw / f"{name}.jsonl", "w", encoding="utf-8") for name, _ in SOURCES + [PREFS]}
    counts = dict.fromkeys(fhs, 0)
    systems: list[str] = []
    try:
        for i, src, user, asst, g in pairs(n, seed):
            if not systems:
                systems = [text(g, 8, 40, 31 * k) for k in range(10)]
            root = src if src >= 0 else i  # a copy keeps its source's system prompt
            if i % PREF_EVERY == PREF_EVERY - 1:
                name = PREFS[0]
                row = {"prompt": user, "chosen": asst, "rejected": text(g, 20, 200, 7 * i + 97)}
            else:
                name = SOURCES[i % len(SOURCES)][0]
                msgs = [{"role": "user", "content": user}, {"role": "assistant", "content": asst}]
                if root % 4 == 0:
                    msgs.insert(0, {"role": "system", "content": systems[root % 10]})
                row = {"messages": msgs}
            fhs[name].write(json.dumps(row, ensure_ascii=False) + "\n")
            counts[name] += 1
    finally:
        for fh in fhs.values():
            fh.close()
    return counts


def _env() -> dict:
    return dict(os.environ, DISTILLERY_TRACKING="0", DISTILLERY_PROGRESS="0", HF_HUB_OFFLINE="1",
                HF_DATASETS_OFFLINE="1", PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))


def stage_commands(work: Path, tok: str) -> list[tuple[str, list[list[str]]]]:
    """The stages in pipeline order, each a list of commands (ingest: one per source)."""
    def cmd(stage: str, *args: str) -> list[str]:
        return [sys.executable, str(REPO / "scripts" / f"{stage}.py"), "--params", str(REPO / "params.yaml"),
                "--metrics", str(work / "metrics" / f"{stage}.json"), *args]

    ingest = []
    for name, bucket in SOURCES + [PREFS]:
        adapter = "prompt_chosen_rejected" if (name, bucket) == PREFS else "openai_messages"
        c = cmd("ingest", "--input", str(work / "raw" / f"{name}.jsonl"), "--name", name, "--adapter", adapter,
                "--bucket", bucket, "--output", str(work / "ingest" / name))
        c[c.index("--metrics") + 1] = str(work / "metrics" / "ingest" / f"{name}.json")
        ingest.append(c)
    w = str(work)
    return [
        ("ingest", ingest),
        ("score", [cmd("score", "--input", f"{w}/ingest", "--output", f"{w}/score", "--max-judged", "0")]),
        ("dedup", [cmd("dedup", "--input", f"{w}/score", "--output", f"{w}/dedup")]),
        ("mix", [cmd("mix", "--input", f"{w}/dedup", "--output", f"{w}/mix")]),
        ("export", [cmd("export", "--input", f"{w}/mix", "--output", f"{w}/export")]),
        ("stats", [cmd("stats", "--input", f"{w}/export", "--mix", f"{w}/mix", "--output", f"{w}/stats",
                       "--tokenizer", tok, "--cache-path", f"{w}/stats_cache/lengths.sqlite")]),
        ("validate", [cmd("validate", "--export", f"{w}/export", "--mix", f"{w}/mix", "--output",
                          f"{w}/validation")]),
    ]


def run_pipeline(work: Path, n: int, tok: str, log) -> dict[str, dict]:
    """Generate the corpus into work/raw (kept when present) and run every stage; per-stage figures."""
    for d in ("ingest", "score", "dedup", "mix", "export", "stats", "stats_cache", "validation", "metrics"):
        shutil.rmtree(work / d, ignore_errors=True)
    if not (work / "raw" / f"{PREFS[0]}.jsonl").exists():
        log(f"generating {n:,} rows -> {work / 'raw'}")
        shutil.rmtree(work / "raw", ignore_errors=True)
        generate(work / "raw", n)
    (work / "metrics" / "ingest").mkdir(parents=True, exist_ok=True)
    out: dict[str, dict] = {}
    for stage, cmds in stage_commands(work, tok):
        r = {"wall": 0.0, "cpu": 0.0, "peak_mb": 0.0, "rc": 0, "load": 0.0}
        for c in cmds:
            m = run_measured(c, env=_env(), cwd=REPO, interval=0.1)
            r["wall"] += m.wall
            r["cpu"] += m.cpu
            r["peak_mb"] = max(r["peak_mb"], m.peak_tree_mb)
            r["load"] = max(r["load"], m.load_peak)
            if m.returncode:
                r["rc"] = m.returncode
                log(f"{stage} exited {m.returncode}:\n{m.log[-2000:]}")
        mpath = work / "metrics" / f"{stage}.json"
        r["metrics"] = json.loads(mpath.read_text()) if mpath.exists() else {}
        details = mpath.with_suffix(".details.json")
        if details.exists() and "timings_s" in (d := json.loads(details.read_text())):
            r["metrics"]["timings_s"] = d["timings_s"]    # dedup's phases: its serial share
        if stage == "ingest":  # one metrics file per source
            per = [json.loads(f.read_text()) for f in sorted((work / "metrics" / "ingest").glob("*.json"))
                   if not f.name.endswith(".details.json")]
            r["metrics"] = {k: sum(m.get(k, 0) for m in per) for k in ("records_in", "records_out")}
        out[stage] = r
        log(f"  n={n:,} {stage}: wall {r['wall']:.1f} s, CPU {r['cpu']:.1f} s, peak {r['peak_mb']:.0f} MB"
            + (f", exit {r['rc']}" if r["rc"] else ""))
    (work / "results.json").write_text(json.dumps(out, indent=1))
    return out


PANDAS_CHILD = """
import sys, pandas as pd
df = pd.read_json(sys.argv[1], lines=True)
df.to_json(sys.argv[2], orient="records", lines=True)
print("RESULT", len(df))
"""


def run_pandas(src: Path, dst: Path) -> dict:
    m = run_measured([sys.executable, "-c", PANDAS_CHILD, str(src), str(dst)], env=_env(), cwd=REPO, interval=0.1)
    dst.unlink(missing_ok=True)
    if m.returncode:
        return {"cpu": float("nan"), "wall": m.wall, "peak_mb": m.peak_tree_mb, "error": m.log[-500:]}
    return {"cpu": m.cpu, "wall": m.wall, "peak_mb": m.peak_tree_mb}


def head_export(exp: Path, dst: Path, rows: int) -> tuple[Path, int, int]:
    """The first `rows` rows of the export's sft/messages + dpo/trl (in proportion), for the HF anchor."""
    files = {rel: sum(1 for _ in open(exp / rel, "rb")) for rel in ("sft/messages.jsonl", "dpo/trl.jsonl")}
    total = sum(files.values())
    if rows <= 0 or rows >= total:
        return exp, total, total
    for rel, k in files.items():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        take = round(k * rows / total)
        with open(exp / rel, "rb") as fi, open(dst / rel, "wb") as fo:
            for j, line in enumerate(fi):
                if j >= take:
                    break
                fo.write(line)
    return dst, rows, total


def table(n: int, res: dict[str, dict], anchors: list[tuple[str, dict]]) -> str:
    rows = ["| stage | wall s | CPU s | peak RSS MB | records in -> out |", "|---|---:|---:|---:|---|"]
    for stage, r in res.items():
        m = r["metrics"]
        io = f"{m.get('records_in', '')} -> {m.get('records_out', '')}" if m else ""
        flag = f" (exit {r['rc']})" if r["rc"] else ""
        rows.append(f"| {stage}{flag} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['peak_mb']:.0f} | {io} |")
    rows.append(f"| **total** | **{sum(r['wall'] for r in res.values()):.1f}** | "
                f"**{sum(r['cpu'] for r in res.values()):.1f}** | {max(r['peak_mb'] for r in res.values()):.0f} | |")
    for name, a in anchors:
        rows.append(f"| anchor: {name} | {a['wall']:.1f} | {a['cpu']:.1f} | {a['peak_mb']:.0f} | |")
    return f"n={n:,}\n\n" + "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=600_000, help="rows of the corpus of the main run")
    ap.add_argument("--sizes", default="", help="extra sizes, comma-separated, run without anchors (RSS growth)")
    ap.add_argument("--hf-rows", type=int, default=100_000, help="rows for the HF anchor (0 = all; CPU scaled)")
    ap.add_argument("--no-anchors", action="store_true", help="skip the pandas and HF anchors")
    ap.add_argument("--reuse", action="store_true",
                    help="take a size's stage figures from its last complete run (work/n<N>/results.json)")
    ap.add_argument("--work", default=str(REPO / "benchmarks" / "out" / "pipeline"),
                    help="work folder (corpora kept per size, outputs replaced)")
    a = ap.parse_args()

    from distillery.models import resolve_model_path

    tok = str(Path(resolve_model_path("smollm2")).resolve())
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    root = Path(a.work).resolve()
    extra = [int(s) for s in a.sizes.split(",") if s.strip()]
    peaks: dict[int, float] = {}
    report = []
    log(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, {psutil.virtual_memory().available / 2**30:.0f} GiB free")
    main_res = anchors = None
    by_n: dict[int, dict] = {}
    for n in [a.n] + [s for s in extra if s != a.n]:
        work = root / f"n{n}"
        if a.reuse and (work / "results.json").exists():
            res = json.loads((work / "results.json").read_text())
            log(f"n={n:,}: stage figures of the last run, {work / 'results.json'}")
        else:
            res = run_pipeline(work, n, tok, log)
        peaks[n] = max(r["peak_mb"] for r in res.values())
        by_n[n] = res
        anc: list[tuple[str, dict]] = []
        if n == a.n:
            main_res = res
            if not a.no_anchors:
                scored = work / "score" / "records.jsonl"
                need = scored.stat().st_size * 16
                if psutil.virtual_memory().available > need:
                    anc.append(("pandas read_json(lines=True) + to_json, scored records", run_pandas(scored, work / "pd.jsonl")))
                else:
                    log(f"pandas anchor skipped: needs ~{need / 2**30:.0f} GiB free")
                (work / "hf_rows").mkdir(exist_ok=True)
                sub, rows, total = head_export(work / "export", work / "hf_rows" / "export", a.hf_rows)
                hf = run_hf(sub, tok, work / "hf_rows")
                hf["cpu_all"] = hf["cpu"]
                if rows < total:  # scale the per-row part: fixed start-up from a 1,000-row run
                    tiny, k, _ = head_export(work / "export", work / "hf_rows" / "tiny", 1000)
                    fixed = run_hf(tiny, tok, work / "hf_rows")["cpu"]
                    hf["cpu_all"] = fixed + (hf["cpu"] - fixed) * total / rows
                    log(f"HF anchor: {hf['cpu']:.1f} s on {rows:,} rows, {fixed:.1f} s on {k:,}")
                shutil.rmtree(work / "hf_rows", ignore_errors=True)
                anc.append((f"HF datasets map(apply_chat_template), {rows:,} of {total:,} rows", hf))
            anchors = anc
        report.append(table(n, res, anc))
    print("\n\n".join(report))
    res = main_res
    stats_vs_hf = float("nan")
    hf = [x for name, x in anchors if name.startswith("HF")]
    if hf:
        stats_vs_hf = hf[0]["cpu_all"] / res["stats"]["cpu"]
        print(f"\nHF anchor CPU scaled to all exported rows: {hf[0]['cpu_all']:.1f} s")
    shares = {n: serial_share(r["dedup"]["metrics"]) for n, r in by_n.items() if "timings_s" in r["dedup"]["metrics"]}
    if shares:
        print("\ndedup serial share on 2 workers (wall outside pass 1, bench_dedup's definition) by n: "
              + ", ".join(f"{k:,}: {v:.0%}" for k, v in sorted(shares.items())))
    lo, hi = min(peaks), max(peaks)
    growth = peaks[hi] / peaks[lo]
    print(f"\nlargest stage peak RSS by n: " + ", ".join(f"{k:,}: {v:.0f} MB" for k, v in sorted(peaks.items()))
          + f"; rss_growth = n={hi:,} over n={lo:,}")
    print(f"pipeline n={a.n} cpu_s={sum(r['cpu'] for r in res.values()):.0f} "
          f"wall_s={sum(r['wall'] for r in res.values()):.0f} max_rss_mb={peaks[a.n]:.0f} "
          f"rss_growth={growth:.2f} stats_vs_hf={stats_vs_hf:.2f}")


if __name__ == "__main__":
    main()
