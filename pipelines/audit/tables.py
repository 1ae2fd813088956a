"""Shared pieces of the audits' tables: flags with false-discovery control, example votes per
row, the nodes a per-node table covers, percentile intervals and share headlines."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from ..stats import bh_adjust, percentile_interval, wilson_interval  # noqa: F401  (percentile_interval: re-exported)
from .frame import AuditVotes
from .result import EXAMPLE_IDS


def flags(
    p_value: np.ndarray, votes: np.ndarray, *, min_votes: int, alpha: float, fdr: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(q_value, flagged), both (n_rows,): BH across the rows with at least ``min_votes`` votes
    (others get q NaN and are never flagged); without ``fdr`` the raw p-value is compared to alpha."""
    eligible = (votes >= min_votes) & np.isfinite(p_value)
    q = np.full(len(p_value), np.nan)
    q[eligible] = bh_adjust(p_value[eligible])
    test = q if fdr else np.where(eligible, p_value, np.nan)
    return q, eligible & (test <= alpha)


def ranked_examples(v: AuditVotes, rows: np.ndarray, group: np.ndarray, key: np.ndarray) -> pd.Series:
    """Up to EXAMPLE_IDS battle ids per group, the votes ``rows`` (indices) ordered by ``key``
    (ascending, most telling first) within each ``group`` (per row). Indexed by group; empty
    when there are no rows (a dataset without ties has no tie examples)."""
    if len(rows) == 0:
        return pd.Series([], index=np.zeros(0, dtype=np.int64), dtype=object)
    order = np.lexsort((key, group))
    rows, group = rows[order], group[order]
    start = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    rank = np.arange(len(group)) - np.repeat(start, np.diff(np.r_[start, len(group)]))
    keep = rank < EXAMPLE_IDS
    ids = v.votes["battle_id"].astype(str).to_numpy()[rows[keep]]
    g = group[keep]
    bounds = np.r_[0, np.flatnonzero(np.diff(g)) + 1, len(g)]
    return pd.Series(
        [list(ids[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)],
        index=g[bounds[:-1]] if len(g) else np.zeros(0, dtype=np.int64),
        dtype=object,
    )


def attach_ids(table: pd.DataFrame, ids: pd.Series, index: np.ndarray) -> pd.DataFrame:
    """``table`` with a ``battle_ids`` column from ``ids`` (indexed by group) for the groups ``index``."""
    got = ids.reindex(index)
    return table.assign(battle_ids=[x if isinstance(x, list) else [] for x in got])


def voter_rows(voters: pd.DataFrame, ids: pd.Series) -> pd.DataFrame:
    """A per-voter table (one row per voter, in voter-index order) with its example ``battle_ids``
    from ``ids`` (indexed by voter), flagged voters first, then by p_value and votes."""
    voters = attach_ids(voters, ids, np.arange(len(voters)))
    return voters.sort_values(
        ["flagged", "p_value", "votes"], ascending=[False, True, False], ignore_index=True
    )


def node_membership(v: AuditVotes, min_node_votes: int) -> tuple[pd.DataFrame, sparse.csr_matrix]:
    """The nodes audited per node: depth-1 nodes plus every node with at least ``min_node_votes``
    votes (root excluded). Returns (node rows: node_id, description, depth, votes; membership
    (n_rows, n_votes) 0/1 sparse)."""
    member = v.node_votes()
    if member.shape[0] == 0:
        return pd.DataFrame(columns=["node_id", "description", "depth", "votes"]), member
    size = np.asarray(member.sum(axis=1)).ravel()
    depth = v.nodes["depth"].to_numpy()
    pick = np.flatnonzero(((depth == 1) | (size >= min_node_votes)) & (depth >= 1))
    nodes = v.nodes.iloc[pick][["node_id", "description", "depth"]].reset_index(drop=True)
    nodes["votes"] = size[pick].astype(np.int64)
    return nodes, member[pick]


def share_headline(label: str, flagged: int, eligible: int, p_value: float | None = None) -> dict:
    """A headline for "``flagged`` of ``eligible`` voters": the share with its 95% Wilson interval
    (NaN shares and a [0, 1] interval when nobody is eligible)."""
    lower, upper = wilson_interval(np.array([flagged]), np.array([eligible]))
    return {
        "label": label,
        "estimate": flagged / eligible if eligible else float("nan"),
        "lower": float(lower[0]) if eligible else 0.0,
        "upper": float(upper[0]) if eligible else 1.0,
        "p_value": p_value,
        "n": int(eligible),
        "unit": "share of voters",
    }
