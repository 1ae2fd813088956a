"""The swappable parts of a tree build, each behind a small base class (as in BERTopic).

Every backend has a ``name`` that keys its cache entries (e.g. ``'offline'``,
``'openai:gpt-4o-mini'``, ``'minilm'``): two backends with the same name must give the same
output for the same input. Backends never touch the store; :mod:`pipelines.tree.build`
caches what they return in DuckDB, chunk by chunk, so a crashed run resumes for free.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

OFFLINE_CAPABILITY_CHARS = 500  # the offline annotator's truncation of a prompt


class Annotator(ABC):
    """Names the capability an item tests, as one short gerund phrase per item."""

    name: str
    chunk_size: int = 64  # items per call; each chunk's results are cached in their own commit

    @abstractmethod
    def annotate(self, texts: Sequence[str]) -> list[str]:
        """One capability string per text, in order (len(out) == len(texts))."""


class Embedder(ABC):
    """Maps texts to unit-norm vectors."""

    name: str

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dim); every row has L2 norm 1."""


class Summarizer(ABC):
    """Writes one capability phrase that covers several child capabilities (EvalTree stage 4)."""

    name: str

    @abstractmethod
    def summarize(self, groups: Sequence[Sequence[str]]) -> list[str]:
        """For each group of child descriptions, one phrase naming the shared capability."""


class OfflineAnnotator(Annotator):
    """No LLM: the prompt text itself, truncated to ``max_chars``, stands for its capability."""

    chunk_size = 20_000  # no remote calls: big chunks, few commits

    def __init__(self, max_chars: int = OFFLINE_CAPABILITY_CHARS) -> None:
        self.max_chars = max_chars
        self.name = f"offline:{max_chars}"

    def annotate(self, texts: Sequence[str]) -> list[str]:
        return [" ".join(t.split())[: self.max_chars] for t in texts]
