"""The mix stage: bucket every record, hold out eval ids, sample the production mix and phases.

Two streaming passes; no record is kept in memory between them:

* pass 1 reads, checks and buckets every record and keeps, per accepted record, only a few numbers in
  numpy arrays: where it is (file, line), a 128-bit digest of its id (duplicate ids, tie-breaks), its
  bucket, whether it is held out, and its sampling hashes (the cap hash of a capped bucket and one hash per
  mix that weights its bucket);
* sampling works on those arrays: how many times each record is drawn into each mix (2 bytes a mix), so
  about 31 + 10 x (mixes) bytes a record in all (+8 when a bucket is capped): 89 with the shipped 5 mixes;
* pass 2 re-reads only the lines some output needs, streams eval records straight to eval.jsonl and
  spills every drawn record (and up-sampled copy) to the partition of its mix file that its shuffle hash
  falls in (kept in memory up to a byte budget, else appended to a temp file beside the outputs);
  each mix file is then written partition by partition, each sorted by (shuffle hash, id, copy).

Pass 1's per-record work (parsing, checks, bucket rules, the eval split and the sampling hashes) runs
on a pool of forked workers, a block of lines per job; the parent keeps what has an order or a state
(ids seen, the quarantine, the arrays), so the files are the same bytes whatever the number of workers.
Pass 2 runs in the parent, a block of wanted lines at a time (see `write_mixes` for why).

So peak memory is the arrays (flat in record size) plus the spill budget plus one partition, and the
output is byte-identical to sorting everything in memory.
"""

from __future__ import annotations

import copy
import errno
import json
import logging
import math
import os
import shutil
import tempfile
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..core.digests import DigestSet, id_digest
from ..core.errors import DistilleryError, InputError, ParamsError
from ..core.io import (UTF8_BOM, AtomicWriter, BadLine, dumps, fast_loads, input_files, open_binary,
                       output_error, parse_line, write_json)
from ..core.parallel import BLOCK_LINES, OrderedPool, line_blocks, worker_count
from ..core.quarantine import Gate, Quarantine, StageCounter
from ..core.records import check_record, check_roles
from ..core.stage import progress
from .buckets import BucketAssigner, record_texts
from .config import BucketsParams, MixParams, PhaseParams
from .files import EVAL_FILE, PHASES_DIR, PRODUCTION, PRODUCTION_FILE
from .sample import PhasePlan, capped_pool, draw, hash_key, plan_phase
from .split import is_eval

log = logging.getLogger(__name__)
BLOCK = 512                     # lines checked together (vectorised duplicate-id lookup)
EMBED_BATCH = 256               # records embedded together when the classifier is on
SPILL_BUDGET = 64 << 20         # bytes of drawn records held in memory before spilling to disk
PART_RECORDS = 8192             # records per shuffle partition of a mix file (what is sorted in memory)
_NO_BUCKET = np.iinfo(np.uint16).max


def mix_problem(rec: dict) -> str | None:
    """Reason code when a record cannot be mixed: not of the record model, or a broken role order."""
    invalid = check_record(rec)
    if invalid is not None:
        return invalid.reason
    return check_roles(rec["kind"], rec["messages"], rec.get("chosen"), rec.get("rejected"))


def validate_manifest(buckets: BucketsParams, mix: MixParams) -> None:
    """Every bucket the mix names must be known (cross-section check, one line per problem)."""
    names = set(buckets.names)
    where = [(f"mix.production.weights.{b}", b) for b in mix.production.weights]
    for p, ph in mix.phases.items():
        where += [(f"mix.phases.{p}.weights.{b}", b) for b in ph.weights]
    where += [(f"mix.buckets.{b}", b) for b in mix.buckets]
    for key, b in where:
        if b not in names:
            raise ParamsError(f"{key}: unknown bucket {b!r} (add it to buckets.extra)")


def mixes_of(mix: MixParams) -> dict[str, PhaseParams]:
    """Every mix of the manifest, production first."""
    return {PRODUCTION: mix.production, **mix.phases}


