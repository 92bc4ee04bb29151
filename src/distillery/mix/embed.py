"""Optional nearest-centroid bucket classifier on offline MiniLM sentence embeddings.

Centroids are the normalised mean embeddings of a few labelled example prompts per bucket
(`buckets.embedding.examples`); a record goes to the most similar centroid when the cosine is at
least `min_similarity`. Only records that no cheaper evidence classified are embedded, in batches.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import DistilleryError
from ..models import resolve_model_path
from .config import EmbeddingParams


class CentroidClassifier:
    def __init__(self, params: EmbeddingParams):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:  # pragma: no cover - dependency of the project
            raise DistilleryError("buckets.embedding.enabled needs sentence-transformers installed") from e
        if not params.examples:
            raise DistilleryError("buckets.embedding.examples: give at least one example text per bucket")
        self.params = params
        self.model = SentenceTransformer(str(resolve_model_path(params.model)), device="cpu")
        self.labels = sorted(params.examples)
        cents = []
        for b in self.labels:
            vecs = self._embed(params.examples[b])
            c = vecs.mean(axis=0)
            cents.append(c / (np.linalg.norm(c) or 1.0))
        self.centroids = np.stack(cents)

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.model.encode(texts, batch_size=self.params.batch_size, normalize_embeddings=True,
                                            show_progress_bar=False, convert_to_numpy=True), dtype=np.float32)

    def predict(self, texts: list[str]) -> list[str | None]:
        """Bucket per text, or None when the best cosine is below min_similarity."""
        if not texts:
            return []
        sims = self._embed([t[:2000] for t in texts]) @ self.centroids.T
        best = sims.argmax(axis=1)
        ok = sims[np.arange(len(texts)), best] >= self.params.min_similarity
        return [self.labels[i] if good else None for i, good in zip(best.tolist(), ok.tolist())]
