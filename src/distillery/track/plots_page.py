"""`dvc plots show|diff` as one self-contained HTML page that renders with no network.

DVC's default page loads Vega, Vega-Lite and vega-embed from a CDN (blank offline) and its writer
creates only the last folder of `-o` (exit 255 in a fresh clone without `reports/`). This module
creates the output folder, writes an `--html-template` with the vendored builds in `vendor/` inlined,
and runs dvc with it:

    python -m distillery.track.plots_page show [TARGET...] [-o reports/plots]
    python -m distillery.track.plots_page diff [REV...] [-o reports/plots]

Any other argument goes to `dvc plots show|diff` as it is.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

VENDOR = Path(__file__).with_name("vendor")
SCRIPTS = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")  # load order: embed needs both

# DVC's plot divs call `vegaEmbed('#id', spec)`. The wrapper renders to SVG (crisp, and countable in
# the DOM), writes a failure into the plot's div instead of leaving it blank, and, once every plot has
# settled, sets data-plots-ok / data-plots-failed on <body> so a headless browser can check the page.
EMBED_WRAPPER = """
(function () {
  var embed = window.vegaEmbed, pending = [];
  window.vegaEmbed = function (el, spec, opt) {
    var p = embed(el, spec, Object.assign({renderer: "svg"}, opt));
    p.catch(function (e) {
      var div = typeof el === "string" ? document.querySelector(el) : el;
      if (div) div.append("plot failed: " + e);
    });
    pending.push(p);
    return p;
  };
  window.addEventListener("load", function () {
    Promise.allSettled(pending).then(function (rs) {
      var ok = rs.filter(function (r) { return r.status === "fulfilled"; }).length;
      document.body.setAttribute("data-plots-ok", ok);
      document.body.setAttribute("data-plots-failed", rs.length - ok);
    });
  });
})();
"""

# dvc-render fills `{refresh_tag}` and `{plot_divs}` by plain str.replace (other braces are safe). No
# `{scripts}` placeholder on purpose: that is where dvc-render puts its CDN <script> tags.
PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{refresh_tag}
<title>distillery plots</title>
<style>body { font-family: sans-serif; } table { border-spacing: 15px; }</style>
{inline}
</head>
<body>
{plot_divs}
</body>
</html>
"""


def template_html() -> str:
    """The page template: the three vendored builds and the embed wrapper inlined (no external fetch)."""
    blocks = [(VENDOR / name).read_text(encoding="utf-8") for name in SCRIPTS] + [EMBED_WRAPPER]
    safe = (js.replace("</script", "<\\/script") for js in blocks)  # a literal would end the tag early
    return PAGE.replace("{inline}", "\n".join(f"<script>\n{js}\n</script>" for js in safe))


def build(command: str, out: Path, dvc_args: list[str]) -> int:
    """Create `out` with its parents, write the template to a temp folder, run dvc; dvc's exit code."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="plots-template-") as tmp:
        template = Path(tmp) / "template.html"
        template.write_text(template_html(), encoding="utf-8")
        cmd = [sys.executable, "-m", "dvc", "plots", command, *dvc_args, "-o", str(out),
               "--html-template", str(template)]
        return subprocess.run(cmd).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distillery.track.plots_page", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("show", "diff"))
    parser.add_argument("-o", "--out", type=Path, default=Path("reports/plots"),
                        help="output folder for index.html (created if missing)")
    args, rest = parser.parse_known_args(argv)
    return build(args.command, args.out, rest)


if __name__ == "__main__":
    sys.exit(main())
