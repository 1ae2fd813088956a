"""The votes every audit reads, loaded and encoded once.

:class:`AuditVotes` holds one dataset's votes under the dashboard's :class:`~pipelines.battles.Filters`
as a dataframe plus integer codes (models, judges, outcomes) and, when a capability tree is
given, each vote's node. Audits are plain functions of an ``AuditVotes``; they never query the
store themselves, so tests can build one from any dataframe (:meth:`AuditVotes.from_frame`),
e.g. a simulator's ``votes_truth.parquet``.

Vote order is the analysis order: by ``tstamp`` (nulls last), then ``battle_id`` as loaded by
:func:`pipelines.battles.load_battles`; frames passed to ``from_frame`` keep their row order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import duckdb
import numpy as np
import pandas as pd
from scipy import sparse

from ..battles import BATTLE_COLUMNS, NO_FILTERS, Filters, load_battles
from ..ingest.base import WINNERS
from ..ratings import index_models
from ..scores import ancestor_matrix, tree_shape
from ..tree.read import tree_nodes

# Columns an audit reads: the battle's identity, vote, judge, time, and both answers' style,
# refusal and identity-leak features (battles.BATTLE_COLUMNS without the rest, in that order).
AUDIT_COLUMNS: tuple[str, ...] = tuple(
    c
    for c in BATTLE_COLUMNS
    if c not in ("anony", "language", "turns", "source_id", "response_a", "response_b")
)
# Outcome codes: which side won, or which kind of tie (the stored winner values, in this order).
OUTCOMES: tuple[str, ...] = WINNERS
MODEL_A, MODEL_B, TIE, BOTHBAD = range(4)


@dataclass(frozen=True, eq=False)
class AuditVotes:
    """One dataset's filtered votes, encoded. Every per-vote array has shape (n_votes,).

    ``votes``: the rows (AUDIT_COLUMNS that the source had; missing style / refusal / leak
    columns are absent or NaN). ``models``: sorted names; ``a`` / ``b``: model index of the left
    (model_a) and right (model_b) answer. ``outcome``: int8 code into :data:`OUTCOMES`.
    ``judges``: sorted judge ids; ``judge``: each vote's index into them. ``human``: bool, the
    vote's judge_kind is 'human'. Tree fields (``tree_id`` None when no tree): ``nodes`` (node_id,
    parent_id, depth, size, description, in preorder), ``member_row`` (each vote's leaf row in
    ``nodes``, -1 when its prompt is not in the tree), ``top_row`` (row of the vote's depth-1
    ancestor, -1 when none).
    """

    dataset: str
    filters: Filters
    votes: pd.DataFrame
    models: list[str]
    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray
    judges: list[str]
    judge: np.ndarray
    human: np.ndarray
    tree_id: str | None = None
    nodes: pd.DataFrame = field(default_factory=pd.DataFrame)
    member_row: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    top_row: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def n(self) -> int:
        """Number of votes."""
        return len(self.outcome)

    @classmethod
    def from_frame(
        cls,
        votes: pd.DataFrame,
        *,
        dataset: str = "",
        filters: Filters = NO_FILTERS,
        tree_id: str | None = None,
        nodes: pd.DataFrame | None = None,
        members: pd.DataFrame | None = None,
    ) -> AuditVotes:
        """Encode ``votes`` (needs model_a, model_b, winner, judge; judge_kind defaults to
        'human', battle_id to the row number). ``nodes`` (node_id, parent_id, depth, ...; preorder,
        root first) and ``members`` (prompt_id, node_id: each prompt's leaf) attach a tree."""
        votes = votes.reset_index(drop=True)
        if "battle_id" not in votes:
            votes = votes.assign(battle_id=np.arange(len(votes)).astype(str))
        if "judge_kind" not in votes:
            votes = votes.assign(judge_kind="human")
        models, a, b = index_models(votes)
        codes = pd.Categorical(votes["winner"], categories=list(OUTCOMES))
        if (codes.codes < 0).any():
            bad = sorted(set(votes["winner"][codes.codes < 0].astype(str)))
            raise ValueError(f"unknown winner value(s): {bad}")
        judge_codes, judges = pd.factorize(votes["judge"].astype(str), sort=True)
        extra: dict = {}
        if nodes is not None and members is not None and len(nodes):
            extra = _tree_fields(votes, nodes.reset_index(drop=True), members)
            extra["tree_id"] = tree_id
        return cls(
            dataset=dataset,
            filters=filters,
            votes=votes,
            models=models,
            a=a,
            b=b,
            outcome=codes.codes.astype(np.int8),
            judges=list(judges),
            judge=judge_codes.astype(np.int64),
            human=(votes["judge_kind"] == "human").to_numpy(),
            **extra,
        )

    def node_votes(self) -> sparse.csr_matrix:
        """Membership (n_nodes, n_votes) bool-valued float: vote v is in node i's subtree.

        Votes outside the tree count in the root only. Empty (0, n_votes) without a tree. Built once
        per AuditVotes (several audits read it): do not modify it."""
        return self._node_votes

    @cached_property
    def _node_votes(self) -> sparse.csr_matrix:
        if self.tree_id is None or self.nodes.empty:
            return sparse.csr_matrix((0, self.n))
        parent = self.nodes["parent_row"].to_numpy()
        anc = ancestor_matrix(parent)
        n_nodes = len(parent)
        rows = np.where(self.member_row >= 0, self.member_row, 0)
        leaf = sparse.csr_matrix((np.ones(self.n), (rows, np.arange(self.n))), shape=(n_nodes, self.n))
        return (anc @ leaf).tocsr()


def _tree_fields(votes: pd.DataFrame, nodes: pd.DataFrame, members: pd.DataFrame) -> dict:
    node_ids = nodes["node_id"].to_numpy(np.int64)
    index = pd.Index(node_ids)
    parent_ids = nodes["parent_id"].fillna(-1).to_numpy(np.int64)
    parent_row = index.get_indexer(parent_ids)
    nodes = nodes.assign(parent_row=parent_row)
    leaf_of = pd.Series(members["node_id"].to_numpy(np.int64), index=members["prompt_id"].astype(str))
    leaf_ids = votes["prompt_id"].astype(str).map(leaf_of) if "prompt_id" in votes else None
    member_row = (
        np.full(len(votes), -1, dtype=np.int64)
        if leaf_ids is None
        else index.get_indexer(leaf_ids.fillna(-1).astype(np.int64))
    )
    # depth-1 ancestor of every node (-1 for the root)
    depth = nodes["depth"].to_numpy(np.int64)
    top = np.arange(len(nodes))
    for _ in range(int(depth.max(initial=0)) + 1):
        up = parent_row[top]
        move = (up >= 0) & (depth[np.maximum(up, 0)] >= 1)
        top = np.where(move, up, top)
    top = np.where(depth >= 1, top, -1)
    top_row = np.where(member_row >= 0, top[np.maximum(member_row, 0)], -1)
    return {"nodes": nodes, "member_row": member_row, "top_row": top_row}


def load_audit_votes(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    filters: Filters = NO_FILTERS,
    tree_id: str | None = None,
) -> AuditVotes:
    """The dataset's votes that pass ``filters``, with ``tree_id``'s nodes attached when given.

    Raises ArenatreeError (from :func:`pipelines.battles.load_battles`) for an unknown or
    non-pairwise dataset or filters that leave no vote."""
    votes = load_battles(con, dataset, filters, AUDIT_COLUMNS)
    nodes = members = None
    if tree_id is not None:
        tree_shape(con, tree_id)  # validates the tree
        nodes = tree_nodes(con, tree_id)[["node_id", "parent_id", "depth", "size", "description"]]
        members = con.execute("SELECT prompt_id, node_id FROM node_members WHERE tree_id = ?", [tree_id]).df()
    return AuditVotes.from_frame(
        votes, dataset=dataset, filters=filters, tree_id=tree_id, nodes=nodes, members=members
    )


def evidence_votes(
    con: duckdb.DuckDBPyConnection, dataset: str, battle_ids: list[str], limit: int = 200
) -> pd.DataFrame:
    """The votes behind a finding, for people to read: battle_id, judge, judge_kind, model_a,
    model_b, winner, prompt (text), response_a, response_b (texts; None when the source had no
    answers), in the order of ``battle_ids`` (at most ``limit``). Text is returned raw: callers
    render it escaped."""
    ids = [str(i) for i in battle_ids][:limit]
    if not ids:
        return pd.DataFrame(
            columns=[
                "battle_id",
                "judge",
                "judge_kind",
                "model_a",
                "model_b",
                "winner",
                "prompt",
                "response_a",
                "response_b",
            ]
        )
    return con.execute(
        """
        SELECT b.battle_id, b.judge, b.judge_kind, b.model_a, b.model_b, b.winner,
               p.text AS prompt, ra.text AS response_a, rb.text AS response_b
        FROM unnest(?) WITH ORDINALITY AS w(battle_id, k)
        JOIN battles b ON b.dataset = ? AND b.battle_id = w.battle_id
        LEFT JOIN prompts p ON p.dataset = b.dataset AND p.prompt_id = b.prompt_id
        LEFT JOIN responses ra ON ra.dataset = b.dataset AND ra.response_id = b.response_a
        LEFT JOIN responses rb ON rb.dataset = b.dataset AND rb.response_id = b.response_b
        ORDER BY w.k
        """,
        [ids, dataset],
    ).df()
