"""How far two trees of one dataset agree: NMI of their item partitions at matching depths.

At depth ``d`` every item is labelled by its ancestor at depth ``d`` (its leaf when the leaf is
shallower), so each tree cuts the items into a partition per depth. Two trees agree at ``d`` as
much as the normalised mutual information of their labels over the items both trees hold
(scikit-learn's ``normalized_mutual_info_score``, arithmetic mean: 1 = the same partition, 0 =
independent). Depth 0 is the root for both, so the table starts at depth 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import normalized_mutual_info_score


def item_paths(con, tree_id: str) -> pd.Series:
    """The dotted path of each item's leaf in ``tree_id``: a Series prompt_id -> path."""
    df = con.execute(
        "SELECT m.prompt_id, n.path FROM node_members m "
        "JOIN nodes n ON n.tree_id = m.tree_id AND n.node_id = m.node_id "
        "WHERE m.tree_id = ? ORDER BY m.prompt_id",
        [tree_id],
    ).df()
    return pd.Series(df["path"].to_numpy(), index=df["prompt_id"].to_numpy(), name=tree_id)


def labels_at_depth(paths: pd.Series, depth: int) -> np.ndarray:
    """Each item's ancestor path at ``depth`` (root depth 0 = path ``'0'``): the first
    ``depth + 1`` components of its leaf path, or the whole path when the leaf is shallower."""
    return np.asarray(paths.str.split(".").str[: depth + 1].str.join("."), dtype=object)


def tree_agreement(con, tree_a: str, tree_b: str) -> pd.DataFrame:
    """One row per depth 1 .. the shallower tree's depth: depth, items (held by both),
    nodes_a / nodes_b (distinct labels each tree has there, over those items), nmi in [0, 1]."""
    pa, pb = item_paths(con, tree_a), item_paths(con, tree_b)
    common = pa.index.intersection(pb.index)
    pa, pb = pa.loc[common], pb.loc[common]
    deepest = min(
        int(pa.str.count(r"\.").max()) if len(pa) else 0, int(pb.str.count(r"\.").max()) if len(pb) else 0
    )
    rows = []
    for depth in range(1, deepest + 1):
        a, b = labels_at_depth(pa, depth), labels_at_depth(pb, depth)
        rows.append(
            {
                "depth": depth,
                "items": len(common),
                "nodes_a": len(set(a)),
                "nodes_b": len(set(b)),
                "nmi": float(normalized_mutual_info_score(a, b)),
            }
        )
    return pd.DataFrame(rows, columns=["depth", "items", "nodes_a", "nodes_b", "nmi"])


def agreement_partner(trees: pd.DataFrame, tree_id: str) -> str | None:
    """The tree to set beside ``tree_id``: for an imported tree the newest built one, for a built
    tree the newest imported one, or None. ``trees``: one dataset's ``trees`` rows, newest first,
    with columns tree_id (or as index) and describer."""
    rows = trees.reset_index() if "tree_id" not in trees.columns else trees
    imported = rows["describer"].astype(str).str.startswith("imported:")
    mine = imported[rows["tree_id"] == tree_id]
    if mine.empty:
        return None
    others = rows.loc[imported != bool(mine.iloc[0]), "tree_id"]
    return None if others.empty else str(others.iloc[0])
