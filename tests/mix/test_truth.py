"""The mix tells the truth: by default production follows the data (every eligible record of the weighted
buckets, within caps); a size that leaves more than mix.warn_unused_share of the eligible records in no mix
file says so in one stderr line and in the metrics (unused_eligible, unused_share)."""

import json

from distillery.core.io import read_stage_metrics
from distillery.core.quarantine import Gate
from distillery.mix.config import BucketPolicy, BucketsParams, MixParams, PhaseParams
from distillery.mix.run import run_mix
from distillery.mix.sample import follow_data_size, plan_phase

COUNTS = {"instruction": 200, "code": 150, "cot_math": 100, "red_team": 80, "factual": 30}
WEIGHTS = {"instruction": 0.4, "code": 0.3, "cot_math": 0.2, "red_team": 0.1}


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_null_size_takes_every_eligible_record_of_the_weighted_buckets(tmp_path, records_file):
    inp = records_file(COUNTS)
    mix = MixParams(eval_fraction=0.1, buckets={"red_team": {"cap": 50}},
                    production={"weights": WEIGHTS}, phases={})
    assert mix.production.size is None                             # the default follows the data
    out = tmp_path / "mix"
    m = run_mix([inp], out, BucketsParams(), mix, 42, 1 << 22, Gate(0.05, "project.max_reject_rate"), None)
    held = len(_read(out / "eval.jsonl"))
    eligible = sum(COUNTS.values()) - held
    pool = m["pool"]
    assert m["eligible_records"] == eligible
    assert m["production_records"] == sum(pool[b] for b in WEIGHTS) - (pool["red_team"] - 50)
    prod = _read(out / "production.jsonl")
    assert len(prod) == len({r["id"] for r in prod}) == m["production_records"]          # each once, no copies
    assert {r["bucket"] for r in prod} == set(WEIGHTS)
    # unused: red_team beyond its cap, factual (in no mix's weights); nothing left undrawn
    assert m["unused"]["by_reason"] == {"not_drawn": 0, "over_cap": pool["red_team"] - 50,
                                        "unweighted": pool["factual"]}
    assert m["unused_eligible"] == pool["red_team"] - 50 + pool["factual"]
    assert m["unused_share"] == round(m["unused_eligible"] / eligible, 6)
    comp = json.loads((out / "composition.json").read_text())["production"]
    assert comp["size"] == comp["realised"] == m["production_records"] and comp["size_from"] == "data"


def test_follow_data_size_without_redistribution_keeps_the_weights_exact():
    pools = {"instruction": 200, "code": 90, "cot_math": 100, "red_team": 0}
    ph = PhaseParams(weights=WEIGHTS)
    policies = {"code": BucketPolicy(cap=60)}
    # with redistribution: every eligible record of the weighted buckets (code within its cap)
    assert follow_data_size(ph, pools, policies, True) == 200 + 60 + 100
    # without: the scarcest bucket with records sets the size (code: 60 records for 30% -> 200)
    size = follow_data_size(ph, pools, policies, False)
    assert size == 200
    plan = plan_phase("p", ph, pools, policies, False)
    assert plan.size == 200
    assert {b: p.realised for b, p in plan.buckets.items()} == {"instruction": 80, "code": 60, "cot_math": 40,
                                                                "red_team": 0}  # red_team has none: short


def test_small_size_warns_in_one_line_and_reports_unused(tmp_path, run_script, records_file):
    inp = records_file(COUNTS)
    params = tmp_path / "params.yaml"
    params.write_text("mix:\n  eval_fraction: 0.1\n  phases: {}\n  production:\n    weights: "
                      + json.dumps(WEIGHTS) + "\n")
    env = {"DISTILLERY_TRACKING": "0"}
    r = run_script("mix", "--params", params, "--input", inp, "--output", tmp_path / "small", "--size", "100",
                   cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning: mix:")]
    m = read_stage_metrics(tmp_path / "small" / "metrics.json")
    headline = json.loads((tmp_path / "small" / "metrics.json").read_text())
    assert {"unused_eligible", "unused_share", "eligible_records"} <= set(headline)     # headline, not details
    eligible, unused = m["eligible_records"], m["unused_eligible"]
    assert unused == eligible - 100 and m["unused_share"] > 0.1
    assert warnings == [f"warning: mix: {unused:,} of {eligible:,} eligible records ({unused / eligible:.1%}) are "
                        f"in no training file: production has 100 records (mix.production.size: 100); not drawn "
                        f"{unused - m['unused']['by_reason']['unweighted']:,}, over a bucket cap 0, in no mix's "
                        f"weights {m['unused']['by_reason']['unweighted']:,} (mix.production.size: null uses every "
                        f"eligible record; give their buckets a weight in a mix)"]
    # the default (null) size: only factual (no weight) is unused, 30 of ~500 eligible: under 10%, no warning
    r = run_script("mix", "--params", params, "--input", inp, "--output", tmp_path / "all", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "warning: mix:" not in r.stderr
    m = read_stage_metrics(tmp_path / "all" / "metrics.json")
    assert m["unused_eligible"] == m["pool"]["factual"] and m["unused_share"] < 0.1
    assert m["production_records"] == m["eligible_records"] - m["pool"]["factual"]
