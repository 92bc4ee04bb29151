"""Read raw rows from .json, .jsonl, .jsonl.gz, .csv and .parquet files, streaming where possible.

Every reader yields `(line, row)` where `line` is the 1-based line (jsonl, csv) or row number
(json array, parquet) and `row` is a dict or a `BadLine` with a reason code, so that bad rows
are quarantined with file:line instead of stopping the stage.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import sys
from pathlib import Path
from typing import Iterator

from ..core.errors import InputError
from ..core.io import UTF8_BOM as BOM, BadLine, iter_jsonl, open_binary, parse_line
from ..core.parallel import line_blocks

SUFFIXES = {".jsonl.gz": "jsonl.gz", ".json.gz": "json", ".jsonl": "jsonl", ".json": "json",
            ".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet"}

Row = tuple[int, "dict | BadLine"]


def detect_format(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return SUFFIXES[suffix]
    return None


def source_files(path: Path, fmt: str = "auto") -> list[Path]:
    """The files of a source: the file itself, or every readable file in a directory (sorted)."""
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                   and (detect_format(p) if fmt == "auto" else detect_format(p) == fmt))
    if not files:
        raise InputError(f"{path}: directory holds no .json/.jsonl/.jsonl.gz/.csv/.parquet files")
    return files


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _too_large(line: int, obj: object, limit: int) -> BadLine | None:
    size = len(json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if size > limit:
        return BadLine("record_too_large", line, "", f"{size} bytes > limit {limit}")
    return None


def read_json(path: Path, max_row_bytes: int) -> Iterator[Row]:
    """A JSON array of objects (loaded whole; arrays are how such files are published)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as e:
        raise InputError(f"{path}: unreadable ({e})") from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not valid UTF-8 at byte {e.start}; a .json array is read whole, "
                         f"so fix or convert it to .jsonl to quarantine bad rows") from None
    if not text.strip():
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if isinstance(data, dict):  # {"data": [...]} / {"train": [...]}: the single list inside
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise InputError(f"{path}: expected a JSON array of objects (or an object holding one array)")
        data = lists[0]
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON array of objects, got {type(data).__name__}")
    for i, obj in enumerate(data, start=1):
        if not isinstance(obj, dict):
            yield i, BadLine("not_an_object", i, json.dumps(obj)[:500], type(obj).__name__)
            continue
        yield i, (_too_large(i, obj, max_row_bytes) or obj)


def read_jsonl(path: Path, max_row_bytes: int) -> Iterator[Row]:
    """JSON lines (plain or gzip); a UTF-8 BOM before the first line is skipped by `iter_jsonl`."""
    yield from iter_jsonl(path, max_line_bytes=max_row_bytes)


def _decoded_lines(fh) -> Iterator[str]:
    """Decode each line on its own so one bad byte spoils one row, not the file."""
    for raw in fh:
        yield raw.decode("utf-8", "surrogateescape")


def read_csv(path: Path, max_row_bytes: int) -> Iterator[Row]:
    """CSV with a header row, streamed by the csv module (quoted multi-line fields work)."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        first = fh.peek(3)[:3] if hasattr(fh, "peek") else b""
        if first == BOM:
            fh.read(3)
        reader = csv.DictReader(_decoded_lines(fh))
        try:
            for row in reader:
                line = reader.line_num
                if None in row:
                    yield line, BadLine("csv_extra_columns", line, str(row.get(None))[:500],
                                        f"{len(row[None])} values beyond the header")
                    continue
                values = [v for v in row.values() if isinstance(v, str)]
                if any(_has_surrogate(v) for v in values):
                    yield line, BadLine("invalid_utf8", line, " | ".join(values)[:500].encode(
                        "utf-8", "replace").decode("utf-8"), "bytes that are not UTF-8")
                    continue
                clean = {k: v for k, v in row.items()}
                yield line, (_too_large(line, clean, max_row_bytes) or clean)
        except csv.Error as e:
            raise InputError(f"{path}:{reader.line_num}: not valid CSV ({e})") from None


def _has_surrogate(s: str) -> bool:
    try:
        s.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def read_parquet(path: Path, max_row_bytes: int, batch_size: int = 1024) -> Iterator[Row]:
    """Parquet in record batches (pyarrow), one dict per row."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises ArrowInvalid/OSError for non-parquet files
        raise InputError(f"{path}: not a readable parquet file ({e.__class__.__name__})") from None
    row = 0
    for batch in pf.iter_batches(batch_size=batch_size):
        for obj in batch.to_pylist():
            row += 1
            yield row, (_too_large(row, obj, max_row_bytes) or obj)


def read_rows(path: Path, fmt: str, max_row_bytes: int) -> Iterator[Row]:
    """Dispatch on the format ("auto" = by suffix)."""
    if fmt == "auto":
        fmt = detect_format(path) or ""
    if path.stat().st_size == 0:
        return iter(())   # no rows in any format (an empty .json or .parquet is not an error to stop on)
    if fmt in ("jsonl", "jsonl.gz"):
        return read_jsonl(path, max_row_bytes)
    if fmt == "json":
        return read_json(path, max_row_bytes)
    if fmt == "csv":
        return read_csv(path, max_row_bytes)
    if fmt == "parquet":
        return read_parquet(path, max_row_bytes)
    raise InputError(f"{path}: cannot tell the format from the suffix; set `format` "
                     f"(json, jsonl, jsonl.gz, csv, parquet)")


RawRow = tuple[int, "bytes | dict | BadLine"]


def read_row_blocks(path: Path, fmt: str, max_row_bytes: int, rows_per_block: int) -> Iterator[list[RawRow]]:
    """`read_rows` in blocks of `rows_per_block`, for a pool to adapt: a JSONL row stays its raw line (the
    worker parses it with `parse_row`, as `read_jsonl` would have), so the reading process does no
    per-row work for the commonest format; other formats come parsed."""
    if fmt == "auto":
        fmt = detect_format(path) or ""
    if fmt in ("jsonl", "jsonl.gz") and path.stat().st_size:
        for _, lines in line_blocks([path], rows_per_block):
            if lines:
                yield lines
        return
    block: list[RawRow] = []
    for row in read_rows(path, fmt, max_row_bytes):
        block.append(row)
        if len(block) >= rows_per_block:
            yield block
            block = []
    if block:
        yield block


def parse_row(row: "bytes | dict | BadLine", line: int, max_row_bytes: int) -> "dict | BadLine":
    """A row of `read_row_blocks` as `read_rows` yields it."""
    return parse_line(row, line, max_row_bytes) if isinstance(row, bytes) else row
