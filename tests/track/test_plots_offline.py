"""`python -m distillery.track.plots_page` (make plots / plots-diff) writes a page that draws with no network.

A tiny DVC project (two of dvc.yaml's plots with the repo's custom templates, no `reports/` folder yet)
is rendered, then opened in headless Chromium with every connection sent to a dead proxy and DNS off.
The page's embed wrapper marks <body> with data-plots-ok/failed once each vegaEmbed promise settles,
and the SVG renderer puts each bar/line into the DOM with an aria-label naming its data values, so
`--dump-dom` shows what was drawn. A control renders DVC's own CDN page in the same browser and finds
it blank, which proves the network really was off.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import git

REPO = Path(__file__).resolve().parents[2]
PLOT_IDS = ("dedup_similarity", "train_loss")  # custom templates histogram.json, line_by_phase.json
DATA = {
    "metrics/plots/dedup_similarity.csv": "similarity,pairs\n0.5,7\n0.95,3\n",
    "metrics/plots/train_loss.csv": "step,phase,loss\n1,sft,2.5\n2,sft,2.1\n1,dpo,0.69\n2,dpo,0.6\n",
}
pytestmark = pytest.mark.slow  # ~12 s for the file: three dvc runs and three browser starts
MARK = re.compile(r'<g class="mark-(\w+) role-mark[^"]*"[^>]*>(.*?)</g>', re.S)


@pytest.fixture()
def dvc_project(tmp_path) -> Path:
    """A git + DVC project with the repo's plot definitions for PLOT_IDS, their templates and small data."""
    root = tmp_path / "proj"
    shutil.copytree(REPO / "src/distillery/track/plot_templates", root / "src/distillery/track/plot_templates")
    plots = [e for e in yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"] if next(iter(e)) in PLOT_IDS]
    assert len(plots) == len(PLOT_IDS)
    assert all(e[next(iter(e))]["template"].startswith("src/distillery/track/plot_templates/") for e in plots)
    (root / "dvc.yaml").write_text(yaml.safe_dump({"plots": plots}, sort_keys=False))
    for rel, text in DATA.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git(root, "init", "-q")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True, env=_env())
    git(root, "add", "-A")
    git(root, "commit", "-qm", "plots")
    return root


def _env() -> dict:
    return dict(os.environ, DVC_NO_ANALYTICS="1")


def _page(root: Path, *args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "distillery.track.plots_page", *args], cwd=root, env=_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return (root / args[args.index("-o") + 1] / "index.html").read_text()


def _dump_dom(browse, page: Path, profile: Path) -> str:
    """The DOM after scripts ran (virtual time lets vega-embed's promises finish), network off."""
    return browse(page, profile, "--virtual-time-budget=20000", "--dump-dom").stdout


def _marks(dom: str, plot_id: str) -> list[str]:
    """The drawn data items (one <path> per bar, one per line) inside the plot's div."""
    start = dom.index(f'<div id="{plot_id}"')
    ends = [i for i in (dom.find(f'<div id="{p}"', start + 1) for p in PLOT_IDS) if i > start]
    return [item for _, inner in MARK.findall(dom[start:min(ends, default=len(dom))])
            for item in re.findall(r"<path [^>]*>", inner)]


def _assert_offline_html(html: str) -> None:
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.I), "page loads an external script"
    assert "cdn.jsdelivr" not in html


def test_show_page_draws_offline(browse, dvc_project, tmp_path):
    assert not (dvc_project / "reports").exists()  # fresh clone: the page builder makes the folders
    html = _page(dvc_project, "show", "-o", "reports/plots")
    _assert_offline_html(html)

    dom = _dump_dom(browse, dvc_project / "reports/plots/index.html", tmp_path / "profile")
    assert 'data-plots-ok="2" data-plots-failed="0"' in dom
    bars = _marks(dom, "dedup_similarity")
    assert len(bars) == 2 and any("pairs: 7" in b for b in bars) and any("pairs: 3" in b for b in bars)
    lines = _marks(dom, "train_loss")
    assert len(lines) >= 2 and all(re.search(r'\sd="M[^"]+"', p) for p in lines)  # one line per phase

    # Control: DVC's own page (scripts from the CDN) stays blank in this browser, so the network was off.
    cdn = subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "-o", "cdn"], cwd=dvc_project,
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert cdn.returncode == 0, cdn.stderr
    assert "cdn.jsdelivr" in (dvc_project / "cdn/index.html").read_text()
    cdn_dom = _dump_dom(browse, dvc_project / "cdn/index.html", tmp_path / "profile")
    assert not MARK.search(cdn_dom)


def test_diff_page_draws_offline(browse, dvc_project, tmp_path):
    (dvc_project / "metrics/plots/dedup_similarity.csv").write_text("similarity,pairs\n0.5,9\n0.95,4\n")
    html = _page(dvc_project, "diff", "HEAD", "-o", "reports/diff")
    _assert_offline_html(html)
    dom = _dump_dom(browse, dvc_project / "reports/diff/index.html", tmp_path / "profile")
    assert 'data-plots-ok="2" data-plots-failed="0"' in dom
    labels = " ".join(_marks(dom, "dedup_similarity"))
    assert all(f"pairs: {n}" in labels for n in (7, 3, 9, 4))  # HEAD's bars and the workspace's