@dataclass
class Pass1:
    """What pass 1 keeps of every accepted record, by record number (accepted records in file order)."""

    names: list[str]                                             # bucket names; `bucket` indexes them
    file: np.ndarray                                             # uint32: index into the input files
    line: np.ndarray                                             # int64: 1-based line number
    digest: np.ndarray                                           # S16: xxh3-128 of the id
    bucket: np.ndarray                                           # uint16
    held_out: np.ndarray                                         # bool: in the eval split
    keys: dict[str, np.ndarray]                                  # "cap" / mix name -> uint64 hashes
    how: Counter = field(default_factory=Counter)                # assignment method -> count

    @property
    def n(self) -> int:
        return len(self.file)


class _Pass1Builder:
    """Grows the Pass1 columns in compact `array`s (no per-record Python objects). Its settings half
    (`sampling`) is what the workers use to work out a record's hashes."""

    def __init__(self, names: list[str], mix: MixParams, seed: int):
        self.names = names
        self.code = {b: i for i, b in enumerate(names)}
        self.mix, self.seed = mix, seed
        self.file, self.line, self.bucket = array("I"), array("q"), array("H")
        self.held_out, self.digest = bytearray(), bytearray()
        capped = {b for b, pol in mix.buckets.items() if pol.cap}
        weighted = {name: {b for b, w in ph.weights.items() if w > 0} for name, ph in mixes_of(mix).items()}
        self.key_buckets = {**({"cap": capped} if capped else {}), **weighted}   # key name -> buckets it covers
        self.keys = {k: array("Q") for k in self.key_buckets}
        self.how: Counter = Counter()

    def held(self, rid: str) -> bool:
        return is_eval(rid, self.mix.eval_fraction, self.mix.eval_salt)

    def sampling(self, rid: str, bucket: str, held: bool) -> tuple[int, ...]:
        """The record's hashes, one per key (0 where its bucket has none): a held-out record is never sampled."""
        if held:
            return (0,) * len(self.key_buckets)
        return tuple(hash_key(self.seed, k, rid) if bucket in bs else 0 for k, bs in self.key_buckets.items())

    def __len__(self) -> int:
        return len(self.file)

    def add_block(self, fi: int, rows: list[tuple[int, bytes, bool, str | None, tuple[int, ...] | None]]) -> None:
        """Append a block's accepted records of file `fi`: (line, id digest, held out, bucket, hashes); bucket
        and hashes None when the embedding classifier decides later (`set_bucket`)."""
        if not rows:
            return
        lines, digests, held, buckets, keys = zip(*rows)
        self.file.extend([fi] * len(rows))
        self.line.extend(lines)
        self.digest += b"".join(digests)
        self.held_out += bytes(held)
        self.bucket.extend(_NO_BUCKET if b is None else self.code[b] for b in buckets)
        zero = (0,) * len(self.keys)
        for col, values in zip(self.keys.values(), zip(*(k or zero for k in keys))):
            col.extend(values)

    def set_bucket(self, slot: int, rid: str, bucket: str) -> None:
        self.bucket[slot] = self.code[bucket]
        for k, v in zip(self.keys.values(), self.sampling(rid, bucket, bool(self.held_out[slot]))):
            k[slot] = v

    def build(self) -> Pass1:
        return Pass1(self.names, np.frombuffer(self.file, dtype=np.uint32), np.frombuffer(self.line, dtype=np.int64),
                     np.frombuffer(bytes(self.digest), dtype="S16"), np.frombuffer(self.bucket, dtype=np.uint16),
                     np.frombuffer(bytes(self.held_out), dtype=bool),
                     {k: np.frombuffer(v, dtype=np.uint64) for k, v in self.keys.items()}, self.how)


@dataclass
class _Shared:
    """What pass 1's per-record work needs; set before its pool forks, so the workers inherit it."""

    assigner: BucketAssigner
    builder: _Pass1Builder
    bparams: BucketsParams
    max_line_bytes: int


