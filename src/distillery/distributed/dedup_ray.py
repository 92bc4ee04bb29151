"""Dedup on Ray Data, keeping exactly the ids the local engine keeps.

Every decision reuses the dedup module's pure steps (`steps.prepare_batch`, `cluster.keep_order`,
`cluster.exact_groups`, the LSH run pairing, exact-Jaccard verification, `cluster.components`),
so only *where* they run changes:

1. read + prepare (Ray Data `map_batches` over byte ranges of the input): signatures, band keys,
   exact hashes, eval hits; shingle sets spill to `spill_dir` (shared by all nodes);
2. driver: keep-policy ranks, exact groups, contamination (O(records) scalars);
3. shuffle (Ray Data `groupby(partition).map_groups`): (band, band key, rank) rows hash-partitioned
   by key; each partition sorts and pairs its buckets exactly as `lsh.candidate_pairs` does;
4. verify (Ray Data `map_batches` over pair blocks, reading the spilled shingle sets);
5. connected components: scipy on the driver while the edges fit (`engine.max_driver_edges`), else
   min-label propagation rounds on Ray tasks (`components_ray`);
6. driver: keep policy, write records/quarantine/clusters/contamination (same bytes as local).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..dedup import engine as local
from ..dedup.cluster import components, records_by_rank
from ..dedup.config import DedupParams
from ..dedup.decontam import EvalIndex, build_index
from ..dedup.lsh import _pairs_in_runs
from ..dedup.minhash import choose_banding, estimate
from ..dedup.steps import Settings, prepare_batch, verify_pairs
from ..core.errors import ParamsError
from ..core.io import BadLine, atomic_file, split_lines
from ..core.quarantine import Quarantine
from .config import EngineParams
from .shards import Chunk, plan_chunks, read_chunk

log = logging.getLogger(__name__)

KEEP = local.KEEP
SENTINEL = "\x00"
SUB_BITS = 16  # batch_no = chunk << SUB_BITS | sub-batch


# ---------------------------------------------------------------- worker functions (pure, picklable)
def _spill_path(spill_dir: str, batch_no: int, what: str) -> str:
    return os.path.join(spill_dir, f"{batch_no:012d}.{what}.npy")


def prepare_chunk(batch: dict[str, np.ndarray], settings: Settings, index: EvalIndex | None,
                  spill_dir: str) -> dict[str, np.ndarray]:
    """Ray Data UDF: one row per input byte range -> one row with its per-record results (pickled
    driver part in `meta`, the band-key matrix in `keys`, which stays on the cluster for the shuffle)."""
    out_meta, out_keys = [], []
    for i in range(len(batch["no"])):
        c = Chunk(int(batch["no"][i]), int(batch["file_no"][i]), str(batch["uri"][i]), int(batch["start"][i]),
                  int(batch["end"][i]), bool(batch["gz"][i]))
        lines = split_lines(read_chunk(c))
        numbered = [(ln, raw) for ln, raw in enumerate(lines, start=1) if raw.strip()]
        subs, keys = [], []
        for s, lo in enumerate(range(0, len(numbered), settings.params.batch_size)):
            batch_no = (c.no << SUB_BITS) | s

            def spill(sig, sh, off, _b=batch_no):
                np.save(_spill_path(spill_dir, _b, "sh"), sh)
                np.save(_spill_path(spill_dir, _b, "off"), off)
                if sig is not None:
                    np.save(_spill_path(spill_dir, _b, "sig"), sig)

            prep = prepare_batch(numbered[lo:lo + settings.params.batch_size], settings, index, spill,
                                 fallback_id=lambda ln: f"{SENTINEL}{ln}")
            keys.append(prep.keys)
            prep.keys = None
            subs.append((batch_no, prep))
        km = np.concatenate(keys) if keys else np.zeros((0, settings.bands), np.uint64)
        out_meta.append(pickle.dumps({"chunk": c.no, "file_no": c.file_no, "n_lines": len(lines), "subs": subs},
                                     protocol=5))
        out_keys.append(pickle.dumps(km, protocol=5))
    return {"chunk": np.asarray(batch["no"], np.int64), "meta": np.array(out_meta, dtype=object),
            "keys": np.array(out_keys, dtype=object)}


def explode_keys(batch: dict[str, np.ndarray], base: dict[int, int], rank_ref: Any, parts: int
                 ) -> dict[str, np.ndarray]:
    """Ray Data UDF: per-chunk key matrices -> (part, band, key, rank) rows of active docs."""
    import ray

    rank = ray.get(rank_ref) if not isinstance(rank_ref, np.ndarray) else rank_ref
    cols: dict[str, list[np.ndarray]] = {"part": [], "band": [], "key": [], "rank": []}
    for c, blob in zip(batch["chunk"], batch["keys"]):
        keys = pickle.loads(blob)
        if not keys.size:
            continue
        n, bands = keys.shape
        r = rank[base[int(c)]:base[int(c)] + n]
        act = r >= 0
        if not act.any():
            continue
        k = keys[act]
        rr = np.repeat(r[act], bands)
        kk = k.ravel()
        cols["band"].append(np.tile(np.arange(bands, dtype=np.int32), int(act.sum())))
        cols["key"].append(kk)
        cols["rank"].append(rr)
        cols["part"].append((kk % np.uint64(parts)).astype(np.int32))
    if not cols["key"]:
        return {"part": np.zeros(0, np.int32), "band": np.zeros(0, np.int32), "key": np.zeros(0, np.uint64),
                "rank": np.zeros(0, np.int64)}
    return {k: np.concatenate(v) for k, v in cols.items()}


def pair_partition(group: dict[str, np.ndarray], all_pairs_max: int) -> dict[str, np.ndarray]:
    """Ray Data UDF (map_groups): the candidate pairs of one partition, as sorted unique codes."""
    band, key, rank = group["band"], group["key"], group["rank"]
    if len(key) < 2:
        return {"code": np.zeros(0, np.int64)}
    order = np.lexsort((rank, key, band))
    b, k, m = band[order], key[order], rank[order]
    brk = np.flatnonzero((k[1:] != k[:-1]) | (b[1:] != b[:-1])) + 1
    starts = np.concatenate([[0], brk])
    sizes = np.diff(np.concatenate([starts, [len(k)]]))
    multi = sizes > 1
    u, v = _pairs_in_runs(m, starts[multi], sizes[multi], all_pairs_max)
    codes = np.sort(u * np.int64(1 << 31) + v)
    if len(codes):
        codes = codes[np.concatenate([[True], codes[1:] != codes[:-1]])]
    return {"code": codes}


def verify_block(batch: dict[str, np.ndarray], mode: str, spill_dir: str) -> dict[str, np.ndarray]:
    """Ray Data UDF: exact Jaccard (or signature estimate) of aligned pair blocks."""
    cache: dict[tuple[int, str], np.ndarray] = {}

    def load(b: int, what: str) -> np.ndarray:
        if (b, what) not in cache:
            cache[(b, what)] = np.load(_spill_path(spill_dir, b, what), mmap_mode="r")
        return cache[(b, what)]

    def shingle_set(b: int, l: int) -> np.ndarray:
        off = load(b, "off")
        return np.asarray(load(b, "sh")[off[l]:off[l + 1]])

    ub, ul, vb, vl = (batch[k].astype(np.int64) for k in ("ub", "ul", "vb", "vl"))
    if mode == "signature":
        a = np.stack([load(b, "sig")[l] for b, l in zip(ub, ul)])
        c = np.stack([load(b, "sig")[l] for b, l in zip(vb, vl)])
        return {"sim": estimate(a, c)}
    return {"sim": verify_pairs((shingle_set(a, i), shingle_set(b, j)) for a, i, b, j in zip(ub, ul, vb, vl))}


# ---------------------------------------------------------------- connected components
def _min_labels(edges: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray task: for one edge shard, each touched node's smallest label among itself and neighbours."""
    u, v = edges[:, 0], edges[:, 1]
    nodes = np.concatenate([u, v])
    cand = np.minimum(labels[u], labels[v])
    cand = np.concatenate([cand, cand])
    order = np.lexsort((cand, nodes))
    nodes, cand = nodes[order], cand[order]
    first = np.concatenate([[True], nodes[1:] != nodes[:-1]])
    return nodes[first], cand[first]


