"""Great Expectations Data Docs that render with no network.

GX writes pages that load jQuery, Bootstrap, bootstrap-table (which draws the index table) and Vega from
CDNs, so offline the index shows no table. After GX builds the site, every page's CDN references to those
files are pointed at copies under `static/vendor/` (this package's `vendor/` folder, unmodified npm builds;
Vega from the plots page's vendor folder), and the purely cosmetic ones with no local copy (icon font, whose two status
icons get text stand-ins; dark theme; the remote logo) are dropped so the browser waits on nothing.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

HERE = Path(__file__).parent
VENDOR = HERE / "vendor"
VEGA = HERE.parent / "track" / "vendor"
# CDN URL pattern -> local file (in VENDOR or VEGA)
LOCAL = {
    r"https://code\.jquery\.com/jquery-3\.[0-9.]+(\.min)?\.js": "jquery.min.js",
    r"https://[a-z.]*bootstrapcdn\.com/bootstrap/4\.[0-9.]+/css/bootstrap(\.min)?\.css": "bootstrap.min.css",
    r"https://[a-z.]*bootstrapcdn\.com/bootstrap/4\.[0-9.]+/js/bootstrap(\.min)?\.js": "bootstrap.min.js",
    r"https://cdnjs\.cloudflare\.com/ajax/libs/popper\.js/1\.[0-9.]+/umd/popper(\.min)?\.js": "popper.min.js",
    r"https://unpkg\.com/bootstrap-table@1\.[0-9.]+/dist/bootstrap-table(\.min)?\.js": "bootstrap-table.min.js",
    r"https://unpkg\.com/bootstrap-table@1\.[0-9.]+/dist/bootstrap-table(\.min)?\.css": "bootstrap-table.min.css",
    r"https://unpkg\.com/bootstrap-table@1\.[0-9.]+/dist/extensions/filter-control/"
    r"bootstrap-table-filter-control(\.min)?\.js": "bootstrap-table-filter-control.min.js",
    r"https://unpkg\.com/bootstrap-table@1\.[0-9.]+/dist/extensions/filter-control/"
    r"bootstrap-table-filter-control(\.min)?\.css": "bootstrap-table-filter-control.min.css",
    r"https://cdnjs\.cloudflare\.com/ajax/libs/bootstrap-datepicker/1\.[0-9.]+/js/bootstrap-datepicker(\.min)?\.js":
        "bootstrap-datepicker.min.js",  # the index table's run-time filter: without it the table stays empty
    r"https://cdnjs\.cloudflare\.com/ajax/libs/bootstrap-datepicker/1\.[0-9.]+/css/bootstrap-datepicker(\.min)?\.css":
        "bootstrap-datepicker.min.css",
    r"https://cdn\.jsdelivr\.net/npm/vega@5[^\"']*": "vega.min.js",
    r"https://cdn\.jsdelivr\.net/npm/vega-lite@5[^\"']*": "vega-lite.min.js",
    r"https://cdn\.jsdelivr\.net/npm/vega-embed@6[^\"']*": "vega-embed.min.js",
}
ASSET = re.compile(r"""<(script|link|img)\b[^>]*?\b(src|href)=["'](https?://[^"']+)["'][^>]*>(\s*</script>)?""",
                   re.I)
SUFFIX_OK = (".js", ".css", ".png", ".ico", ".svg", ".woff", ".woff2")


def _local_file(url: str) -> str | None:
    return next((f for pat, f in LOCAL.items() if re.fullmatch(pat, url)), None)


def _is_asset(tag: str, url: str) -> bool:
    """A script, stylesheet or image the page loads (not a hyperlink to GX's docs)."""
    return tag.lower() in ("script", "img") or "stylesheet" in tag.lower() or url.split("?")[0].endswith(SUFFIX_OK)


def rewrite(html: str, prefix: str) -> tuple[str, list[str]]:
    """(page, URLs dropped): CDN assets with a local copy point at `prefix + file`; the rest are removed."""
    dropped: list[str] = []

    def sub(m: re.Match) -> str:
        tag, attr, url = m.group(1), m.group(2), m.group(3)
        if tag.lower() == "link" and not _is_asset(m.group(0), url):
            return m.group(0)
        local = _local_file(url)
        if local:
            return m.group(0).replace(url, prefix + local)
        dropped.append(url)
        if tag.lower() == "img":  # keep the element (alt text), load nothing
            return m.group(0).replace(f'{attr}="{url}"', f'{attr}=""').replace(f"{attr}='{url}'", f"{attr}=''")
        return ""

    return ASSET.sub(sub, html), dropped


# stand-ins for the two Font Awesome icons GX uses (pass/fail status), whose font is not vendored
ICONS = ('<style>.fas.fa-check-circle::before{content:"\\2714"}.fas.fa-times::before{content:"\\2716"}'
         '.fas{font-style:normal;font-weight:bold}</style>')


def make_offline(site: Path) -> dict[str, int]:
    """Copy the vendored files into `site/static/vendor/` and rewrite every page of the site."""
    dest = site / "static" / "vendor"
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(set(LOCAL.values())):
        src = VENDOR / f if (VENDOR / f).exists() else VEGA / f
        shutil.copyfile(src, dest / f)
    pages = dropped = 0
    for page in sorted(site.rglob("*.html")):
        depth = len(page.relative_to(site).parts) - 1
        text, gone = rewrite(page.read_text(encoding="utf-8"), "../" * depth + "static/vendor/")
        text = text.replace("</head>", ICONS + "</head>", 1)
        page.write_text(text, encoding="utf-8")
        pages += 1
        dropped += len(gone)
    return {"pages": pages, "dropped": dropped}
