"""Optional paraphrase dedup: MiniLM sentence embeddings, cosine at or above a threshold.

Runs after MinHash on the survivors only. The pair search is a blocked exact matrix product
(O(n^2) but vectorised), so it is bounded by `semantic.max_records`.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import DistilleryError
from ..models import MINILM_ALIAS, minilm_path
from .cluster import components
from .config import SemanticParams

_BLOCK = 2048


def embed(texts: list[str], p: SemanticParams) -> np.ndarray:
    """L2-normalised float32 embeddings (offline model)."""
    from sentence_transformers import SentenceTransformer

    path = str(minilm_path()) if p.model == MINILM_ALIAS else p.model
    model = SentenceTransformer(path, device="cpu")
    emb = model.encode(texts, batch_size=p.batch_size, normalize_embeddings=True, show_progress_bar=False,
                       convert_to_numpy=True)
    return np.asarray(emb, dtype=np.float32)


def similar_pairs(emb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (i < j) with cosine >= threshold, rows of `emb` already in keep order."""
    us, vs, cs = [], [], []
    n = len(emb)
    for s in range(0, n, _BLOCK):
        block = emb[s:s + _BLOCK] @ emb[s:].T
        i, j = np.nonzero(block >= threshold)
        gi, gj = i + s, j + s
        keep = gi < gj
        us.append(gi[keep]); vs.append(gj[keep]); cs.append(block[i[keep], j[keep]])
    if not us:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(us), np.concatenate(vs), np.concatenate(cs)


def semantic_duplicates(texts: list[str], ranks: np.ndarray, p: SemanticParams) -> tuple[np.ndarray, np.ndarray]:
    """keep_of[i] = position (in `texts`) of the record i paraphrases (i itself when kept), and the
    cosine to it (NaN for kept records). The kept record of a group is the one with the smallest rank."""
    n = len(texts)
    if n > p.max_records:
        raise DistilleryError(f"dedup.semantic.max_records: {n} survivors > {p.max_records}; raise the limit "
                              f"or disable dedup.semantic")
    order = np.argsort(ranks, kind="stable")
    emb = embed([texts[i] for i in order], p)
    u, v, c = similar_pairs(emb, p.threshold)
    label = components(n, u, v)                      # positions in `order`
    keep_of = order[label][np.argsort(order)]
    cos = np.full(n, np.nan)
    rem = np.flatnonzero(keep_of != np.arange(n))
    if len(rem):
        inv = np.argsort(order)
        cos[rem] = np.einsum("ij,ij->i", emb[inv[rem]], emb[inv[keep_of[rem]]])
    return keep_of, cos
