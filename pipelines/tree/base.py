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

from .digest import digest, flat

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


SHARED_HEAD_SHARE = 0.01  # question mode when at least this share of the texts share their head


class OfflineAnnotator(Annotator):
    """No LLM: the prompt text itself, cut to ``max_chars`` characters, stands for its capability.

    ``question=False``: the first ``max_chars`` characters (whitespace collapsed). ``question=True``
    (for datasets where items share a long passage, :func:`shared_heads`): a longer prompt keeps
    a head sample and its question (:func:`pipelines.tree.digest.digest`), so items that share
    the passage but ask different questions stay apart. The name says which, so cached
    annotations of the two modes never mix."""

    chunk_size = 20_000  # no remote calls: big chunks, few commits

    def __init__(self, max_chars: int = OFFLINE_CAPABILITY_CHARS, question: bool = False) -> None:
        self.max_chars = max_chars
        self.question = question
        self.name = f"offline:{max_chars}" + (":question" if question else "")

    def annotate(self, texts: Sequence[str]) -> list[str]:
        """One capability text (<= ``max_chars`` characters, whitespace collapsed) per text."""
        if self.question:
            return [digest(t, self.max_chars) for t in texts]
        return [flat(t)[: self.max_chars] for t in texts]


def shared_heads(texts: Sequence[str], max_chars: int = OFFLINE_CAPABILITY_CHARS) -> int:
    """How many distinct texts share their first ``max_chars`` characters (whitespace collapsed)
    with another distinct text: items the head-only offline annotator cannot tell apart."""
    distinct = {flat(t) for t in texts}
    heads: dict[str, int] = {}
    for t in distinct:
        heads[t[:max_chars]] = heads.get(t[:max_chars], 0) + 1
    return sum(n for n in heads.values() if n > 1)


def needs_question_mode(texts: Sequence[str], max_chars: int = OFFLINE_CAPABILITY_CHARS) -> bool:
    """True when at least 2 and :data:`SHARED_HEAD_SHARE` of ``texts``' distinct texts share
    their head with another (passage + question items, e.g. MMLU reading comprehension)."""
    shared = shared_heads(texts, max_chars)
    return shared >= 2 and shared >= SHARED_HEAD_SHARE * len(set(texts))


def offline_annotator(texts: Sequence[str], max_chars: int = OFFLINE_CAPABILITY_CHARS) -> OfflineAnnotator:
    """The offline annotator ``tree build`` uses for a dataset with these ``texts``: question mode
    where :func:`needs_question_mode`, else head only."""
    return OfflineAnnotator(max_chars, question=needs_question_mode(texts, max_chars))
