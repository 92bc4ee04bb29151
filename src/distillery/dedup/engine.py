"""Local engine: the dedup stage over a process pool, streaming its input three times at most.

Pass 1 (workers): lines -> `steps.prepare_batch` (signatures, band keys, exact hashes, eval hits);
shingle sets spill to disk, and so do the parent's band keys and per-record scalars (`table.Table`).
Decide (parent + workers): exact groups -> contamination -> LSH candidates (a band per worker task) ->
exact-Jaccard verification (workers) -> connected components -> keep policy -> optional semantic pass.
Write (workers): re-read the input in pass 1's batches, copy kept lines as they are, quarantine the rest
with reason and `duplicate_of`; the parent appends each batch's output in order.
Results depend only on input order and params, never on the worker count.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import shutil
import tempfile
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..core.io import (AtomicWriter, BadLine, append_file, atomic_file, is_gzip, iter_line_blocks, open_binary,
                       split_lines, write_text)
from ..core.memory import give_back_freed_memory
from ..core.parallel import OrderedPool
from ..core.quarantine import Quarantine, json_entry
from ..core.stage import progress
from .cluster import components, exact_groups, keep_order, records_by_rank
from .config import DedupParams
from .decontam import EvalIndex, build_index
from .lsh import band_codes, merge_codes
from .minhash import choose_banding, estimate, permutations
from .steps import Prepared, Settings, parse_line, prepare_batch, verify_pairs
from .table import BandKeys, Ids, Table, write_array

log = logging.getLogger(__name__)

KEEP, EXACT, CONTAMINATED, NEAR, SEMANTIC = 0, 1, 2, 3, 4
REASONS = {EXACT: "exact_duplicate", CONTAMINATED: "contaminated", NEAR: "near_duplicate",
           SEMANTIC: "semantic_duplicate"}

# ---------------------------------------------------------------- worker side
_W: dict[str, Any] = {}


def _init_worker(settings: Settings, index: EvalIndex | None, spill_dir: str) -> None:
    _W.clear()
    _W.update(settings=settings, index=index, spill_dir=spill_dir, maps=OrderedDict())


def _spill_path(batch_no: int, what: str) -> str:
    return os.path.join(_W["spill_dir"], f"{batch_no:07d}.{what}")


def _work_prepare(task: tuple[int, int, int, bytes]) -> tuple[int, int, Prepared]:
    batch_no, file_no, first, blob = task
    lines = numbered_lines(first, blob)

    def spill(sig, sh, off):
        write_array(_spill_path(batch_no, "sh"), sh.astype(np.uint32, copy=False))
        write_array(_spill_path(batch_no, "off"), off.astype(np.int64, copy=False))
        if sig is not None:
            write_array(_spill_path(batch_no, "sig"), sig.astype(np.uint32, copy=False))

    prep = prepare_batch(lines, _W["settings"], _W["index"], spill, fallback_id=lambda ln: f"{file_no}:{ln}")
    del lines
    give_back_freed_memory()        # idle through LSH in the parent, the worker holds no batch's leftovers
    return batch_no, file_no, prep


VERIFY_TASK_PAIRS = 16_384    # pairs per verification task at most: a worker's memory does not grow with N

# spill files open per worker (least recently used is closed): a quarter of the process's descriptor limit,
# so that a run of many batches does not reopen files for most pairs (with 256 open and the offsets read by
# np.load at each open, verifying 1.2M records' 430K pairs took 31 s; now 8)
_MAX_OPEN = max(64, min(8192, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 4))


def _spill_fd(batch_no: int, what: str) -> int:
    """File descriptor of a spill file; reads use pread, so nothing is memory-mapped and the resident
    memory of a worker stays the sets it is comparing."""
    key = (batch_no, what)
    files: OrderedDict = _W["maps"]
    fd = files.get(key)
    if fd is None:
        fd = files[key] = os.open(_spill_path(batch_no, what), os.O_RDONLY)
        if len(files) > _MAX_OPEN:
            os.close(files.popitem(last=False)[1])
    else:
        files.move_to_end(key)
    return fd


def _shingle_set(batch_no: int, local: int) -> np.ndarray:
    s, e = np.frombuffer(os.pread(_spill_fd(batch_no, "off"), 16, 8 * int(local)), dtype=np.int64).tolist()
    return np.frombuffer(os.pread(_spill_fd(batch_no, "sh"), 4 * (e - s), 4 * s), dtype=np.uint32)


def _signature(batch_no: int, local: int) -> np.ndarray:
    k = _W["settings"].params.num_perm
    return np.frombuffer(os.pread(_spill_fd(batch_no, "sig"), 4 * k, 4 * k * int(local)), dtype=np.uint32)


def _work_verify(task: tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Similarity of each pair, streaming (a few thousand pairs' sets in memory at a time)."""
    mode, ub, ul, vb, vl = task
    if mode == "signature":
        sims = np.fromiter((estimate(_signature(a, i), _signature(b, j)) for a, i, b, j in zip(ub, ul, vb, vl)),
                           dtype=np.float64, count=len(ub))
    else:
        sims = verify_pairs((_shingle_set(a, i), _shingle_set(b, j)) for a, i, b, j in zip(ub, ul, vb, vl))
    give_back_freed_memory()
    return sims


