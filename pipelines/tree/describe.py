"""Node descriptions: what every naming backend shares.

* per-node term counts summed up the tree (:func:`node_term_counts`) and class-based TF-IDF
  against siblings (:func:`ctfidf_keywords`, BERTopic's c-TF-IDF: ``tf(t, c) / |c| *
  log(1 + A / f(t))`` with ``A`` the mean number of terms per sibling class and ``f(t)`` the
  frequency of ``t`` over the siblings), used by the offline namer (:mod:`pipelines.tree.naming`);
* each node's most central item (closest to its centroid), shown beside its name as an example;
* EvalTree's stage 4 with a :class:`~pipelines.tree.base.Summarizer` (an LLM): leaves summarise
  their items' capabilities, every other node its children's descriptions, bottom-up.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

N_KEYWORDS = 8


def node_term_counts(labels: np.ndarray, parent: np.ndarray, counts: sp.csr_matrix) -> sp.csr_matrix:
    """Term counts of every node: (n_nodes, vocab) CSR, the sum over the items under it.

    labels: (n,) leaf id of each item; parent: (n_nodes,) preorder parents; counts: (n, vocab).
    Preorder ids make every subtree an id range, so one sparse product with the (n_nodes,
    n_nodes) subtree-indicator matrix sums every node at once.
    """
    n_nodes = len(parent)
    onehot = sp.csr_matrix(
        (np.ones(len(labels)), (labels, np.arange(len(labels)))), shape=(n_nodes, len(labels))
    )
    end = subtree_end(parent)
    rows = np.repeat(np.arange(n_nodes), end - np.arange(n_nodes))
    cols = np.concatenate([np.arange(n, end[n]) for n in range(n_nodes)])
    under = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_nodes, n_nodes))
    return (under @ (onehot @ counts)).tocsr()


def ctfidf_keywords(
    node_counts: sp.csr_matrix,
    parent: np.ndarray,
    vocab: np.ndarray,
    doc_idf: np.ndarray | None = None,
    k: int = N_KEYWORDS,
) -> list[list[str]]:
    """Top ``k`` c-TF-IDF terms of each node against its siblings (the root: its most frequent
    terms). ``doc_idf`` (vocab,), if given, further weights each term by its document-level
    inverse frequency over the whole collection, so words that every item uses ("given",
    "following") do not win just because siblings are few."""
    n_nodes = len(parent)
    out: list[list[str]] = [[] for _ in range(n_nodes)]
    groups: dict[int, list[int]] = {}
    for node in range(n_nodes):
        groups.setdefault(int(parent[node]), []).append(node)
    for members in groups.values():
        tf = node_counts[members].toarray().astype(float)
        words = tf.sum(axis=1, keepdims=True)
        freq = tf.sum(axis=0)
        avg = words.mean()
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.nan_to_num(tf / np.maximum(words, 1)) * np.log1p(avg / np.maximum(freq, 1))
        if doc_idf is not None:
            score = score * doc_idf
        for row, node in enumerate(members):
            top = np.argsort(-score[row], kind="stable")[:k]
            out[node] = [str(vocab[t]) for t in top if tf[row, t] > 0]
    return out


def subtree_end(parent: np.ndarray) -> np.ndarray:
    """For preorder node ids: ``end[n]`` such that n's subtree is the id range [n, end[n])."""
    n_nodes = len(parent)
    end = np.arange(1, n_nodes + 1)
    for node in range(n_nodes - 1, 0, -1):
        end[parent[node]] = max(end[parent[node]], end[node])
    return end


def subtree_members(labels: np.ndarray, parent: np.ndarray) -> list[np.ndarray]:
    """The item indices under every node (preorder ids: a subtree is an id range); labels: (n,)
    leaf id per item."""
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], np.arange(len(parent) + 1))
    end = subtree_end(parent)
    return [order[starts[n] : starts[end[n]]] for n in range(len(parent))]


def central_items(X: np.ndarray, centroid: np.ndarray, labels: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Index of the item most similar to each node's centroid among the node's items: (n_nodes,).

    X: (n, d) unit rows; centroid: (n_nodes, d); labels: (n,) leaf id per item.
    """
    members = subtree_members(labels, parent)
    return np.array([m[np.argmax(X[m] @ centroid[n])] for n, m in enumerate(members)], dtype=np.int64)


def document_idf(counts: sp.csr_matrix) -> np.ndarray:
    """Smoothed inverse document frequency of each term: (vocab,), ``log((1 + n) / (1 + df)) + 1``."""
    df = np.asarray((counts > 0).sum(axis=0)).ravel()
    return np.log((1 + counts.shape[0]) / (1 + df)) + 1


def summarize_bottom_up(
    summarizer, parent: np.ndarray, labels: np.ndarray, capabilities: Sequence[str], progress=None
) -> list[str]:
    """EvalTree stage 4: leaves summarise their items' capabilities (a single item keeps its own),
    then each depth, deepest first, summarises its children's descriptions — one batched call
    per depth so the summarizer can run requests concurrently."""
    n_nodes = len(parent)
    children: dict[int, list[int]] = {n: [] for n in range(n_nodes)}
    for node in range(1, n_nodes):
        children[int(parent[node])].append(node)
    depth = np.zeros(n_nodes, dtype=int)
    for node in range(1, n_nodes):
        depth[node] = depth[parent[node]] + 1
    items: dict[int, list[str]] = {n: [] for n in range(n_nodes)}
    for i, leaf in enumerate(labels):
        items[int(leaf)].append(capabilities[i])
    desc: list[str] = [""] * n_nodes
    for d in range(int(depth.max()), -1, -1):
        level = [n for n in range(n_nodes) if depth[n] == d]
        groups, targets = [], []
        for n in level:
            group = [desc[c] for c in children[n]] if children[n] else items[n]
            if len(group) == 1:
                desc[n] = group[0]
            else:
                groups.append(group)
                targets.append(n)
        if groups:
            for n, text in zip(targets, summarizer.summarize(groups), strict=True):
                desc[n] = text
        if progress:
            progress(len(level))
    return desc
