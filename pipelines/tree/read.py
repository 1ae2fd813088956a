"""Reading stored trees: list them, their nodes, the items under a node, and routing new text."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import ArenatreeError
from ..store import one
from .cluster import route_tree

NODE_COLUMNS = (
    "node_id, parent_id, depth, path, size, n_children, silhouette, description, keywords, "
    "central_prompt_id, distinguishing"
)


def list_trees(con, dataset: str | None = None) -> pd.DataFrame:
    """Stored trees, newest first (all columns of ``trees``)."""
    return con.execute(
        "SELECT * FROM trees WHERE dataset = coalesce(?, dataset) ORDER BY created_at DESC", [dataset]
    ).df()


def stored_tree(con, tree_id: str) -> dict | None:
    """The ``trees`` row of ``tree_id`` as a dict, or None."""
    df = con.execute("SELECT * FROM trees WHERE tree_id = ?", [tree_id]).df()
    return None if df.empty else df.iloc[0].to_dict()


def stored_tree_row(con, tree_id: str) -> dict:
    """The ``trees`` row of ``tree_id`` as a dict; ArenatreeError if there is none."""
    row = stored_tree(con, tree_id)
    if row is None:
        raise ArenatreeError(f"no tree {tree_id!r}")
    return row


def resolve_tree(con, dataset: str, tree_id: str | None = None) -> str:
    """``tree_id`` if it belongs to ``dataset``, else the dataset's newest tree."""
    if tree_id:
        row = one(con, "SELECT dataset FROM trees WHERE tree_id = ?", [tree_id])
        if row is None or row[0] != dataset:
            raise ArenatreeError(f"no tree {tree_id!r} for dataset {dataset!r}")
        return tree_id
    row = one(con, "SELECT tree_id FROM trees WHERE dataset = ? ORDER BY created_at DESC LIMIT 1", [dataset])
    if row is None:
        raise ArenatreeError(
            f"dataset {dataset!r} has no tree yet; run 'arenatree tree build --dataset {dataset}'"
        )
    return row[0]


def tree_nodes(con, tree_id: str) -> pd.DataFrame:
    """Every node of a tree (no centroids), in preorder."""
    return con.execute(
        f"SELECT {NODE_COLUMNS} FROM nodes WHERE tree_id = ? ORDER BY node_id",  # noqa: S608 - constant
        [tree_id],
    ).df()


def central_prompt(con, tree_id: str, node_id: int) -> str | None:
    """The text of a node's most central prompt (closest to its centroid), or None."""
    row = one(
        con,
        "SELECT p.text FROM nodes n JOIN trees t USING (tree_id) "
        "JOIN prompts p ON p.dataset = t.dataset AND p.prompt_id = n.central_prompt_id "
        "WHERE n.tree_id = ? AND n.node_id = ?",
        [tree_id, int(node_id)],
    )
    return None if row is None else row[0]


def leaf_sources(con, tree_id: str) -> pd.DataFrame:
    """Per leaf, the source ids of its items (the ids the dataset's files used): node_id, source_ids."""
    return con.execute(
        """
        SELECT m.node_id,
               list(coalesce(s.source_id, m.prompt_id) ORDER BY s.source_id, m.prompt_id) AS source_ids
        FROM node_members m
        JOIN trees t USING (tree_id)
        LEFT JOIN prompt_sources s ON s.dataset = t.dataset AND s.prompt_id = m.prompt_id
        WHERE m.tree_id = ?
        GROUP BY m.node_id
        """,
        [tree_id],
    ).df()