LSH_BAND_PARTS = 4    # a band's keys are paired in 4 slices: ~22 bytes a record at a band worker's peak, not ~32


def _work_band(task: tuple[str, str, str, int]) -> np.ndarray:
    """One LSH band's candidate pairs (`lsh.band_codes`), from the band's key file and the spilled rows and
    ranks of the records still in play."""
    band_path, rows_path, ranks_path, all_pairs_max = task
    codes = band_codes(BandKeys.read(band_path, np.fromfile(rows_path, np.int32)), np.fromfile(ranks_path, np.int32),
                       all_pairs_max, parts=LSH_BAND_PARTS)
    give_back_freed_memory()
    return codes


def _work_write(task: tuple["BatchDecisions", "Span", bytes | None, str]) -> tuple[Counter, str, str]:
    """One batch's output, written to two part files (kept lines, quarantine lines) for the parent to append:
    the batch's bytes are read here (`pread` of its span; sent only for a compressed input), and nothing but
    the part names goes back."""
    batch, span, blob, part = task
    if blob is None:
        fd = _input_fd(span.path)
        blob = os.pread(fd, span.length, span.offset)
    kept, rejected, counts = batch.emit(blob, span.first)
    del blob
    write_array(part + ".rec", kept)
    write_array(part + ".q", rejected)
    del kept, rejected
    give_back_freed_memory()
    return counts, part + ".rec", part + ".q"


def _input_fd(path: str) -> int:
    """A worker's descriptor of one input file, opened once."""
    files: dict = _W.setdefault("inputs", {})
    if path not in files:
        files[path] = os.open(path, os.O_RDONLY)
    return files[path]


def _close_spill() -> None:
    for fd in [*_W.get("maps", {}).values(), *_W.get("inputs", {}).values()]:
        os.close(fd)
    _W["maps"], _W["inputs"] = OrderedDict(), {}


# ---------------------------------------------------------------- parent side
def mark_near(label: np.ndarray, rank: np.ndarray, by_rank: np.ndarray, active: np.ndarray, status: np.ndarray,
              dup_of: np.ndarray, sim: np.ndarray, edges_u: np.ndarray, edges_v: np.ndarray,
              edge_sims: np.ndarray) -> np.ndarray:
    """Mark every active record whose component keeper (lowest rank) is another record as a near duplicate
    of it, with the similarity of the direct edge to the keeper when there is one. Returns the records whose
    similarity to the keeper still has to be computed (no direct edge). Shared by the local and Ray engines."""
    keeper_rank = label[rank]
    near = (keeper_rank != rank) & active
    status[near] = NEAR
    dup_of[near] = by_rank[keeper_rank[near]]
    del keeper_rank
    near = np.flatnonzero(near)
    # an edge from a component's keeper (its label) reaches each of its members at most once: sorted by that
    # member, the direct edges answer every near record with one search
    to_keeper = label[edges_u] == edges_u
    member, member_sim = edges_v[to_keeper], edge_sims[to_keeper]
    order = np.argsort(member)
    member, member_sim = member[order], member_sim[order]
    r = rank[near]
    pos = np.minimum(np.searchsorted(member, r), max(len(member) - 1, 0))
    direct = (member[pos] == r) if len(member) else np.zeros(len(near), bool)
    sim[near[direct]] = member_sim[pos[direct]]
    return near[~direct]


