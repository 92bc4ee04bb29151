"""Handing freed heap back to the system, so a long-lived process's resident memory follows what it holds."""

from __future__ import annotations

import ctypes


def _libc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):     # not glibc: nothing to call
        return None


_TRIM = _libc_trim()


def give_back_freed_memory() -> None:
    """Return the C heap's free pages to the system (glibc `malloc_trim`). A process that frees a large batch
    otherwise keeps it resident while it waits for the next one, and the process tree's peak memory counts it:
    dedup's workers between tasks (642 -> 581 MB at 600K records), validate's flattener between chunks."""
    if _TRIM is not None:
        _TRIM(0)
