"""Decontamination: find training records that contain evaluation-set items.

Two tests per (record, eval item), both on word tokens of the record's whole text:
- long n-gram overlap: the record shares a word `ngram`-gram (13 by default, as the large labs
  report) with the item; items shorter than that match on their whole token sequence when they have
  at least `min_ngram` tokens;
- near-duplicate: the share of the item's word `near_ngram`-grams (3) found in the record
  (containment) reaches `near_threshold` (catches lightly edited copies that break every long n-gram).
The eval index is built once and the test runs on a whole batch with sorted-array lookups.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from .config import DecontamParams, EvalSet
from .shingle import Batch, shingles, whole_hashes, window_hashes


@dataclass
class EvalItem:
    set: str
    item: str
    text: str


def _open_text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def _field_texts(row: dict, fields: list[str]) -> list[str]:
    """The item texts of a row: the listed fields joined; a list-valued field (MT-Bench `turns`)
    gives one item per element, since each turn is asked on its own."""
    scalars, lists = [], []
    for f in fields:
        v = row.get(f)
        if isinstance(v, list):
            lists.extend(str(x) for x in v if x not in (None, ""))
        elif v not in (None, ""):
            scalars.append(str(v))
    if lists:
        return ["\n".join(scalars + [x]) for x in lists]
    return ["\n".join(scalars)] if scalars else []


def load_eval_set(spec: EvalSet, where: str = "dedup.decontaminate.sets") -> list[EvalItem]:
    """Read one eval set; a missing file or field stops with one line naming it."""
    path = Path(spec.path)
    if not path.exists():
        raise InputError(f"{where}[{spec.name}].path: eval set file not found: {path}")
    fmt = spec.format
    if fmt == "auto":
        fmt = "csv" if path.name.endswith((".csv", ".csv.gz")) else "jsonl"
    items: list[EvalItem] = []
    try:
        with _open_text(path) as fh:
            if fmt == "csv":
                rows = csv.DictReader(fh)
            elif path.name.endswith((".json", ".json.gz")):
                data = json.load(fh)
                rows = data if isinstance(data, list) else data.get("data", [])
            else:
                rows = (json.loads(line) for line in fh if line.strip())
            for n, row in enumerate(rows):
                if not isinstance(row, dict):
                    continue
                if n == 0 and not any(f in row for f in spec.fields):
                    raise InputError(f"{where}[{spec.name}].fields: none of {spec.fields} in {path} "
                                     f"(has {sorted(row)[:8]})")
                iid = row.get(spec.id_field) if spec.id_field else None
                iid = str(iid if iid is not None else n)
                texts = _field_texts(row, spec.fields)
                for k, text in enumerate(texts):
                    items.append(EvalItem(spec.name, iid if len(texts) == 1 else f"{iid}#{k + 1}", text))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as e:
        raise InputError(f"{where}[{spec.name}]: cannot read {path} ({e.__class__.__name__}: {e})") from None
    return items


@dataclass
class EvalIndex:
    """Sorted hash tables of every eval item's long n-grams and shingles."""

    items: list[EvalItem]
    ngram: int
    near_ngram: int
    near_threshold: float
    # window length -> (sorted hashes, item index of each)
    grams: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    sh_hash: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))
    sh_item: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sh_count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def build(cls, items: list[EvalItem], p: DecontamParams) -> "EvalIndex":
        idx = cls(items, p.ngram, p.near_ngram, p.near_threshold)
        if not items:
            return idx
        batch = Batch.from_texts([it.text for it in items])
        lens = batch.lengths
        tables: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        h, doc = window_hashes(batch, p.ngram)
        tables.setdefault(p.ngram, []).append((h, doc))
        short = np.flatnonzero((lens >= p.min_ngram) & (lens < p.ngram))
        if len(short):
            hs = whole_hashes(batch, short)
            for L in np.unique(lens[short]):
                sel = lens[short] == L
                tables.setdefault(int(L), []).append((hs[sel], short[sel]))
        for w, parts in tables.items():
            hh = np.concatenate([x[0] for x in parts])
            dd = np.concatenate([x[1] for x in parts])
            o = np.lexsort((dd, hh))
            idx.grams[w] = (hh[o], dd[o].astype(np.int64))
        # near-dup: shingles of items long enough for containment to mean something
        sh, off = shingles(batch, p.near_ngram)
        counts = np.diff(off)
        item_of = np.repeat(np.arange(len(items)), counts)
        keep = lens[item_of] >= p.min_ngram
        o = np.lexsort((item_of[keep], sh[keep]))
        idx.sh_hash, idx.sh_item = sh[keep][o], item_of[keep][o]
        idx.sh_count = counts
        return idx

    def match(self, batch: Batch) -> list[tuple[int, int, str, float]]:
        """Hits in a batch: (doc, item index, method, overlap) sorted by doc then item.

        method "ngram": overlap = number of shared long n-grams; "near_duplicate": overlap = containment.
        """
        hits: dict[tuple[int, int], tuple[str, float]] = {}
        if not self.items:
            return []
        for w, (table, owner) in self.grams.items():
            h, doc = window_hashes(batch, w)
            if not len(h) or not len(table):
                continue
            pos = np.searchsorted(table, h)
            pos[pos == len(table)] = 0
            found = table[pos] == h
            for d, p0, hv in zip(doc[found], pos[found], h[found]):
                p = p0
                while p < len(table) and table[p] == hv:
                    key = (int(d), int(owner[p]))
                    prev = hits.get(key)
                    hits[key] = ("ngram", (prev[1] if prev else 0) + 1)
                    p += 1
        sh, off = shingles(batch, self.near_ngram) if len(self.sh_hash) else (np.zeros(0, np.uint32), None)
        if len(sh):
            doc_of = np.repeat(np.arange(len(off) - 1), np.diff(off))
            left = np.searchsorted(self.sh_hash, sh, "left")
            right = np.searchsorted(self.sh_hash, sh, "right")
            n = right - left
            m = n > 0
            if m.any():
                reps = n[m]
                d = np.repeat(doc_of[m], reps)
                starts = np.repeat(left[m], reps) + (np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps))
                it = self.sh_item[starts]
                code, cnt = np.unique(d * len(self.items) + it, return_counts=True)
                cov = cnt / self.sh_count[code % len(self.items)]
                for c, v in zip(code[cov >= self.near_threshold], cov[cov >= self.near_threshold]):
                    key = (int(c // len(self.items)), int(c % len(self.items)))
                    if key not in hits:
                        hits[key] = ("near_duplicate", round(float(v), 4))
        return [(d, i, m_, ov) for (d, i), (m_, ov) in sorted(hits.items())]


def build_index(p: DecontamParams) -> EvalIndex | None:
    if not p.enabled:
        return None
    items: list[EvalItem] = []
    for spec in p.sets:
        items.extend(load_eval_set(spec))
    return EvalIndex.build(items, p)
