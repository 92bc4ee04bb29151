"""Dedup on a local 2-CPU Ray cluster keeps exactly what the local engine keeps (same bytes)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from distillery.dedup.cluster import components
from distillery.distributed.dedup import run_dedup
from distillery.core.params import load_params

pytestmark = [pytest.mark.ray, pytest.mark.slow]

_spec = importlib.util.spec_from_file_location("dist_corpus", Path(__file__).with_name("corpus.py"))
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)

OUTS = ("records.jsonl", "quarantine.jsonl", "clusters.jsonl", "contamination.jsonl")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return corpus.make_corpus(tmp_path_factory.mktemp("corpus"))


def _ids(path: Path) -> list[str]:
    return [json.loads(l).get("id") for l in path.read_text().splitlines()]


def test_same_kept_ids_and_same_bytes_as_local(ray_cluster, inputs, tmp_path):
    # 16 KB byte ranges: several ranges per file, lines cut at range ends, gzip as one range
    sets = ["engine.chunk_mb=0.016", "dedup.source_priority=[dolly, oasst]"]
    loc = run_dedup(load_params(None, sets), inputs, tmp_path / "local")
    ray_ = run_dedup(load_params(None, sets + ["engine.engine=ray"]), inputs, tmp_path / "ray")
    m, r = loc.metrics, ray_.metrics
    assert r["input_ranges"] > 4
    assert m["near_duplicates"] > 40 and m["exact_duplicates"] > 10 and m["contaminated"] == 1
    assert m["bad_input_by_reason"] == {"malformed_json": 1}
    for k in ("records_in", "records_out", "exact_duplicates", "near_duplicates", "contaminated", "clusters",
              "largest_cluster", "candidate_pairs", "verified_pairs"):
        assert r[k] == m[k], k
    assert _ids(tmp_path / "ray" / "records.jsonl") == _ids(tmp_path / "local" / "records.jsonl")
    for name in OUTS:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert loc.histogram == ray_.histogram


def test_per_source_signature_verify_and_distributed_components_match_local(ray_cluster, inputs, tmp_path):
    sets = ["dedup.cross_source=false", "dedup.verify=signature", "dedup.key=prompt", "dedup.threshold=0.7",
            "dedup.decontaminate.enabled=false"]
    run_dedup(load_params(None, sets), inputs, tmp_path / "local")
    # max_driver_edges=1: connected components run as label propagation on Ray tasks
    res = run_dedup(load_params(None, sets + ["engine.engine=ray", "engine.max_driver_edges=1"]), inputs,
                    tmp_path / "ray")
    assert res.metrics["verified_pairs"] > 1
    for name in OUTS:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name


def test_distributed_components_equal_scipy_on_random_graphs(ray_cluster):
    from distillery.distributed.dedup_ray import components_ray

    rng = np.random.default_rng(3)
    for n, e in ((1, 0), (50, 10), (2000, 1500), (2000, 6000)):
        u = rng.integers(0, n, e)
        v = rng.integers(0, n, e)
        got = components_ray(ray_cluster, n, u, v, shard_edges=700)
        assert np.array_equal(got, components(n, u, v))