def components_ray(ray: Any, n: int, u: np.ndarray, v: np.ndarray, shard_edges: int = 5_000_000,
                   max_rounds: int = 200) -> np.ndarray:
    """Min-label propagation + pointer jumping over edge shards held in the object store.

    Same result as `cluster.components` (each node labelled with its component's smallest node);
    the driver holds only the O(n) label array, the edges stay in shards on the cluster.
    """
    labels = np.arange(n, dtype=np.int64)
    if not len(u):
        return labels
    shards = [ray.put(np.stack([u[i:i + shard_edges], v[i:i + shard_edges]], axis=1))
              for i in range(0, len(u), shard_edges)]
    task = ray.remote(_min_labels)
    for _ in range(max_rounds):
        ref = ray.put(labels)
        new = labels.copy()
        for nodes, cand in ray.get([task.remote(s, ref) for s in shards]):
            np.minimum.at(new, nodes, cand)
        while True:  # pointer jumping: follow labels to their root
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, labels):
            return labels
        labels = new
    raise RuntimeError("connected components did not converge")


# ---------------------------------------------------------------- driver
def run_dedup_ray(files: list[str], out_dir: Path, p: DedupParams, cfg: EngineParams, *, seed: int,
                  max_line_bytes: int, plots_path: Path | None = None, stage: str = "dedup") -> local.Result:
    """The dedup stage on Ray; same outputs and metrics keys as `dedup.engine.run_dedup`."""
    from .runtime import cluster_cpus, ray_session

    if p.semantic.enabled:
        raise ParamsError("dedup.semantic.enabled: semantic dedup runs on the local engine only "
                          "(set engine.stages.dedup.engine: local, or turn it off)")
    with ray_session(cfg) as ray:
        return _run(ray, files, out_dir, p, cfg, seed=seed, max_line_bytes=max_line_bytes, plots_path=plots_path,
                    stage=stage, cpus=cluster_cpus(ray))


