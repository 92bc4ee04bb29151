"""Stream the inputs once each and keep counts plus a capped, seeded sample of what the page shows.

Reading order: the dedup reports first (clusters.jsonl, contamination.jsonl: one line per group, they
decide which records the page compares), then every record file and quarantine file once, in the
order given. While a file streams, each line goes to every role it has: kept records are counted and
sampled; any record (or quarantined record) whose id a shown cluster or contamination hit needs has
its text kept; quarantine entries are counted and sampled by stage and reason. A line that cannot be
used (bad JSON, a record `check_record` refuses, a quarantine line with no reason, a malformed cluster
row) goes to the viewer's own quarantine with its reason, file and line.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.io import BadLine, iter_jsonl
from ..core.quarantine import Quarantine, StageCounter
from ..core.records import check_record
from .config import ViewerParams
from .sample import GroupedSample
from .views import generated_stage, is_number, judge_overall, messages_view, record_view, reject_view

# kinds of input file
RECORDS, QUARANTINE, CLUSTERS, CONTAMINATION = "records", "quarantine", "clusters", "contamination"
# similarity histogram bins of removed duplicates (lower edges)
SIM_BINS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0)


@dataclass
class InputFile:
    path: Path
    kind: str
    roles: set[str]               # kept / lookup / rejects
    lines: int = 0
    bad: int = 0


@dataclass
class GroupStats:
    records: int = 0
    generated: int = 0
    copies: int = 0
    judged: int = 0
    judge_sum: float = 0.0


@dataclass
class Collected:
    """Everything the page needs: counts of every record and entry, and the sampled views."""

    p: ViewerParams
    seed: int
    files: list[InputFile] = field(default_factory=list)
    # kept records
    kept: GroupedSample = None  # type: ignore[assignment]
    groups: dict[tuple[str, str], GroupStats] = field(default_factory=lambda: defaultdict(GroupStats))
    by_stage: Counter = field(default_factory=Counter)         # generation stage ('' = ingested) -> kept rows
    kinds: Counter = field(default_factory=Counter)            # sft / preference
    # rejects
    rejects: GroupedSample = None  # type: ignore[assignment]
    rejects_by_file: Counter = field(default_factory=Counter)
    reject_origin: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # stage -> gen/ingested
    # duplicate clusters
    clusters: GroupedSample = None  # type: ignore[assignment]
    removed_by_kind: Counter = field(default_factory=Counter)
    largest_by_kind: Counter = field(default_factory=Counter)
    sim_hist: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    # contamination
    contam: GroupedSample = None  # type: ignore[assignment]
    contam_methods: Counter = field(default_factory=Counter)
    contam_ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # texts of the records the clusters and contamination hits shown need
    needed: set[str] = field(default_factory=set)
    texts: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = self.p
        self.kept = GroupedSample(p.examples_per_group, p.max_groups, self.seed)
        self.rejects = GroupedSample(p.rejects_per_reason, p.max_reject_groups, self.seed)
        self.clusters = GroupedSample(p.clusters_per_kind, 16, self.seed)
        self.contam = GroupedSample(p.contamination_per_set, 64, self.seed)

    @property
    def kept_total(self) -> int:
        return sum(g.records for g in self.groups.values())

    @property
    def generated_total(self) -> int:
        return sum(g.generated for g in self.groups.values())

    def examples_shown(self) -> int:
        return self.kept.shown() + self.rejects.shown() + self.clusters.shown() + self.contam.shown()


def sim_bin(s: float) -> str:
    lo = max(b for b in SIM_BINS if b <= s) if s >= 0 else 0.0
    return f"{lo:.2f}"


def _cluster_problem(row: dict) -> str:
    if not isinstance(row.get("kept"), str):
        return "kept: expected an id string"
    if not isinstance(row.get("kind"), str):
        return "kind: expected a string"
    removed = row.get("removed")
    if not isinstance(removed, list) or not removed:
        return "removed: expected a non-empty list"
    for i, m in enumerate(removed):
        if not isinstance(m, dict) or not isinstance(m.get("id"), str) or not is_number(m.get("similarity")):
            return f"removed[{i}]: expected {{id, similarity}}"
    return ""


def _contamination_problem(row: dict) -> str:
    for key in ("id", "eval_set"):
        if not isinstance(row.get(key), str):
            return f"{key}: expected a string"
    return ""


class Reader:
    """Streams the input files into a `Collected`, rejecting unusable lines into the quarantine."""

    def __init__(self, c: Collected, quarantine: Quarantine, counter: StageCounter, max_line_bytes: int):
        self.c = c
        self.q = quarantine
        self.counter = counter
        self.max_line_bytes = max_line_bytes

    def _lines(self, f: InputFile):
        name = str(f.path)
        for lineno, obj in iter_jsonl(f.path, self.max_line_bytes):
            f.lines += 1
            self.counter.records_in += 1
            if isinstance(obj, BadLine):
                f.bad += 1
                self.q.reject_bad_line(obj, name)
                continue
            yield lineno, obj

    def _reject(self, f: InputFile, reason: str, obj: Any, lineno: int, detail: str) -> None:
        f.bad += 1
        self.q.reject(reason, obj, file=str(f.path), line=lineno, detail=detail)

    # -- the dedup reports: read first, they decide which texts are needed ---------------------------
    def clusters(self, f: InputFile) -> None:
        c = self.c
        for lineno, row in self._lines(f):
            problem = _cluster_problem(row)
            if problem:
                self._reject(f, "bad_cluster_row", row, lineno, problem)
                continue
            self.counter.records_out += 1
            kind, removed = row["kind"], row["removed"]
            c.removed_by_kind[kind] += len(removed)
            c.largest_by_kind[kind] = max(c.largest_by_kind[kind], len(removed) + 1)
            for m in removed:
                c.sim_hist[kind][sim_bin(float(m["similarity"]))] += 1

            def make(row=row, removed=removed):
                members = sorted(removed, key=lambda m: (m["similarity"], m["id"]))
                return {"kind": row["kind"], "kept": row["kept"], "size": len(removed) + 1,
                        "members": [(m["id"], float(m["similarity"])) for m in members[:c.p.members_per_cluster]],
                        "more": max(0, len(removed) - c.p.members_per_cluster), "where": f"{f.path}:{lineno}"}

            c.clusters.add(kind, row["kept"], make)

    def contamination(self, f: InputFile) -> None:
        c = self.c
        for lineno, row in self._lines(f):
            problem = _contamination_problem(row)
            if problem:
                self._reject(f, "bad_contamination_row", row, lineno, problem)
                continue
            self.counter.records_out += 1
            eval_set = row["eval_set"]
            c.contam_methods[(eval_set, str(row.get("method", "?")))] += 1
            c.contam_ids[eval_set].add(row["id"])

            def make(row=row, lineno=lineno):
                return {"id": row["id"], "eval_set": row["eval_set"], "eval_item": str(row.get("eval_item", "?")),
                        "method": str(row.get("method", "?")), "overlap": row.get("overlap"),
                        "eval_text": str(row.get("eval_text", "")), "removed_as": str(row.get("removed_as", "")),
                        "where": f"{f.path}:{lineno}"}

            c.contam.add(eval_set, f"{row['id']}\x1f{row.get('eval_item')}", make)

    def settle_needed(self) -> None:
        """The ids whose texts the shown clusters and hits compare (known once the reports are read)."""
        c = self.c
        for sample in c.clusters.samples.values():
            for v in sample.items():
                c.needed.add(v["kept"])
                c.needed.update(i for i, _ in v["members"])
        for sample in c.contam.samples.values():
            c.needed.update(v["id"] for v in sample.items())

    # -- records and quarantine entries --------------------------------------------------------------
    def _remember_text(self, rec: Any) -> None:
        c = self.c
        rid = rec.get("id") if isinstance(rec, dict) else None
        if isinstance(rid, str) and rid in c.needed and rid not in c.texts:
            c.texts[rid] = messages_view(rec, c.p.max_chars)

    def records(self, f: InputFile) -> None:
        c, p = self.c, self.c.p
        kept, lookup, name = "kept" in f.roles, "lookup" in f.roles, str(f.path)
        for lineno, rec in self._lines(f):
            bad = check_record(rec)
            if bad is not None:
                self._reject(f, bad.reason, rec, lineno, bad.detail)
                continue
            self.counter.records_out += 1
            if lookup and c.needed:
                self._remember_text(rec)
            if not kept:
                continue
            bucket = rec.get("bucket") or "(none)"
            group = (str(bucket), rec["source"]["dataset"])
            stats = c.groups[group]
            stats.records += 1
            gen = generated_stage(rec, p.generated_stages)
            stats.generated += bool(gen)
            c.by_stage[gen] += 1
            c.kinds[rec["kind"]] += 1
            score = judge_overall(rec)
            if score is not None:
                stats.judged += 1
                stats.judge_sum += score
            if "mix_copy_of" in rec:   # an upsampled repeat: counted, never shown twice
                stats.copies += 1
                continue
            c.kept.add(group, rec["id"], lambda rec=rec, lineno=lineno: record_view(
                rec, name, lineno, p.max_chars, p.max_lineage_steps, p.generated_stages), count=False)

    def quarantine(self, f: InputFile) -> None:
        c, p = self.c, self.c.p
        shown, lookup, name = "rejects" in f.roles, "lookup" in f.roles, str(f.path)
        for lineno, entry in self._lines(f):
            if not isinstance(entry.get("reason"), str):
                self._reject(f, "not_a_quarantine_entry", entry, lineno, "reason: expected a string")
                continue
            self.counter.records_out += 1
            rec = entry.get("record")
            if lookup and c.needed:
                self._remember_text(rec)
            if not shown:
                continue
            stage = entry.get("stage") if isinstance(entry.get("stage"), str) else "?"
            c.rejects_by_file[name] += 1
            origin = "unknown" if not isinstance(rec, dict) else (
                "generated" if generated_stage(rec, p.generated_stages) else "ingested")
            c.reject_origin[stage][origin] += 1
            c.rejects.add((stage, entry["reason"]), f"{name}\x1f{lineno}",
                          lambda entry=entry, lineno=lineno: reject_view(entry, name, lineno, p.max_chars))

    def read(self, f: InputFile) -> None:
        {RECORDS: self.records, QUARANTINE: self.quarantine, CLUSTERS: self.clusters,
         CONTAMINATION: self.contamination}[f.kind](f)
