"""What the dedup parent keeps per record, written to disk as the batches arrive.

At 1.2M records the parent held ~0.5 KB a record: 13 band keys, a Python string per id, and the batch parts
of every column, whose freed heap the allocator kept after they were joined. Here every column is appended
to a file as its batch arrives; only the columns the whole run needs (HELD) are read back, each in one
allocation, the others when a step asks for them; band keys are read one band at a time by LSH; ids stay in
their file, read and decoded only for the records written out.
"""

from __future__ import annotations

import os
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from ..core.io import output_error
from .cluster import source_ranks

# per-record scalar columns and their on-disk dtype
SCALARS = {"file_no": np.int32, "line": np.int64, "batch_no": np.int32, "local": np.int32,
           "scores": np.float64, "hi": np.uint64, "lo": np.uint64, "nsh": np.int32}
HELD = ("line", "batch_no", "local")            # in memory for the run (verification, writing); the other columns
KEEP_POLICY_INPUTS = ("scores", "hi", "lo")    # are read from disk when used: once or twice a run each
_ID_SORT_WIDTH = 64      # ids up to this many UTF-8 bytes are sorted as fixed-width bytes, longer ones as str
_ID_SORT_CHUNK = 1 << 16


@contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """A write or close that fails inside the block (a full disk) stops with one line naming `path`."""
    try:
        yield
    except OSError as e:
        raise output_error(path, e) from None


def write_array(path: str | Path, data: np.ndarray | bytes) -> None:
    """Write an array's bytes (or bytes) to a spill file. Not `ndarray.tofile`: on a full disk it raises an
    OSError with no errno or path ("N requested and M written")."""
    with naming(path), open(path, "wb") as fh:
        fh.write(data if isinstance(data, bytes) else memoryview(np.ascontiguousarray(data)))


class Ids:
    """Record ids: their UTF-8 bytes stay in the table's file, their end offsets in memory (8 bytes a record,
    against ~32 for a blob and ~80 for Python strings); an id is read (`pread`) only when a record that names
    it is written out."""

    def __init__(self, path: str | Path, ends: np.ndarray):
        self.path, self.ends = str(path), ends
        self._fd: int | None = None

    def __len__(self) -> int:
        return len(self.ends)

    def _bytes(self, start: int, stop: int) -> bytes:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
            weakref.finalize(self, os.close, self._fd)
        return os.pread(self._fd, stop - start, start)

    def starts(self, idx: np.ndarray) -> np.ndarray:
        """Where the ids of the records `idx` begin in the file (each ends where the next begins)."""
        idx = np.asarray(idx, np.int64)
        return np.where(idx > 0, self.ends[np.maximum(idx - 1, 0)], 0)

    def __getitem__(self, i: Any) -> str:
        i = int(i)                                     # scalar arithmetic: numpy's is slower for one id
        return self._bytes(int(self.ends[i - 1]) if i else 0, int(self.ends[i])).decode("utf-8", "surrogatepass")

    def many(self, idx: Any) -> list[str]:
        """The ids of the records `idx` (no per-id index arithmetic in Python)."""
        idx = np.asarray(idx, np.int64)
        return [self._bytes(a, b).decode("utf-8", "surrogatepass")
                for a, b in zip(self.starts(idx).tolist(), self.ends[idx].tolist())]

    def order(self) -> np.ndarray:
        """Stable argsort of the ids in Python's str order. UTF-8 bytes sort as code points do, so short ids
        are sorted as NUL-padded bytes (one id holding a NUL would tie with its padding: then, and for long
        ids, the strings are sorted)."""
        n = len(self)
        blob = Path(self.path).read_bytes()            # for the sort only
        lens = np.diff(self.ends, prepend=0)
        width = int(lens.max()) if n else 0
        raw = np.frombuffer(blob, np.uint8)
        if width > _ID_SORT_WIDTH or not width or raw.min() == 0:
            starts = self.starts(np.arange(n)).tolist()
            return np.argsort(np.array([blob[a:b].decode("utf-8", "surrogatepass")
                                        for a, b in zip(starts, self.ends.tolist())], dtype=object), kind="stable")
        if int(lens.min()) == width:                   # one length (hash or counter ids): the blob is the array
            return np.argsort(np.frombuffer(blob, f"S{width}"), kind="stable")
        fixed = np.zeros((n, width), np.uint8)
        for s in range(0, n, _ID_SORT_CHUNK):          # chunked scatter: small temporaries
            ln = lens[s:s + _ID_SORT_CHUNK]
            first = int(self.starts(s))
            part = raw[first:int(self.ends[min(s + _ID_SORT_CHUNK, n) - 1])]
            row = np.repeat(np.arange(s, s + len(ln)), ln)
            col = np.arange(len(part)) - np.repeat(np.cumsum(ln) - ln, ln)
            fixed[row, col] = part
        return np.argsort(fixed.view(f"S{width}").ravel(), kind="stable")


