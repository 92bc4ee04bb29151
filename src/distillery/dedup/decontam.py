"""Decontamination: find training records that contain evaluation-set items.

Two tests per (record, eval item), both on word tokens of the record's whole text:
- long n-gram overlap: the record shares a word `ngram`-gram (13 by default, as the large labs
  report) with the item; items shorter than that match on their whole token sequence when they have
  at least `min_ngram` tokens;
- near-duplicate: the share of the item's word `near_ngram`-grams (3) found in the record
  (containment) reaches `near_threshold` (catches lightly edited copies that break every long n-gram).
The eval index is built once and the test runs on a whole batch: one hashing pass gives the window
hashes of every length, bitmap prefilters pass the few windows that may be in an item to sorted-array
lookups (decontamination must stay a small share of dedup).
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
from .shingle import MAX_WINDOW, MULTIPLIERS, U64, Batch, fmix64, shingles, whole_hashes


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


_FILTER_BITS = 22  # largest membership prefilter: 4 MB, ~2% false positives at 100K eval n-grams


def _window_sums(batch: Batch, lengths: set[int]):
    """Yield (L, sums) for each L in `lengths`, ascending: sums[i] is the unfinished (pre-fmix64) hash of
    the L tokens from flat position i (windows may cross docs; callers check). One pass: the sum for L
    extends the sum for L-1 by one term, so every length costs one multiply-add over the tokens."""
    flat = batch.flat
    top = max(lengths)
    if top > MAX_WINDOW:
        raise ValueError(f"n-gram size {top} > {MAX_WINDOW}")
    acc = None
    with np.errstate(over="ignore"):
        for k in range(min(top, len(flat))):
            m = len(flat) - k
            if acc is None:
                acc = flat * MULTIPLIERS[0]
            else:
                acc = acc[:m]
                acc += flat[k:] * MULTIPLIERS[k]
            if k + 1 in lengths:
                yield k + 1, acc


def _valid(batch: Batch, pos: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(doc of each flat position, whether the n tokens from it stay inside that doc)."""
    doc = np.searchsorted(batch.offsets, pos, "right") - 1
    return doc, pos + n <= batch.offsets[doc + 1]


def _bitmap(keys: np.ndarray) -> np.ndarray:
    """Membership prefilter on the top bits of 64-bit keys: ~64 slots per key (<= 2% false positives),
    so a small table's filter stays in cache; at most 2**_FILTER_BITS slots."""
    bits = np.zeros(1 << min(max(int(len(keys) * 64).bit_length(), 12), _FILTER_BITS), bool)
    bits[(keys >> U64(64 - _bits(bits))).astype(np.int64)] = True
    return bits


def _bits(bitmap: np.ndarray) -> int:
    return len(bitmap).bit_length() - 1


