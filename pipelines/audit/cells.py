"""Votes as (ordered model pair, outcome) cells, globally and per tree node: what the audits that
fit a Bradley–Terry leaderboard per node (ranking inversions, robustness of #1) aggregate once."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from .. import ratings
from ..scores import ancestor_matrix
from .frame import TIE, AuditVotes


def vote_cells(v: AuditVotes) -> tuple[np.ndarray, np.ndarray]:
    """Global (ordered pair, outcome) cells of the votes.

    Returns ``pairs`` (U, 2) int: the (model_a, model_b) index pairs that occur, sorted; and
    ``category`` (n_votes,) int: each vote's cell ``3 * pair + outcome`` with outcome 0 = model_a
    won, 1 = model_b won, 2 = tie of either kind.
    """
    n = len(v.models)
    code = v.a.astype(np.int64) * n + v.b
    pair_codes, pair = np.unique(code, return_inverse=True)
    pairs = np.column_stack([pair_codes // n, pair_codes % n])
    outcome = np.minimum(v.outcome.astype(np.int64), TIE)
    return pairs, pair.astype(np.int64) * 3 + outcome


def cells_of(pairs: np.ndarray, counts: np.ndarray) -> ratings.Cells:
    """:class:`pipelines.ratings.Cells` over the global model indices from ``counts`` (U, 3),
    keeping only the pairs with a vote."""
    keep = np.flatnonzero(counts.sum(axis=1) > 0)
    c = counts[keep]
    return ratings.Cells(pairs[keep, 0], pairs[keep, 1], c[:, 0], c[:, 1], c[:, 2])


def subset_cells(cells: ratings.Cells, keep: np.ndarray) -> ratings.Cells:
    """Cells among the models ``keep`` (sorted global indices), re-indexed into ``keep``."""
    mask = np.isin(cells.a, keep) & np.isin(cells.b, keep)
    return ratings.Cells(
        np.searchsorted(keep, cells.a[mask]),
        np.searchsorted(keep, cells.b[mask]),
        cells.wins_a[mask],
        cells.wins_b[mask],
        cells.ties[mask],
    )


def node_counts(v: AuditVotes, rows: np.ndarray, category: np.ndarray, n_pairs: int) -> np.ndarray:
    """Outcome counts per node and global cell, dense (len(rows), n_pairs, 3).

    ``rows``: node rows of ``v.nodes`` (not the root; votes outside the tree count in the root
    only, so they are left out here). Aggregates each vote once into its leaf, then sums leaves
    up the tree (no (nodes x votes) matrix)."""
    n_nodes = len(v.nodes)
    inside = v.member_row >= 0
    leaf = sparse.csr_matrix(
        (np.ones(int(inside.sum())), (v.member_row[inside], category[inside])), shape=(n_nodes, n_pairs * 3)
    )
    anc = ancestor_matrix(v.nodes["parent_row"].to_numpy())
    return np.asarray((anc[rows] @ leaf).todense()).reshape(len(rows), n_pairs, 3)


class NodeVotes:
    """Which votes lie in a node's subtree, without a (nodes x votes) matrix: votes sorted once by
    leaf row, a node's votes are the runs of its subtree's rows."""

    def __init__(self, v: AuditVotes) -> None:
        self.n = v.n
        self.order = np.argsort(v.member_row, kind="stable")
        self.bounds = np.searchsorted(v.member_row[self.order], np.arange(len(v.nodes) + 1))
        self.anc = ancestor_matrix(v.nodes["parent_row"].to_numpy()) if len(v.nodes) else None

    def __call__(self, row: int) -> np.ndarray:
        """Indices (sorted, int) of the votes in the subtree of node row ``row``; the root (row 0)
        has every vote, including those outside the tree."""
        if row == 0 or self.anc is None:
            return np.arange(self.n)
        desc = self.anc.getrow(row).indices
        parts = [self.order[self.bounds[d] : self.bounds[d + 1]] for d in desc]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