def iter_line_batches(files: list[Path], batch_size: int) -> Iterator[tuple[int, int, int, bytes]]:
    """(batch_no, file_no, first line number, bytes of `batch_size` lines); batches stay within a file."""
    batch_no = 0
    for f_no, path in enumerate(files):
        for first, blob in iter_line_blocks(path, batch_size):
            yield batch_no, f_no, first, blob
            batch_no += 1


@dataclass(frozen=True)
class Span:
    """Where one batch's lines are: its file, first line number, and byte range (of the file as read)."""

    path: str
    first: int
    offset: int
    length: int


def recording_spans(batches: Iterator[tuple[int, int, int, bytes]], files: list[Path], spans: list[Span]
                    ) -> Iterator[tuple[int, int, int, bytes]]:
    """Pass `batches` through, appending each one's `Span` to `spans` (so the write pass can read a batch
    again without the parent reading the file)."""
    offsets: dict[int, int] = {}
    for batch_no, f_no, first, blob in batches:
        off = offsets.get(f_no, 0)
        spans.append(Span(str(files[f_no]), first, off, len(blob)))
        offsets[f_no] = off + len(blob)
        yield batch_no, f_no, first, blob


def numbered_lines(first: int, blob: bytes) -> list[tuple[int, bytes]]:
    """(line number, raw) of every non-blank line of a block."""
    return [(ln, raw) for ln, raw in enumerate(split_lines(blob), start=first) if raw.strip()]


@dataclass
class Result:
    metrics: dict[str, Any]
    histogram: list[tuple[float, float, int, int]]


def _histogram(sims: np.ndarray, threshold: float, bins: int) -> list[tuple[float, float, int, int]]:
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip((sims * bins).astype(np.int64), 0, bins - 1)
    total = np.bincount(idx, minlength=bins)
    dup = np.bincount(idx[sims >= threshold], minlength=bins)
    return [(round(float(edges[i]), 4), round(float(edges[i + 1]), 4), int(total[i]), int(dup[i]))
            for i in range(bins)]


def _one_batch(files: list[Path], batch_size: int) -> bool:
    """True when the input holds at most one batch of lines: a worker pool would only add start-up.
    Reads at most batch_size lines' worth of bytes."""
    lines = 0
    for f in files:
        with open_binary(f) as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                lines += block.count(b"\n")
                if lines > batch_size:
                    return False
    return True