@dataclass
class EvalIndex:
    """Sorted hash tables of every eval item's long n-grams and shingles, with bitmap prefilters."""

    items: list[EvalItem]
    ngram: int
    near_ngram: int
    near_threshold: float
    # window length -> (sorted unfinished window sums, item index of each)
    grams: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    grams_filter: dict[int, np.ndarray] = field(default_factory=dict)
    sh_hash: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))
    sh_item: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sh_count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sh_filter: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    @classmethod
    def build(cls, items: list[EvalItem], p: DecontamParams) -> "EvalIndex":
        idx = cls(items, p.ngram, p.near_ngram, p.near_threshold)
        if not items:
            return idx
        batch = Batch.from_texts([it.text for it in items])
        lens = batch.lengths
        # long n-grams, and items shorter than that (at least min_ngram tokens) on their whole sequence
        for L, sums in _window_sums(batch, set(range(p.min_ngram, p.ngram + 1))):
            pos = np.arange(len(sums))
            doc, ok = _valid(batch, pos, L)
            if L < p.ngram:
                ok &= (lens[doc] == L) & (pos == batch.offsets[doc])
            if ok.any():
                hh, dd = sums[ok], doc[ok]
                o = np.lexsort((dd, hh))
                idx.grams[L] = (hh[o].copy(), dd[o].astype(np.int64))
                idx.grams_filter[L] = _bitmap(idx.grams[L][0])
        # near-dup: shingles of items long enough for containment to mean something
        sh, off = shingles(batch, p.near_ngram)
        counts = np.diff(off)
        item_of = np.repeat(np.arange(len(items)), counts)
        keep = lens[item_of] >= p.min_ngram
        o = np.lexsort((item_of[keep], sh[keep]))
        idx.sh_hash, idx.sh_item = sh[keep][o], item_of[keep][o]
        idx.sh_count = counts
        if len(idx.sh_hash):
            idx.sh_filter = _bitmap(idx.sh_hash.astype(U64) << U64(32))
        return idx

    def _ngram_hits(self, batch: Batch, L: int, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(doc, item) of every window of L tokens found in the length-L table (one row per window)."""
        table, owner = self.grams[L]
        bits = self.grams_filter[L]
        cand = np.flatnonzero(bits[(sums >> U64(64 - _bits(bits))).astype(np.int64)])
        left = np.searchsorted(table, sums[cand], "left")
        right = np.searchsorted(table, sums[cand], "right")
        found = right > left
        cand, left, right = cand[found], left[found], right[found]
        doc, ok = _valid(batch, cand, L)
        doc, left, right = doc[ok], left[ok], right[ok]
        reps = right - left
        rows = np.repeat(left, reps) + (np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps))
        return np.repeat(doc, reps), owner[rows]

    def _near_shingles(self, batch: Batch, sums: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(doc, 32-bit shingle) of each doc's unique near_ngram shingles that pass the prefilter, as
        `shingles` would give them (a doc shorter than near_ngram: its whole sequence)."""
        docs, hs = [], []
        if sums is not None and len(sums):
            h32 = (fmix64(sums) >> U64(32)).astype(np.uint32)
            bits = self.sh_filter
            cand = np.flatnonzero(bits[(h32 >> np.uint32(32 - _bits(bits))).astype(np.int64)])
            doc, ok = _valid(batch, cand, self.near_ngram)
            docs.append(doc[ok])
            hs.append(h32[cand[ok]])
        lens = batch.lengths
        short = np.flatnonzero((lens > 0) & (lens < self.near_ngram))
        if len(short):
            docs.append(short)
            hs.append((whole_hashes(batch, short) >> U64(32)).astype(np.uint32))
        if not docs:
            return np.zeros(0, np.int64), np.zeros(0, np.uint32)
        keyed = np.unique((np.concatenate(docs).astype(U64) << U64(32)) | np.concatenate(hs).astype(U64))
        return (keyed >> U64(32)).astype(np.int64), (keyed & U64(0xFFFFFFFF)).astype(np.uint32)

    def match(self, batch: Batch) -> list[tuple[int, int, str, float]]:
        """Hits in a batch: (doc, item index, method, overlap) sorted by doc then item.

        method "ngram": overlap = number of shared long n-grams; "near_duplicate": overlap = containment.
        All window lengths come from one hashing pass; bitmap prefilters keep the table lookups to the
        few windows that may be in an eval item.
        """
        if not self.items:
            return []
        n_items = len(self.items)
        want = set(self.grams) | ({self.near_ngram} if len(self.sh_hash) else set())
        near_sums = None
        docs, its = [], []
        if want:
            for L, sums in _window_sums(batch, want):
                if L in self.grams:
                    d, it = self._ngram_hits(batch, L, sums)
                    docs.append(d)
                    its.append(it)
                if L == self.near_ngram and len(self.sh_hash):
                    near_sums = sums.copy()
        hits: dict[tuple[int, int], tuple[str, float]] = {}
        if docs:
            code, cnt = np.unique(np.concatenate(docs) * n_items + np.concatenate(its), return_counts=True)
            for c, k in zip(code.tolist(), cnt.tolist()):
                hits[(c // n_items, c % n_items)] = ("ngram", k)
        if len(self.sh_hash):
            doc_of, sh = self._near_shingles(batch, near_sums)
            left = np.searchsorted(self.sh_hash, sh, "left")
            right = np.searchsorted(self.sh_hash, sh, "right")
            n = right - left
            m = n > 0
            if m.any():
                reps = n[m]
                d = np.repeat(doc_of[m], reps)
                starts = np.repeat(left[m], reps) + (np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps))
                it = self.sh_item[starts]
                code, cnt = np.unique(d * n_items + it, return_counts=True)
                cov = cnt / self.sh_count[code % n_items]
                for c, v in zip(code[cov >= self.near_threshold], cov[cov >= self.near_threshold]):
                    key = (int(c // n_items), int(c % n_items))
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
