"""Reference Jaccard on shingle *strings* and union-find components (slow, independent of the fast paths): tests, benchmark."""

from __future__ import annotations

from ..dedup.shingle import shingle_strings


def exact_jaccard(a: str, b: str, n: int = 5) -> float:
    sa, sb = set(shingle_strings(a, n)), set(shingle_strings(b, n))
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def union_find_labels(n: int, edges) -> list[int]:
    """Connected components by plain union-find (label = smallest node of the component): the slow,
    obviously right reference the vectorised `dedup.cluster.components` and the benchmark's truth use."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [find(i) for i in range(n)]