def run_dedup(files: list[Path], out_dir: Path, p: DedupParams, *, seed: int, max_line_bytes: int,
              plots_path: Path | None = None, stage: str = "dedup") -> Result:
    """Run the whole stage; writes records/quarantine/clusters/contamination into out_dir."""
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    bands, rows = (p.bands, p.rows) if p.bands else choose_banding(p.threshold, p.num_perm, p.lsh_recall)
    settings = Settings(p, seed, bands, rows, max_line_bytes)
    workers = p.workers or os.cpu_count() or 1
    if workers > 1 and _one_batch(files, p.batch_size):
        workers = 1
    out_dir.mkdir(parents=True, exist_ok=True)
    spill_root = Path(p.tmp_dir) if p.tmp_dir else out_dir
    spill_root.mkdir(parents=True, exist_ok=True)
    spill_dir = tempfile.mkdtemp(prefix=".dedup-spill-", dir=spill_root)

    t = time.perf_counter()
    index = build_index(p.decontaminate)
    timings["eval_index_s"] = time.perf_counter() - t

    permutations(p.num_perm, seed)          # drawn once, before the workers fork

    _init_worker(settings, index, spill_dir)
    pool = OrderedPool(workers, initializer=_init_worker, initargs=(settings, index, spill_dir))
    try:
        with Quarantine(out_dir / "quarantine.jsonl", stage) as quarantine:
            # the workers make signatures, verify pairs and turn batches into output lines; between tasks
            # they hand their freed heap back, so idle workers through LSH and clustering hold little
            with pool:
                # ---- pass 1: prepare every batch (workers), keep band keys + scalars
                t = time.perf_counter()
                table = Table(Path(spill_dir) / "table", bands)
                lines_in = 0
                bar = progress(desc=f"{stage}: signatures", unit="rec")
                spans: list[Span] = []
                batches = recording_spans(iter_line_batches(files, p.batch_size), files, spans)
                for batch_no, file_no, prep in pool.imap(_work_prepare, batches):
                    lines_in += len(prep.ids) + len(prep.bad)
                    bar.update(len(prep.ids) + len(prep.bad))
                    for ln, reason, raw, detail in prep.bad:
                        if isinstance(raw, dict):
                            quarantine.reject(reason, raw, file=str(files[file_no]), line=ln, detail=detail)
                        else:
                            quarantine.reject_bad_line(BadLine(reason, ln, raw, detail), str(files[file_no]))
                    table.add(batch_no, file_no, prep)
                bar.close()
                cols, ids, band_keys = table.freeze()
                n = len(ids)
                timings["prepare_s"] = time.perf_counter() - t
                log.info("dedup: prepared %d records in %.1fs (%d bands x %d rows)", n, timings["prepare_s"], bands,
                         rows)
                bad_counts = Counter(quarantine.counts)

                # ---- decide
                t = time.perf_counter()
                dec = Decisions.start(table, ids, index, p)
                rank, status, dup_of, sim = dec.rank, dec.status, dec.dup_of, dec.sim  # marked in place below
                timings["exact_s"] = time.perf_counter() - t

                near = _near_duplicates(pool, p, cols, band_keys, dec, workers, spill_dir, timings) if p.near and n \
                    else NearPass(0, 0, np.zeros(0))
                give_back_freed_memory()        # the pass's pairs and N-sized temporaries are gone before writing

                if p.semantic.enabled and n:
                    t = time.perf_counter()
                    from .semantic import semantic_duplicates

                    surv = np.flatnonzero(status == KEEP)
                    texts = _collect_key_texts(files, cols, surv, p, max_line_bytes)
                    keep_of, cos = semantic_duplicates(texts, rank[surv], p.semantic)
                    rem = keep_of != np.arange(len(surv))
                    status[surv[rem]] = SEMANTIC
                    dup_of[surv[rem]] = surv[keep_of[rem]]
                    sim[surv[rem]] = cos[rem]
                    timings["semantic_s"] = time.perf_counter() - t

                # ---- write
                t = time.perf_counter()
                records_out = _write_outputs(pool, files, out_dir, cols, dec, quarantine, spans, p.batch_size,
                                             spill_dir)
                timings["write_s"] = time.perf_counter() - t
            t = time.perf_counter()
            clusters, largest, hist = dec.write_reports(out_dir, plots_path, near.pair_sims, p)
            timings["reports_s"] = time.perf_counter() - t
    finally:
        _close_spill()
        shutil.rmtree(spill_dir, ignore_errors=True)

    metrics = dec.metrics(records_in=lines_in, records_out=records_out, bad_counts=bad_counts, clusters=clusters,
                          largest=largest, candidate_pairs=near.candidates, verified_pairs=near.verified)
    metrics.update(bands=bands, rows=rows, num_perm=p.num_perm, threshold=p.threshold, key=p.key, workers=workers,
                   timings_s={k: round(v, 3) for k, v in timings.items()})
    metrics["wall_s"] = round(time.perf_counter() - t_start, 3)
    metrics["records_per_s"] = round(lines_in / metrics["wall_s"], 1) if metrics["wall_s"] else None
    return Result(metrics, hist)


