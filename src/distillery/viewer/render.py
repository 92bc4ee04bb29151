"""The page: one self-contained HTML file (inline CSS, a few lines of inline JS for the filter box).

Every piece of record text goes through `esc`: HTML-escaped (quotes included), control characters and
lone surrogates replaced, so arbitrary user text can neither break the markup nor the UTF-8 file. A
Content-Security-Policy meta tag forbids every fetch: the page works offline or not at all.
"""

from __future__ import annotations

import html
import re
from typing import Any, Iterable

from .collect import SIM_BINS, Collected
from .views import clip

_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_WORD = re.compile(r"\w+")

CSS = """
:root{--bg:#f6f7f9;--fg:#1d2330;--mute:#5f6b7a;--line:#d9dee5;--card:#fff;--gen:#6c4ee0;--ing:#2a9d8f;
--bad:#d64545;--user:#e8f1ff;--asst:#eefaf1;--sys:#f4f0ff;--mark:#ffe08a}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
header{background:#1d2330;color:#fff;padding:18px 28px 10px}header h1{margin:0 0 2px;font-size:22px}
header .sub{color:#b8c2d0;margin:0 0 12px;font-size:13px}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:12px}
.tile{background:#2b3345;border-radius:8px;padding:8px 14px;min-width:150px}
.tile .num{display:block;font-size:24px;font-weight:700}.tile .lbl{color:#b8c2d0;font-size:12px}
nav{display:flex;flex-wrap:wrap;gap:14px;align-items:center}nav a{color:#9cc3ff;text-decoration:none}
nav input{margin-left:auto;padding:5px 9px;border-radius:6px;border:0;min-width:240px}
main{padding:8px 28px 40px;max-width:1500px}
section{margin-top:22px}h2{font-size:19px;border-bottom:2px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}h3 .mute{font-weight:400}
table{border-collapse:collapse;background:var(--card);margin:6px 0 10px}
th,td{border:1px solid var(--line);padding:3px 9px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.r,th.r{text-align:right;font-variant-numeric:tabular-nums}
.mute{color:var(--mute)}.small{font-size:12px}
.bar{display:inline-block;width:220px;height:12px;background:var(--ing);border-radius:3px;overflow:hidden;
vertical-align:middle}.bar span{display:block;height:100%;background:var(--gen)}
.hist{display:inline-block;height:12px;background:#7a8aa0;border-radius:2px;vertical-align:middle}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 10px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px;margin:8px 0}
.card .head{display:flex;flex-wrap:wrap;gap:6px 12px;align-items:baseline;margin-bottom:6px}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;background:#eef1f5}
.badge.gen{background:var(--gen);color:#fff}.badge.ing{background:var(--ing);color:#fff}
.badge.bad{background:var(--bad);color:#fff}.badge.score{background:#ffd166}
code,.id{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:0;font:12.5px/1.4 ui-monospace,"DejaVu Sans Mono",monospace;
unicode-bidi:isolate}
.msg{border-radius:6px;padding:5px 8px;margin:4px 0;background:#f3f4f6}
.msg .role{font-size:11px;font-weight:700;text-transform:uppercase;color:var(--mute)}
.msg.user{background:var(--user)}.msg.assistant,.msg.chosen{background:var(--asst)}.msg.system{background:var(--sys)}
.msg.rejected{background:#fdeeee}
.side{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:8px}
.side>div{border:1px solid var(--line);border-radius:6px;padding:6px 8px;max-height:420px;overflow:auto}
mark{background:var(--mark);padding:0}
details{margin:4px 0}summary{cursor:pointer;color:#2456a6}
ol.lineage{margin:4px 0;padding-left:22px}ol.lineage li{margin:3px 0}
.kv{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12.5px}.kv b{font-weight:600}
"""

JS = """
const f=document.getElementById('filter');
f.addEventListener('input',()=>{const q=f.value.toLowerCase();let n=0;
for(const c of document.querySelectorAll('.card')){const hit=!q||c.textContent.toLowerCase().includes(q);
c.hidden=!hit;n+=hit;}document.getElementById('shown').textContent=q?n+' examples match':'';});
"""


