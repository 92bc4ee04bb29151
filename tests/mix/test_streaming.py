"""The mix streams: pass 2 writes records as it reads them (spilling to disk by shuffle partition), and
the files are exactly what one in-memory sort of every drawn (id, copy) gives: same records, same copies,
same order. Memory is not measured here (see docs/mix.md for the numbers); behaviour is."""

import json
import random

import pytest

from distillery.core import parallel
from distillery.core.errors import InputError
from distillery.core.quarantine import Gate
from distillery.mix import run as mix_run
from distillery.mix.config import BucketsParams, MixParams
from distillery.core.digests import id_digest
from distillery.mix.run import run_mix
from distillery.mix.sample import hash_key, plan_phase
from distillery.mix.split import is_eval

COUNTS = {"instruction": 300, "code": 250, "cot_math": 120, "red_team": 40, "factual": 60, "creative": 15}


def _mix(**kw):
    base = {"eval_fraction": 0.1, "redistribute_shortfall": True,
            "buckets": {"code": {"cap": 90}, "red_team": {"allow_upsample": True, "max_repeat": 3.5},
                        "creative": {"allow_upsample": True, "max_repeat": 2}},
            "production": {"size": 600, "weights": {"instruction": 0.3, "code": 0.2, "cot_math": 0.2,
                                                    "red_team": 0.2, "creative": 0.1}},
            "phases": {"robustness": {"size": 150, "weights": {"red_team": 0.6, "instruction": 0.3, "factual": 0.1}},
                       "creative": {"size": 80, "weights": {"creative": 0.5, "instruction": 0.5}}}}
    base.update(kw)
    return MixParams(**base)


