"""The end of the pipeline: cost-per-teacher plot data and the final MLflow report.

`collect_costs` reads every metrics JSON, finds its `cost` entries (the per-teacher usage the LLM
stages record: {teacher: {model, requests, prompt_tokens, completion_tokens, cost_usd}}) and
sums them per teacher, so one bar chart shows what each teacher cost across all stages.
`render_plots` runs `dvc plots show` (read-only, so it also works inside `dvc repro`) to get the
same HTML as `make plots`, which the report stage logs to MLflow.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

from ..core.io import DETAILS_SUFFIX, read_stage_metrics, write_text

log = logging.getLogger("distillery.track")

COST_COLUMNS = ["teacher", "model", "stages", "requests", "cached", "prompt_tokens", "completion_tokens",
                "cost_usd"]
_NUM = ("requests", "cached", "prompt_tokens", "completion_tokens", "cost_usd")


def metrics_files(metrics_dir: Path, exclude: tuple[str, ...] = ("plots",)) -> list[Path]:
    """Every metrics/**/*.json except plot data, in sorted order."""
    return sorted(p for p in Path(metrics_dir).rglob("*.json")
                  if not set(p.relative_to(metrics_dir).parts[:-1]) & set(exclude)
                  and not p.name.endswith(DETAILS_SUFFIX))


def _cost_entries(obj: Any) -> Iterator[dict]:
    """Every value under a key named `cost` (at any depth) that maps teacher -> usage."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "cost" and isinstance(v, dict):
                yield v.get("teachers") if isinstance(v.get("teachers"), dict) else v
            else:
                yield from _cost_entries(v)


def collect_costs(metrics_dir: Path) -> list[dict[str, Any]]:
    """One row per teacher: usage summed over all stages' metrics (sorted by teacher)."""
    rows: dict[str, dict[str, Any]] = {}
    for path in metrics_files(metrics_dir):
        data = read_stage_metrics(path)
        if data is None:
            log.warning("report: %s is not valid JSON; skipped", path)
            continue
        stage = str(path.relative_to(metrics_dir).with_suffix(""))
        for entry in _cost_entries(data):
            for teacher, usage in sorted(entry.items()):
                if teacher in ("total", "totals", "total_usd"):
                    continue
                if isinstance(usage, (int, float)) and not isinstance(usage, bool):
                    usage = {"cost_usd": usage}
                if not isinstance(usage, dict):
                    continue
                row = rows.setdefault(teacher, {"teacher": teacher, "model": "", "stages": [],
                                                **{k: 0 for k in _NUM}})
                row["model"] = row["model"] or str(usage.get("model") or "")
                if stage not in row["stages"]:
                    row["stages"].append(stage)
                for k in _NUM:
                    v = usage.get(k, usage.get("usd") if k == "cost_usd" else None)
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        row[k] += v
    out = []
    for teacher in sorted(rows):
        r = rows[teacher]
        r["stages"] = " ".join(r["stages"])
        r["cost_usd"] = round(float(r["cost_usd"]), 6)
        out.append(r)
    return out


def write_cost_csv(rows: list[dict[str, Any]], path: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COST_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


def cost_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"total_usd": round(sum(r["cost_usd"] for r in rows), 6),
            "teachers": len(rows),
            "requests": sum(int(r["requests"]) for r in rows),
            "per_teacher": {r["teacher"]: {"cost_usd": r["cost_usd"], "requests": r["requests"],
                                           "prompt_tokens": r["prompt_tokens"],
                                           "completion_tokens": r["completion_tokens"]} for r in rows}}


def dvc_executable() -> str:
    here = Path(sys.executable).parent / "dvc"
    return str(here) if here.exists() else (shutil.which("dvc") or "dvc")


def render_plots(out_dir: Path, cwd: Path, timeout: int = 300) -> Path | None:
    """`dvc plots show -o out_dir` (the same HTML as `make plots`); None with a warning on failure."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    try:
        r = subprocess.run([dvc_executable(), "plots", "show", "-o", str(out_dir)], cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("report: dvc plots show failed: %s", e)
        return None
    index = out_dir / "index.html"
    if r.returncode != 0 or not index.exists():
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        log.warning("report: dvc plots show failed (exit %d): %s", r.returncode, last)
        return None
    return index
