"""The viewer on bad and on large input: the bad-record corpus in every input role gives no traceback and
each bad line is quarantined with its reason and line; on 50K records the examples rendered stay under
the caps (the same number as on a tenth of the input); the seeded sample ignores the reading order."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import pytest

from distillery.viewer.config import ViewerParams
from distillery.viewer.sample import BottomK, GroupedSample, stable_hash

from .conftest import distilled, ingested, q_entry, write_jsonl

I = 987654  # the number a template line carries where a record's own number goes
CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_records.jsonl"
EXPECTED = json.loads(CORPUS.with_name("bad_records.expected.json").read_text())
BAD_LINES = {int(k): v for k, v in EXPECTED.items() if v != "ok"}


def test_bad_record_corpus_in_every_role(tmp_path, run_script):
    (tmp_path / "params.yaml").write_text("project:\n  max_reject_rate: 1.0\n", encoding="utf-8")
    dedup = tmp_path / "dedup"
    dedup.mkdir()
    for name in ("clusters", "contamination", "records", "quarantine"):
        shutil.copy(CORPUS, dedup / f"{name}.jsonl")
    shutil.copy(CORPUS, tmp_path / "quarantine.jsonl")
    r = run_script("viewer", "--params", "params.yaml", "--input", CORPUS, "--dedup", dedup,
                   "--quarantine", tmp_path / "quarantine.jsonl", "--output", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["records_in"] == 6 * len(EXPECTED)           # every line of every file, read once
    assert m["records_in"] == m["records_out"] + m["rejected"]
    quarantined: dict[str, dict[int, str]] = {}
    for line in (tmp_path / "out" / "quarantine.jsonl").read_text(encoding="utf-8").splitlines():
        e = json.loads(line)
        quarantined.setdefault(Path(e["file"]).name if "dedup" in e["file"] else e["file"], {})[e["line"]] = e["reason"]
    # the kept-records input: exactly the corpus's bad lines, each with the record check's reason
    assert quarantined[str(CORPUS)] == BAD_LINES
    assert quarantined["records.jsonl"] == BAD_LINES
    # the reports and quarantine inputs: bad JSON keeps its reason; anything else of the wrong shape is named
    for name in ("clusters.jsonl", "contamination.jsonl", "quarantine.jsonl"):
        assert set(quarantined[name]) >= {n for n, reason in BAD_LINES.items()
                                          if reason in ("malformed_json", "invalid_utf8", "not_an_object")}
    assert set(quarantined["clusters.jsonl"].values()) <= {"malformed_json", "invalid_utf8", "not_an_object",
                                                           "record_too_large", "bad_cluster_row"}
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "Samples by bucket and source" in page and page.endswith("</html>\n")
    assert m["kept_records"] == len(EXPECTED) - len(BAD_LINES)


def _big_inputs(root: Path, n: int) -> None:
    """n records over 200 (bucket, source) groups (two in three generated); n/2 quarantine entries over 150
    (stage, reason) groups; n/10 clusters of three kinds; n/10 contamination hits over 4 eval sets.
    Lines are filled from JSON templates (json.dumps per record would dominate the test's time)."""
    q, a = f"Question {I} about @S@", f"Answer {I}."
    tpl = [json.dumps(ingested(I, "@S@", "@B@", q, a)), json.dumps(distilled(I, "@S@", "@B@", q, a, 7))]
    qtpl = json.dumps(q_entry("@R@", "@T@", json.loads(tpl[1].replace(str(I), "0")), 0))

    def rec(i: int) -> str:
        return (tpl[bool(i % 3)].replace(str(I), str(i)).replace("@S@", f"source{(i // 20) % 10}")
                .replace("@B@", f"bucket{i % 20}"))

    def rid(i: int) -> str:
        return json.loads(rec(i))["id"]

    write_jsonl(root / "mix/production.jsonl", (rec(i) for i in range(n)))
    write_jsonl(root / "q/quarantine.jsonl", (qtpl.replace("@R@", f"reason{i % 30}").replace("@T@", f"stage{i % 5}")
                                              for i in range(n // 2)))
    write_jsonl(root / "dedup/clusters.jsonl",
                ({"kind": ("exact_duplicate", "near_duplicate", "semantic_duplicate")[i % 3], "kept": rid(i),
                  "size": 3, "removed": [{"id": rid(i + 1), "similarity": 0.9}, {"id": rid(i + 2), "similarity": 0.81}],
                  "min_similarity": 0.81} for i in range(0, n - 2, 10)))
    write_jsonl(root / "dedup/contamination.jsonl",
                ({"id": rid(i), "eval_set": f"set{i % 4}", "eval_item": str(i), "method": "ngram", "overlap": 2,
                  "eval_text": "benchmark text", "removed_as": "contaminated"} for i in range(0, n, 10)))


@pytest.mark.slow  # 55K lines through the stage twice over: ~10 s on a free core
def test_examples_rendered_are_capped_whatever_the_input_size(tmp_path, run_script):
    p = ViewerParams()
    cap = (p.max_groups * p.examples_per_group + p.max_reject_groups * p.rejects_per_reason
           + 3 * p.clusters_per_kind + 4 * p.contamination_per_set)
    shown = {}
    for n in (5_000, 50_000):
        root = tmp_path / str(n)
        _big_inputs(root, n)
        r = run_script("viewer", "--input", root / "mix", "--dedup", root / "dedup", "--quarantine", root / "q",
                       "--output", root / "out", cwd=root)
        assert r.returncode == 0, r.stderr[-3000:]
        m = json.loads((root / "out" / "metrics.json").read_text())
        page = (root / "out" / "index.html").read_text(encoding="utf-8")
        assert m["kept_records"] == n and m["quarantined_records"] == n // 2
        assert m["examples_rendered"] == page.count('<article class="card ') <= cap
        assert len(re.findall(r'<article class="card sample"', page)) == p.max_groups * p.examples_per_group
        shown[n] = (m["examples_rendered"], m["page_bytes"])
    assert shown[5_000][0] == shown[50_000][0]           # both saturate every cap
    assert shown[50_000][1] < 1.5 * shown[5_000][1]      # the page does not grow with the input


def test_bottom_k_sample_ignores_reading_order():
    keys = [f"id{i}" for i in range(2000)]
    picks = []
    for seed in (0, 1, 2):
        order = keys[:]
        random.Random(seed).shuffle(order)
        s = BottomK(5)
        for k in order:
            s.add((stable_hash(42, k), k), lambda k=k: k)
        picks.append(s.items())
    assert picks[0] == picks[1] == picks[2] and len(picks[0]) == 5
    other = BottomK(5)
    for k in keys:
        other.add((stable_hash(43, k), k), lambda k=k: k)
    assert other.items() != picks[0]                       # the seed decides


def test_grouped_sample_caps_groups_but_counts_all():
    g = GroupedSample(k=2, max_groups=3, seed=42)
    for i in range(1000):
        g.add(f"group{i % 10}", f"item{i}", lambda i=i: i)
    assert sum(g.counts.values()) == 1000 and len(g.counts) == 10
    assert len(g.samples) == 3 and g.shown() == 6
    h = GroupedSample(k=2, max_groups=3, seed=42)
    for i in reversed(range(1000)):
        h.add(f"group{i % 10}", f"item{i}", lambda i=i: i)
    assert {k: v.items() for k, v in g.samples.items()} == {k: v.items() for k, v in h.samples.items()}