_SHARED: list[_Shared | None] = [None]


def _bucket_lines(lines: list[tuple[int, bytes]]) -> list[tuple[int, Any, Any]]:
    """Pass 1's per-record work on a block of lines, in a worker: parse, check, the id's digest, the bucket
    rules, the eval split and the sampling hashes. Per line (line, BadLine or reject reason or None, None or
    (digest, id, bucket, how, held, hashes, prompt text)); when the embedding classifier decides, the prompt
    text is there, the hashes are None and the bucket is its fallback. Only verdicts go back, not records."""
    sh = _SHARED[0]
    assert sh is not None
    embed = sh.bparams.embedding.enabled
    out: list[tuple[int, Any, Any]] = []
    for ln, raw in lines:
        obj = parse_line(raw, ln, sh.max_line_bytes)
        if isinstance(obj, BadLine):
            out.append((ln, obj, None))
            continue
        reason = mix_problem(obj)
        if reason is not None:
            out.append((ln, reason, None))
            continue
        rid = obj["id"]
        bucket, how = sh.assigner.assign(obj)
        held = sh.builder.held(rid)
        text, keys = None, None
        if bucket is None or how == "refine":
            if embed:
                text = record_texts(obj)[0]
            how = how or "default"
            bucket = bucket or sh.bparams.default
        if text is None:
            keys = sh.builder.sampling(rid, bucket, held)
        out.append((ln, None, (id_digest(rid), rid, bucket, how, held, keys, text)))
    return out


def bucket_pass(files: list[Path], bparams: BucketsParams, builder: _Pass1Builder, max_line_bytes: int,
                pool: OrderedPool, quarantine: Quarantine, counter: StageCounter) -> Pass1:
    """Pass 1: check, de-duplicate (first occurrence of an id wins) and bucket every record."""
    known = set(builder.names)
    out = builder
    seen = DigestSet()
    pending: list[tuple[int, str, str, str]] = []                # (slot, id, prompt text, fallback bucket)
    clf = None

    def embed_pending() -> None:
        nonlocal clf
        if clf is None:
            from .embed import CentroidClassifier

            clf = CentroidClassifier(bparams.embedding)
        for (slot, rid, _, fallback), b in zip(pending, clf.predict([t for _, _, t, _ in pending])):
            out.set_bucket(slot, rid, b or fallback)
            out.how["embedding" if b else "fallback"] += 1
        pending.clear()

    bar = progress(desc="mix: bucket")
    blocks = (((fi, lines), lines) for fi, lines in line_blocks(files, BLOCK))
    for (fi, lines), results in pool.map(_bucket_lines, blocks):
        f = str(files[fi])
        bar.update(len(lines))
        counter.records_in += len(lines)
        good = [j for j, r in enumerate(results) if r[1] is None]
        first = seen.first_seen(results[j][2][0] for j in good)
        duplicate = {j for j, is_first in zip(good, first) if not is_first}
        accepted: list[tuple[int, bytes, bool, str | None, tuple[int, ...] | None]] = []
        for j, ((lineno, raw), (_, problem, info)) in enumerate(zip(lines, results)):
            if isinstance(problem, BadLine):
                quarantine.reject_bad_line(problem, f)
                continue
            if problem is not None or j in duplicate:   # the record itself goes to the quarantine
                quarantine.reject(problem or "duplicate_id", parse_line(raw, lineno, max_line_bytes),
                                  file=f, line=lineno)
                continue
            d, rid, bucket, how, held, keys, text = info
            if bucket not in known:
                quarantine.reject("unknown_bucket", parse_line(raw, lineno, max_line_bytes),
                                  detail=f"bucket {bucket!r} is not in the buckets list")
                continue
            if text is not None:                                 # the embedding classifier decides
                pending.append((len(out) + len(accepted), rid, text, bucket))
                accepted.append((lineno, d, held, None, None))
                continue
            accepted.append((lineno, d, held, bucket, keys))
            out.how[how.split("[")[0]] += 1
        out.add_block(fi, accepted)
        if len(pending) >= EMBED_BATCH:
            embed_pending()
    bar.close()
    if pending:
        embed_pending()
    return out.build()


