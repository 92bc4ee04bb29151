"""Per-item scores -> paired comparisons, the per-item file (a DVC out) and the printed table.

One row per (metric, item): `{"metric", "item", "weight", "base", "tuned"}`. The same rows feed the
train_eval headline (base vs tuned) and `distillery compare` (one commit's tuned vs another's), so a
figure and its interval are always recomputable from the file alone.
"""

from __future__ import annotations

import json
from typing import Iterable, Sequence

from ..core.io import write_text
from .stats_ci import Paired, paired

Items = dict[str, list[tuple[str, float, int]]]   # metric -> [(item id, value, weight)]

# headline order: held-out first, then out-of-distribution sets, then preference and judged figures
METRIC_ORDER = ("heldout_loss", "gsm8k_ref_loss", "mt_bench_ref_loss", "truthfulqa_ref_loss", "gsm8k_em",
                "pref_accuracy", "logp_margin", "reward_margin", "win_rate")


def _order(metrics: Iterable[str]) -> list[str]:
    ms = list(metrics)
    return [m for m in METRIC_ORDER if m in ms] + sorted(m for m in ms if m not in METRIC_ORDER)


def item_rows(base: Items, tuned: Items) -> list[dict]:
    """Rows of the items present on both sides (same item ids), metric by metric."""
    rows = []
    for m in _order(set(base) & set(tuned)):
        b = {k: (v, w) for k, v, w in base[m]}
        for k, v, w in tuned[m]:
            if k in b:
                rows.append({"metric": m, "item": k, "weight": w, "base": round(b[k][0], 6), "tuned": round(v, 6)})
    return rows


def write_rows(path, rows: Sequence[dict]) -> None:
    write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def parse_rows(text: str, where: str) -> list[dict]:
    """Rows of a per-item file; a malformed line is an error naming the file and line (it is our own output)."""
    from ..core.errors import InputError

    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            rows.append({"metric": str(r["metric"]), "item": str(r["item"]), "weight": float(r["weight"]),
                         "base": float(r["base"]), "tuned": float(r["tuned"])})
        except (ValueError, KeyError, TypeError):
            raise InputError(f"{where}:{n}: not a per-item score row (metric, item, weight, base, tuned)") from None
    return rows


def compare_rows(rows: Sequence[dict], n_boot: int, seed: int) -> list[Paired]:
    """Base vs tuned per metric, paired on the rows' items."""
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["metric"], []).append(r)
    out = []
    for m in _order(by):
        rs = by[m]
        p = paired(m, [r["base"] for r in rs], [r["tuned"] for r in rs], [r["weight"] for r in rs],
                   n_boot=n_boot, seed=seed)
        if p is not None:
            out.append(p)
    return out


def compare_revs(rows_a: Sequence[dict], rows_b: Sequence[dict], n_boot: int, seed: int, side: str = "tuned"
                 ) -> tuple[list[Paired], dict[str, dict[str, int]]]:
    """One commit's `side` scores vs another's, paired on the items both scored (held-out items change
    with the mix; benchmark items do not). Also returns per metric how many items each side had."""
    a = {(r["metric"], r["item"]): r for r in rows_a}
    b = {(r["metric"], r["item"]): r for r in rows_b}
    metrics = _order({m for m, _ in a} | {m for m, _ in b})
    out, counts = [], {}
    for m in metrics:
        keys = sorted(k for k in a if k[0] == m and k in b)
        counts[m] = {"a": sum(1 for k in a if k[0] == m), "b": sum(1 for k in b if k[0] == m), "paired": len(keys)}
        p = paired(m, [a[k][side] for k in keys], [b[k][side] for k in keys], [a[k]["weight"] for k in keys],
                   n_boot=n_boot, seed=seed) if keys else None
        if p is not None:
            out.append(p)
    return out, counts


def _f(x: float) -> str:
    return f"{x:.4f}"


def table(results: Sequence[Paired], a_name: str = "base", b_name: str = "tuned") -> str:
    """A fixed-width text table: metric, n, both sides with their 95% intervals, the paired delta, verdict."""
    head = ["metric", "n", f"{a_name} [95% CI]", f"{b_name} [95% CI]", "delta [95% CI]", "verdict"]
    body = [[p.metric, str(p.n), f"{_f(p.a)} [{_f(p.a_ci[0])}, {_f(p.a_ci[1])}]",
             f"{_f(p.b)} [{_f(p.b_ci[0])}, {_f(p.b_ci[1])}]",
             f"{p.delta:+.4f} [{p.delta_ci[0]:+.4f}, {p.delta_ci[1]:+.4f}]",
             {"better": "better", "worse": "WORSE", "noise": "within noise"}[p.verdict_name]] for p in results]
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in body])


def markdown(results: Sequence[Paired], a_name: str = "base", b_name: str = "tuned") -> str:
    """The same table in Markdown (the dataset card and the compare file)."""
    out = [f"| metric | n | {a_name} [95% CI] | {b_name} [95% CI] | delta [95% CI] | verdict |",
           "|---|---|---|---|---|---|"]
    for p in results:
        out.append(f"| {p.metric} | {p.n} | {_f(p.a)} [{_f(p.a_ci[0])}, {_f(p.a_ci[1])}] | "
                   f"{_f(p.b)} [{_f(p.b_ci[0])}, {_f(p.b_ci[1])}] | "
                   f"{p.delta:+.4f} [{p.delta_ci[0]:+.4f}, {p.delta_ci[1]:+.4f}] | {p.verdict_name} |")
    return "\n".join(out)