def esc(value: Any) -> str:
    return html.escape(_BAD_CHARS.sub("\ufffd", str(value)), quote=True)


def num(n: int | float, ident: str = "") -> str:
    """A count: the figure for the reader, `data-n` for a machine."""
    attr = f' id="{esc(ident)}"' if ident else ""
    text = f"{n:,}" if isinstance(n, int) else f"{n:,.2f}"
    return f'<b class="num"{attr} data-n="{n}">{text}</b>'


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "–"


def share_bar(part: int, whole: int) -> str:
    w = 100 * part / whole if whole else 0
    return f'<span class="bar" title="{pct(part, whole)} generated"><span style="width:{w:.1f}%"></span></span>'


def table(head: Iterable[str], rows: Iterable[Iterable[str]], right: Iterable[int] = (), cls: str = "") -> str:
    """Cells are HTML already (escape text before)."""
    right = set(right)
    th = "".join(f'<th{" class=r" if i in right else ""}>{h}</th>' for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td{" class=r" if i in right else ""}>{c}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def capped(rows: list, limit: int, what: str) -> tuple[list, str]:
    if len(rows) <= limit:
        return rows, ""
    note = f'<p class="mute small">{len(rows) - limit:,} more {what} not listed (viewer.max_table_rows).</p>'
    return rows[:limit], note


def messages_html(msgs: list[tuple[str, str]]) -> str:
    return "".join(f'<div class="msg {esc(role)}"><span class="role">{esc(role)}</span><pre>{esc(text)}</pre></div>'
                   for role, text in msgs)


def marked(text: str, other: set[str], shared: bool) -> str:
    """`text` escaped, with <mark> on words that are (shared=True) or are not (False) in `other`."""
    tokens = list(_WORD.finditer(text))
    return _mark(text, tokens, [(m.group().lower() in other) == shared for m in tokens])


def marked_ngrams(text: str, other: str, n: int = 3) -> str:
    """`text` escaped, with <mark> on every word inside a run of `n` words that `other` also has (in order),
    i.e. the overlap a decontamination n-gram test sees, not every shared "the"."""
    tokens = list(_WORD.finditer(text))
    words_ = [m.group().lower() for m in tokens]
    theirs = [w.lower() for w in _WORD.findall(other)]
    grams = {tuple(theirs[i:i + n]) for i in range(len(theirs) - n + 1)}
    flags = [False] * len(tokens)
    for i in range(len(words_) - n + 1):
        if tuple(words_[i:i + n]) in grams:
            flags[i:i + n] = [True] * n
    return _mark(text, tokens, flags)


def _mark(text: str, tokens: list[re.Match], flags: list[bool]) -> str:
    out, pos = [], 0
    for m, flag in zip(tokens, flags):
        out.append(esc(text[pos:m.start()]))
        out.append(f"<mark>{esc(m.group())}</mark>" if flag else esc(m.group()))
        pos = m.end()
    out.append(esc(text[pos:]))
    return "".join(out)


def words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


# -- sections ---------------------------------------------------------------------------------------------

def origin_section(c: Collected) -> str:
    total, gen = c.kept_total, c.generated_total
    by_bucket: dict[str, list[int]] = {}
    by_source: dict[str, list[int]] = {}
    for (bucket, dataset), g in c.groups.items():
        for d, k in ((by_bucket, bucket), (by_source, dataset)):
            acc = d.setdefault(k, [0, 0])
            acc[0] += g.records
            acc[1] += g.generated

    def rows(d: dict[str, list[int]]) -> list[list[str]]:
        return [[esc(k), num(n), num(g), num(n - g), pct(g, n), share_bar(g, n)]
                for k, (n, g) in sorted(d.items(), key=lambda kv: (-kv[1][0], kv[0]))]

    head = ["", "records", "generated", "ingested", "generated share", ""]
    stage_rows = [[esc(s or "(ingested)"), num(n), pct(n, total)]
                  for s, n in sorted(c.by_stage.items(), key=lambda kv: (-kv[1], kv[0]))]
    rej_rows = [[esc(s), num(o["generated"]), num(o["ingested"]), num(o["unknown"])]
                for s, o in sorted(c.reject_origin.items())]
    p = c.p
    tb, more_b = capped(rows(by_bucket), p.max_table_rows, "buckets")
    ts, more_s = capped(rows(by_source), p.max_table_rows, "sources")
    return (
        '<section id="origin"><h2>Generated vs ingested</h2>'
        f'<p>Of {num(total, "n-kept-origin")} kept records, {num(gen, "n-generated")} were generated '
        f'({pct(gen, total)}) and {num(total - gen, "n-ingested")} ingested {share_bar(gen, total)}'
        '<span class="legend small"><i style="background:var(--gen)"></i>generated'
        '<i style="background:var(--ing)"></i>ingested</span></p>'
        f'<p class="mute small">Generated: a lineage step of one of {esc(", ".join(p.generated_stages))} '
        '(viewer.generated_stages).</p>'
        '<h3>By bucket</h3>' + table(["bucket"] + head[1:], tb, right=(1, 2, 3, 4)) + more_b
        + '<h3>By source</h3>' + table(["source"] + head[1:], ts, right=(1, 2, 3, 4)) + more_s
        + '<h3>By the stage that generated them</h3>' + table(["stage", "records", "share"], stage_rows, right=(1, 2))
        + ('<h3>Rejects by origin</h3>' + table(["stage", "generated", "ingested", "no record"], rej_rows,
                                                  right=(1, 2, 3)) if rej_rows else "")
        + '</section>')


def sample_card(v: dict[str, Any]) -> str:
    gen = (f'<span class="badge gen">generated · {esc(v["generated"])}</span>' if v["generated"]
           else '<span class="badge ing">ingested</span>')
    overall = next((val for k, val in v["scores"] if k == "judge.overall"), None)
    score = f'<span class="badge score">judge {esc(overall)}</span>' if overall is not None else ""
    scores = "".join(f"<span><b>{esc(k)}</b> {esc(val)}</span>" for k, val in v["scores"])
    steps = []
    for s in v["lineage"]:
        head = " · ".join(esc(s[k]) for k in ("role", "teacher", "model", "finish_reason") if k in s)
        prompt = (f'<details><summary>prompt sent to the model</summary><pre>{esc(s["prompt"])}</pre></details>'
                  if "prompt" in s else "")
        other = s.get("other", "")
        if len(other) > 160:
            other = f'<details><summary>other fields</summary><pre class="small">{esc(other)}</pre></details>'
        elif other:
            other = f' <code class="mute">{esc(other)}</code>'
        steps.append(f'<li><b>{esc(s.get("stage", "?"))}</b> <span class="mute">{head}</span>{prompt}{other}</li>')
    skipped = (f'<p class="mute small">{v["lineage_skipped"]} earlier steps not shown</p>'
               if v["lineage_skipped"] else "")
    models = f'<span><b>models</b> {esc(", ".join(v["models"]))}</span>' if v["models"] else ""
    labels = (f'<details><summary>labels</summary><pre class="small">{esc(v["labels"])}</pre></details>'
              if v["labels"] else "")
    return (
        f'<article class="card sample"><div class="head"><span class="id">{esc(v["id"])}</span>'
        f'<span class="badge">{esc(v["kind"])}</span>{gen}{score}'
        f'<span class="mute small">{esc(v["dataset"])} row {esc(v["row"])} · {esc(v["where"])}</span></div>'
        + messages_html(v["messages"])
        + (f'<div class="kv">{scores}{models}</div>' if scores or models else "")
        + (f'<details open><summary>lineage ({len(v["lineage"]) + v["lineage_skipped"]} steps)</summary>'
           f'{skipped}<ol class="lineage">{"".join(steps)}</ol></details>' if steps else "")
        + labels + '</article>')


def samples_section(c: Collected) -> str:
    p = c.p
    order = sorted(c.groups.items(), key=lambda kv: (-kv[1].records, kv[0]))
    rows = [[esc(b), esc(d), num(g.records), num(g.generated), num(g.copies),
             f"{g.judge_sum / g.judged:.2f}" if g.judged else "–"] for (b, d), g in order]
    rows, more = capped(rows, p.max_table_rows, "groups")
    parts = ['<section id="samples"><h2>Samples by bucket and source</h2>',
             f'<p>{num(c.kept_total, "n-kept-samples")} kept records in {num(len(c.groups), "n-groups")} '
             f'(bucket, source) groups; up to {p.examples_per_group} examples each, chosen by a seeded hash of '
             'the id (the same inputs show the same examples).</p>',
             table(["bucket", "source", "records", "generated", "upsampled copies", "mean judge overall"], rows,
                   right=(2, 3, 4, 5)), more]
    for group, g in order:
        sample = c.kept.samples.get(group)
        if sample is None or not sample.ranks:
            continue
        parts.append(f'<h3>{esc(group[0])} · {esc(group[1])} <span class="mute">— {num(g.records)} records, '
                     f'{num(g.generated)} generated</span></h3>')
        parts += [sample_card(v) for v in sample.items()]
    hidden = sum(1 for grp in c.groups if grp not in c.kept.samples)
    if hidden and p.examples_per_group:
        parts.append(f'<p class="mute small">{hidden:,} more groups without examples (viewer.max_groups).</p>')
    parts.append("</section>")
    return "".join(parts)


def reject_card(v: dict[str, Any]) -> str:
    read_from = f" · read from {esc(v['where'])}" if v["where"] else ""
    body = messages_html(v["messages"])
    if v["record"]:
        body += f'<pre class="small">{esc(v["record"])}</pre>'
    if v["raw"]:
        body += f'<div class="msg"><span class="role">raw line</span><pre>{esc(v["raw"])}</pre></div>'
    return (
        f'<article class="card reject"><div class="head"><span class="badge bad">{esc(v["reason"])}</span>'
        f'<span class="mute small">{esc(v["stage"])}{read_from} · quarantined at '
        f'{esc(v["quarantine"])}</span>' + (f'<span class="id">{esc(v["id"])}</span>' if v["id"] else "") + '</div>'
        + (f'<div class="kv"><span><b>detail</b> {esc(v["detail"])}</span></div>' if v["detail"] else "")
        + (f'<div class="kv"><span><b>more</b> <code>{esc(v["extra"])}</code></span></div>' if v["extra"] else "")
        + body + '</article>')


def rejects_section(c: Collected) -> str:
    p = c.p
    counts = c.rejects.counts
    total = sum(counts.values())
    order = sorted(counts.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1]))
    rows, more = capped([[esc(s), f'<span class="badge bad">{esc(r)}</span>', num(n)] for (s, r), n in order],
                        p.max_table_rows, "(stage, reason) rows")
    frows = [[f"<code>{esc(f)}</code>", num(n)] for f, n in sorted(c.rejects_by_file.items())]
    parts = ['<section id="rejects"><h2>Rejects by stage and reason</h2>',
             f'<p>{num(total, "n-rejects")} quarantined records in {num(len(c.rejects_by_file), "n-quarantine-files")} '
             f'quarantine files; up to {p.rejects_per_reason} examples per (stage, reason).</p>',
             table(["stage", "reason", "records"], rows, right=(2,)), more,
             '<details><summary>by quarantine file</summary>' + table(["file", "records"], frows, right=(1,))
             + '</details>']
    for group, n in order:
        sample = c.rejects.samples.get(group)
        if sample is None or not sample.ranks:
            continue
        parts.append(f'<h3>{esc(group[0])} · {esc(group[1])} <span class="mute">— {num(n)}</span></h3>')
        parts += [reject_card(v) for v in sample.items()]
    parts.append("</section>")
    return "".join(parts)


