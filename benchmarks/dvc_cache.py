"""DVC with large outputs: what each cache choice costs (the figures in docs/scale.md).

Builds a small DVC project per choice in a temp folder, with one stage whose output folder holds
--copies concatenated copies of the bench-pipeline outputs at 100K (ingest, score, dedup, mix, export:
`make bench-pipeline` leaves them in benchmarks/out/pipeline/n100000), i.e. the size of those outputs
at copies x 100K records. For each choice it times, with `dvc` as a user runs it: the first
`dvc repro` (the stage itself plus hashing and caching), `dvc status` with a cold hash index (the
site cache removed, as on a fresh clone or machine), a warm `dvc status`, a no-op `dvc repro`, and
the size `.dvc/cache` grew by. Choices:

* `copy`: the default here (`cache.type` reflink,copy and no reflink on ext4): every output is
  copied into the cache;
* `hardlink,symlink`: `dvc config cache.type reflink,hardlink,symlink,copy`: the output is moved into
  the cache and linked back (read-only outputs: a stage must replace files, never edit them in place);
  `dvc repro` itself leaves a copy, so this choice also times `dvc checkout --relink` and the disk after it;
* `cache: false`: the output is hashed for dvc.lock but never cached (regenerable bulk).

    python benchmarks/dvc_cache.py --copies 6
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DVC = str(Path(sys.executable).with_name("dvc"))
STAGES = ("ingest", "score", "dedup", "mix", "export")

MAKE = """import shutil, sys
from pathlib import Path
src, k, out = Path(sys.argv[1]), int(sys.argv[2]), Path("out")
shutil.rmtree(out, ignore_errors=True)
for f in sorted(p for p in src.rglob("*") if p.is_file()):
    dst = out / f.relative_to(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst, "wb") as fo:
        for _ in range(k):
            with open(f, "rb") as fi:
                shutil.copyfileobj(fi, fo, 1 << 22)
"""


def du(path: Path) -> int:
    """Bytes on disk (hard links counted once)."""
    seen, total = set(), 0
    for p in path.rglob("*"):
        st = p.lstat()
        if p.is_file() and not p.is_symlink() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def sh(args: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True,
                       env=dict(os.environ, DVC_NO_ANALYTICS="1"))
    if r.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return time.perf_counter() - t


def measure(choice: str, src: Path, copies: int, root: Path) -> dict:
    proj = root / choice.replace(",", "_").replace(":", "").replace(" ", "_")
    proj.mkdir(parents=True)
    (proj / "make.py").write_text(MAKE)
    out = "- out:\n        cache: false" if choice == "cache: false" else "- out"
    (proj / "dvc.yaml").write_text(
        f"stages:\n  make:\n    cmd: python make.py {src} {copies}\n    deps: [make.py]\n    outs:\n    {out}\n")
    sh(["git", "init", "-q"], proj)
    sh([DVC, "init", "-q"], proj)
    site = proj / ".site_cache"
    sh([DVC, "config", "core.site_cache_dir", str(site)], proj)
    sh([DVC, "config", "core.autostage", "false"], proj)
    if choice == "hardlink,symlink":
        sh([DVC, "config", "cache.type", "reflink,hardlink,symlink,copy"], proj)
    r = {"choice": choice, "repro": sh([DVC, "repro", "-q"], proj)}
    r["out_bytes"] = du(proj / "out")
    r["cache_bytes"] = du(proj / ".dvc" / "cache") if (proj / ".dvc" / "cache").exists() else 0
    r["disk_bytes"] = du(proj)  # output + cache, a hard-linked file once
    if choice == "hardlink,symlink":  # `dvc repro` leaves the output a copy; relinking gives the disk back
        r["relink"] = sh([DVC, "checkout", "--relink", "-q"], proj)
        r["disk_bytes_relinked"] = du(proj)
    shutil.rmtree(site, ignore_errors=True)
    r["status_cold"] = sh([DVC, "status", "-q"], proj)
    r["status_warm"] = sh([DVC, "status", "-q"], proj)
    r["repro_noop"] = sh([DVC, "repro", "-q"], proj)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=6, help="copies of the 100K outputs (6 = 600K records)")
    ap.add_argument("--src", default=str(REPO / "benchmarks" / "out" / "pipeline" / "n100000"))
    ap.add_argument("--choices", default="copy,hardlink,symlink,cache: false")
    a = ap.parse_args()
    base = Path(a.src)
    missing = [s for s in STAGES if not (base / s).is_dir()]
    if missing:
        raise SystemExit(f"{base}: no {missing} (run `python benchmarks/bench_pipeline.py --n 100000` first)")
    choices = ["copy", "hardlink,symlink", "cache: false"] if a.choices == "copy,hardlink,symlink,cache: false" \
        else a.choices.split(";")
    with tempfile.TemporaryDirectory(prefix="dvc-cache-", dir="/tmp") as d:
        src = Path(d) / "src"
        src.mkdir()
        for s in STAGES:
            shutil.copytree(base / s, src / s)
        rows = []
        for c in choices:
            r = measure(c, src, a.copies, Path(d))
            rows.append(r)
            print(f"{c}: {r}", file=sys.stderr, flush=True)
            shutil.rmtree(Path(d) / c.replace(",", "_").replace(":", "").replace(" ", "_"))
    print(f"Outputs of ingest, score, dedup, mix, export at {a.copies}x100K records, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}\n")
    print("| cache choice | output GB | cache GB | disk used GB (output + cache) | first repro s | cold status s | warm status s | "
          "no-op repro s |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['choice']} | {r['out_bytes'] / 1e9:.2f} | {r['cache_bytes'] / 1e9:.2f} | {r['disk_bytes'] / 1e9:.2f} | {r['repro']:.1f} | "
              f"{r['status_cold']:.1f} | {r['status_warm']:.1f} | {r['repro_noop']:.1f} |")

    for r in rows:
        if "relink" in r:
            print(f"\n{r['choice']}: `dvc checkout --relink` {r['relink']:.1f} s, then disk used "
                  f"{r['disk_bytes_relinked'] / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