@dataclass
class Draws:
    """The sampling result: per mix, its plan and how many times each record is drawn (by record number)."""

    plans: dict[str, PhasePlan]
    times: dict[str, np.ndarray]
    sizes: dict[str, int]                                        # bucket -> records not held out
    in_pool: np.ndarray                                          # bool: within its bucket's cap


def plan_all(p1: Pass1, mix: MixParams) -> Draws:
    """Plans and draw counts of every mix, production first. Within a bucket the records with the smallest
    (seed, mix, id) hash are drawn (a capped pool keeps the smallest (seed, "cap", id) hashes); ties of the
    64-bit hash, never seen in practice, are broken by the id digest."""
    eligible = ~p1.held_out
    by_bucket = {b: np.flatnonzero(eligible & (p1.bucket == i)) for i, b in enumerate(p1.names)}
    by_bucket = {b: idx for b, idx in by_bucket.items() if len(idx)}
    sizes = {b: len(idx) for b, idx in sorted(by_bucket.items())}
    in_pool = np.zeros(p1.n, dtype=bool)
    pools = {}
    for b, idx in sorted(by_bucket.items()):
        pol = mix.buckets.get(b)
        cap = pol.cap if pol else None
        pools[b] = capped_pool(idx, cap, p1.keys.get("cap"), p1.digest) if cap else idx
        in_pool[pools[b]] = True
    plans, times = {}, {}
    for name, ph in mixes_of(mix).items():
        plan = plan_phase(name, ph, sizes, mix.buckets, mix.redistribute_shortfall)
        t = np.zeros(p1.n, dtype=np.int64)
        for b, bp in plan.buckets.items():
            pool = pools.get(b, np.zeros(0, dtype=np.int64))
            drawn = draw(pool, bp.realised, p1.keys[name], p1.digest)
            t[pool] += drawn
            bp.repeats = int(bp.realised - min(bp.realised, len(pool)))
        plans[name] = plan
        times[name] = t.astype(np.uint16 if t.max(initial=0) < 1 << 16 else np.uint32)
    return Draws(plans, times, sizes, in_pool)


def composition(plans: dict[str, PhasePlan], mix: MixParams | None = None) -> dict[str, Any]:
    """The realised-vs-target table of every mix (data/mix/composition.json)."""
    manifest = mixes_of(mix) if mix is not None else {}
    out: dict[str, Any] = {}
    for name, plan in plans.items():
        total = plan.realised
        rows = {}
        for b, bp in plan.buckets.items():
            rows[b] = {"weight": round(bp.weight, 6), "target": bp.target, "available": bp.available,
                       "limit": bp.limit, "realised": bp.realised, "repeats": bp.repeats,
                       "target_share": round(bp.target / plan.size, 6) if plan.size else 0.0,
                       "realised_share": round(bp.realised / total, 6) if total else 0.0, "short": bp.short}
        out[name] = {"size": plan.size, "realised": total, "short_buckets": sorted(b for b, r in rows.items()
                                                                                   if r["short"]),
                     "buckets": rows}
        if name in manifest and manifest[name].size is None:
            out[name]["size_from"] = "data"
    return out


def plot_rows(comp: dict[str, Any]) -> list[dict[str, Any]]:
    """Long-format rows for the dvc bar plot: one target and one realised bar per phase/bucket."""
    rows = []
    for name, c in comp.items():
        for b, r in c["buckets"].items():
            for series, share in (("target", r["target_share"]), ("realised", r["realised_share"])):
                rows.append({"label": f"{name} / {b} / {series}", "phase": name, "bucket": b, "series": series,
                             "share": share, "count": r["target"] if series == "target" else r["realised"]})
    return rows