def _run(ray, files, out_dir, p, cfg, *, seed, max_line_bytes, plots_path, stage, cpus) -> local.Result:
    import pyarrow as pa
    import ray.data as rd

    ctx = rd.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = os.environ.get("DISTILLERY_PROGRESS", "1") != "0"
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    bands, rows = (p.bands, p.rows) if p.bands else choose_banding(p.threshold, p.num_perm, p.lsh_recall)
    settings = Settings(p, seed, bands, rows, max_line_bytes)
    out_dir.mkdir(parents=True, exist_ok=True)
    spill_root = Path(cfg.spill_dir or p.tmp_dir or out_dir)
    spill_root.mkdir(parents=True, exist_ok=True)
    spill_dir = tempfile.mkdtemp(prefix=".dedup-spill-", dir=spill_root)
    t = time.perf_counter()
    index = build_index(p.decontaminate)
    timings["eval_index_s"] = time.perf_counter() - t
    try:
        with Quarantine(out_dir / "quarantine.jsonl", stage) as quarantine:
            # ---- 1. read + prepare on the cluster
            t = time.perf_counter()
            chunks = plan_chunks(files, int(cfg.chunk_mb * 1024 * 1024))
            plan = pa.table({"no": [c.no for c in chunks], "file_no": [c.file_no for c in chunks],
                             "uri": [c.uri for c in chunks], "start": [c.start for c in chunks],
                             "end": [c.end for c in chunks], "gz": [c.gz for c in chunks]})
            index_ref = ray.put(index)
            prepared = (rd.from_arrow(plan).repartition(max(1, len(chunks)))
                        .map_batches(_prepare_udf, batch_size=1, batch_format="numpy",
                                     fn_kwargs={"settings": settings, "index_ref": index_ref,
                                                "spill_dir": spill_dir})
                        .materialize())
            table, base, line_off, lines_in = local.Table(Path(spill_dir) / "table", 0), {}, {}, 0
            for row in prepared.select_columns(["meta"]).iter_rows():
                m = pickle.loads(row["meta"])
                off = line_off.get(m["file_no"], 0)
                line_off[m["file_no"]] = off + m["n_lines"]
                base[m["chunk"]] = table.count
                for batch_no, prep in m["subs"]:
                    prep.lines = prep.lines + off
                    prep.ids = [f"{m['file_no']}:{int(ln)}" if i.startswith(SENTINEL) else i
                                for i, ln in zip(prep.ids, prep.lines)]
                    prep.keys = np.zeros((len(prep.ids), 0), np.uint64)
                    lines_in += len(prep.ids) + len(prep.bad)
                    for ln, reason, raw, detail in prep.bad:
                        src = files[m["file_no"]]
                        if isinstance(raw, dict):
                            quarantine.reject(reason, raw, file=src, line=ln + off, detail=detail)
                        else:
                            quarantine.reject_bad_line(BadLine(reason, ln + off, raw, detail), src)
                    table.add(batch_no, m["file_no"], prep)
            cols, ids, _ = table.freeze()
            n = len(ids)
            timings["prepare_s"] = time.perf_counter() - t
            log.info("dedup[ray]: prepared %d records in %d ranges in %.1fs", n, len(chunks), timings["prepare_s"])
            bad_counts = Counter(quarantine.counts)

            # ---- 2. driver: ranks, exact groups, contamination (the local engine's own code)
            t = time.perf_counter()
            dec = local.Decisions.start(table, ids, index, p)
            rank, status, dup_of, sim = dec.rank, dec.status, dec.dup_of, dec.sim  # marked in place below
            timings["exact_s"] = time.perf_counter() - t

            edges_u = edges_v = np.zeros(0, np.int64)
            pair_sims = np.zeros(0)
            n_candidates = 0
            if p.near and n:
                # ---- 3. shuffle by band key on the cluster
                t = time.perf_counter()
                active = (status == KEEP) & (cols["nsh"] > 0)
                rank_active = np.where(active, rank, -1)
                parts = max(1, 4 * cpus)
                codes_ds = (prepared.select_columns(["chunk", "keys"])
                            .map_batches(explode_keys, batch_format="numpy",
                                         fn_kwargs={"base": base, "rank_ref": ray.put(rank_active), "parts": parts})
                            .groupby("part")
                            .map_groups(pair_partition, batch_format="numpy",
                                        fn_kwargs={"all_pairs_max": p.max_bucket_all_pairs}))
                got = [b["code"] for b in codes_ds.iter_batches(batch_size=None, batch_format="numpy")]
                codes = np.concatenate(got) if got else np.zeros(0, np.int64)
                codes.sort()
                if len(codes):
                    codes = codes[np.concatenate([[True], codes[1:] != codes[:-1]])]
                pairs = np.stack([codes >> 31, codes & ((1 << 31) - 1)], axis=1)
                n_candidates = len(pairs)
                timings["lsh_s"] = time.perf_counter() - t
                # ---- 4. verify on the cluster
                t = time.perf_counter()
                by_rank = records_by_rank(rank)
                u_idx, v_idx = by_rank[pairs[:, 0]], by_rank[pairs[:, 1]]
                pair_sims = _verify(rd, p.verify, cols, u_idx, v_idx, spill_dir, cpus)
                ok = pair_sims >= p.threshold - 1e-12
                edges_u, edges_v = pairs[ok, 0], pairs[ok, 1]
                timings["verify_s"] = time.perf_counter() - t
                # ---- 5. connected components
                t = time.perf_counter()
                if len(edges_u) <= cfg.max_driver_edges:
                    label = components(n, edges_u, edges_v)
                else:
                    label = components_ray(ray, n, edges_u, edges_v)
                need = local.mark_near(label, rank, by_rank, active, status, dup_of, sim, edges_u, edges_v,
                                       pair_sims[ok])
                if len(need):
                    sim[need] = _verify(rd, p.verify, cols, need, dup_of[need], spill_dir, cpus)
                timings["cluster_s"] = time.perf_counter() - t

            # ---- 6. write (driver, streaming the input once more)
            t = time.perf_counter()
            records_out = _write_outputs(chunks, files, out_dir, cols, dec, quarantine)
            timings["write_s"] = time.perf_counter() - t
            t = time.perf_counter()
            clusters, largest, hist = dec.write_reports(out_dir, plots_path, pair_sims, p)
            timings["reports_s"] = time.perf_counter() - t
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)

    metrics = dec.metrics(records_in=lines_in, records_out=records_out, bad_counts=bad_counts, clusters=clusters,
                          largest=largest, candidate_pairs=n_candidates, verified_pairs=int(len(edges_u)))
    metrics.update(bands=bands, rows=rows, num_perm=p.num_perm, threshold=p.threshold, key=p.key, workers=cpus,
                   engine="ray", input_ranges=len(chunks), timings_s={k: round(v, 3) for k, v in timings.items()})
    metrics["wall_s"] = round(time.perf_counter() - t_start, 3)
    metrics["records_per_s"] = round(lines_in / metrics["wall_s"], 1) if metrics["wall_s"] else None
    return local.Result(metrics, hist)


