"""The viewer page built from small real-shaped pipeline outputs: counts equal the inputs', every text is
escaped, the same inputs give the same bytes, and in headless Chromium with the network off the page
shows its sections and counts and is not blank."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .conftest import SYSTEM, VIEWER_ARGS

HEADINGS = ("Generated vs ingested", "Samples by bucket and source", "Rejects by stage and reason",
            "Near-duplicate clusters", "Contamination hits", "Inputs")


def _build(run_script, root: Path, out: str = "reports/viewer", *extra: str) -> tuple[str, dict]:
    r = run_script("viewer", "--params", "params.yaml", *VIEWER_ARGS, "--output", out, *extra, cwd=root)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    metrics = json.loads((root / out / "metrics.json").read_text())
    metrics.update(json.loads((root / out / "metrics.details.json").read_text()))
    return (root / out / "index.html").read_text(encoding="utf-8"), metrics


def _n(page: str, ident: str) -> int:
    m = re.search(rf'id="{ident}" data-n="(\d+)"', page)
    assert m, ident
    return int(m.group(1))


def test_counts_equal_the_inputs(pipeline, run_script):
    root, want = pipeline
    page, m = _build(run_script, root)
    rejects = sum(want["rejects"].values())
    assert (m["kept_records"], m["generated_records"], m["quarantined_records"]) == (want["kept"], want["generated"],
                                                                                     rejects)
    assert (m["duplicate_clusters"], m["duplicates_merged"], m["contamination_hits"]) == (
        want["clusters"], want["merged"], want["contamination"])
    assert m["rejected"] == 0 and m["records_out"] == m["records_in"]
    assert {r: n for r, n in m["rejects_by_stage"].items()} == {
        "dedup/contaminated": 1, "dedup/exact_duplicate": 1, "dedup/near_duplicate": 2, "ingest/empty_turn": 1,
        "ingest/malformed_json": 1, "multiturn/turn_count": 1, "score/ai_disclaimer": 1,
        "score/judge_below_threshold": 3}
    # the page says the same
    for ident, n in {"n-kept": want["kept"], "n-generated": want["generated"],
                     "n-ingested": want["kept"] - want["generated"],
                     "n-rejects": rejects, "n-clusters": want["clusters"], "n-merged": want["merged"],
                     "n-contamination": want["contamination"], "n-contaminated": want["contaminated"],
                     "n-groups": want["groups"], "n-examples": m["examples_rendered"]}.items():
        assert _n(page, ident) == n, ident
    assert page.count('<article class="card ') == m["examples_rendered"]
    # every (bucket, source) group and (stage, reason) is listed; the upsampled copy is counted, not shown
    groups = {(g["bucket"], g["source"]): g for g in m["groups"]}
    assert set(groups) == {("cot_math", "gsm8k"), ("code", "code_alpaca"), ("instruction", "oasst")}
    assert groups[("code", "code_alpaca")]["copies"] == want["copies"]
    assert "~r1" not in page.split('id="samples"')[1].split('id="rejects"')[0].split("</table>", 1)[1]


def test_lineage_clusters_and_contamination_are_shown(pipeline, run_script):
    root, _ = pipeline
    page, m = _build(run_script, root)
    assert SYSTEM in page and "prompt sent to the model" in page          # the exact prompt of a step
    assert "local-smollm2 (smollm2)" in page and "judge.overall" in page     # models and judge scores
    # the near-duplicate cluster: the kept record beside both removed ones, least similar first
    cluster = page[page.index('<article class="card cluster"><div class="head"><span class="badge">near_duplicate'):]
    cluster = cluster[:cluster.index("</article>")]
    assert cluster.index("similarity 0.851") < cluster.index("similarity 0.912")
    assert "Red, yellow and blue are the three primary colors." in cluster
    assert "colours" in cluster and "<mark>colours</mark>" in cluster          # what differs is highlighted
    assert m["texts_found"] == m["texts_needed"] == 6   # 2 kept + 3 removed + 1 contaminated record
    hit = page[page.index('<article class="card contamination"'):]
    hit = hit[:hit.index("</article>")]
    assert "test#7" in hit and "for breakfast every morning" in hit and "<mark>ducks</mark>" in hit
    assert hit.count("<mark>eggs</mark>") == 1      # runs of 3 shared words are marked, not a lone shared word


def test_all_text_is_escaped_and_output_is_deterministic(pipeline, run_script):
    root, _ = pipeline
    page, _ = _build(run_script, root)
    assert "<script>alert" not in page and "<img" not in page and "</pre><img" not in page
    assert page.count("<script") == 1 and not re.search(r"<script[^>]*\bsrc\s*=", page)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "\x01" not in page and "\x1b" not in page
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page)           # nothing to fetch
    again, _ = _build(run_script, root, "reports/viewer2")
    assert again == page


@pytest.mark.slow  # two Chromium starts, ~5 s
def test_page_in_headless_chromium_offline(pipeline, run_script, browse, tmp_path):
    from PIL import Image

    root, want = pipeline
    _, m = _build(run_script, root)
    page = root / "reports/viewer/index.html"
    dom = browse(page, tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom").stdout
    for h in HEADINGS:
        assert re.search(rf"<h2>{re.escape(h)}</h2>", dom), h
    for ident, n in {"n-kept": want["kept"], "n-rejects": sum(want["rejects"].values()),
                     "n-clusters": want["clusters"], "n-contamination": want["contamination"],
                     "n-examples": m["examples_rendered"]}.items():
        assert re.search(rf'id="{ident}" data-n="{n}">{n:,}<', dom), ident
    assert "<img" not in dom and "&lt;script&gt;alert" in dom                 # user text stayed text
    shot = tmp_path / "shot.png"
    r = browse(page, tmp_path / "profile", "--window-size=1280,1600", f"--screenshot={shot}",
               "--enable-logging=stderr", "--v=0")
    assert "Uncaught" not in r.stderr, r.stderr[-2000:]                        # the filter script runs cleanly
    img = Image.open(shot).convert("RGB")
    colors = img.getcolors(maxcolors=1 << 24)
    assert len(colors) > 50
    white = sum(n for n, c in colors if c == (255, 255, 255))
    assert white < 0.9 * img.width * img.height