def cluster_card(c: Collected, v: dict[str, Any]) -> str:
    missing = '<p class="mute small">(text not found in the inputs)</p>'
    kept = c.texts.get(v["kept"])
    kept_text = "\n\n".join(f"[{r}] {t}" for r, t in kept) if kept is not None else ""
    kept_words = words(kept_text)
    cols = [f'<div><div class="head"><span class="badge ing">kept</span><span class="id">{esc(v["kept"])}</span></div>'
            + (f"<pre>{esc(kept_text)}</pre>" if kept is not None else missing) + "</div>"]
    for mid, sim in v["members"]:
        m = c.texts.get(mid)
        text = "\n\n".join(f"[{r}] {t}" for r, t in m) if m is not None else ""
        cols.append(f'<div><div class="head"><span class="badge bad">removed</span><span class="id">{esc(mid)}</span>'
                    f'<span class="badge score">similarity {sim:.3f}</span></div>'
                    + (f"<pre>{marked(text, kept_words, shared=False)}</pre>" if m is not None else missing) + "</div>")
    more = f'<p class="mute small">{v["more"]:,} more removed records in this cluster</p>' if v["more"] else ""
    return (f'<article class="card cluster"><div class="head"><span class="badge">{esc(v["kind"])}</span>'
            f'<span>{v["size"]:,} records</span><span class="mute small">{esc(v["where"])}; words of a removed '
            'record that the kept one lacks are highlighted</span></div>'
            f'<div class="side">{"".join(cols)}</div>{more}</article>')


