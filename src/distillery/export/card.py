"""The dataset card (data/export/README.md): what is in the export, where it came from, how to load it.

Every number is read from files the pipeline already wrote (metrics/*.json, the export's
provenance.json and dataset_info.json, the mix composition); a file that is absent is reported
as "not run" rather than failing, so the card renders after any subset of stages. Volatile
values (wall times) are left out so the same inputs give a byte-identical card.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any, Iterator

from ..core.io import DETAILS_SUFFIX, read_stage_metrics
from .card_evals import evals_section
from .card_summary import license_summary, token_stats_section
from .config import FILE_TYPES
from .registry import AXOLOTL_DPO, AXOLOTL_DPO_ORDER, AXOLOTL_SFT, AXOLOTL_SFT_ORDER, TRL_DPO_ORDER, \
    TRL_SFT_ORDER, loader, not_registered, pick

PIPELINE = ["prompt_dedup", "distill", "multiturn", "scenarios", "completion", "preferences", "score", "dedup", "mix",
            "export", "validate"]
VOLATILE = re.compile(r"(^|_)(wall|elapsed|duration|runtime|time|timestamp|seconds|per_second|started|"
                      r"finished|date|run_id)(_|$)|_s$")
MAX_ROWS = 80
LOADS_IN = {
    "sft/messages": "TRL SFT (conversational); axolotl `chat_template`; LLaMA-Factory sharegpt + OpenAI tags",
    "sft/sharegpt": "LLaMA-Factory sharegpt; axolotl `chat_template` with property mappings",
    "sft/alpaca": "LLaMA-Factory alpaca (multi-turn via `history`); axolotl `alpaca_w_system.load_instruct` "
                  "(last turn only)",
    "sft/chatml_text": "TRL LM (`text`); axolotl `completion`; LLaMA-Factory stage pt",
    "dpo/trl": "TRL DPO/ORPO/CPO (explicit prompt)",
    "dpo/messages_pair": "axolotl `chat_template.default`; LLaMA-Factory sharegpt + tags + ranking",
    "dpo/prompt_pairs": "axolotl `chatml.prompt_pairs`; TRL standard (no template); LLaMA-Factory alpaca ranking",
    "dpo/alpaca_pref": "LLaMA-Factory alpaca ranking (multi-turn via `history`)",
}
KNOWN_FILES = [f"{stem}.{ft}" for stem in LOADS_IN for ft in FILE_TYPES]
# the dataset_info.json names the card suggests first, per LLaMA-Factory stage
LLAMAFACTORY_EXAMPLES = [("sft", ("messages", "sharegpt", "alpaca")),
                         ("dpo", ("messages_pair", "alpaca_pref", "prompt_pairs")), ("pt", ("chatml_text",))]


def _load(path: Path) -> Any | None:
    """Parsed JSON, or None when the file is absent or unreadable (the card says 'not run')."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _metrics(path: Path) -> Any | None:
    """A stage's headline metrics with its details (per-reason, per-bucket breakdowns) merged in."""
    return read_stage_metrics(path)


