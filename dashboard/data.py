"""Cached data access for the dashboard pages.

Pages call the functions here and never open DuckDB themselves. Every query goes through
:func:`pipelines.store.reader` (the read-only snapshot, so a running import never blocks the
dashboard) and is cached with ``st.cache_data`` keyed on the database path and
:func:`pipelines.store.snapshot_version`: when a writer publishes a new snapshot the key
changes and the next rerun reads fresh data, while unchanged data is served from the cache.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import streamlit as st

from pipelines import queries, store
from pipelines.errors import ArenatreeError
from pipelines.tree import read as tree_read

Version = tuple[int, int]

# What reading the store can raise that a page should show as a message, not a traceback:
# a schema newer than this arenatree, a writer holding a pre-snapshot database too long,
# an unreadable file.
READ_ERRORS: tuple[type[Exception], ...] = (ArenatreeError, duckdb.Error)


def db_path() -> Path:
    """The database the dashboard shows: ``$ARENATREE_DB`` or ``data/arenatree.duckdb``."""
    return store.db_path()


def snapshot_version() -> Version | None:
    """The current read snapshot's version, or None when there is no database at all.

    A database made before snapshots existed gets its snapshot published here once.
    """
    db = db_path()
    version = store.snapshot_version(db)
    if version is None and db.exists():
        with store.reader(db):  # publishes the first snapshot
            pass
        version = store.snapshot_version(db)
    return version


def snapshot_time() -> datetime | None:
    """When the current read snapshot was published (local time), None without one."""
    try:
        mtime = store.snapshot_path(db_path()).stat().st_mtime
    except FileNotFoundError:
        return None
    return datetime.fromtimestamp(mtime)


@st.cache_data(show_spinner=False, max_entries=16)
def _dataset_summary(db: str, version: Version) -> pd.DataFrame:
    with store.reader(db) as con:
        return queries.dataset_summary(con)


@st.cache_data(show_spinner=False, max_entries=16)
def _imports(db: str, version: Version) -> pd.DataFrame:
    with store.reader(db) as con:
        return queries.imports(con)


def dataset_summary() -> pd.DataFrame | None:
    """One row per dataset with its counts (see :func:`pipelines.queries.dataset_summary`),
    or None when there is no database yet."""
    version = snapshot_version()
    if version is None:
        return None
    return _dataset_summary(str(db_path()), version)


def imports() -> pd.DataFrame | None:
    """The import log, newest first, or None when there is no database yet."""
    version = snapshot_version()
    if version is None:
        return None
    return _imports(str(db_path()), version)


def totals(summary: pd.DataFrame) -> dict[str, int]:
    """Store-wide totals for the metrics row (see :func:`pipelines.queries.summary_totals`)."""
    return queries.summary_totals(summary)


# --- capability trees ---------------------------------------------------------------------------

ROOT = 0  # node id of every tree's root


@st.cache_data(show_spinner=False, max_entries=16)
def _trees(db: str, version: Version) -> pd.DataFrame:
    with store.reader(db) as con:
        return tree_read.list_trees(con)


@st.cache_data(show_spinner=False, max_entries=16)
def _tree_nodes(db: str, version: Version, tree_id: str) -> pd.DataFrame:
    with store.reader(db) as con:
        nodes = tree_read.tree_nodes(con, tree_id)
    nodes["parent_id"] = nodes["parent_id"].astype("Int64")
    nodes["keywords"] = nodes["keywords"].map(list)
    return nodes


@st.cache_data(show_spinner=False, max_entries=64)
def _node_items(db: str, version: Version, tree_id: str, node_id: int, limit: int) -> pd.DataFrame:
    with store.reader(db) as con:
        items = tree_read.node_items(con, tree_id, node_id, limit=limit)
    items["source_ids"] = items["source_ids"].map(_joined)
    return items


@st.cache_data(show_spinner=False, max_entries=64)
def _item_hits(db: str, version: Version, tree_id: str, query: str) -> pd.DataFrame:
    with store.reader(db) as con:
        return tree_read.search_items(con, tree_id, query)


def _joined(ids: object) -> str:
    """A list of source ids as one comma-separated string ('' for none)."""
    return ", ".join(map(str, ids)) if isinstance(ids, list | tuple | np.ndarray) else ""


def trees(dataset: str | None = None) -> pd.DataFrame | None:
    """Stored trees (one row per tree, the ``trees`` table), newest first; only ``dataset``'s
    when given. None when there is no database yet."""
    version = snapshot_version()
    if version is None:
        return None
    out = _trees(str(db_path()), version)
    return out[out["dataset"] == dataset].reset_index(drop=True) if dataset is not None else out


def tree_nodes(tree_id: str) -> pd.DataFrame:
    """Every node of tree ``tree_id`` in preorder (see :func:`pipelines.tree.read.tree_nodes`);
    ``parent_id`` is nullable Int64 (NA at the root), ``keywords`` a list of words."""
    return _tree_nodes(str(db_path()), snapshot_version(), tree_id)


def node_items(tree_id: str, node_id: int, limit: int = 50) -> pd.DataFrame:
    """Up to ``limit`` items under a node: prompt_id, source_ids (comma-joined text), capability,
    text, leaf_id (see :func:`pipelines.tree.read.node_items`)."""
    return _node_items(str(db_path()), snapshot_version(), tree_id, int(node_id), limit)


def ancestors(nodes: pd.DataFrame, node_id: int) -> pd.DataFrame:
    """The nodes on the path from the root down to ``node_id`` (both included), root first."""
    path = nodes.loc[nodes["node_id"] == node_id, "path"].iloc[0]
    parts = path.split(".")
    prefixes = {".".join(parts[: i + 1]) for i in range(len(parts))}
    return nodes[nodes["path"].isin(prefixes)].sort_values("depth").reset_index(drop=True)


def children(nodes: pd.DataFrame, node_id: int) -> pd.DataFrame:
    """The direct children of ``node_id``, biggest first."""
    kids = nodes[nodes["parent_id"] == node_id]
    return kids.sort_values(["size", "node_id"], ascending=[False, True]).reset_index(drop=True)


def search_nodes(tree_id: str, query: str) -> pd.DataFrame:
    """Nodes of ``tree_id`` matching ``query`` (case-insensitive, literal): first those whose
    description or keywords contain it (shallowest, then biggest first), then the leaves whose
    items' text contains it (most matching items first). The root (which holds everything) is
    never a result. The node columns plus ``matched``
    ('description' or 'prompts') and ``hits`` (matching items under the node, 0 for a
    description match without matching items)."""
    query = query.strip()
    nodes = tree_nodes(tree_id)
    if not query:
        return nodes.iloc[:0].assign(matched=pd.Series(dtype=str), hits=pd.Series(dtype="int64"))
    needle = query.lower()
    hits = _item_hits(str(db_path()), snapshot_version(), tree_id, query)
    leaf_hits = dict(zip(hits["node_id"], hits["hits"], strict=True))
    # Hits under a node: the sum over the hit leaves below it (ancestors are path prefixes).
    path_of = dict(zip(nodes["node_id"], nodes["path"], strict=True))
    per_path: dict[str, int] = {}
    for leaf, n in zip(hits["node_id"], hits["hits"], strict=True):
        parts = path_of[leaf].split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            per_path[prefix] = per_path.get(prefix, 0) + int(n)
    subtree_hits = nodes["path"].map(per_path).fillna(0)
    leaf_hits = set(hits["node_id"])
    in_words = nodes["description"].str.lower().str.contains(needle, regex=False)
    in_keywords = nodes["keywords"].map(lambda words: any(needle in w.lower() for w in words))
    by_words = nodes["parent_id"].notna() & (in_words | in_keywords)
    described = nodes[by_words].assign(matched="description", hits=subtree_hits[by_words])
    described = described.sort_values(["depth", "size"], ascending=[True, False])
    by_items = nodes["node_id"].isin(leaf_hits) & ~by_words
    prompted = nodes[by_items].assign(matched="prompts", hits=subtree_hits[by_items])
    prompted = prompted.sort_values(["hits", "node_id"], ascending=[False, True])
    return pd.concat([described, prompted], ignore_index=True).astype({"hits": "int64"})


def build_tree(dataset: str, on_progress: Callable[[str, float], None] | None = None) -> dict:
    """Build the dataset's capability tree with the default (offline) backends, through the same
    Python API as ``arenatree tree build``; ``on_progress(stage, fraction)`` as it advances.
    Publishes a new snapshot, so the cached helpers above see the tree on the next rerun.
    Raises :class:`~pipelines.errors.ArenatreeError` when the dataset cannot have a tree."""
    from pipelines.tree.build import build_tree as build  # heavy (torch): only when asked

    return build(dataset, db=db_path(), on_progress=on_progress)
