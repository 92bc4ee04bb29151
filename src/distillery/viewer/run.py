"""The viewer stage: resolve the inputs, stream each file once, write index.html and the metrics dict."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

from ..core.errors import InputError
from ..core.io import atomic_file, input_files
from ..core.quarantine import Quarantine, StageCounter
from .collect import CLUSTERS, CONTAMINATION, QUARANTINE, RECORDS, Collected, InputFile, Reader
from .config import ViewerParams
from .render import render_page

log = logging.getLogger("distillery.viewer")
PAGE = "index.html"


class Plan:
    """The input files, each once (by resolved path), with every role it plays."""

    def __init__(self, skip: Iterable[Path] = ()):
        self.files: dict[Path, InputFile] = {}
        self.skip = {p.resolve() for p in skip}

    def add(self, path: Path, kind: str, *roles: str) -> None:
        key = path.resolve()
        if key in self.skip:
            return
        f = self.files.get(key)
        if f is None:
            self.files[key] = InputFile(path, kind, set(roles))
            return
        if f.kind != kind:
            raise InputError(f"{path}: given both as {f.kind} and as {kind}")
        f.roles.update(roles)

    def ordered(self) -> list[InputFile]:
        """Dedup reports first (they decide which texts are needed), then records, then quarantines."""
        rank = {CLUSTERS: 0, CONTAMINATION: 1, RECORDS: 2, QUARANTINE: 3}
        return sorted(self.files.values(), key=lambda f: rank[f.kind])  # stable: given order within a kind


def record_inputs(paths: Iterable[str | Path], p: ViewerParams) -> list[Path]:
    """A file is itself; a folder gives its `viewer.record_files`, else every records.jsonl below it."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(f"{path}: input not found")
        if path.is_dir():
            found = [path / n for n in p.record_files if (path / n).is_file()] or input_files([path])
            if not found:
                raise InputError(f"{path}: no record files ({', '.join(p.record_files)} or records.jsonl below it)")
            out += found
        else:
            out.append(path)
    return out


def build_plan(inputs: Iterable[str | Path], dedup: str | Path | None, quarantines: Iterable[str | Path],
               p: ViewerParams, output: Path) -> Plan:
    plan = Plan(skip=[output / "quarantine.jsonl"])
    if dedup is not None:
        d = Path(dedup)
        if not d.is_dir():
            raise InputError(f"{d}: dedup folder not found")
        for name, kind in (("clusters.jsonl", CLUSTERS), ("contamination.jsonl", CONTAMINATION)):
            if not (d / name).is_file():
                raise InputError(f"{d / name}: not found (the dedup stage writes it)")
            plan.add(d / name, kind, "report")
    for f in record_inputs(inputs, p):
        plan.add(f, RECORDS, "kept", "lookup")
    if dedup is not None:
        if (Path(dedup) / "records.jsonl").is_file():
            plan.add(Path(dedup) / "records.jsonl", RECORDS, "lookup")
        if (Path(dedup) / "quarantine.jsonl").is_file():
            plan.add(Path(dedup) / "quarantine.jsonl", QUARANTINE, "lookup")
    for q in quarantines:
        qp = Path(q)
        if not qp.exists():
            raise InputError(f"{qp}: quarantine input not found")
        found = input_files([qp], "quarantine.jsonl")
        if qp.is_dir() and not found:
            log.warning("viewer: no quarantine.jsonl below %s", qp)
        for f in found:
            plan.add(f, QUARANTINE, "rejects", "lookup")
    return plan


def run_viewer(inputs: Iterable[str | Path], output: str | Path, p: ViewerParams, seed: int, max_line_bytes: int,
               *, dedup: str | Path | None = None, quarantines: Iterable[str | Path] = (),
               counter: StageCounter, quarantine: Quarantine) -> dict[str, Any]:
    """Read everything once, write OUTPUT/index.html; returns the stage's metrics."""
    out = Path(output)
    plan = build_plan(inputs, dedup, quarantines, p, out)
    c = Collected(p, seed)
    c.files = plan.ordered()
    reader = Reader(c, quarantine, counter, max_line_bytes)
    settled = False
    for f in c.files:
        if not settled and f.kind not in (CLUSTERS, CONTAMINATION):
            reader.settle_needed()   # the reports are read: the ids whose texts are shown are known
            settled = True
        log.info("viewer: reading %s (%s)", f.path, ", ".join(sorted(f.roles)))
        reader.read(f)
    page = render_page(c)
    data = page.encode("utf-8", "replace")
    with atomic_file(out / PAGE) as fh:
        fh.write(data)
    return metrics(c, len(data))


def metrics(c: Collected, page_bytes: int) -> dict[str, Any]:
    rejects = c.rejects.counts
    groups = sorted(c.groups.items(), key=lambda kv: (-kv[1].records, kv[0]))
    return {
        "kept_records": c.kept_total,
        "generated_records": c.generated_total,
        "ingested_records": c.kept_total - c.generated_total,
        "generated_share": round(c.generated_total / c.kept_total, 6) if c.kept_total else 0.0,
        "quarantined_records": sum(rejects.values()),
        "duplicate_clusters": sum(c.clusters.counts.values()),
        "duplicates_merged": sum(c.removed_by_kind.values()),
        "contamination_hits": sum(c.contam.counts.values()),
        "examples_rendered": c.examples_shown(),
        "texts_found": len(c.texts),
        "texts_needed": len(c.needed),
        "page_bytes": page_bytes,
        "groups": [{"bucket": b, "source": d, "records": g.records, "generated": g.generated, "copies": g.copies}
                   for (b, d), g in groups],
        "rejects_by_stage": {f"{s}/{r}": n for (s, r), n in sorted(rejects.items())},
        "clusters_by_kind": dict(sorted(c.clusters.counts.items())),
        "contamination_by_set": dict(sorted(c.contam.counts.items())),
        "files": [{"path": str(f.path), "kind": f.kind, "lines": f.lines, "unusable": f.bad} for f in c.files],
    }
