"""Reference Jaccard on shingle *strings* (slow, independent of the hash path): tests, benchmark."""

from __future__ import annotations

from ..dedup.shingle import shingle_strings


def exact_jaccard(a: str, b: str, n: int = 5) -> float:
    sa, sb = set(shingle_strings(a, n)), set(shingle_strings(b, n))
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)
