"""Two card sections read at a glance: the license summary at the top (non-commercial shares flagged) and
token statistics as one short table per format, instead of every flattened stats key."""

from __future__ import annotations

import re
from typing import Any

# CC BY-NC / BY-NC-SA / BY-NC-ND, "non-commercial", "research only" licenses
NON_COMMERCIAL = re.compile(r"(^|[^A-Za-z])NC([^A-Za-z]|$)|non[- ]?commercial|research[- ]only", re.IGNORECASE)
# what each file kind's stats report, in reading order (stats: overall.<kind>.<field>)
TOKEN_FIELDS = {"sft": [("full", "full sequence"), ("prompt", "prompt"), ("completion", "completion")],
                "dpo": [("prompt", "prompt"), ("chosen", "prompt + chosen"), ("rejected", "prompt + rejected")]}


def is_non_commercial(license_name: str) -> bool:
    return bool(NON_COMMERCIAL.search(license_name or ""))


def _records_by_dataset(prov: dict | None, split: str) -> dict[str, int]:
    sources = ((prov or {}).get(split) or {}).get("sources", {})
    return {ds: int(info.get("records", 0)) for ds, info in sources.items() if isinstance(info, dict)}


def license_summary(ingest_sources: dict, prov: dict | None, split: str = "train") -> list[str]:
    """Lines for the top of the card: records per license in a split, non-commercial shares flagged first."""
    counts = _records_by_dataset(prov, split)
    total = sum(counts.values())
    if not total:
        return []
    license_of = {(spec.get("dataset") or name): spec.get("license") or "" for name, spec in ingest_sources.items()}
    by_license: dict[str, list[str]] = {}
    n_by_license: dict[str, int] = {}
    for ds, n in sorted(counts.items()):
        lic = license_of.get(ds) or "unknown"
        by_license.setdefault(lic, []).append(ds)
        n_by_license[lic] = n_by_license.get(lic, 0) + n
    nc = {lic: n for lic, n in n_by_license.items() if is_non_commercial(lic)}
    lines = []
    if nc:
        n = sum(nc.values())
        detail = "; ".join(f"{lic} ({', '.join(by_license[lic])}: {nc[lic]:,})" for lic in sorted(nc))
        lines.append(f"> **Non-commercial data: {n:,} of {total:,} {split} records ({n / total:.0%}) are under a "
                     f"non-commercial license: {detail}.** Filter them out by `source.dataset` before "
                     f"commercial use.")
    else:
        lines.append(f"> No {split} record is under a non-commercial license (per params `ingest.sources`).")
    parts = [f"{lic} {n:,} ({n / total:.0%})" for lic, n in sorted(n_by_license.items(), key=lambda x: (-x[1], x[0]))]
    lines.append(f"> Licenses of the {total:,} {split} records: {', '.join(parts)}."
                 + (" `unknown`: generated or unlisted data, see Sources." if "unknown" in n_by_license else ""))
    return lines + [""]


def _kind_of(path: str) -> str | None:
    parts = path.replace("\\", "/").split("/")
    return "sft" if "sft" in parts[:-1] else "dpo" if "dpo" in parts[:-1] else None


def token_table(stats: Any, fmt=str) -> tuple[list[str], list[list[Any]]] | None:
    """(header, rows) of token lengths per exported format read by the stats stage: p50/p95/p99/max."""
    overall = stats.get("overall") if isinstance(stats, dict) else None
    if not isinstance(overall, dict):
        return None
    files = {k: f for f in stats.get("inputs") or [] if (k := _kind_of(str(f)))}
    rows = []
    for kind, fields in TOKEN_FIELDS.items():
        for key, label in fields:
            s = (overall.get(kind) or {}).get(key)
            if not isinstance(s, dict):
                continue
            name = files.get(kind, kind).split("data/export/")[-1]
            rows.append([f"`{name}`", label, s.get("count", "-"), s.get("p50", "-"), s.get("p95", "-"),
                         s.get("p99", "-"), s.get("max", "-")])
    if not rows:
        return None
    return ["file", "tokens of", "rows", "p50", "p95", "p99", "max"], rows


def token_stats_section(stats: Any, table) -> list[str]:
    """## Token statistics: the recommended max_length and the short per-format table (`table` renders rows)."""
    lines = ["## Token statistics", ""]
    if not isinstance(stats, dict):
        return lines + ["Not run (no `metrics/stats.json`).", ""]
    if "recommended_max_length" in stats:
        lines += [f"Recommended `max_length`: **{stats['recommended_max_length']}**"
                  + (f" ({stats['recommended_from']})" if stats.get("recommended_from") else "") + ".", ""]
    got = token_table(stats)
    if got is None:
        return lines + ["No per-format token lengths in `metrics/stats.json`.", ""]
    tok = f" ({stats['tokenizer']} tokenizer)" if stats.get("tokenizer") else ""
    lines += [*table(*got), "", f"Token counts{tok} with the chat template applied. Per bucket and "
              "truncation shares: `metrics/stats.details.json`.", ""]
    return lines