def _flatten(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, scalar) leaves, volatile keys left out."""
    if isinstance(obj, dict):
        for k in sorted(obj, key=str):
            if VOLATILE.search(str(k)):
                continue
            yield from _flatten(obj[k], f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list):
        if all(not isinstance(x, (dict, list)) for x in obj):
            yield prefix, ", ".join(map(str, obj))
        else:
            for i, x in enumerate(obj):
                yield from _flatten(x, f"{prefix}[{i}]")
    else:
        yield prefix, obj


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    s = str(v).replace("|", "\\|").replace("\n", " ")
    return s if len(s) <= 120 else s[:117] + "..."


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        out.append(f"\n({len(rows) - MAX_ROWS} more rows in the source file)")
    return out


def _kv_section(data: Any, source: str) -> list[str]:
    if data is None:
        return [f"Not run (no `{source}`).", ""]
    rows = [[k, v] for k, v in _flatten(data)]
    return [*_table(["metric", "value"], rows), "", f"Source: `{source}`.", ""]


def _count_rows(path: Path) -> int:
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def _bundle_files(export_dir: Path, prov: dict | None, bundle: str) -> dict[str, int]:
    """{file inside the bundle: rows} of what the export wrote: from provenance.json, else what is on disk."""
    files = ((prov or {}).get(bundle or "train") or {}).get("files")
    base = export_dir / bundle if bundle else export_dir
    if isinstance(files, dict):
        order = {rel: i for i, rel in enumerate(KNOWN_FILES)}
        return {rel: files[rel] for rel in sorted(files, key=lambda r: (order.get(r, len(order)), r))
                if (base / rel).is_file()}
    return {rel: _count_rows(base / rel) for rel in KNOWN_FILES if (base / rel).is_file()}


def _loads_in(rel: str) -> str:
    stem = rel.split(".", 1)[0]
    return LOADS_IN.get(stem, "")


def _files_section(export_dir: Path, prov: dict | None) -> list[str]:
    rows = []
    for bundle, label in (("", "train"), ("eval", "eval")):
        for rel, n in _bundle_files(export_dir, prov, bundle).items():
            rows.append([f"`{bundle + '/' if bundle else ''}{rel}`", label, n, _loads_in(rel)])
    phases = (_load(export_dir / "phases" / "index.json") or {}).get("phases", [])
    lines = ["## Files", ""]
    if not rows:
        return lines + ["Not run (no export files under the export folder).", ""]
    lines += _table(["file", "split", "rows", "loads in"], rows)
    lines.append("")
    if phases:
        lines += [f"Curriculum phases, each a bundle with the same files under `phases/<name>/`: "
                  f"{', '.join(f'`{p}`' for p in phases)}.", ""]
    lines += ["SFT records are only in `sft/`, preference pairs only in `dpo/`. Every row carries the record "
              "`id` (string) so rows can be joined back to the pipeline's records.", ""]
    return lines


def _composition(prov: dict | None, mix_comp: Any, mix_metrics: Any) -> list[str]:
    lines = ["## Composition", ""]
    train = (prov or {}).get("train")
    if not train:
        lines += ["Not run (no `provenance.json` from the export stage).", ""]
    else:
        total = train.get("records", 0) or 1
        lines += [f"Train split: {train.get('records', 0)} records "
                  f"({train['by_kind'].get('sft', 0)} SFT, {train['by_kind'].get('preference', 0)} preference).", ""]
        lines += _table(["bucket", "records", "share"],
                        [[b, n, f"{n / total:.1%}"] for b, n in train.get("buckets", {}).items()])
        lines.append("")
        if train.get("safety_labels"):
            lines += _table(["safety label", "records"], [[k, v] for k, v in train["safety_labels"].items()])
            lines.append("")
        if (ev := (prov or {}).get("eval")):
            lines += [f"Held-out eval split: {ev.get('records', 0)} records "
                      f"({ev['by_kind'].get('sft', 0)} SFT, {ev['by_kind'].get('preference', 0)} preference).", ""]
    lines += ["### Mix (target vs realised)", ""]
    if _is_mix_table(mix_comp):
        lines += _mix_tables(mix_comp)
    elif mix_comp is not None:
        lines += _kv_section(mix_comp, "data/mix/composition.json")
    elif mix_metrics is not None:
        lines += _kv_section(mix_metrics, "metrics/mix.json")
    else:
        lines += ["Not run (no `data/mix/composition.json` or `metrics/mix.json`).", ""]
    return lines


def _is_mix_table(comp: Any) -> bool:
    return isinstance(comp, dict) and bool(comp) and all(
        isinstance(c, dict) and isinstance(c.get("buckets"), dict) for c in comp.values())


def _mix_tables(comp: dict) -> list[str]:
    """One target-vs-realised table per mix (production first, then the phases)."""
    lines: list[str] = []
    for name in sorted(comp, key=lambda n: (n != "production", n)):
        c = comp[name]
        lines += [f"**{name}**: {c.get('realised', '?')} of {c.get('size', '?')} records.", ""]
        rows = [[b, r.get("weight", ""), r.get("target", ""), r.get("realised", ""),
                 f"{r.get('target_share', 0):.1%}", f"{r.get('realised_share', 0):.1%}", r.get("repeats", ""),
                 "short" if r.get("short") else ""]
                for b, r in sorted(c["buckets"].items()) if isinstance(r, dict)]
        lines += _table(["bucket", "weight", "target", "realised", "target share", "realised share",
                         "upsampled", "note"], rows) + [""]
    return lines + ["Source: `data/mix/composition.json`.", ""]


def _sources(ingest_sources: dict, prov: dict | None) -> list[str]:
    lines = ["## Sources", ""]
    seen = {}
    for split in ("train", "eval"):
        for ds, info in ((prov or {}).get(split) or {}).get("sources", {}).items():
            e = seen.setdefault(ds, {"records": 0, "revisions": set()})
            e["records"] += info.get("records", 0)
            e["revisions"].update(r for r in info.get("revisions", {}) if r)
    by_dataset = {}
    for name, spec in sorted(ingest_sources.items()):
        by_dataset[spec.get("dataset") or name] = (name, spec)
    rows = []
    for ds in sorted(set(seen) | set(by_dataset)):
        name, spec = by_dataset.get(ds, ("", {}))
        pinned = {spec["revision"]} if spec.get("revision") else set()
        revs = sorted(seen.get(ds, {}).get("revisions", set()) | pinned)
        rows.append([ds, name or "-", seen.get(ds, {}).get("records", 0), spec.get("license") or "unknown",
                     ", ".join(revs) or "-", spec.get("adapter") or "-", spec.get("path") or "-"])
    if not rows:
        return lines + ["Not run (no sources in params `ingest.sources` and no exported records).", ""]
    lines += _table(["dataset", "params source", "records exported", "license", "revision", "adapter", "path"], rows)
    return lines + ["", "Records from a dataset that is not in params `ingest.sources` (generated data) show "
                        "license `unknown`: see the generation models below.", ""]


def _models(prov: dict | None) -> list[str]:
    lines = ["## Generation models", ""]
    merged: dict[str, dict[str, int]] = {}
    for split in ("train", "eval"):
        for m, info in ((prov or {}).get(split) or {}).get("models", {}).items():
            for st, n in info.get("stages", {}).items():
                merged.setdefault(m, {}).setdefault(st, 0)
                merged[m][st] += n
    if prov is None:
        return lines + ["Not run (no `provenance.json` from the export stage).", ""]
    if not merged:
        return lines + ["No exported record has a generation step in its lineage (all human-written sources).", ""]
    rows = [[m, sum(st.values()), ", ".join(f"{s}={n}" for s, n in sorted(st.items()))]
            for m, st in sorted(merged.items())]
    return lines + _table(["model", "records", "by stage"], rows) + [""]


def _filters(metrics_dir: Path) -> list[str]:
    lines = ["## Filters and rejects", "",
             "Every rejected record is kept in its stage's quarantine file with a reason code.", ""]
    rows = []
    for f in sorted((metrics_dir / "ingest").glob("*.json")) if (metrics_dir / "ingest").is_dir() else []:
        if not f.name.endswith(DETAILS_SUFFIX):
            rows.append((f"ingest/{f.stem}", _metrics(f)))
    if not rows:
        rows.append(("ingest", None))
    rows += [(s, _metrics(metrics_dir / f"{s}.json")) for s in PIPELINE]
    # stages added later show up too, when their metrics count records
    for f in sorted(metrics_dir.glob("*.json")) if metrics_dir.is_dir() else []:
        if f.name.endswith(DETAILS_SUFFIX):
            continue
        m = _metrics(f)
        if f.stem not in PIPELINE and isinstance(m, dict) and "records_in" in m:
            rows.append((f.stem, m))
    table = []
    for name, m in rows:
        if not isinstance(m, dict):
            table.append([name, "not run", "", "", ""])
            continue
        reasons = m.get("rejects_by_reason") or {}
        table.append([name, m.get("records_in", ""), m.get("records_out", ""), m.get("rejected", ""),
                      ", ".join(f"{r}={n}" for r, n in sorted(reasons.items())) or "-"])
    return lines + _table(["stage", "in", "out", "rejected", "rejects by reason"], table) + [""]


def _loading(export_dir: Path, info: dict | None, files: dict[str, int]) -> list[str]:
    """How to load the train bundle's files in each trainer; only files the export wrote are named."""
    d = export_dir.as_posix()
    lines = ["## How to load", "", "### TRL", ""]
    trl = [(var, pick(files, order), trainer) for var, order, trainer in
           (("sft", TRL_SFT_ORDER, "SFTTrainer"), ("dpo", TRL_DPO_ORDER, "DPOTrainer"))]
    if any(got for _, got, _ in trl):
        lines += ["```python", "from datasets import load_dataset"]
        lines += [f'{var} = load_dataset("{loader(rel)}", data_files="{d}/{rel}", split="train")   # {trainer}'
                  for var, got, trainer in trl if got for rel in [got[1]]]
        lines += ["```", "", f"Full snippet: `{d}/configs/trl_load.py`.", ""]
    else:
        lines += ["No file TRL reads was exported (export.sft_formats / export.dpo_formats).", ""]
    lines += ["### axolotl", ""]
    ax = [(pick(files, AXOLOTL_SFT_ORDER), AXOLOTL_SFT, ""), (pick(files, AXOLOTL_DPO_ORDER), AXOLOTL_DPO, "rl: dpo")]
    if any(got for got, _, _ in ax):
        for got, table, head in ax:
            if got:
                fmt, rel = got
                lines += ["DPO:" if head else "SFT:", "", "```yaml", *([head] if head else []), "datasets:",
                          f"  - path: {d}/{rel}", f"    ds_type: {loader(rel)}", *(f"    {x}" for x in table[fmt]),
                          "```", ""]
        lines += [f"Both configs in full: `{d}/configs/axolotl_datasets.yaml`.", ""]
    else:
        lines += ["No file axolotl reads was exported.", ""]
    lines += ["### LLaMA-Factory", ""]
    train_info = {n: e for n, e in (info or {}).items()
                  if isinstance(e, dict) and e.get("file_name", "").split("/")[0] in ("sft", "dpo")}
    if info:
        examples = []
        for stage, fmts in LLAMAFACTORY_EXAMPLES:
            got = [n for f in fmts for n, e in train_info.items() if n.endswith(f"_{stage}_{f}")]
            if got:
                examples.append((got[0], stage))
        lines += [f"Set `dataset_dir: {d}` and pick datasets registered in `{d}/dataset_info.json`"
                  + (", e.g. " + " or ".join(f"`dataset: {n}` (stage {st})" for n, st in examples) if examples else "")
                  + ".", "", f"Registered: {', '.join(f'`{n}`' for n in sorted(info))}.", ""]
    else:
        lines += ["No file LLaMA-Factory reads was exported (no `dataset_info.json` entries).", ""]
    by_reason: dict[str, list[str]] = {}
    for f, why in not_registered(files).items():
        by_reason.setdefault(why, []).append(f)
    for why, fs in by_reason.items():
        lines += [f"Not registered: {', '.join(f'`{f}`' for f in fs)} ({why}).", ""]
    return lines


