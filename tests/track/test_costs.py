"""The costs stage sums per-teacher LLM usage over every stage's metrics into the plot CSV."""

import csv
import json

from distillery.core.io import read_stage_metrics
from pathlib import Path

from distillery.track.report import collect_costs


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _sample_metrics(m: Path) -> None:
    usage = lambda model, req, pt, ct, usd: {"model": model, "requests": req, "cached": 0, "prompt_tokens": pt,
                                              "completion_tokens": ct, "cost_usd": usd}
    _write(m / "distill.json", {"records_out": 10, "cost": {"gpt": usage("gpt-4o-mini", 10, 1000, 500, 0.00045),
                                                            "local": usage("smollm2", 5, 200, 100, 0.0)}})
    _write(m / "score.json", {"judge": {"cost": {"teachers": {"gpt": usage("gpt-4o-mini", 4, 800, 40, 0.000144)},
                                                 "total_usd": 0.000144}}})
    _write(m / "ingest" / "alpaca.json", {"records_out": 3})                       # no cost entry
    _write(m / "plots" / "judge_scores.json", [{"cost": {"x": 1}}])               # plot data is not read
    (m / "broken.json").write_text("{not json")


def test_costs_are_summed_per_teacher_across_stages(tmp_path):
    _sample_metrics(tmp_path)
    rows = collect_costs(tmp_path)
    assert [r["teacher"] for r in rows] == ["gpt", "local"]
    gpt = rows[0]
    assert gpt["model"] == "gpt-4o-mini" and gpt["stages"] == "distill score"
    assert gpt["requests"] == 14 and gpt["prompt_tokens"] == 1800 and gpt["completion_tokens"] == 540
    assert abs(gpt["cost_usd"] - 0.000594) < 1e-12
    assert rows[1]["cost_usd"] == 0.0 and rows[1]["requests"] == 5


def test_costs_script_writes_csv_and_metrics(tmp_path, run_script):
    m = tmp_path / "metrics"
    _sample_metrics(m)
    out = tmp_path / "metrics" / "plots" / "cost_per_teacher.csv"
    r = run_script("costs", "--metrics-dir", m, "--metrics", m / "costs.json", "--output", out, cwd=tmp_path, env={"DISTILLERY_TRACKING": "0"})
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open()))
    assert [(x["teacher"], x["cost_usd"], x["requests"]) for x in rows] == [("gpt", "0.000594", "14"),
                                                                            ("local", "0.0", "5")]
    metrics = read_stage_metrics(m / "costs.json")
    assert metrics["total_usd"] == 0.000594 and metrics["per_teacher"]["gpt"]["requests"] == 14
    assert "costs: 2 teachers" in r.stderr
