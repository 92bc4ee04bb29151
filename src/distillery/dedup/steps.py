"""The per-batch step every engine runs: parse lines, then key text -> shingles -> MinHash signatures
-> band keys, exact hash, score, source and eval-set hits.

`prepare_batch` is a pure function of (lines, settings), so the local process pool and a Ray Data
`map_batches` produce the same arrays. Shingle sets (and, for signature verification, signatures)
are handed to a `spill` callback instead of being returned: the parent keeps only band keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import xxhash

from ..core.io import UTF8_BOM, BadLine
from ..core.io import parse_line as core_parse_line
from ..core.records import check_record
from .config import DedupParams
from .decontam import EvalIndex
from .keys import conversation_text, exact_hashes, key_text, quality_score, record_id, source_name
from .minhash import band_keys, signatures
from .shingle import Batch, Encoded, shingles


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs besides the lines (picklable, small)."""

    params: DedupParams
    seed: int
    bands: int
    rows: int
    max_line_bytes: int


@dataclass
class Prepared:
    """Per-batch result: one entry per good record (in line order), plus the bad lines."""

    lines: np.ndarray                      # line numbers of good records
    ids: list[str]
    scores: np.ndarray                     # float64, -inf when unscored
    sources: list[str]
    hi: np.ndarray                         # exact hash (xxh3-128) halves
    lo: np.ndarray
    n_shingles: np.ndarray
    keys: np.ndarray                       # (n x bands) uint64
    bad: list[tuple[int, str, str | dict, str]] = field(default_factory=list)  # (line, reason, raw|record, detail)
    hits: list[tuple[int, int, str, float]] = field(default_factory=list)  # (local doc, item, method, overlap)


def parse_line(raw: bytes, max_line_bytes: int) -> dict | tuple[str, str, str]:
    """A record dict, or (reason, raw excerpt, detail) for a line that is not one (a UTF-8 BOM, which can
    only open a file's first line, is skipped as `iter_jsonl` skips it). Ids stay exact: the one parser
    reads integers beyond 64 bits with the json module."""
    if raw[:3] == UTF8_BOM:
        raw = raw[3:]
    obj = core_parse_line(raw, 0, max_line_bytes)
    return (obj.reason, obj.raw, obj.detail) if isinstance(obj, BadLine) else obj


def source_salt(sources: list[str]) -> np.ndarray:
    return np.fromiter((xxhash.xxh3_64_intdigest(s.encode()) for s in sources), dtype=np.uint64, count=len(sources))


def prepare_batch(lines: list[tuple[int, bytes]], st: Settings, index: EvalIndex | None,
                  spill: Callable[[np.ndarray | None, np.ndarray, np.ndarray], None] | None = None,
                  fallback_id: Callable[[int], str] = str) -> Prepared:
    """Run the per-record step over one batch of raw JSONL lines."""
    p = st.params
    good_lines, ids, scores, sources, texts, convs = [], [], [], [], [], []
    bad: list[tuple[int, str, str | dict, str]] = []
    for ln, raw in lines:
        rec = parse_line(raw, st.max_line_bytes)
        if isinstance(rec, tuple):
            bad.append((ln, *rec))
            continue
        invalid = check_record(rec)
        if invalid is not None:
            bad.append((ln, invalid.reason, rec, invalid.detail))
            continue
        text = key_text(rec, p.key)
        if not text.strip():
            bad.append((ln, "empty_text", rec, f"no text for key={p.key}"))
            continue
        good_lines.append(ln)
        ids.append(record_id(rec, fallback_id(ln)))
        scores.append(quality_score(rec, p.score_field))
        sources.append(source_name(rec))
        texts.append(text)
        if index is not None and p.key != "conversation":
            convs.append(conversation_text(rec))
    enc = Encoded.from_texts(texts)
    hi, lo = exact_hashes(texts, [s if not p.cross_source else "" for s in sources], enc)
    batch = Batch.from_encoded(enc)
    del texts, enc
    sh, off = shingles(batch, p.shingle_size)
    n_sh = np.diff(off)
    # exact verification reads only the banded columns of the signature: compute just those
    sig = signatures(sh, off, p.num_perm, st.seed, None if p.verify == "signature" else st.bands * st.rows)
    keys = band_keys(sig, st.bands, st.rows, None if p.cross_source else source_salt(sources))
    if spill is not None:
        spill(sig if p.verify == "signature" else None, sh, off)
    hits: list[tuple[int, int, str, float]] = []
    if index is not None and ids:
        if p.key != "conversation":
            batch = Batch.from_texts(convs)
        hits = index.match(batch)
    return Prepared(
        lines=np.array(good_lines, dtype=np.int64), ids=ids,
        scores=np.array(scores, dtype=np.float64) if scores else np.zeros(0),
        sources=sources,
        hi=hi, lo=lo,
        n_shingles=n_sh,
        keys=keys, bad=bad, hits=hits)


def verify_pairs(pairs: Iterable[tuple[np.ndarray, np.ndarray]], chunk: int = 1024) -> np.ndarray:
    """Exact Jaccard of each (a, b) pair of sorted unique shingle-hash arrays; at most `chunk`
    pairs' sets in memory at a time. A chunk's workspace is ~12 KB a pair (the sets widened to 64-bit
    keys, their positions and matches): 4,096 pairs held ~50 MB a worker, on top of the parent's peak."""
    from .lsh import jaccard_many

    out, a_sets, b_sets = [], [], []
    for a, b in pairs:
        a_sets.append(a)
        b_sets.append(b)
        if len(a_sets) >= chunk:
            out.append(jaccard_many(a_sets, b_sets))
            a_sets, b_sets = [], []
    out.append(jaccard_many(a_sets, b_sets))
    return np.concatenate(out)