class BandKeys:
    """The LSH band keys on disk, one file per band (8 bytes a record each)."""

    def __init__(self, paths: list[Path]):
        self.paths = paths

    @staticmethod
    def read(path: str | Path, rows: np.ndarray) -> np.ndarray:
        """One band's keys of `rows`."""
        return np.fromfile(path, np.uint64)[rows]

    def columns(self, rows: np.ndarray) -> Iterator[np.ndarray]:
        """Each band's keys of `rows`, one band in memory at a time."""
        for path in self.paths:
            yield self.read(path, rows)


class Table:
    """Per good record: the scalars of SCALARS, its id, source and band keys (appended to files in
    `directory`), plus the eval hits (few, kept in memory)."""

    def __init__(self, directory: Path, bands: int):
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.count = 0
        self.hits: list[tuple[int, int, str, float]] = []
        self.source_names: dict[str, int] = {}
        names = [*SCALARS, "source", "id_len", "ids", *(f"band{b:02d}" for b in range(bands))]
        self._fh: dict[str, BinaryIO] = {name: open(directory / name, "wb") for name in names}

    def _append(self, name: str, data: bytes) -> None:
        with naming(self.dir / name):
            self._fh[name].write(data)

    def add(self, batch_no: int, file_no: int, prep: Any) -> None:
        n = len(prep.ids)
        cols = {"file_no": np.full(n, file_no), "line": prep.lines, "batch_no": np.full(n, batch_no),
                "local": np.arange(n), "scores": prep.scores, "hi": prep.hi, "lo": prep.lo, "nsh": prep.n_shingles}
        for name, dtype in SCALARS.items():
            self._append(name, np.asarray(cols[name], dtype=dtype).tobytes())
        codes = [self.source_names.setdefault(s, len(self.source_names)) for s in prep.sources]
        self._append("source", np.array(codes, np.int32).tobytes())
        encoded = [i.encode("utf-8", "surrogatepass") for i in prep.ids]
        self._append("id_len", np.fromiter(map(len, encoded), np.int64, count=n).tobytes())
        self._append("ids", b"".join(encoded))
        for b in range(prep.keys.shape[1]):
            self._append(f"band{b:02d}", np.ascontiguousarray(prep.keys[:, b], dtype=np.uint64).tobytes())
        self.hits.extend((self.count + d, i, m, o) for d, i, m, o in prep.hits)
        self.count += n

    def close(self) -> None:
        for name, fh in self._fh.items():
            with naming(self.dir / name):
                fh.close()

    def freeze(self) -> tuple["Columns", Ids, BandKeys]:
        """(scalar columns, ids, band keys) for the rest of the run. Only the HELD columns are read back (each
        in one allocation); any other is read from disk when looked up, and dropped by its user. The keep
        policy's inputs (KEEP_POLICY_INPUTS, 24 bytes a record) are read by `Decisions.start` alone."""
        self.close()
        cols = Columns(self, {name: self.column(name) for name in HELD})
        ids = Ids(self.dir / "ids", np.cumsum(np.fromfile(self.dir / "id_len", np.int64)))
        return cols, ids, BandKeys([self.dir / name for name in self._fh if name.startswith("band")])

    def column(self, name: str) -> np.ndarray:
        """One scalar column of every record (after `freeze`)."""
        return np.fromfile(self.dir / name, SCALARS[name])

    def source_rank(self, source_priority: list[str]) -> np.ndarray:
        """Each record's source's place in `source_priority` (after `freeze`)."""
        names = sorted(self.source_names, key=self.source_names.get)
        return source_ranks(names, source_priority)[np.fromfile(self.dir / "source", np.int32)]


class Columns(dict):
    """The HELD columns; looking up any other SCALARS column reads it from the frozen table (not kept)."""

    def __init__(self, table: Table, held: dict[str, np.ndarray]):
        super().__init__(held)
        self.table = table

    def __missing__(self, name: str) -> np.ndarray:
        if name not in SCALARS:
            raise KeyError(name)
        return self.table.column(name)
