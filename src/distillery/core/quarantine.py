"""Rejected records, with reason codes, and the per-stage counts around them.

One mechanism for every stage (the datatrove filter contract): a check returns None to keep
a record or a reason code to drop it; `StageCounter` counts in / kept / rejected by reason,
and `Quarantine` writes each rejected record with its reason, file and line so nothing is
lost silently. A quarantine counts into its stage's counter, so rejects are counted once.
The gate (`Gate`, `check_reject_rate`) is applied by `StageRun.finish`, never by a stage itself.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import RejectRateError
from .io import AtomicWriter, BadLine, dumps

Check = Callable[[dict], "str | None"]


def entry_head(stage: str, reason: str, file: str | None, line: int | None, detail: str,
               extra: dict) -> dict[str, Any]:
    """A quarantine entry without its record: reason, stage, where it was read, why, and `extra`."""
    entry: dict[str, Any] = {"reason": reason, "stage": stage}
    if file is not None:
        entry["file"] = str(file)
    if line is not None:
        entry["line"] = line
    if detail:
        entry["detail"] = detail[:1000]
    entry.update(extra)
    return entry


def json_entry(stage: str, reason: str, record_json: bytes, *, file: str | None = None, line: int | None = None,
               detail: str = "", **extra: Any) -> str:
    """One quarantine line for a record still in its input form (one valid JSON object, as read): spliced in
    as `record`, not parsed and serialised again. A pure function, so workers can make a batch's lines."""
    head = dumps(entry_head(stage, reason, file, line, detail, extra))
    return head[:-1] + ',"record":' + record_json.decode("utf-8").strip() + "}\n"


class Quarantine:
    """Atomic JSONL file of rejected records: {reason, stage, file, line, detail, record|raw, ...}."""

    def __init__(self, path: str | os.PathLike, stage: str, counter: "StageCounter | None" = None):
        self.path = Path(path)
        self.stage = stage
        self.counter = counter if counter is not None else StageCounter()
        self._w = AtomicWriter(self.path)

    @property
    def counts(self) -> Counter[str]:
        """Rejects by reason: the very counter of the stage (one count, nothing to reconcile)."""
        return self.counter.rejects

    def __enter__(self) -> "Quarantine":
        self._w.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._w.__exit__(*exc)

    def reject(self, reason: str, record: Any = None, *, file: str | None = None,
               line: int | None = None, detail: str = "", **extra: Any) -> None:
        self.counts[reason] += 1
        entry = entry_head(self.stage, reason, file, line, detail, extra)
        if isinstance(record, BadLine):
            entry["raw"] = record.raw
        elif record is not None:
            entry["record"] = record
        self._w.write_record(entry)

    def extend(self, entries: bytes, counts: Counter[str]) -> None:
        """Entries made elsewhere by `json_entry` (a batch's, UTF-8), with their counts by reason."""
        self.counts.update(counts)
        self._w.write_bytes(entries)
        self._w.count += sum(counts.values())

    def extend_from_file(self, path: str | os.PathLike, counts: Counter[str]) -> None:
        """As `extend`, for entries a worker wrote to a file (appended by the kernel where it can)."""
        self.counts.update(counts)
        self._w.append_file(path)
        self._w.count += sum(counts.values())

    def reject_bad_line(self, bad: BadLine, file: str) -> None:
        self.reject(bad.reason, bad, file=file, line=bad.line, detail=bad.detail)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class StageCounter:
    """Counts records in / out and rejects by reason; renders the metrics dict of a stage."""

    def __init__(self) -> None:
        self.records_in = 0
        self.records_out = 0
        self.rejects: Counter[str] = Counter()

    def merge(self, other: "StageCounter") -> None:
        """Add another counter's figures (a worker's, a shard's): typed stats that add up."""
        self.records_in += other.records_in
        self.records_out += other.records_out
        self.rejects.update(other.rejects)

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())

    @property
    def reject_rate(self) -> float:
        return self.rejected / self.records_in if self.records_in else 0.0

    def as_metrics(self) -> dict[str, Any]:
        return {
            "records_in": self.records_in,
            "records_out": self.records_out,
            "rejected": self.rejected,
            "reject_rate": round(self.reject_rate, 6),
            "rejects_by_reason": dict(sorted(self.rejects.items())),
        }


def apply_checks(records: Iterable[dict], checks: list[Check], quarantine: Quarantine,
                 counter: StageCounter) -> Iterator[dict]:
    """Yield records that pass every check; quarantine the rest with the first failing reason
    (the quarantine counts the reject into its counter, which should be `counter`)."""
    for rec in records:
        counter.records_in += 1
        for check in checks:
            reason = check(rec)
            if reason:
                quarantine.reject(reason, rec)
                break
        else:
            counter.records_out += 1
            yield rec


@dataclass(frozen=True)
class Gate:
    """The reject-rate limit a stage runs under, and the params key it came from."""

    max_rate: float
    key: str

    def check(self, stage: str, counter: StageCounter, quarantine_path: str | Path | None) -> None:
        """Stop the stage (exit code 3, one line) when too much of its input was rejected."""
        if counter.records_in and counter.reject_rate > self.max_rate:
            top = ", ".join(f"{r}={n}" for r, n in counter.rejects.most_common(3))
            where = f"; see {quarantine_path}" if quarantine_path else ""
            raise RejectRateError(
                f"{stage}: reject rate {counter.reject_rate:.1%} ({counter.rejected}/{counter.records_in}) exceeds "
                f"{self.key}={self.max_rate:.1%}; top reasons: {top}{where}")