def _run(inp, out, mix, **kw):
    return run_mix([inp], out, BucketsParams(), mix, 42, 1 << 22, Gate(0.2, "project.max_reject_rate"), None, **kw)


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def reference_order(records: list[dict], mix: MixParams, seed: int) -> dict[str, list[tuple[str, int]]]:
    """The (id, copy) sequence of every mix file, computed the pre-streaming way: every id string in memory,
    pools sorted by (hash, id), the drawn list sorted by (order hash, id, copy)."""
    pools: dict[str, list[str]] = {}
    for r in records:
        if not is_eval(r["id"], mix.eval_fraction, mix.eval_salt):
            pools.setdefault(r["bucket"], []).append(r["id"])
    sizes = {b: len(v) for b, v in pools.items()}
    for b, ids in pools.items():
        pol = mix.buckets.get(b)
        if pol and pol.cap and len(ids) > pol.cap:
            pools[b] = sorted(ids, key=lambda i: (hash_key(seed, "cap", i), i))[:pol.cap]
    out = {}
    for name, ph in {"production": mix.production, **mix.phases}.items():
        plan = plan_phase(name, ph, sizes, mix.buckets, mix.redistribute_shortfall)
        picks = []
        for b, bp in plan.buckets.items():
            order = sorted(pools.get(b, []), key=lambda i: (hash_key(seed, name, i), i))
            picks += [(order[k % len(order)], k // len(order)) for k in range(bp.realised)]
        out[name] = sorted(picks, key=lambda t: (hash_key(seed, name, "order", t[0], t[1]), t[0], t[1]))
    return out


def test_files_equal_the_in_memory_order_with_caps_and_upsampled_copies(tmp_path, records_factory):
    recs = records_factory(COUNTS, prefer=5)
    inp = tmp_path / "in" / "records.jsonl"
    inp.parent.mkdir()
    inp.write_text("".join(json.dumps(r) + "\n" for r in random.Random(3).sample(recs, len(recs))))
    mix = _mix()
    # tiny budget and partitions: every drawn record goes through the spill files
    _run(inp, tmp_path / "spilled", mix, spill_budget=1, part_records=16)
    _run(inp, tmp_path / "memory", mix)
    files = ["production.jsonl", "eval.jsonl", "phases/robustness.jsonl", "phases/creative.jsonl", "composition.json"]
    for f in files:
        assert (tmp_path / "spilled" / f).read_bytes() == (tmp_path / "memory" / f).read_bytes(), f
    assert not [p.name for p in (tmp_path / "spilled").iterdir() if p.name.startswith(".")]   # spill removed

    expected = reference_order(recs, mix, 42)
    by_id = {r["id"]: r for r in recs}
    for name, path in (("production", "production.jsonl"), ("robustness", "phases/robustness.jsonl"),
                       ("creative", "phases/creative.jsonl")):
        got = _read(tmp_path / "spilled" / path)
        assert [(r.get("mix_copy_of", r["id"]), r["lineage"][-1]["copy"]) for r in got] == expected[name], name
        for r in got:
            orig = by_id[r.get("mix_copy_of", r["id"])]
            c = r["lineage"][-1]["copy"]
            assert r["lineage"][-1] == {"stage": "mix", "phase": name, "copy": c}
            assert r["id"] == (orig["id"] if c == 0 else f"{orig['id']}~r{c}")
            assert r["messages"] == orig["messages"] and r["bucket"] == orig["bucket"]
    prod = _read(tmp_path / "spilled" / "production.jsonl")
    red = [r for r in prod if r["bucket"] == "red_team"]
    assert 1 <= max(r["lineage"][-1]["copy"] for r in red) < 3.5    # up-sampled, within max_repeat
    assert len({r["id"] for r in prod}) == len(prod)


@pytest.mark.parametrize("workers", [1, 2])
def test_duplicate_ids_across_blocks_keep_the_first_and_quarantine_in_line_order(tmp_path, records_factory,
                                                                                 monkeypatch, workers):
    monkeypatch.setattr(mix_run, "BLOCK", 3)           # duplicates in other blocks, digest runs merged often
    monkeypatch.setattr(parallel, "POOL_MIN_BYTES", 0)  # workers=2: pass 1 in the process pool, small as it is
    recs = records_factory({"code": 40})
    lines = [json.dumps(r) for r in recs]
    dup_of = {10: 2, 25: 2, 33: 20}
    for i, j in dup_of.items():
        lines[i] = json.dumps({**recs[j], "messages": recs[i]["messages"]})
    lines.insert(7, "{broken")
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(lines) + "\n")
    m = _run(inp, tmp_path / "m", MixParams(eval_fraction=0, production={"size": 37, "weights": {"code": 1}},
                                             phases={}, workers=workers))
    q = _read(tmp_path / "m" / "quarantine.jsonl")
    assert [(e["reason"], e["line"]) for e in q] == [("malformed_json", 8), ("duplicate_id", 12),
                                                     ("duplicate_id", 27), ("duplicate_id", 35)]
    prod = {r["id"]: r for r in _read(tmp_path / "m" / "production.jsonl")}
    assert m["production_records"] == 37 == len(prod)
    assert prod[recs[2]["id"]]["messages"] == recs[2]["messages"]      # the first occurrence wins


@pytest.mark.parametrize("embedding", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_the_mix_is_the_same_bytes_whatever_the_workers_and_blocks(tmp_path, records_factory, monkeypatch, embedding):
    """Both passes run on the worker pool (ids, buckets, sampling hashes; eval lines and spill lines): three
    workers on blocks of a few lines, spilling everything, against one process on whole blocks."""
    recs = records_factory(COUNTS, prefer=5)
    for r in recs[::3]:                 # rules, the default or the embedding classifier decide these
        del r["bucket"]
    inp = tmp_path / "in" / "records.jsonl"
    inp.parent.mkdir()
    lines = [json.dumps(r) for r in random.Random(5).sample(recs, len(recs))]
    lines.insert(40, "{broken")
    lines.insert(90, lines[12])         # a duplicate id in a later block
    inp.write_text("\n".join(lines) + "\n")
    bparams = BucketsParams(embedding={"enabled": embedding})
    gate = Gate(0.2, "project.max_reject_rate")
    one = run_mix([inp], tmp_path / "one", bparams, _mix(workers=1), 42, 1 << 22, gate, None)
    monkeypatch.setattr(parallel, "POOL_MIN_BYTES", 0)
    monkeypatch.setattr(mix_run, "BLOCK", 7)
    monkeypatch.setattr(mix_run, "BLOCK_LINES", 11)
    many = run_mix([inp], tmp_path / "many", bparams, _mix(workers=3), 42, 1 << 22, gate, None,
                   spill_budget=1, part_records=16)
    assert many == one
    assert one["rejects_by_reason"] == {"duplicate_id": 1, "malformed_json": 1} and one["eval_records"] > 0
    assert ("embedding" in one["bucketed_by"]) == embedding
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert {"production.jsonl", "eval.jsonl", "quarantine.jsonl", "phases/robustness.jsonl"} <= {str(f) for f in files}
    for f in files:
        assert (tmp_path / "many" / f).read_bytes() == (tmp_path / "one" / f).read_bytes(), f


def test_records_whose_shuffle_hashes_are_equal_are_ordered_by_id_and_copy(tmp_path, records_factory, monkeypatch):
    """64-bit shuffle hashes never collide in practice; if they did, the file still has one defined order."""
    real = mix_run.hash_key
    monkeypatch.setattr(mix_run, "hash_key", lambda *parts: real(*parts) % 3 if "order" in parts else real(*parts))
    recs = records_factory({"code": 40, "red_team": 10})
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in recs))
    mix = MixParams(eval_fraction=0, buckets={"red_team": {"allow_upsample": True, "max_repeat": 3}},
                    production={"size": 60, "weights": {"code": 0.5, "red_team": 0.5}}, phases={})
    _run(inp, tmp_path / "m", mix, part_records=16)
    got = [(r.get("mix_copy_of", r["id"]), r["lineage"][-1]["copy"]) for r in _read(tmp_path / "m" / "production.jsonl")]
    assert len(got) == 60 and len(set(got)) == 60
    assert got == sorted(got, key=lambda t: (real(42, "production", "order", t[0], t[1]) % 3, t[0], t[1]))


def test_input_changed_between_the_passes_is_one_line_error(tmp_path, records_factory, monkeypatch):
    recs = records_factory({"code": 30})
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in recs))
    first_pass = mix_run.bucket_pass

    def then_change(*a, **kw):
        p1 = first_pass(*a, **kw)
        inp.write_text("".join(json.dumps({**r, "id": r["id"] + "x"}) + "\n" for r in recs))
        return p1

    monkeypatch.setattr(mix_run, "bucket_pass", then_change)
    with pytest.raises(InputError, match=r"in\.jsonl:\d+: not the record read on the first pass"):
        _run(inp, tmp_path / "m", MixParams(eval_fraction=0, production={"size": 10, "weights": {"code": 1}},
                                             phases={}))
    assert not (tmp_path / "m" / "production.jsonl").exists()