def _copy_for(rec: dict, copy_no: int, phase: str) -> dict:
    out = copy.copy(rec)
    out["lineage"] = list(rec.get("lineage") or []) + [{"stage": "mix", "phase": phase, "copy": copy_no}]
    if copy_no:
        out["id"] = f"{rec['id']}~r{copy_no}"
        out["mix_copy_of"] = rec["id"]
    return out


def _spill_error(path: Path, e: OSError) -> Exception:
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM, errno.EFBIG):
        return output_error(path, e)
    return e


class Spill:
    """The drawn records of every mix file, put in their final order with bounded memory.

    A record goes to the partition of its file that its shuffle hash falls in (partitions split the
    64-bit hash range evenly, ~`part_records` records each), as one text line `hash TAB copy TAB id (JSON)
    TAB record`; each block of records comes in as one string per partition. Partitions live in
    memory until the buffered text passes `budget` bytes, then every buffer is appended to its temp file.
    `write` sorts one partition at a time by (hash, id, copy): the order of one in-memory sort of the
    whole file.
    """

    def __init__(self, folder: Path, totals: dict[str, int], budget: int = SPILL_BUDGET,
                 part_records: int = PART_RECORDS):
        self.folder, self.budget = folder, budget
        self.parts = {name: max(1, math.ceil(n / part_records)) for name, n in totals.items()}
        self.buf: dict[str, list[list[str]]] = {n: [[] for _ in range(p)] for n, p in self.parts.items()}
        self.held = 0
        self.dir: Path | None = None
        self.spilled_bytes = 0

    @staticmethod
    def line(key: int, rid: str, copy_no: int, record_line: str) -> str:
        return f"{key}\t{copy_no}\t{json.dumps(rid)}\t{record_line}\n"

    def add(self, name: str, part: int, text: str) -> None:
        """Lines (`Spill.line`) of partition `part` of mix `name`."""
        self.buf[name][part].append(text)
        self.held += len(text)
        if self.held > self.budget:
            self.flush()

    def _file(self, name: str, p: int) -> Path:
        assert self.dir is not None
        return self.dir / f"{len(name)}-{name}.{p}"

    def flush(self) -> None:
        if self.dir is None:
            try:
                self.dir = Path(tempfile.mkdtemp(prefix=f".mix-spill.{os.getpid()}-", suffix=".tmp",
                                                 dir=self.folder))
            except OSError as e:
                raise _spill_error(self.folder, e) from None
        for name, parts in self.buf.items():
            for p, texts in enumerate(parts):
                if not texts:
                    continue
                data = "".join(texts).encode("utf-8")
                try:
                    with open(self._file(name, p), "ab") as fh:
                        fh.write(data)
                except OSError as e:
                    raise _spill_error(self.folder, e) from None
                self.spilled_bytes += len(data)
                texts.clear()
        self.held = 0

    def write(self, name: str, writer: AtomicWriter) -> None:
        for p in range(self.parts[name]):
            texts = self.buf[name][p]
            if self.dir is not None and self._file(name, p).exists():
                texts.insert(0, self._file(name, p).read_bytes().decode("utf-8"))
            rows = "".join(texts).split("\n")
            rows.pop()
            self.buf[name][p] = []
            keys = np.array([int(r[:r.index("\t")]) for r in rows], dtype=np.uint64)
            order = np.argsort(keys, kind="stable").tolist()
            if (np.diff(keys[order]) == 0).any():                # equal 64-bit hashes: by (hash, id, copy)
                cols = [r.split("\t", 3) for r in rows]
                order = sorted(order, key=lambda i: (int(cols[i][0]), json.loads(cols[i][2]), int(cols[i][1])))
            for s in range(0, len(order), 1024):               # a chunk at a time: no second copy of the partition
                writer.write("".join([rows[i].split("\t", 3)[3] + "\n" for i in order[s:s + 1024]]))
            writer.count += len(rows)

    def close(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def _raw_lines(path: Path, wanted: Iterator[tuple]) -> Iterator[tuple[tuple, bytes]]:
    """(item, raw line) for every item of `wanted` ((line number, ...), ascending lines) of a file pass 1
    accepted; the other lines are skipped, not parsed. A leading BOM is taken off as `iter_jsonl` does."""
    item = next(wanted, None)
    if item is None:
        return
    with open_binary(path) as fh:
        try:
            for lineno, raw in enumerate(fh, start=1):
                if lineno != item[0]:
                    continue
                if lineno == 1 and raw.startswith(UTF8_BOM):
                    raw = raw[len(UTF8_BOM):]
                yield item, raw
                item = next(wanted, None)
                if item is None:
                    return
        except (OSError, EOFError, ValueError) as e:
            raise InputError(f"{path}: unreadable on the second pass ({e})") from e
    raise InputError(f"{path}: shorter on the second pass than on the first (changed while mixing?)")


def _draw_block(items: list[tuple[int, bytes, bytes, str, bool, tuple[int, ...]]], path: Path, names: list[str],
                parts: list[int], assigner: BucketAssigner, seed: int) -> tuple[str, int, list[dict[int, str]]]:
    """Pass 2's per-record work on a block of wanted lines of `path`, (line, raw, id digest, bucket, held out,
    draws per mix) each: parse the line again, check it is the record pass 1 saw, write its bucket on it, and
    turn it into its eval line or its copies' spill lines. Returns (eval lines, how many, per mix
    {partition: spill lines}): one string per partition per block, not one object per record."""
    evals: list[str] = []
    spill: list[dict[int, list[str]]] = [{} for _ in names]
    for lineno, raw, digest, bucket, held, drawn in items:
        try:
            rec = fast_loads(raw)
            if type(rec) is not dict:
                rec = json.loads(raw.decode("utf-8"))
        except ValueError:
            rec = None
        rid = rec.get("id") if isinstance(rec, dict) else None
        if not isinstance(rid, str) or id_digest(rid) != digest:
            raise InputError(f"{path}:{lineno}: not the record read on the first pass (the file changed while "
                             "mixing); run the stage again")
        assigner.finalize(rec, bucket)
        if held:
            evals.append(dumps(_copy_for(rec, 0, "eval")) + "\n")
            continue
        for m, (name, t) in enumerate(zip(names, drawn)):
            for c in range(t):
                key = hash_key(seed, name, "order", rid, c)
                spill[m].setdefault((key * parts[m]) >> 64, []).append(
                    Spill.line(key, rid, c, dumps(_copy_for(rec, c, name))))
    return "".join(evals), len(evals), [{p: "".join(v) for p, v in d.items()} for d in spill]


def _wanted(p1: Pass1, which: np.ndarray, times: list[np.ndarray], chunk: int = 1 << 16) -> Iterator[tuple]:
    """(line, id digest, bucket, held out, draws per mix) of the records `which`, converted to Python a chunk
    at a time (not one numpy scalar at a time)."""
    names = np.array(p1.names, dtype=object)
    for s in range(0, len(which), chunk):
        part = which[s:s + chunk]
        blob = p1.digest[part].tobytes()        # not .tolist(): numpy drops a digest's trailing NUL bytes
        per_mix = [t[part].tolist() for t in times]
        rows = zip(p1.line[part].tolist(), names[p1.bucket[part]].tolist(), p1.held_out[part].tolist(),
                   zip(*per_mix) if per_mix else ((),) * len(part))
        for k, (line, bucket, held, drawn) in enumerate(rows):
            yield line, blob[16 * k:16 * k + 16], bucket, held, drawn


def unused_stats(p1: Pass1, draws: Draws, mix: MixParams) -> dict[str, Any]:
    """Eligible records (not held out) that are in no mix file, by reason and by bucket."""
    eligible = ~p1.held_out
    used = np.zeros(p1.n, dtype=bool)
    for t in draws.times.values():
        used |= t > 0
    unused = eligible & ~used
    weighted = {b for ph in mixes_of(mix).values() for b, w in ph.weights.items() if w > 0}
    is_weighted = np.isin(p1.bucket, [i for i, b in enumerate(p1.names) if b in weighted])
    n_eligible, n_unused = int(eligible.sum()), int(unused.sum())
    by_bucket = np.bincount(p1.bucket[unused], minlength=len(p1.names))
    return {
        "eligible_records": n_eligible, "unused_eligible": n_unused,
        "unused_share": round(n_unused / n_eligible, 6) if n_eligible else 0.0,
        "unused": {"by_reason": {"not_drawn": int((unused & is_weighted & draws.in_pool).sum()),
                                 "over_cap": int((unused & is_weighted & ~draws.in_pool).sum()),
                                 "unweighted": int((unused & ~is_weighted).sum())},
                   "by_bucket": {b: int(n) for b, n in zip(p1.names, by_bucket.tolist()) if n}},
    }


def unused_warning(metrics: dict[str, Any], mix: MixParams) -> str | None:
    """One line when more than `mix.warn_unused_share` of the eligible records are in no mix file."""
    share = metrics.get("unused_share", 0.0)
    if share <= mix.warn_unused_share:
        return None
    why = metrics["unused"]["by_reason"]
    size = mix.production.size
    fix = []
    if why["not_drawn"]:
        fix.append("mix.production.size: null uses every eligible record" if size is not None
                   else "give their buckets more weight or a bigger phase")
    if why["over_cap"]:
        fix.append("raise mix.buckets.<bucket>.cap")
    if why["unweighted"]:
        fix.append("give their buckets a weight in a mix")
    return (f"warning: mix: {metrics['unused_eligible']:,} of {metrics['eligible_records']:,} eligible records "
            f"({share:.1%}) are in no training file: production has {metrics['production_records']:,} records "
            f"(mix.production.size: {'null' if size is None else size}); not drawn {why['not_drawn']:,}, over a "
            f"bucket cap {why['over_cap']:,}, in no mix's weights {why['unweighted']:,} ({'; '.join(fix)})")


def _wanted_blocks(files: list[Path], p1: Pass1, draws: Draws, needed: np.ndarray, names: list[str]
                   ) -> Iterator[tuple[Path, list[tuple]]]:
    """(file, block) of the wanted lines of every file, `BLOCK_LINES` at a time, each line with what pass 1
    decided about it (for `_draw_block`)."""
    times = [draws.times[n] for n in names]
    for fi, f in enumerate(files):
        lo, hi = np.searchsorted(p1.file, [fi, fi + 1])         # records are in file order
        which = lo + np.flatnonzero(needed[lo:hi])
        block: list[tuple] = []
        for (lineno, *decided), raw in _raw_lines(f, _wanted(p1, which, times)):
            block.append((lineno, raw, *decided))
            if len(block) >= BLOCK_LINES:
                yield f, block
                block = []
        if block:
            yield f, block


def run_mix(inputs: list[str | Path], output: str | Path, bparams: BucketsParams, mix: MixParams, seed: int,
            max_line_bytes: int, gate: Gate, plots_dir: str | Path | None, *,
            counter: StageCounter | None = None, spill_budget: int = SPILL_BUDGET,
            part_records: int = PART_RECORDS) -> dict[str, Any]:
    """Run the whole stage; returns the metrics dict. The gate is checked after pass 1, before any writing."""
    validate_manifest(bparams, mix)
    names = list(bparams.names)
    if len(names) >= _NO_BUCKET:
        raise ParamsError(f"buckets.extra: at most {_NO_BUCKET - 1} buckets")
    files = input_files(inputs)
    if not files:
        raise DistilleryError(f"{', '.join(map(str, inputs))}: no records.jsonl found")
    out = Path(output)
    counter = counter if counter is not None else StageCounter()
    builder = _Pass1Builder(names, mix, seed)
    assigner = BucketAssigner(bparams)
    _SHARED[0] = _Shared(assigner, builder, bparams, max_line_bytes)
    try:
        with OrderedPool(1 if mix.workers == 1 else worker_count(mix.workers, files)) as pool, \
                Quarantine(out / "quarantine.jsonl", "mix", counter) as q:
            p1 = bucket_pass(files, bparams, builder, max_line_bytes, pool, q, counter)
    finally:
        _SHARED[0] = None
    gate.check("mix", counter, out / "quarantine.jsonl")
    draws = plan_all(p1, mix)
    comp = composition(draws.plans, mix)
    short = {n: c["short_buckets"] for n, c in comp.items() if c["short_buckets"]}
    for n, bs in short.items():
        log.warning("mix %s: short buckets %s (realised < target)", n, ", ".join(bs))
    if mix.strict and short:
        n, bs = next(iter(short.items()))
        b = bs[0]
        r = comp[n]["buckets"][b]
        raise DistilleryError(f"mix.strict: phase {n!r} bucket {b!r} has {r['realised']} of its {r['target']} "
                              f"target records ({r['available']} available); lower the weight or allow upsampling")
    counts = write_mixes(files, out, p1, draws, assigner, seed, spill_budget, part_records)
    write_json(out / "composition.json", comp)
    if plots_dir is not None:
        write_json(Path(plots_dir) / "mix_composition.json", plot_rows(comp))
    counter.records_out = counts[PRODUCTION]
    metrics = counter.as_metrics()
    metrics.update({
        "eval_records": counts[EVAL_FILE], "production_records": counts[PRODUCTION],
        **unused_stats(p1, draws, mix),
        "bucketed_by": dict(sorted(p1.how.items())), "pool": dict(sorted(draws.sizes.items())),
        "phases": {n: {"size": c["size"], "realised": c["realised"], "short_buckets": len(c["short_buckets"]),
                       "share": {b: {"target": r["target_share"], "realised": r["realised_share"]}
                                 for b, r in c["buckets"].items()}}
                   for n, c in comp.items()},
    })
    return metrics


def write_mixes(files: list[Path], out: Path, p1: Pass1, draws: Draws, assigner: BucketAssigner, seed: int,
                spill_budget: int, part_records: int) -> dict[str, int]:
    """Pass 2: eval.jsonl in input order, then every mix file in its shuffle order; records written per file.
    It runs in this process: on 2 cores, a pool that sent the wanted lines out and the spill lines back cost
    more CPU in the pipes than it saved (86 against 69 CPU s at 600K), and its idle workers ~100 MB."""
    totals = {name: plan.realised for name, plan in draws.plans.items()}
    drawn_any = np.zeros(p1.n, dtype=bool)
    for t in draws.times.values():
        drawn_any |= t > 0
    needed = p1.held_out | drawn_any
    out.mkdir(parents=True, exist_ok=True)
    spill = Spill(out, totals, spill_budget, part_records)
    names = list(draws.times)
    parts = [spill.parts[n] for n in names]
    counts = {}
    try:
        with AtomicWriter(out / EVAL_FILE) as ev:
            bar = progress(desc="mix: write", total=int(needed.sum()))
            for f, block in _wanted_blocks(files, p1, draws, needed, names):
                ev_text, n_ev, per_mix = _draw_block(block, f, names, parts, assigner, seed)
                ev.write(ev_text)
                ev.count += n_ev
                for name, by_part in zip(names, per_mix):
                    for part, text in by_part.items():
                        spill.add(name, part, text)
                bar.update(len(block))
            bar.close()
        counts[EVAL_FILE] = ev.count
        for name in draws.plans:
            path = out / PRODUCTION_FILE if name == PRODUCTION else out / PHASES_DIR / f"{name}.jsonl"
            with AtomicWriter(path) as w:
                spill.write(name, w)
            counts[name] = w.count
    finally:
        spill.close()
    if spill.spilled_bytes:
        log.info("mix: spilled %.1f MB of drawn records to disk to write them in order", spill.spilled_bytes / 2**20)
    return counts
