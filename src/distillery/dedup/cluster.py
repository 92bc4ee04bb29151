"""Keep policy and clustering: which copy of a duplicate group survives.

Order (the keep policy): highest quality score first, then the earlier entry of
`dedup.source_priority`, then id, then input position. Every step below works on a doc's *rank*
in that order, so the survivor of a group is simply its smallest rank, whatever engine or number of
workers produced the edges.
"""

from __future__ import annotations

import numpy as np


def source_ranks(sources: list[str], priority: list[str]) -> np.ndarray:
    """Position in the priority list; unlisted sources come after every listed one."""
    pos = {s: i for i, s in enumerate(priority)}
    return np.fromiter((pos.get(s, len(priority)) for s in sources), dtype=np.int64, count=len(sources))


def index_dtype(n: int) -> type:
    """The narrowest of int32/int64 that holds a record index or rank of n records."""
    return np.int32 if n < 2**31 else np.int64


def keep_order(scores: np.ndarray, src_rank: np.ndarray, id_order: np.ndarray) -> np.ndarray:
    """rank[i] = position of doc i in the keep-policy order (0 = kept first); `id_order`: the stable argsort
    of the ids. int32 below 2**31 docs (the pair codes need ranks below that anyway): 4 bytes a record less
    in the parent for the whole run."""
    n = len(id_order)
    id_rank = np.empty(n, np.int64)
    id_rank[id_order] = np.arange(n)
    order = np.lexsort((np.arange(n), id_rank, src_rank, -np.asarray(scores, dtype=float)))
    del id_rank
    rank = np.empty(n, index_dtype(n))
    rank[order] = np.arange(n)
    return rank


def records_by_rank(rank: np.ndarray) -> np.ndarray:
    """The inverse of the keep-policy permutation: out[r] = the record of rank r. One scatter, not a sort."""
    out = np.empty_like(rank)
    out[rank] = np.arange(len(rank), dtype=rank.dtype)
    return out


def exact_groups(hi: np.ndarray, lo: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """keeper[i] = index of the doc i duplicates exactly (i itself when it is kept)."""
    order = np.lexsort((rank, lo, hi))
    h, l = hi[order], lo[order]
    new = np.ones(len(order), bool)
    new[1:] = (h[1:] != h[:-1]) | (l[1:] != l[:-1])
    del h, l
    keeper = np.empty(len(order), np.int64)
    keeper[order] = order[np.flatnonzero(new)][np.cumsum(new) - 1]
    return keeper


def components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Connected-component label of each of n nodes; the label is the component's smallest node.

    Min-label hooking with pointer jumping in numpy (no scipy: importing scipy.sparse costs ~1 s of
    start-up, more than clustering a 600K-record run's edges)."""
    lab = np.arange(n, dtype=np.int64)
    u, v = np.asarray(u, np.int64), np.asarray(v, np.int64)
    while len(u):
        lu, lv = lab[u], lab[v]
        diff = lu != lv
        if not diff.any():
            break
        u, v, lu, lv = u[diff], v[diff], lu[diff], lv[diff]   # edges inside one component are done
        lo, hi = np.minimum(lu, lv), np.maximum(lu, lv)
        np.minimum.at(lab, hi, lo)                              # hook the larger root under the smaller label
        while True:                                             # pointer jumping: every node to its root
            nxt = lab[lab]
            if np.array_equal(nxt, lab):
                break
            lab = nxt
    return lab
