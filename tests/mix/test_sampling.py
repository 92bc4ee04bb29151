"""Weighted sampling: targets hit, reproducible, order-independent, phases as configured, eval held out."""

import json
import random

import pytest

from distillery.core.quarantine import Gate
from distillery.core.errors import DistilleryError, ParamsError
from distillery.mix.config import BucketsParams, MixParams
from distillery.mix.run import run_mix

ALL = {"instruction": 400, "code": 300, "cot_math": 300, "analytical": 200, "tool_use": 200,
       "creative": 200, "red_team": 200, "factual": 200}


def _mix(**kw):
    base = {"eval_fraction": 0.1, "production": {"size": 500, "weights": {
        "instruction": 0.4, "code": 0.3, "cot_math": 0.2, "red_team": 0.1}},
        "phases": {"calibration": {"size": 100, "weights": {"instruction": 0.7, "code": 0.2, "factual": 0.1}},
                   "robustness": {"size": 100, "weights": {"red_team": 0.4, "instruction": 0.3, "tool_use": 0.2,
                                                           "factual": 0.1}}}}
    base.update(kw)
    return MixParams(**base)


def _run(inp, out, mix=None, buckets=None, seed=42):
    return run_mix([inp], out, buckets or BucketsParams(), mix or _mix(), seed, 1 << 22, Gate(0.05, "project.max_reject_rate"),
                   out / "plots")


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _counts(recs):
    c = {}
    for r in recs:
        c[r["bucket"]] = c.get(r["bucket"], 0) + 1
    return c


def test_weighted_sampling_hits_targets(tmp_path, records_file):
    out = tmp_path / "mix"
    m = _run(records_file(ALL), out)
    prod = _read(out / "production.jsonl")
    assert len(prod) == 500 == m["production_records"]
    assert _counts(prod) == {"instruction": 200, "code": 150, "cot_math": 100, "red_team": 50}
    comp = json.loads((out / "composition.json").read_text())
    for b, row in comp["production"]["buckets"].items():
        assert abs(row["realised_share"] - row["weight"]) < 0.01
        assert not row["short"]
    assert m["phases"]["calibration"]["share"]["factual"] == {"target": 0.1, "realised": 0.1}
    plot = json.loads((out / "plots" / "mix_composition.json").read_text())
    assert {"label": "calibration / code / target", "phase": "calibration", "bucket": "code",
            "series": "target", "share": 0.2, "count": 20} in plot