def build_card(export_dir: str | Path, metrics_dir: str | Path, mix_dir: str | Path | None,
               ingest_sources: dict, card: Any) -> str:
    """Markdown text of the card; `card` is the params `export.card` section."""
    export_dir, metrics_dir = Path(export_dir), Path(metrics_dir)
    prov = _load(export_dir / "provenance.json")
    mix_comp = _load(Path(mix_dir) / "composition.json") if mix_dir else None
    lines = ["---", "tags: [distillery, sft, dpo]", "---", "", f"# {card.title}", "", card.description, ""]
    lines += [f"License of the export: {card.license or 'the licenses of the sources below apply, per record'}.", ""]
    lines += license_summary(ingest_sources, prov)
    lines += _files_section(export_dir, prov)
    lines += _composition(prov, mix_comp, _metrics(metrics_dir / "mix.json"))
    lines += _sources(ingest_sources, prov)
    lines += _models(prov)
    lines += _filters(metrics_dir)
    lines += ["## Deduplication and decontamination", ""] + _kv_section(_metrics(metrics_dir / "dedup.json"),
                                                                       "metrics/dedup.json")
    lines += token_stats_section(_metrics(metrics_dir / "stats.json"), _table)
    lines += evals_section(metrics_dir, _metrics, _kv_section)
    lines += ["## Validation", ""] + _kv_section(_metrics(metrics_dir / "validate.json"), "metrics/validate.json")
    lines += ["## Intended use", "", card.intended_use, "", "## Limitations", ""]
    lines += [f"- {x}" for x in card.limitations] + [""]
    lines += _loading(export_dir, _load(export_dir / "dataset_info.json"), _bundle_files(export_dir, prov, ""))
    return "\n".join(lines).rstrip("\n") + "\n"