@dataclass
class NearPass:
    """What the near-duplicate pass leaves for the metrics and the similarity histogram."""

    candidates: int
    verified: int
    pair_sims: np.ndarray


def _near_duplicates(pool: OrderedPool, p: DedupParams, cols: dict, band_keys: BandKeys, dec: "Decisions",
                     workers: int, spill_dir: str, timings: dict[str, float]) -> NearPass:
    """LSH candidates -> verification -> components -> keep policy, marking near duplicates in `dec` in place.
    A function of its own so that its pairs and N-sized temporaries are freed before the write pass."""
    t = time.perf_counter()
    rank, status = dec.rank, dec.status
    active = (status == KEEP) & (cols["nsh"] > 0)
    by_rank = records_by_rank(rank)
    in_play = active[by_rank]                                # by rank: which ranks are still in play
    pairs = _candidate_pairs(pool, band_keys, by_rank[in_play], np.flatnonzero(in_play), p.max_bucket_all_pairs,
                             spill_dir)
    del in_play
    timings["lsh_s"] = time.perf_counter() - t
    log.info("dedup: %d candidate pairs from LSH", len(pairs))
    t = time.perf_counter()
    pair_sims = _verify(pool, p.verify, cols, by_rank[pairs[:, 0]], by_rank[pairs[:, 1]], workers)
    ok = pair_sims >= p.threshold - 1e-12
    edges_u, edges_v = pairs[ok, 0], pairs[ok, 1]
    n_candidates = len(pairs)
    del pairs
    timings["verify_s"] = time.perf_counter() - t
    log.info("dedup: %d of %d pairs verified in %.1fs", int(ok.sum()), n_candidates, timings["verify_s"])
    t = time.perf_counter()
    label = components(len(rank), edges_u, edges_v)          # in rank space
    need = mark_near(label, rank, by_rank, active, status, dec.dup_of, dec.sim, edges_u, edges_v, pair_sims[ok])
    del label, by_rank, active
    if len(need):
        dec.sim[need] = _verify(pool, p.verify, cols, need, dec.dup_of[need], workers)
    timings["cluster_s"] = time.perf_counter() - t
    return NearPass(n_candidates, int(len(edges_u)), pair_sims)


def _candidate_pairs(pool: OrderedPool, band_keys: BandKeys, rows: np.ndarray, ranks: np.ndarray, all_pairs_max: int,
                     spill_dir: str) -> np.ndarray:
    """LSH candidate pairs with one band per worker task (the rows and their ranks go through two spill files,
    not with every task); the parent only merges the bands' pairs. `rows` and their `ranks` come in rank order
    and go as int32 (ranks and rows are below 2**31, as the pair codes need), so a band's worker sorts its keys
    once (`lsh.bucket_pairs`) and holds ~30 bytes a record at its peak instead of ~50."""
    rows_path, ranks_path = os.path.join(spill_dir, "lsh_rows"), os.path.join(spill_dir, "lsh_ranks")
    write_array(rows_path, rows.astype(np.int32, copy=False))
    write_array(ranks_path, ranks.astype(np.int32))
    tasks = [(str(path), rows_path, ranks_path, all_pairs_max) for path in band_keys.paths]
    return merge_codes(pool.imap(_work_band, tasks))


def _verify(pool: OrderedPool, mode: str, cols: dict, u: np.ndarray, v: np.ndarray, workers: int) -> np.ndarray:
    if not len(u):
        return np.zeros(0)
    b, l = cols["batch_no"], cols["local"]
    order = np.lexsort((b[v], b[u]))  # batch locality for the spill maps; results are put back in order
    u, v = u[order], v[order]
    step = min(VERIFY_TASK_PAIRS, max(1000, math.ceil(len(u) / (4 * workers))))
    tasks = ((mode, b[u[i:i + step]], l[u[i:i + step]], b[v[i:i + step]], l[v[i:i + step]])
             for i in range(0, len(u), step))
    sims = np.empty(len(u))
    sims[order] = np.concatenate(list(pool.imap(_work_verify, tasks)))
    return sims


