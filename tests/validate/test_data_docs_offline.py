"""The validate stage's Great Expectations Data Docs render with the network off: the index draws its table
of validation results (bootstrap-table, a script GX loads from a CDN), and a validation page shows its counts.

Chromium opens the pages with every connection sent to a dead proxy and DNS off (as tests/track's plots
test does); `--dump-dom` gives the DOM after the scripts ran. A control renders GX's own page (CDN links
restored) in the same browser and finds no table rows, which proves the network really was off.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from distillery.core.records import DEFAULT_BUCKETS
from distillery.validate.config import ValidateParams
from distillery.validate.run import run_validate

from .test_validate import MIX, mixed  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow  # a validate run and three browser starts


def _dom(browse, page: Path, tmp: Path, screenshot: Path | None = None) -> str:
    if screenshot:
        browse(page, tmp / "profile", "--virtual-time-budget=10000", "--window-size=1200,900",
               f"--screenshot={screenshot}")
    dom = browse(page, tmp / "profile", "--virtual-time-budget=10000", "--dump-dom").stdout
    assert dom.strip()
    return dom


@pytest.fixture()
def docs(mixed):  # noqa: F811
    m, failures = run_validate(mixed / "export", mixed / "mix", mixed / "reports", ValidateParams(), MIX,
                               list(DEFAULT_BUCKETS))
    assert failures == [] and m["success"]
    return mixed / "reports", m


def test_no_page_loads_anything_from_the_network(docs):
    site, _ = docs
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"""<(script|img)\b[^>]*\bsrc=["']https?:""", text), page
        assert not re.search(r"""<link\b[^>]*stylesheet[^>]*href=["']https?:""", text), page
    assert (site / "static/vendor/bootstrap-table.min.js").stat().st_size > 100_000


def test_index_table_renders_offline(docs, browse, tmp_path):
    site, m = docs
    shot = tmp_path / "index.png"
    dom = _dom(browse, site / "index.html", tmp_path, shot)
    # the Validation Results tab (its run-time filter needs bootstrap-datepicker: without it, no rows)
    results = re.findall(r'<tr[^>]*data-href="validations/([a-z_]+)/[^"]*"[^>]*data-index="\d+"', dom)
    assert sorted(results) == sorted(m["suites"]) and len(results) == 4, results
    suites = re.findall(r'<tr[^>]*data-href="expectations/([a-z_]+)\.html"[^>]*data-index="\d+"', dom)
    assert sorted(suites) == sorted(m["suites"])
    assert "Showing 1 to 4 of 4 rows" in dom
    assert shot.stat().st_size > 20_000, "the screenshot is not a blank page"


def test_validation_page_shows_its_counts_offline(docs, browse, tmp_path):
    site, m = docs
    page = next(site.glob("validations/sft/**/*.html"))
    dom = _dom(browse, page, tmp_path)
    text = re.sub(r"<[^>]+>", " ", dom)
    text = re.sub(r"\s+", " ", text)
    n = m["suites"]["sft"]["evaluated"]
    assert re.search(rf"Evaluated Expectations {n}\b", text), text[:2000]
    assert re.search(rf"Successful Expectations {n}\b", text)


def test_control_gx_own_page_has_no_table_offline(docs, browse, tmp_path):
    """Put the CDN links back: with the network off that page draws no table."""
    site, _ = docs
    page = site / "index.html"
    cdn = page.read_text(encoding="utf-8").replace(
        'src="static/vendor/bootstrap-table.min.js"', 'src="https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js"')
    (site / "cdn.html").write_text(cdn, encoding="utf-8")
    dom = _dom(browse, site / "cdn.html", tmp_path)
    assert not re.findall(r'<tr[^>]*data-index="(\d+)"', dom) and "of 4 rows" not in dom