def clusters_section(c: Collected) -> str:
    kinds = sorted(c.clusters.counts)
    rows = [[esc(k), num(c.clusters.counts[k]), num(c.removed_by_kind[k]), num(c.largest_by_kind[k])] for k in kinds]
    bins = [f"{b:.2f}" for b in SIM_BINS]
    peak = max((n for h in c.sim_hist.values() for n in h.values()), default=0)
    hist_rows = []
    for k in kinds:
        for b in bins:
            n = c.sim_hist[k].get(b, 0)
            if n:
                hist_rows.append([esc(k), f"≥ {b}", num(n),
                                  f'<span class="hist" style="width:{max(2, 240 * n / peak):.0f}px"></span>'])
    total = sum(c.clusters.counts.values())
    parts = ['<section id="clusters"><h2>Near-duplicate clusters</h2>',
             f'<p>{num(total, "n-clusters")} clusters merged {num(sum(c.removed_by_kind.values()), "n-merged")} '
             f'records into the one kept; up to {c.p.clusters_per_kind} clusters per kind shown with '
             f'{c.p.members_per_cluster} removed records each, the least similar first.</p>']
    if total:
        parts += [table(["kind", "clusters", "records removed", "largest cluster"], rows, right=(1, 2, 3)),
                  '<h3>Similarity of removed records to their kept record</h3>',
                  table(["kind", "similarity", "records", ""], hist_rows, right=(2,))]
    for k in kinds:
        sample = c.clusters.samples.get(k)
        if sample is None or not sample.ranks:
            continue
        parts.append(f'<h3>{esc(k)} <span class="mute">— {num(c.clusters.counts[k])} clusters</span></h3>')
        parts += [cluster_card(c, v) for v in sample.items()]
    if not total:
        parts.append('<p class="mute">No duplicate clusters in the inputs.</p>')
    parts.append("</section>")
    return "".join(parts)


