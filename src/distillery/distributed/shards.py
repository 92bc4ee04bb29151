"""Sharded input for cluster engines: local paths or S3 URLs, split into byte ranges at line ends.

A line belongs to the range that holds its first byte, so ranges can be read independently by any
worker and together give every line exactly once. Gzip files cannot be split: one range each.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..core.errors import InputError
from ..core.io import input_files, split_lines

_TAIL = 1 << 20


def _fs(uri: str):
    import pyarrow.fs as pafs

    if "://" in uri:
        fs, path = pafs.FileSystem.from_uri(uri)
        return fs, path
    return pafs.LocalFileSystem(), str(Path(uri).resolve())


def list_inputs(inputs: list[str], name: str = "records.jsonl") -> list[str]:
    """Local paths as `io.input_files` expands them; an s3:// URL is a file or every `name` below it."""
    out: list[str] = []
    local = [i for i in inputs if "://" not in str(i)]
    for i in inputs:
        i = str(i)
        if "://" not in i:
            continue
        import pyarrow.fs as pafs

        fs, path = _fs(i)
        info = fs.get_file_info(path)
        scheme = i.split("://", 1)[0]
        if info.type == pafs.FileType.File:
            out.append(i)
        elif info.type == pafs.FileType.Directory:
            found = sorted(f.path for f in fs.get_file_info(pafs.FileSelector(path, recursive=True))
                           if f.type == pafs.FileType.File and f.base_name == name)
            out.extend(f"{scheme}://{p}" for p in found)
        else:
            raise InputError(f"{i}: input not found")
    return [str(p) for p in input_files(local, name)] + out if local else out


@dataclass(frozen=True)
class Chunk:
    no: int
    file_no: int
    uri: str
    start: int
    end: int
    gz: bool


def plan_chunks(files: list[str], chunk_bytes: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    for f_no, uri in enumerate(files):
        fs, path = _fs(uri)
        size = fs.get_file_info(path).size or 0
        gz = uri.endswith(".gz")
        if gz or size <= chunk_bytes:
            chunks.append(Chunk(len(chunks), f_no, uri, 0, size, gz))
            continue
        for s in range(0, size, chunk_bytes):
            chunks.append(Chunk(len(chunks), f_no, uri, s, min(size, s + chunk_bytes), False))
    return chunks


def read_chunk(c: Chunk) -> bytes:
    """The bytes of every line that starts inside [start, end) (whole file for gzip)."""
    fs, path = _fs(c.uri)
    with fs.open_input_file(path) as f:
        if c.gz:
            return gzip.decompress(f.read())
        lo = max(0, c.start - 1)
        f.seek(lo)
        data = f.read(c.end - lo)
        if c.start > 0:
            i = data.find(b"\n")
            if i < 0:
                return b""
            data = data[i + 1:]
        if data and not data.endswith(b"\n"):
            tail = []
            while True:
                more = f.read(_TAIL)
                if not more:
                    break
                j = more.find(b"\n")
                if j >= 0:
                    tail.append(more[:j + 1])
                    break
                tail.append(more)
            data += b"".join(tail)
        return data


def iter_chunk_lines(chunks: list[Chunk]) -> Iterator[tuple[Chunk, list[bytes]]]:
    for c in chunks:
        yield c, split_lines(read_chunk(c))