def show_tree(con, tree_id: str) -> list[dict]:
    """Nodes as JSON-able dicts; leaves carry ``source_ids`` (the items' own ids)."""
    nodes = tree_nodes(con, tree_id)
    sources = dict(zip(*leaf_sources(con, tree_id).to_dict("list").values(), strict=True))
    out = []
    for rec in nodes.to_dict("records"):
        rec["parent_id"] = None if pd.isna(rec["parent_id"]) else int(rec["parent_id"])
        rec["silhouette"] = None if pd.isna(rec["silhouette"]) else float(rec["silhouette"])
        rec["keywords"] = list(rec["keywords"])
        rec["distinguishing"] = None if pd.isna(rec["distinguishing"]) else str(rec["distinguishing"])
        if rec["n_children"] == 0:
            rec["source_ids"] = [str(s) for s in sources.get(rec["node_id"], [])]
        out.append(rec)
    return out


def node_items(con, tree_id: str, node_id: int, limit: int | None = 50) -> pd.DataFrame:
    """Items under a node (its subtree, by path prefix): prompt_id, source_ids, capability, text,
    leaf_id; at most ``limit`` rows, the most central first when the leaf is small."""
    row = one(con, "SELECT path FROM nodes WHERE tree_id = ? AND node_id = ?", [tree_id, node_id])
    if row is None:
        raise ArenatreeError(f"tree {tree_id!r} has no node {node_id}")
    sql = """
        SELECT m.prompt_id,
               list(s.source_id ORDER BY s.source_id) FILTER (WHERE s.source_id IS NOT NULL) AS source_ids,
               m.capability, p.text, m.node_id AS leaf_id
        FROM node_members m
        JOIN nodes n ON n.tree_id = m.tree_id AND n.node_id = m.node_id
        JOIN trees t ON t.tree_id = m.tree_id
        JOIN prompts p ON p.dataset = t.dataset AND p.prompt_id = m.prompt_id
        LEFT JOIN prompt_sources s ON s.dataset = t.dataset AND s.prompt_id = m.prompt_id
        WHERE m.tree_id = ? AND (n.path = ? OR starts_with(n.path, ? || '.'))
        GROUP BY ALL ORDER BY m.node_id, m.prompt_id
        LIMIT coalesce(?, 9223372036854775807)
    """
    return con.execute(sql, [tree_id, row[0], row[0], limit]).df()


def route(con, tree_id: str, texts: Sequence[str], annotator, embedder) -> pd.DataFrame:
    """Route new texts to leaves of a stored tree, with the tree's own annotator and embedder.

    Returns one row per text: text, capability, node_id, path, description, similarity (cosine
    to the leaf centroid).
    """
    table = con.sql(
        "SELECT node_id, coalesce(parent_id, -1) AS parent_id, centroid FROM nodes "
        "WHERE tree_id = ? ORDER BY node_id",
        params=[tree_id],
    ).to_arrow_table()
    parent = table.column("parent_id").to_numpy()
    centroid = table.column("centroid").combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1)
    caps = annotator.annotate(list(texts))
    X = embedder.embed(caps)
    params = json.loads(stored_tree_row(con, tree_id)["params"])
    leaves = route_tree(parent, centroid, X, params["cluster_params"].get("refine_levels", 0))
    nodes = tree_nodes(con, tree_id).set_index("node_id")
    return pd.DataFrame(
        {
            "text": list(texts),
            "capability": caps,
            "node_id": leaves,
            "path": nodes.loc[leaves, "path"].to_numpy(),
            "description": nodes.loc[leaves, "description"].to_numpy(),
            "similarity": np.einsum("ij,ij->i", X, centroid[leaves]),
        }
    )


def search_items(con, tree_id: str, query: str) -> pd.DataFrame:
    """Leaves holding items whose text or capability contains ``query`` (case-insensitive, literal):
    node_id, hits (matching items in the leaf), most hits first."""
    return con.execute(
        """
        SELECT m.node_id, count(*) AS hits
        FROM node_members m
        JOIN trees t USING (tree_id)
        JOIN prompts p ON p.dataset = t.dataset AND p.prompt_id = m.prompt_id
        WHERE m.tree_id = ? AND (contains(lower(p.text), lower(?)) OR contains(lower(m.capability), lower(?)))
        GROUP BY m.node_id ORDER BY hits DESC, m.node_id
        """,
        [tree_id, query, query],
    ).df()