def test_same_inputs_byte_identical_and_input_order_irrelevant(tmp_path, records_factory):
    recs = records_factory(ALL)
    a, b, c = (tmp_path / n for n in "abc")
    for d, rows in ((a, recs), (b, recs), (c, random.Random(1).sample(recs, len(recs)))):
        (d / "in").mkdir(parents=True)
        (d / "in" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        _run(d / "in", d / "out")
    for name in ("production.jsonl", "eval.jsonl", "phases/calibration.jsonl", "composition.json"):
        assert (a / "out" / name).read_bytes() == (b / "out" / name).read_bytes()
    for name in ("production.jsonl", "phases/robustness.jsonl"):   # eval.jsonl keeps input order by design
        assert (a / "out" / name).read_bytes() == (c / "out" / name).read_bytes()
    # another seed draws a different sample with the same composition
    _run(a / "in", tmp_path / "seed7", seed=7)
    other = _read(tmp_path / "seed7" / "production.jsonl")
    assert _counts(other) == _counts(_read(a / "out" / "production.jsonl"))
    assert {r["id"] for r in other} != {r["id"] for r in _read(a / "out" / "production.jsonl")}


def test_phases_differ_as_configured(tmp_path, records_file):
    out = tmp_path / "mix"
    _run(records_file(ALL), out)
    cal = _counts(_read(out / "phases" / "calibration.jsonl"))
    rob = _counts(_read(out / "phases" / "robustness.jsonl"))
    assert cal == {"instruction": 70, "code": 20, "factual": 10}
    assert rob == {"red_team": 40, "instruction": 30, "tool_use": 20, "factual": 10}
    red = [r for r in _read(out / "phases" / "robustness.jsonl") if r["bucket"] == "red_team"]
    assert all(r["labels"]["safety"] == "refusal" for r in red)          # answers refuse (safety labels)
    assert all(r["lineage"][-1] == {"stage": "mix", "phase": "robustness", "copy": 0} for r in red)


def test_eval_split_stable_and_never_in_a_mix(tmp_path, records_file):
    inp = records_file(ALL)
    _run(inp, tmp_path / "a")
    bigger = _mix(production={"size": 900, "weights": {"instruction": 1.0, "code": 1.0}})
    _run(inp, tmp_path / "b", mix=bigger, seed=3)
    ev_a = {r["id"] for r in _read(tmp_path / "a" / "eval.jsonl")}
    ev_b = {r["id"] for r in _read(tmp_path / "b" / "eval.jsonl")}
    assert ev_a == ev_b                                   # same ids whatever the seed and manifest
    assert 0.07 < len(ev_a) / sum(ALL.values()) < 0.13    # eval_fraction 0.1
    for d in ("a", "b"):
        for f in [tmp_path / d / "production.jsonl", *(tmp_path / d / "phases").glob("*.jsonl")]:
            assert not ev_a & {r["id"] for r in _read(f)}, f


def test_short_bucket_reported_not_failed_then_strict_fails(tmp_path, records_file):
    inp = records_file({"instruction": 400, "code": 300, "cot_math": 300, "red_team": 20})
    out = tmp_path / "mix"
    m = _run(inp, out, mix=_mix(redistribute_shortfall=False))
    row = json.loads((out / "composition.json").read_text())["production"]["buckets"]["red_team"]
    assert row["short"] and row["realised"] == row["available"] < row["target"] == 50
    assert m["phases"]["production"]["short_buckets"] == 1
    assert len(_read(out / "production.jsonl")) == 450 + row["realised"]
    # redistribution keeps the size and the ratios of the other buckets
    m = _run(inp, tmp_path / "redis", mix=_mix(redistribute_shortfall=True))
    c = _counts(_read(tmp_path / "redis" / "production.jsonl"))
    assert sum(c.values()) == 500 and c["red_team"] == row["realised"]
    assert abs(c["instruction"] / c["code"] - 4 / 3) < 0.03
    with pytest.raises(DistilleryError, match=r"phase 'production' bucket 'red_team' has \d+ of its 50"):
        _run(inp, tmp_path / "strict", mix=_mix(strict=True))


def test_upsampling_and_caps(tmp_path, records_file):
    inp = records_file({"instruction": 400, "code": 300, "cot_math": 300, "red_team": 20})
    out = tmp_path / "mix"
    mix = _mix(redistribute_shortfall=False, buckets={"red_team": {"allow_upsample": True, "max_repeat": 2},
                                                      "code": {"cap": 100}})
    _run(inp, out, mix=mix)
    prod = _read(out / "production.jsonl")
    red = [r for r in prod if r["bucket"] == "red_team"]
    originals = {r["id"] for r in red if "mix_copy_of" not in r}
    copies = [r for r in red if "mix_copy_of" in r]
    assert len(red) == 2 * len(originals) and copies
    assert all(r["id"] == r["mix_copy_of"] + "~r1" and r["mix_copy_of"] in originals for r in copies)
    assert len({r["id"] for r in prod}) == len(prod)      # copies get distinct ids
    assert _counts(prod)["code"] == 100                    # capped below its 150 target


def test_manifest_naming_unknown_bucket_is_one_line_error(tmp_path, records_file):
    bad = _mix(phases={"x": {"size": 10, "weights": {"poetry": 1.0}}})
    with pytest.raises(ParamsError, match=r"mix\.phases\.x\.weights\.poetry: unknown bucket 'poetry'"):
        _run(records_file({"code": 5}), tmp_path / "m", mix=bad)
    ok = BucketsParams(extra=["poetry"])
    recs = records_file({"code": 5}, name="in2/records.jsonl")
    _run(recs, tmp_path / "m2", mix=bad, buckets=ok)       # an added bucket is accepted (and short)


def test_bad_records_quarantined(tmp_path, records_factory):
    recs = records_factory({"code": 100})
    recs[3]["messages"] = [{"role": "assistant", "content": "no user"}]
    recs[4]["id"] = recs[5]["id"]
    p = tmp_path / "in" / "records.jsonl"
    p.parent.mkdir()
    p.write_text("".join(json.dumps(r) + "\n" for r in recs) + "{broken\n")
    m = _run(p, tmp_path / "m", mix=_mix(production={"size": 10, "weights": {"code": 1}}, phases={}))
    q = _read(tmp_path / "m" / "quarantine.jsonl")
    assert sorted(e["reason"] for e in q) == ["duplicate_id", "malformed_json", "role_order"]
    assert m["rejects_by_reason"] == {"duplicate_id": 1, "malformed_json": 1, "role_order": 1}