def contamination_card(c: Collected, v: dict[str, Any]) -> str:
    rec = c.texts.get(v["id"])
    eval_text = clip(v["eval_text"], c.p.max_chars)
    rec_text = "\n\n".join(f"[{r}] {t}" for r, t in rec) if rec is not None else ""
    overlap = v["overlap"]
    overlap = f"{overlap:.3f}" if isinstance(overlap, float) else str(overlap)
    return (f'<article class="card contamination"><div class="head"><span class="badge bad">{esc(v["eval_set"])}</span>'
            f'<span class="id">{esc(v["eval_item"])}</span><span class="badge">{esc(v["method"])}</span>'
            f'<span class="badge score">overlap {esc(overlap)}</span><span class="mute small">removed as '
            f'{esc(v["removed_as"] or "?")} · {esc(v["where"])}; word runs shared with the item highlighted'
            '</span></div>'
            '<div class="side"><div><div class="head"><span class="badge">record</span>'
            f'<span class="id">{esc(v["id"])}</span></div>'
            + (f"<pre>{marked_ngrams(rec_text, eval_text)}</pre>" if rec is not None
               else '<p class="mute small">(text not found in the inputs)</p>')
            + '</div><div><div class="head"><span class="badge">benchmark item</span></div>'
            f'<pre>{esc(eval_text)}</pre></div></div></article>')