def _prepare_udf(batch, settings, index_ref, spill_dir):
    import ray

    return prepare_chunk(batch, settings, ray.get(index_ref) if index_ref is not None else None, spill_dir)


def _verify(rd, mode: str, cols: dict, u: np.ndarray, v: np.ndarray, spill_dir: str, cpus: int) -> np.ndarray:
    import pyarrow as pa

    if not len(u):
        return np.zeros(0)
    b, l = cols["batch_no"], cols["local"]
    step = max(1000, math.ceil(len(u) / (4 * cpus)))
    tab = pa.table({"ub": b[u], "ul": l[u], "vb": b[v], "vl": l[v]})
    ds = rd.from_arrow(tab).repartition(max(1, math.ceil(len(u) / step)))
    ds = ds.map_batches(verify_block, batch_size=step, batch_format="numpy",
                        fn_kwargs={"mode": mode, "spill_dir": spill_dir})
    return np.concatenate([x["sim"] for x in ds.iter_batches(batch_size=None, batch_format="numpy")])


def _write_outputs(chunks, files, out_dir, cols, decisions: local.Decisions, quarantine) -> int:
    """As `dedup.engine._write_outputs`, reading the input through the same byte ranges (local or S3), one
    range at a time on the driver."""
    fno, lines = cols["file_no"], cols["line"]
    k, n, kept = 0, len(lines), 0
    line_off: dict[int, int] = {}
    with atomic_file(out_dir / "records.jsonl") as w:
        for c in chunks:
            blob = read_chunk(c)
            off = line_off.get(c.file_no, 0)
            n_lines = blob.count(b"\n") + (1 if blob and not blob.endswith(b"\n") else 0)
            line_off[c.file_no] = off + n_lines
            start = k
            while k < n and fno[k] == c.file_no and lines[k] <= off + n_lines:
                k += 1
            if k > start:
                batch = decisions.batch(start, k, lines, files[c.file_no], quarantine.stage)
                kept_lines, rejected, counts = batch.emit(blob, off + 1)
                w.write(kept_lines)
                quarantine.extend(rejected, counts)
                kept += k - start - sum(counts.values())
    return kept