def _as_ints(a: np.ndarray, chunk: int = 1 << 16) -> Iterator[int]:
    """The values of `a` as Python ints, converted a chunk at a time (not one list of all of them)."""
    return chain.from_iterable(a[s:s + chunk].tolist() for s in range(0, len(a), chunk))


def _iter_positions(files: list[Path], cols: dict) -> Iterator[tuple[int, int, bytes, int]]:
    """Re-read the input; yield (file_no, line, raw, record index) for the good records, in order."""
    wanted = zip(_as_ints(cols["file_no"]), _as_ints(cols["line"]))
    k = 0
    nxt = next(wanted, None)
    for f_no, path in enumerate(files):
        with open_binary(path) as fh:
            for ln, raw in enumerate(fh, start=1):
                if nxt is not None and nxt[0] == f_no and nxt[1] == ln:
                    yield f_no, ln, raw, k
                    k += 1
                    nxt = next(wanted, None)


@dataclass
class Decisions:
    """Per record (index k): keep-policy rank, status, the record it duplicates and how similar, the
    first eval item it matched; plus the contamination report. Every engine starts one the same way
    (`start`), marks near/semantic duplicates in place, then writes and measures through it."""

    ids: Ids
    rank: np.ndarray
    status: np.ndarray
    dup_of: np.ndarray
    sim: np.ndarray
    first_hit: dict[int, int]
    index: EvalIndex | None
    contam_rows: list[dict]

    @classmethod
    def start(cls, table: Table, ids: Ids, index: EvalIndex | None, p: DedupParams) -> "Decisions":
        """Ranks, exact groups, then contamination: all that is settled before the near-duplicate pass. The
        keep policy's inputs are read from the frozen table here and dropped when done."""
        n = len(ids)
        rank = keep_order(table.column("scores"), table.source_rank(p.source_priority), ids.order())
        status = np.zeros(n, np.int8)
        dup_of = np.full(n, -1, rank.dtype)
        sim = np.full(n, np.nan)
        if p.exact and n:
            keeper = exact_groups(table.column("hi"), table.column("lo"), rank)
            ex = keeper != np.arange(n)
            status[ex], dup_of[ex], sim[ex] = EXACT, keeper[ex], 1.0
            del keeper, ex
        rows: list[dict] = []
        first_hit: dict[int, int] = {}
        for d, item, method, overlap in table.hits:
            ev = index.items[item]
            rows.append({"id": ids[d], "eval_set": ev.set, "eval_item": ev.item, "method": method,
                         "overlap": overlap, "eval_text": ev.text[:300],
                         "removed_as": "contaminated" if status[d] == KEEP else REASONS[status[d]]})
            first_hit.setdefault(d, item)
        for d in sorted(first_hit):
            if status[d] == KEEP:
                status[d] = CONTAMINATED
        return cls(ids, rank, status, dup_of, sim, first_hit, index, rows)

    def batch(self, start: int, end: int, lines: np.ndarray, file: str, stage: str) -> "BatchDecisions":
        """The decisions of records start..end-1 (one input batch; `lines`: every record's line number), small
        enough to send to a worker: only the removed records carry the id they duplicate, only the contaminated
        ones their eval item."""
        st = self.status[start:end]
        dup = self.dup_of[start:end]
        removed = np.flatnonzero((st != KEEP) & (dup >= 0))
        dup_ids = dict(zip(removed.tolist(), self.ids.many(dup[removed])))
        matched = {}
        for j in np.flatnonzero(st == CONTAMINATED).tolist():
            ev = self.index.items[self.first_hit[start + j]]
            matched[j] = (ev.set, ev.item)
        return BatchDecisions(stage, file, lines[start:end], st, self.sim[start:end], dup_ids, matched)

    def write_reports(self, out_dir: Path, plots_path: Path | None, pair_sims: np.ndarray, p: DedupParams
                      ) -> tuple[int, int, list[tuple[float, float, int, int]]]:
        """clusters.jsonl, contamination.jsonl and the similarity histogram: (clusters, largest, histogram)."""
        clusters, largest = _write_clusters(out_dir / "clusters.jsonl", self.ids, self.status, self.dup_of,
                                            self.sim, self.rank)
        with AtomicWriter(out_dir / "contamination.jsonl") as w:
            for row in self.contam_rows:
                w.write_record(row)
        hist = _histogram(pair_sims, p.threshold, p.histogram_bins)
        if plots_path is not None:
            write_text(plots_path, "similarity,similarity_hi,pairs,duplicates\n"
                       + "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in hist))
        return clusters, largest, hist

    def metrics(self, *, records_in: int, records_out: int, bad_counts: Counter, clusters: int, largest: int,
                candidate_pairs: int, verified_pairs: int) -> dict[str, Any]:
        """The counts of metrics/dedup.json that every engine reports the same way."""
        counts = Counter(int(x) for x in self.status)
        by_set = Counter(self.index.items[i].set for d, i in self.first_hit.items()
                         if self.status[d] == CONTAMINATED) if self.index else {}
        return {
            "records_in": records_in, "records_out": records_out,
            "bad_input": sum(bad_counts.values()), "bad_input_by_reason": dict(sorted(bad_counts.items())),
            "exact_duplicates": counts.get(EXACT, 0), "near_duplicates": counts.get(NEAR, 0),
            "contaminated": counts.get(CONTAMINATED, 0), "contaminated_by_set": dict(sorted(by_set.items())),
            "contamination_hits": len(self.contam_rows), "semantic_duplicates": counts.get(SEMANTIC, 0),
            "clusters": clusters, "largest_cluster": largest,
            "candidate_pairs": candidate_pairs, "verified_pairs": verified_pairs,
        }


@dataclass
class BatchDecisions:
    """One input batch's decisions (`Decisions.batch`): what a worker needs to write the batch's records."""

    stage: str
    file: str
    lines: np.ndarray                       # line number of each good record of the batch, in order
    status: np.ndarray
    sim: np.ndarray
    dup_ids: dict[int, str]                 # position -> id of the record it duplicates
    matched: dict[int, tuple[str, str]]     # position -> (eval set, eval item) it matched

    def emit(self, blob: bytes, first: int) -> tuple[bytes, bytes, Counter]:
        """(kept lines as read, each ending in one b'\\n'; quarantine lines with reason and duplicate; counts by
        reason) for the batch's records, from the batch's bytes as read (its first line numbered `first`).
        Kept lines are copied in runs (a slice per run of consecutive kept lines): Python work is per removed
        record, not per record. A batch holding a b'\\r' has its kept lines copied one by one, each ending made
        b'\\n'."""
        ends = np.flatnonzero(np.frombuffer(blob, np.uint8) == 10) + 1
        if not len(ends) or ends[-1] != len(blob):
            ends = np.append(ends, len(blob))                 # the file's last line, without b"\\n"
        starts = np.concatenate(([0], ends[:-1]))
        rel = self.lines - first                               # each record's line in the batch
        keep = self.status == KEEP
        if b"\r" in blob:
            kept = b"".join(_lf(blob[s:e]) for s, e in zip(starts[rel[keep]].tolist(), ends[rel[keep]].tolist()))
        else:
            kept_line = np.zeros(len(ends) + 2, np.int8)
            kept_line[rel[keep] + 1] = 1
            edges = np.flatnonzero(np.diff(kept_line))         # run starts and ends, in line numbers
            kept = b"".join(blob[s:e] for s, e in zip(starts[edges[0::2]].tolist(), ends[edges[1::2] - 1].tolist()))
            if kept and not kept.endswith(b"\n"):
                kept += b"\n"
        rejected: list[str] = []
        counts: Counter = Counter()
        for j in np.flatnonzero(~keep).tolist():
            st, r = int(self.status[j]), int(rel[j])
            extra: dict[str, Any] = {}
            if j in self.dup_ids:
                extra["duplicate_of"] = self.dup_ids[j]
                extra["similarity"] = round(float(self.sim[j]), 4)
            if j in self.matched:
                ev_set, ev_item = self.matched[j]
                extra["duplicate_of"] = f"{ev_set}:{ev_item}"
                extra["matched"] = {"eval_set": ev_set, "eval_item": ev_item}
            counts[REASONS[st]] += 1
            rejected.append(json_entry(self.stage, REASONS[st], blob[int(starts[r]):int(ends[r])], file=self.file,
                                       line=int(self.lines[j]), **extra))
        return kept, "".join(rejected).encode("utf-8"), counts


def _lf(raw: bytes) -> bytes:
    """A kept line with its ending made one b'\\n' (a CRLF file, or the file's last line without one)."""
    return raw if raw.endswith(b"\n") and not raw.endswith(b"\r\n") else raw.rstrip(b"\r\n") + b"\n"


def _write_outputs(pool: OrderedPool, files: list[Path], out_dir: Path, cols: dict, decisions: Decisions,
                   quarantine: Quarantine, spans: list[Span], batch_size: int, part_dir: str) -> int:
    """The workers read pass 1's batches again and write each one's kept and quarantine lines to part files;
    the parent appends the parts in batch order (the kernel copies them), so the outputs are the same bytes
    for any worker count and no record passes through the parent. A compressed input has no byte ranges to
    read again: the parent reads it and sends each batch's bytes."""
    lines = cols["line"]
    bounds = np.searchsorted(cols["batch_no"], np.arange(len(spans) + 1, dtype=cols["batch_no"].dtype)).tolist()
    blobs = iter_line_batches(files, batch_size) if any(is_gzip(f) for f in files) else None

    def tasks() -> Iterator[tuple[int, tuple[BatchDecisions, Span, bytes | None, str]]]:
        for b, span in enumerate(spans):
            blob = next(blobs)[3] if blobs is not None else None
            start, end = bounds[b], bounds[b + 1]
            if end > start:
                batch = decisions.batch(start, end, lines, span.path, quarantine.stage)
                yield end - start, (batch, span, blob, os.path.join(part_dir, f"{b:07d}"))

    kept = 0
    with atomic_file(out_dir / "records.jsonl") as w:
        for records, (counts, kept_part, rejected_part) in pool.map(_work_write, tasks()):
            append_file(w, kept_part)
            quarantine.extend_from_file(rejected_part, counts)
            os.unlink(kept_part)
            os.unlink(rejected_part)
            kept += records - sum(counts.values())
    return kept


def _write_clusters(path: Path, ids, status, dup_of, sim, rank) -> tuple[int, int]:
    """One line per group: kind, kept id, removed ids with their similarity to the kept record."""
    removed = np.flatnonzero(dup_of >= 0)
    order = removed[np.lexsort((rank[removed], rank[dup_of[removed]], status[removed]))]
    n_clusters = largest = 0
    with AtomicWriter(path) as w:
        i = 0
        while i < len(order):
            j = i
            kind, keeper = status[order[i]], dup_of[order[i]]
            while j < len(order) and status[order[j]] == kind and dup_of[order[j]] == keeper:
                j += 1
            members = order[i:j]
            sims = [round(float(sim[m]), 4) for m in members]
            w.write_record({"kind": REASONS[int(kind)], "kept": ids[keeper], "size": len(members) + 1,
                            "removed": [{"id": ids[m], "similarity": s} for m, s in zip(members, sims)],
                            "min_similarity": min(sims)})
            n_clusters += 1
            largest = max(largest, len(members) + 1)
            i = j
    return n_clusters, largest


def _collect_key_texts(files, cols, which: np.ndarray, p: DedupParams, max_line_bytes: int) -> list[str]:
    from .keys import key_text

    want = np.zeros(len(cols["line"]), bool)
    want[which] = True
    texts = []
    for _, _, raw, k in _iter_positions(files, cols):
        if want[k]:
            texts.append(key_text(parse_line(raw, 1 << 62), p.key))
    return texts