def contamination_section(c: Collected) -> str:
    sets = sorted(c.contam.counts)
    rows = [[esc(s), esc(m), num(n)] for (s, m), n in sorted(c.contam_methods.items())]
    total = sum(c.contam.counts.values())
    records = len(set().union(*c.contam_ids.values())) if c.contam_ids else 0
    parts = ['<section id="contamination"><h2>Contamination hits</h2>',
             f'<p>{num(total, "n-contamination")} hits on {num(records, "n-contaminated")} records; up to '
             f'{c.p.contamination_per_set} shown per eval set, beside the benchmark item.</p>']
    if total:
        set_rows = [[esc(s), num(c.contam.counts[s]), num(len(c.contam_ids[s]))] for s in sets]
        parts += [table(["eval set", "hits", "records"], set_rows, right=(1, 2)),
                  table(["eval set", "method", "hits"], rows, right=(2,))]
    else:
        parts.append('<p class="mute">No contamination hits in the inputs.</p>')
    for s in sets:
        sample = c.contam.samples.get(s)
        if sample is None or not sample.ranks:
            continue
        parts.append(f'<h3>{esc(s)} <span class="mute">— {num(c.contam.counts[s])} hits</span></h3>')
        parts += [contamination_card(c, v) for v in sample.items()]
    parts.append("</section>")
    return "".join(parts)


def inputs_section(c: Collected) -> str:
    rows = [[f"<code>{esc(f.path)}</code>", esc(f.kind), esc(", ".join(sorted(f.roles))), num(f.lines), num(f.bad)]
            for f in c.files]
    return ('<section id="inputs"><h2>Inputs</h2><p>Every file was read once. Lines the viewer could not use '
            'are in its own quarantine.jsonl, beside this page.</p>'
            + table(["file", "kind", "used for", "lines", "unusable"], rows, right=(3, 4)) + "</section>")


def render_page(c: Collected) -> str:
    rejects = sum(c.rejects.counts.values())
    clusters = sum(c.clusters.counts.values())
    hits = sum(c.contam.counts.values())
    tiles = [(c.kept_total, "n-kept", "kept records"),
             (c.generated_total, "n-generated-tile", f"generated ({pct(c.generated_total, c.kept_total)})"),
             (rejects, "n-rejects-tile", "rejected (quarantined)"),
             (clusters, "n-clusters-tile", "duplicate clusters"),
             (hits, "n-contamination-tile", "contamination hits"),
             (c.examples_shown(), "n-examples", "examples shown")]
    tiles_html = "".join(f'<div class="tile">{num(n, ident)}<span class="lbl">{esc(label)}</span></div>'
                         for n, ident, label in tiles)
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in (
        ("origin", "Generated vs ingested"), ("samples", "Samples"), ("rejects", "Rejects"),
        ("clusters", "Duplicates"), ("contamination", "Contamination"), ("inputs", "Inputs")))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
        'script-src \'unsafe-inline\'">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<title>{esc(c.p.title)}</title><style>{CSS}</style></head><body>'
        f'<header><h1>{esc(c.p.title)}</h1><p class="sub">{len(c.files)} input files · seed {c.seed} · '
        'a static page: no network, no server</p>'
        f'<div class="tiles">{tiles_html}</div><nav>{nav}'
        '<span id="shown" class="small"></span>'
        '<input id="filter" type="search" placeholder="filter examples by any text…" aria-label="filter examples">'
        '</nav></header><main>'
        + origin_section(c) + samples_section(c) + rejects_section(c) + clusters_section(c)
        + contamination_section(c) + inputs_section(c)
        + f'</main><script>{JS}</script></body></html>\n')
