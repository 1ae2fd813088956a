"""Cached data access for the dashboard pages.

Pages call the functions here and never open DuckDB themselves. Every query goes through
:func:`pipelines.store.reader` (the read-only snapshot, so a running import never blocks the
dashboard) and is cached with ``st.cache_data`` keyed on the database path and
:func:`pipelines.store.snapshot_version`: when a writer starts a session or publishes a new
snapshot the key changes and the next rerun reads fresh data (a reader first repairs a snapshot
a killed writer left stale), while unchanged data is served from the cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import streamlit as st

from pipelines import (
    baseline,
    compare,
    design,
    leaderboards,
    queries,
    ratings,
    sandwich,
    scores,
    slices,
    store,
    style_control,
    weaknesses,
)
from pipelines import battles as battles_io
from pipelines.audit import frame as audit_frame
from pipelines.audit import run as audit_run
from pipelines.audit import stored as audit_stored
from pipelines.errors import ArenatreeError, NotApplicable
from pipelines.node_rank_sets import node_rank_sets as _joint_node_sets
from pipelines.tree import agreement as tree_agreement_io
from pipelines.tree import read as tree_read
from pipelines.vote_drop import board_drops

Version = tuple[int, int, int]  # store.snapshot_version: (inode, mtime ns, write_seq)

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


@st.cache_data(show_spinner=False, max_entries=256)
def _central_prompt(db: str, version: Version, tree_id: str, node_id: int) -> str | None:
    with store.reader(db) as con:
        return tree_read.central_prompt(con, tree_id, node_id)


@st.cache_data(show_spinner=False, max_entries=16)
def _tree_agreement(db: str, version: Version, tree_a: str, tree_b: str) -> pd.DataFrame:
    with store.reader(db) as con:
        return tree_agreement_io.tree_agreement(con, tree_a, tree_b)


@st.cache_data(show_spinner=False, max_entries=64)
def _item_hits(db: str, version: Version, tree_id: str, query: str) -> pd.DataFrame:
    with store.reader(db) as con:
        return tree_read.search_items(con, tree_id, query)


SOURCE_IDS_SHOWN = 5  # source ids listed per item (a prompt asked 300 times has 300 of them)


def _joined(ids: object, limit: int = SOURCE_IDS_SHOWN) -> str:
    """A list of source ids as one comma-separated string of at most ``limit`` ids, then how many
    more there are ('' for none)."""
    if not isinstance(ids, list | tuple | np.ndarray):
        return ""
    more = f" (+{len(ids) - limit:,} more)" if len(ids) > limit else ""
    return ", ".join(map(str, ids[:limit])) + more


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


def agreement_partner(trees: pd.DataFrame, tree_id: str) -> str | None:
    """The tree to compare ``tree_id`` with: an imported tree's newest built sibling, or a built
    tree's newest imported one (None if the dataset has no such pair); ``trees`` as
    :func:`trees` gives them for one dataset (tree_id as a column or the index)."""
    return tree_agreement_io.agreement_partner(trees, tree_id)


def tree_agreement(tree_a: str, tree_b: str) -> pd.DataFrame:
    """NMI of two trees' item partitions at matching depths (see
    :func:`pipelines.tree.agreement.tree_agreement`): depth, items, nodes_a, nodes_b, nmi."""
    return _tree_agreement(str(db_path()), snapshot_version(), tree_a, tree_b)


def node_items(tree_id: str, node_id: int, limit: int = 50) -> pd.DataFrame:
    """Up to ``limit`` items under a node: prompt_id, source_ids (comma-joined text), capability,
    text, leaf_id (see :func:`pipelines.tree.read.node_items`)."""
    return _node_items(str(db_path()), snapshot_version(), tree_id, int(node_id), limit)


def central_prompt(tree_id: str, node_id: int) -> str | None:
    """The text of a node's most central prompt (its example), or None."""
    return _central_prompt(str(db_path()), snapshot_version(), tree_id, int(node_id))


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


# --- votes, filters and leaderboards ------------------------------------------------------------

# Vote filters as the widgets return them: keyword arguments of :class:`pipelines.battles.Filters`
# (None = all). Helpers turn them into a sorted tuple of items so they key the caches.
FilterArgs = dict[str, Any]
CI_METHODS = {"auto": "Sandwich where valid", "bootstrap": "Bootstrap"}  # the page's interval choice
METHODS = {"bt": "Bradley–Terry", "rao-kupper": "Rao–Kupper"}
_OPTION_COLUMNS = ("judge", "judge_kind", "language", "tstamp")


def _key(filters: FilterArgs) -> tuple:
    return tuple(sorted(filters.items()))


def dataset_kind(summary: pd.DataFrame, dataset: str) -> str:
    """'pairwise', 'instances' or 'prompts': what ``dataset`` holds (from the summary frame)."""
    return str(summary.set_index("dataset").loc[dataset, "kind"])


@st.cache_data(show_spinner=False, max_entries=16)
def _filter_options(db: str, version: Version, dataset: str) -> dict[str, Any]:
    with store.reader(db) as con:
        votes = battles_io.load_battles(con, dataset, columns=_OPTION_COLUMNS)
    return filter_options_of(votes)


def filter_options_of(votes: pd.DataFrame) -> dict[str, Any]:
    """What a dataset's votes offer the filter widgets: ``judge_kinds`` (sorted), ``judges``
    (name -> kind, most votes first), ``languages`` (most votes first), ``first`` / ``last`` vote
    date (None without timestamps)."""
    stamps = pd.to_datetime(votes["tstamp"]).dropna()
    judges = votes.groupby(["judge", "judge_kind"]).size().sort_values(ascending=False, kind="stable")
    return {
        "judge_kinds": sorted(votes["judge_kind"].dropna().unique().tolist()),
        "judges": {str(j): str(k) for j, k in judges.index},
        "languages": votes["language"].dropna().astype(str).value_counts().index.tolist(),
        "first": stamps.min().date() if len(stamps) else None,
        "last": stamps.max().date() if len(stamps) else None,
    }


def filter_options(dataset: str) -> dict[str, Any]:
    """The filter choices the votes of pairwise ``dataset`` offer (see :func:`filter_options_of`)."""
    return _filter_options(str(db_path()), snapshot_version(), dataset)


def _node_prompts(con: duckdb.DuckDBPyConnection, tree_id: str, node: int) -> set[str]:
    return set(leaderboards.subtree_prompt_ids(con, tree_id, node)[0])


# What the vote-reading helpers keep of a vote (not the response ids, refusal and leak flags).
VOTE_COLUMNS = (
    "battle_id", "prompt_id", "model_a", "model_b", "winner", "judge", "judge_kind", "tstamp", "language",
    "tokens_a", "tokens_b", "headers_a", "headers_b", "lists_a", "lists_b", "bold_a", "bold_b",
)  # fmt: skip


@st.cache_resource(show_spinner=False, max_entries=4)
def _battles(
    db: str, version: Version, dataset: str, filters: tuple, tree_id: str | None, node: int
) -> pd.DataFrame:
    with store.reader(db) as con:
        votes = battles_io.load_battles(con, dataset, battles_io.Filters(**dict(filters)), VOTE_COLUMNS)
        if tree_id is not None and node != ROOT:
            votes = votes[votes["prompt_id"].isin(_node_prompts(con, tree_id, node))].reset_index(drop=True)
    return votes


def battles(dataset: str, filters: FilterArgs, tree_id: str | None = None, node: int = ROOT) -> pd.DataFrame:
    """The votes of ``dataset`` that pass ``filters`` (the :data:`VOTE_COLUMNS` of
    :func:`pipelines.battles.load_battles`, in time order), only those on prompts under ``node`` of
    ``tree_id`` when a non-root node is given (may then be empty). Raises ArenatreeError when the filters
    leave no vote in the dataset. One shared frame per arguments: never modify it."""
    return _battles(str(db_path()), snapshot_version(), dataset, _key(filters), tree_id, int(node))


@st.cache_data(show_spinner=False, max_entries=32)
def _leaderboard(
    db: str, version: Version, dataset: str, filters: tuple, tree_id: str | None, node: int, params: tuple
) -> dict[str, Any]:
    votes = _battles(db, version, dataset, filters, tree_id, node)
    table = slices.spread_leaderboard(votes, **dict(params))
    notes, group_of = design.leaderboard_notes(votes, table)
    notes = [*notes, *sandwich.fallback_notes(table.attrs)]  # why 'auto' took the bootstrap, if it did
    if tree_id is not None and node != ROOT:
        nodes = _tree_nodes(db, version, tree_id).set_index("node_id")["description"]
        small = design.node_sentence(node, nodes.get(node), votes["prompt_id"].nunique())
        notes = [*([small] if small else []), *notes]
    if group_of:
        table = table.assign(group=table["model"].map(group_of).astype("int64"))
    return {"table": table, "notes": notes, **table.attrs}


@st.cache_data(show_spinner=False, max_entries=16)
def _baseline_view(
    db: str, version: Version, dataset: str, filters: tuple, tree_id: str | None, node: int
) -> dict[str, Any] | None:
    with store.reader(db) as con:
        chosen = battles_io.Filters(**dict(filters))
        fixed = baseline.fixed_baseline(con, dataset, chosen)
        if fixed is None:
            return None
        scope = None if tree_id is None or node == ROOT else node
        view = baseline.baseline_view(con, dataset, fixed, chosen, node=scope, tree_id=tree_id)
    return {**view, "table": pd.DataFrame(view["table"])}


def baseline_view(
    dataset: str, filters: FilterArgs, tree_id: str | None = None, node: int = ROOT
) -> dict[str, Any] | None:
    """AlpacaEval's numbers when one model is in every vote :func:`battles` selects
    (:func:`pipelines.baseline.baseline_view`, its ``table`` as a frame), else None."""
    return _baseline_view(str(db_path()), snapshot_version(), dataset, _key(filters), tree_id, int(node))


def leaderboard(
    dataset: str,
    filters: FilterArgs,
    tree_id: str | None = None,
    node: int = ROOT,
    *,
    method: str = "bt",
    rounds: int = 100,
    seed: int = 0,
    level: float = 0.95,
    ci: str = "auto",
    reweight: bool = False,
) -> dict[str, Any]:
    """The rating leaderboard of the votes :func:`battles` selects: ``table`` (model, rating,
    lower, upper, rank_ub, battles; best first, see :func:`pipelines.ratings.leaderboard`; plus
    rank_low, rank_high, p_top from the same rounds, :func:`pipelines.slices.rank_spread`),
    ``ci`` the interval method used ('sandwich' or 'bootstrap'; ``ci='auto'`` takes the sandwich
    where valid, :func:`pipelines.sandwich.choose_ci`), and for Rao–Kupper ``theta`` with its
    ``theta_interval``; ``notes``: what the votes' design cannot support, in sentences
    (:mod:`pipelines.design`; also why 'auto' fell back to the bootstrap), with a ``group``
    column in the table when the models fall into groups that never meet. ``reweight``:
    LMArena's inverse-frequency pair weights."""
    params = (("method", method), ("rounds", int(rounds)), ("seed", int(seed)), ("level", float(level)))
    params += (("ci", ci), ("reweight", bool(reweight)))
    return _leaderboard(
        str(db_path()), snapshot_version(), dataset, _key(filters), tree_id, int(node), params
    )


@st.cache_data(show_spinner=False, max_entries=32)
def _online_elo(
    db: str, version: Version, dataset: str, filters: tuple, tree_id: str | None, node: int
) -> pd.DataFrame:
    votes = _battles(db, version, dataset, filters, tree_id, node)
    elo = ratings.online_elo(votes)
    played = pd.concat([votes["model_a"], votes["model_b"]]).value_counts()
    return pd.DataFrame(
        {"model": elo.index, "elo": elo.to_numpy(), "battles": played.reindex(elo.index).to_numpy()}
    )


def online_elo(
    dataset: str, filters: FilterArgs, tree_id: str | None = None, node: int = ROOT
) -> pd.DataFrame:
    """Sequential Elo (:func:`pipelines.ratings.online_elo`, votes in time order) of the votes
    :func:`battles` selects: model, elo, battles; best first."""
    return _online_elo(str(db_path()), snapshot_version(), dataset, _key(filters), tree_id, int(node))


@st.cache_data(show_spinner=False, max_entries=32)
def _head_to_head(
    db: str, version: Version, dataset: str, filters: tuple, tree_id: str | None, node: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    return ratings.pair_matrices(_battles(db, version, dataset, filters, tree_id, node))


def head_to_head(
    dataset: str, filters: FilterArgs, tree_id: str | None = None, node: int = ROOT
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`pipelines.ratings.pair_matrices` of the votes :func:`battles` selects."""
    return _head_to_head(str(db_path()), snapshot_version(), dataset, _key(filters), tree_id, int(node))


# --- per-instance results -------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=32)
def _accuracy(
    db: str, version: Version, dataset: str, tree_id: str | None, node: int, level: float
) -> pd.DataFrame:
    with store.reader(db) as con:
        results = battles_io.load_results(con, dataset)
        if tree_id is not None and node != ROOT:
            results = results[results["prompt_id"].isin(_node_prompts(con, tree_id, node))]
    return leaderboards.accuracy_table(results, level)


def accuracy(dataset: str, tree_id: str | None = None, node: int = ROOT, level: float = 0.95) -> pd.DataFrame:
    """The accuracy leaderboard of per-instance ``dataset`` (:func:`pipelines.leaderboards.accuracy_table`,
    as ``arenatree leaderboard`` prints it: model, score, lower, upper, rank_ub, items; best first),
    on the items under ``node`` of ``tree_id`` when a non-root node is given (empty when none of
    its items has results)."""
    return _accuracy(str(db_path()), snapshot_version(), dataset, tree_id, int(node), float(level))


@st.cache_data(show_spinner=False, max_entries=32)
def _style_leaderboard(
    db: str, version: Version, dataset: str, filters: tuple, tree_id: str | None, node: int, params: tuple
) -> dict[str, Any]:
    votes = _battles(db, version, dataset, filters, tree_id, node)
    try:
        fit = style_control.style_control(votes, **dict(params))
    except NotApplicable as exc:  # no vote has every style feature (e.g. no stored answers)
        return {"error": str(exc)}
    return {
        "table": fit.leaderboard,
        "coefficients": fit.coefficients,
        "used": fit.battles_used,
        "dropped": fit.battles_dropped,
        "ci": fit.leaderboard.attrs.get("ci", "bootstrap"),
    }


def style_leaderboard(
    dataset: str,
    filters: FilterArgs,
    tree_id: str | None = None,
    node: int = ROOT,
    *,
    rounds: int = 100,
    seed: int = 0,
    level: float = 0.95,
    ci: str = "auto",
    reweight: bool = False,
) -> dict[str, Any]:
    """The style-controlled Bradley–Terry leaderboard of the votes :func:`battles` selects
    (:func:`pipelines.style_control.style_control`): ``table`` (leaderboard columns plus
    rank_change), ``coefficients`` (feature, coef, lower, upper), ``used`` / ``dropped`` votes
    (with / without every style feature), ``ci`` the interval method used; or only ``error``
    when no vote has the style features. ``ci`` / ``reweight`` as :func:`leaderboard`."""
    params = (("rounds", int(rounds)), ("seed", int(seed)), ("level", float(level)))
    params += (("ci", ci), ("reweight", bool(reweight)))
    return _style_leaderboard(
        str(db_path()), snapshot_version(), dataset, _key(filters), tree_id, int(node), params
    )


# --- node scores ----------------------------------------------------------------------------------

SCORE_ROUNDS = 100  # node-score run parameter the pages compute and look up (sandwich intervals)
SCORE_SEED = 0
SCORE_LEVEL = 0.95


def score_filters(kind: str, filters: FilterArgs) -> FilterArgs:
    """The filters a node-score run of a ``kind`` dataset is keyed by (none for per-instance data)."""
    return filters if kind == "pairwise" else {}


@st.cache_data(show_spinner=False, max_entries=16)
def _node_scores(
    db: str, version: Version, dataset: str, tree_id: str, filters: tuple
) -> pd.DataFrame | None:
    params = {
        "filters": battles_io.Filters(**dict(filters)),
        "rounds": SCORE_ROUNDS,
        "seed": SCORE_SEED,
        "level": SCORE_LEVEL,
    }
    with store.reader(db) as con:
        run_id = scores.find_run(con, dataset, tree_id, params)
        return None if run_id is None else scores.stored_node_scores(con, run_id)


def node_scores(dataset: str, tree_id: str, filters: FilterArgs) -> pd.DataFrame | None:
    """The stored scores of every (node, model) of ``tree_id`` under ``filters`` (the frame of
    :func:`pipelines.scores.stored_node_scores`: node_id, model, n, wins, ties, score, lower,
    upper, rating, rating_lower, rating_upper, rank_ub), or None when they were not computed yet
    (or the dataset changed since)."""
    return _node_scores(str(db_path()), snapshot_version(), dataset, tree_id, _key(filters))


def compute_node_scores(
    dataset: str, tree_id: str, filters: FilterArgs, on_progress: Callable[[str, float], None] | None = None
) -> str:
    """Compute and store the node scores :func:`node_scores` looks up, through the same Python API
    as the CLI (a write session; publishes a new snapshot). Returns the run id."""
    return scores.compute_node_scores(
        db_path(),
        dataset,
        tree_id,
        battles_io.Filters(**filters),
        rounds=SCORE_ROUNDS,
        seed=SCORE_SEED,
        level=SCORE_LEVEL,
        progress=on_progress,
    )


def with_rank(node_scores: pd.DataFrame, kind: str) -> pd.DataFrame:
    """``node_scores`` plus ``rank``, the model's rank (upper bound) inside each node: for votes the
    node's own Bradley–Terry ``rank_ub`` (NaN where the node has no fit); for per-instance data
    1 + models whose accuracy interval lies wholly above this model's (NaN without an interval)."""
    out = node_scores.copy()
    if kind == "pairwise":
        out["rank"] = out["rank_ub"]
        return out
    lower = out.pivot(index="node_id", columns="model", values="lower")
    upper = out.pivot(index="node_id", columns="model", values="upper").reindex_like(lower)
    above = (lower.to_numpy()[:, None, :] > upper.to_numpy()[:, :, None]).sum(axis=2)  # (node, model)
    rank = pd.DataFrame(1.0 + above, index=lower.index, columns=lower.columns).where(upper.notna())
    out["rank"] = rank.stack().reindex(pd.MultiIndex.from_frame(out[["node_id", "model"]])).to_numpy()
    return out


# --- weakness profiles ------------------------------------------------------------------------------


def model_nodes(nodes: pd.DataFrame, node_scores: pd.DataFrame, model: str) -> pd.DataFrame:
    """Every node with ``model``'s score there (:func:`pipelines.weaknesses.model_nodes`): the input
    of the profile functions."""
    return weaknesses.model_nodes(nodes, node_scores, model)


def tau_range(profile_nodes: pd.DataFrame) -> tuple[float, float, float]:
    """(low, high, default) of a τ slider for a model: the span of its interval bounds (rounded
    out to 0.01) and, as default, its overall score (the root's) — a node then fails when even
    its upper bound is below the model's own average."""
    lower = profile_nodes["lower"].dropna()
    upper = profile_nodes["upper"].dropna()
    low = float(np.floor(lower.min() * 100) / 100) if len(lower) else 0.0
    high = float(np.ceil(upper.max() * 100) / 100) if len(upper) else 1.0
    high = max(high, low + 0.01)
    root = profile_nodes.loc[profile_nodes["parent_id"].isna(), "score"]
    default = float(root.iloc[0]) if len(root) and pd.notna(root.iloc[0]) else (low + high) / 2
    return low, high, float(np.clip(round(default, 2), low, high))


def sweep_table(profile_nodes: pd.DataFrame, direction: str = "weak") -> pd.DataFrame:
    """Every distinct profile of a τ sweep (:func:`pipelines.weaknesses.sweep`), loosest first:
    tau_low, tau_high (the τ interval on which it holds), nodes (count), items (under them),
    node_ids (list) and members ('#id capability' joined by ' · ')."""
    names = dict(zip(profile_nodes["node_id"], profile_nodes["description"], strict=True))
    sizes = dict(zip(profile_nodes["node_id"], profile_nodes["size"], strict=True))
    rows = [
        {
            "tau_low": p.tau_low,
            "tau_high": p.tau_high,
            "nodes": len(p.node_ids),
            "items": int(sum(sizes[i] for i in p.node_ids)),
            "node_ids": list(p.node_ids),
            "members": " · ".join(f"#{i} {names[i]}" for i in p.node_ids),
        }
        for p in weaknesses.sweep(profile_nodes, direction)
    ]
    columns = ["tau_low", "tau_high", "nodes", "items", "node_ids", "members"]
    return pd.DataFrame(rows, columns=columns)


@st.cache_data(show_spinner=False, max_entries=8)
def _opponent_tests(db: str, version: Version, dataset: str, tree_id: str, filters: tuple) -> pd.DataFrame:
    with store.reader(db) as con:
        cells = scores.node_cells(con, dataset, tree_id, battles_io.Filters(**dict(filters)))
    return weaknesses.opponent_adjusted_tests(cells)


@st.cache_data(show_spinner=False, max_entries=8)
def _selected(db: str, version: Version, dataset: str, tree_id: str, filters: tuple, q: float) -> dict:
    from pipelines.weaknesses.stepwise import arena_weaknesses, load_groups

    with store.reader(db) as con:
        votes, cand = load_groups(con, dataset, tree_id, battles_io.Filters(**dict(filters)))
    if len(votes.models) < 2 or not cand.keys:
        return {}
    return arena_weaknesses(votes, cand, q=q)


def selected_weaknesses(
    dataset: str, tree_id: str, filters: FilterArgs, model: str, q: float
) -> pd.DataFrame:
    """The groups chosen for ``model`` by :func:`pipelines.weaknesses.stepwise.arena_weaknesses`
    (tree nodes and prompt facets, BH at ``q`` then selection, opponents backfitted; every model
    fitted once and cached): key, kind, description, size, battles, offset and its interval
    (rating points), p_bh (the Benjamini–Hochberg adjusted p-value), step. Empty when fewer than
    two models or no group can be tested."""
    tables = _selected(str(db_path()), snapshot_version(), dataset, tree_id, _key(filters), q)
    cols = ["step", "key", "kind", "description", "size", "battles", "offset", "offset_lower"]
    cols += ["offset_upper", "p_adj"]
    if model not in tables:
        return pd.DataFrame(columns=cols).rename(columns={"p_adj": "p_bh"})
    t = tables[model]
    out = t.loc[t["step"] > 0, cols].rename(columns={"p_adj": "p_bh"}).reset_index(drop=True)
    out.attrs = {}  # the fit's per-prompt adjustment stays with the cached table
    return out


def opponent_adjusted(
    dataset: str, tree_id: str, filters: FilterArgs, profile_nodes: pd.DataFrame, model: str
) -> pd.DataFrame:
    """The opponent-adjusted test of ``model`` in every node where it played
    (:func:`pipelines.weaknesses.opponent_adjusted_tests`: is its strength inside the node below
    its global Bradley–Terry rating?), joined to ``profile_nodes`` (:func:`model_nodes`): adds
    battles, observed / expected wins, offset (rating points), z, p (one-sided, weaker) and p_adj
    (Benjamini–Hochberg over the model's tested nodes); NaN where it did not play."""
    tests = _opponent_tests(str(db_path()), snapshot_version(), dataset, tree_id, _key(filters))
    mine = tests.loc[
        tests["model"] == model, ["node_id", "n", "observed", "expected", "offset", "z", "p_weak"]
    ]
    mine = mine.rename(columns={"n": "battles", "p_weak": "p"})
    mine["p_adj"] = weaknesses.bh_adjust(mine["p"].to_numpy())
    return profile_nodes.merge(mine, on="node_id", how="left")


def evidence_votes(
    dataset: str, filters: FilterArgs, tree_id: str, node: int, model: str, limit: int = 20
) -> pd.DataFrame:
    """Up to ``limit`` of ``model``'s votes under ``node``, its losses first, then ties, then wins:
    prompt (text), opponent, outcome ('lost' | 'tie' | 'won' from the model's side), side ('A'
    or 'B'), judge, battle_id."""
    votes = battles(dataset, filters, tree_id, node)
    mine = votes[(votes["model_a"] == model) | (votes["model_b"] == model)]
    side_a = mine["model_a"] == model
    won = np.where(side_a, mine["winner"] == "model_a", mine["winner"] == "model_b")
    lost = np.where(side_a, mine["winner"] == "model_b", mine["winner"] == "model_a")
    out = pd.DataFrame(
        {
            "prompt_id": mine["prompt_id"].to_numpy(),
            "opponent": np.where(side_a, mine["model_b"], mine["model_a"]),
            "outcome": np.select([lost, won], ["lost", "won"], "tie"),
            "side": np.where(side_a, "A", "B"),
            "judge": mine["judge"].to_numpy(),
            "battle_id": mine["battle_id"].to_numpy(),
        }
    )
    order = out["outcome"].map({"lost": 0, "tie": 1, "won": 2})
    out = out.assign(_o=order).sort_values(["_o", "battle_id"], kind="stable").drop(columns="_o").head(limit)
    return _with_prompt_text(out, tree_id, node)


@st.cache_data(show_spinner=False, max_entries=64)
def _prompt_texts(db: str, version: Version, tree_id: str, node: int) -> dict[str, str]:
    with store.reader(db) as con:
        items = tree_read.node_items(con, tree_id, node, limit=None)
    return dict(zip(items["prompt_id"], items["text"], strict=True))


def _with_prompt_text(frame: pd.DataFrame, tree_id: str, node: int) -> pd.DataFrame:
    texts = _prompt_texts(str(db_path()), snapshot_version(), tree_id, int(node))
    prompt = frame["prompt_id"].map(texts).fillna("")
    return frame.assign(prompt=prompt.to_numpy())[["prompt", *[c for c in frame.columns if c != "prompt_id"]]]


@st.cache_data(show_spinner=False, max_entries=16)
def _results(db: str, version: Version, dataset: str, model: str) -> pd.DataFrame:
    with store.reader(db) as con:
        return battles_io.load_results(con, dataset, [model])


def evidence_results(dataset: str, tree_id: str, node: int, model: str, limit: int = 20) -> pd.DataFrame:
    """Up to ``limit`` of ``model``'s results on items under ``node``, wrong answers first: prompt
    (text), score, instance_id."""
    texts = _prompt_texts(str(db_path()), snapshot_version(), tree_id, int(node))
    mine = _results(str(db_path()), snapshot_version(), dataset, model)
    mine = mine[mine["prompt_id"].isin(texts.keys())].sort_values(["score", "instance_id"], kind="stable")
    return _with_prompt_text(mine[["prompt_id", "score", "instance_id"]].head(limit), tree_id, node)


# --- model vs model -------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=16)
def _comparison(
    db: str, version: Version, dataset: str, filters: tuple, tree_id: str | None, a: str, b: str, q: float
) -> pd.DataFrame:
    with store.reader(db) as con:
        f = battles_io.Filters(**dict(filters))
        return compare.compare_models(con, dataset, a, b, tree_id, f, q=q)


def comparison(
    dataset: str, filters: FilterArgs, tree_id: str | None, model_a: str, model_b: str, q: float = 0.05
) -> pd.DataFrame:
    """Model A vs model B in every node of ``tree_id`` (None: the whole dataset as one node), as
    :func:`pipelines.compare.compare_models` returns it (``attrs`` included). Raises ArenatreeError
    for models the votes under ``filters`` lack."""
    return _comparison(
        str(db_path()), snapshot_version(), dataset, _key(filters), tree_id, model_a, model_b, float(q)
    )


@st.cache_data(show_spinner=False, max_entries=64)
def _comparison_examples(
    db: str, version: Version, dataset: str, filters: tuple, tree_id: str | None, a: str, b: str, node: int,
    limit: int,
) -> pd.DataFrame:  # fmt: skip
    with store.reader(db) as con:
        f = battles_io.Filters(**dict(filters))
        return compare.node_examples(con, dataset, a, b, tree_id, node, f, limit)


def comparison_examples(
    dataset: str,
    filters: FilterArgs,
    tree_id: str | None,
    model_a: str,
    model_b: str,
    node: int,
    limit: int = 10,
) -> pd.DataFrame:
    """Up to ``limit`` prompts under ``node`` with both models' answers side by side
    (:func:`pipelines.compare.node_examples`: prompt, answer_a, answer_b, outcome, ids; raw text,
    show it through st.text / st.code only)."""
    return _comparison_examples(
        str(db_path()), snapshot_version(), dataset, _key(filters), tree_id, model_a, model_b, int(node),
        int(limit),
    )  # fmt: skip


# --- voter audit ----------------------------------------------------------------------------------


class ProcessCache:
    """The last ``size`` values by key, shared by every session of this server process and safe
    across their threads. For results computed while reporting progress to a bar the page owns,
    which ``st.cache_data`` cannot hold (its element replay forbids touching outside elements)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        """The value under ``key`` (now the most recent), or None."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Any, value: Any) -> Any:
        """Keep ``value`` under ``key`` (dropping the least recent beyond ``size``); returns it."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


AUDIT_CACHE_SIZE = 8
_AUDITS = ProcessCache(AUDIT_CACHE_SIZE)
_FIGURES = ProcessCache(16 * AUDIT_CACHE_SIZE)  # id(finding) -> (finding, figure)


def audit(
    dataset: str,
    filters: FilterArgs,
    tree_id: str | None,
    *,
    alpha: float = 0.05,
    min_votes: int = 20,
    rounds: int = 100,
    seed: int = 0,
    on_progress: Callable[[str, float], None] | None = None,
) -> audit_run.Audit:
    """Every voter audit of the votes of ``dataset`` under ``filters`` (per-node findings over
    ``tree_id`` when given), as :func:`pipelines.audit.run.run_audit` returns it. Cached per
    snapshot and arguments in this server process (the last :data:`AUDIT_CACHE_SIZE`), so only
    the first view pays, and read from the store when the same audit was stored there (``arenatree
    audit --save`` / ``demo``); ``on_progress(stage, fraction)`` is called while computing, not on
    a cache hit. Never modify the result."""
    db, version = str(db_path()), snapshot_version()
    key = (db, version, dataset, _key(filters), tree_id, float(alpha), int(min_votes), int(rounds), int(seed))
    cached = _AUDITS.get(key)
    if cached is not None:
        return cached

    def step(stage: str, done: int, total: int) -> None:
        if on_progress is not None:
            on_progress(stage.replace("_", " "), done / max(total, 1))

    request = {
        "filters": battles_io.Filters(**filters),
        "tree_id": tree_id,
        "use_tree": tree_id is not None,
        "alpha": alpha,
        "min_votes": min_votes,
        "rounds": rounds,
        "seed": seed,
    }
    with store.reader(db) as con:
        result = audit_stored.find_audit(con, dataset, **request)  # e.g. stored by `arenatree demo`
        if result is None:
            result = audit_run.run_audit(con, dataset, progress=step, **request)
    return _AUDITS.put(key, result)


def finding_figure(finding: Any, make: Callable[[Any], Any]) -> Any:
    """``make(finding)`` (a Plotly figure or None), built once per finding object while it stays
    among the recently shown (the audits themselves are cached, so reruns reuse their figures)."""
    hit = _FIGURES.get(id(finding))
    if hit is not None and hit[0] is finding:  # the id of a finding no longer cached may be reused
        return hit[1]
    return _FIGURES.put(id(finding), (finding, make(finding)))[1]


@st.cache_data(show_spinner=False, max_entries=64)
def _audit_evidence(db: str, version: Version, dataset: str, battle_ids: tuple[str, ...]) -> pd.DataFrame:
    with store.reader(db) as con:
        return audit_frame.evidence_votes(con, dataset, list(battle_ids))


def audit_evidence(dataset: str, battle_ids: list[str]) -> pd.DataFrame:
    """The votes ``battle_ids`` for reading: judge, models, winner, prompt and both responses (raw
    text; show it through st.dataframe / st.text only), in the given order."""
    return _audit_evidence(str(db_path()), snapshot_version(), dataset, tuple(str(i) for i in battle_ids))


# --- slice weighting and rank spread ---------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=16)
def _slices(db: str, version: Version, tree_id: str, node: int) -> pd.DataFrame:
    with store.reader(db) as con:
        return slices.slice_of_prompt(con, tree_id, node)


def node_slices(
    dataset: str, filters: FilterArgs, tree_id: str, node: int = ROOT
) -> tuple[pd.DataFrame, slices.SliceCells]:
    """The slices of ``node`` (its children; the tree's top-level nodes at the root) with the votes
    :func:`battles` selects under each: a frame (node_id, keywords, description, size, votes,
    share, thin; biggest first) and the (slice, pair, outcome) counts
    (:func:`pipelines.slices.slice_cells`) in the frame's order. Never modify them."""
    return _node_slices(str(db_path()), snapshot_version(), dataset, _key(filters), tree_id, int(node))


@st.cache_resource(show_spinner=False, max_entries=8)
def _node_slices(
    db: str, version: Version, dataset: str, filters: tuple, tree_id: str, node: int
) -> tuple[pd.DataFrame, slices.SliceCells]:
    kids = children(_tree_nodes(db, version, tree_id), node)
    membership = _slices(db, version, tree_id, node)
    votes = _battles(db, version, dataset, filters, tree_id, node)
    slice_of = pd.Series(membership["slice"].to_numpy(), index=membership["prompt_id"].to_numpy())
    cells = slices.slice_cells(votes, slice_of, kids["node_id"].tolist())
    frame = kids[["node_id", "keywords", "description", "size"]].assign(votes=cells.votes)
    total = max(int(frame["votes"].sum()), 1)
    frame["share"] = frame["votes"] / total
    frame["thin"] = frame["votes"] < slices.THIN_VOTES
    order = frame.sort_values(["votes", "node_id"], ascending=[False, True]).index.to_numpy()
    frame = frame.loc[order].reset_index(drop=True)
    cells = cells._replace(slices=frame["node_id"].tolist(), counts=cells.counts[order])
    return frame, cells


@st.cache_data(show_spinner=False, max_entries=32)
def _weighted(
    db: str,
    version: Version,
    dataset: str,
    filters: tuple,
    tree_id: str,
    node: int,
    weights: tuple,
    rounds: int,
    seed: int,
    level: float,
) -> pd.DataFrame:
    frame, cells = _node_slices(db, version, dataset, filters, tree_id, node)
    w = dict(weights)
    board = slices.weighted_leaderboard(cells, [w.get(i, 0.0) for i in cells.slices], rounds, seed, level)
    table = slices.rank_changes(board.table, slices.weighted_ratings(cells, cells.votes))
    table.attrs["vote_weights"] = dict(zip(cells.slices, board.vote_weights.tolist(), strict=True))
    return table


def weighted_leaderboard(
    dataset: str,
    filters: FilterArgs,
    tree_id: str,
    node: int,
    weights: dict[int, float],
    *,
    rounds: int = 100,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """The slice-weighted Bradley–Terry leaderboard of :func:`node_slices` under ``weights``
    (slice node id -> weight, any scale; missing slices weigh 0), with stratified bootstrap
    intervals (:func:`pipelines.slices.weighted_leaderboard`): rank (position), model, rating,
    lower, upper, rank_ub, battles, rank_low, rank_high, p_top, rank_before (position unweighted,
    on the same votes) and rank_change (+ = moves up). ``attrs['vote_weights']``: slice -> weight of
    each of its votes. Raises ValueError when no slice with votes has a positive weight."""
    key = tuple(sorted((int(k), float(v)) for k, v in weights.items()))
    return _weighted(
        str(db_path()), snapshot_version(), dataset, _key(filters), tree_id, int(node), key,
        int(rounds), int(seed), float(level),
    )  # fmt: skip


@st.cache_data(show_spinner=False, max_entries=32)
def _vote_drop(
    db: str, version: Version, dataset: str, filters: tuple, tree_id: str | None, node: int, top_k: int,
    method: str,
) -> list[dict]:  # fmt: skip
    return board_drops(_battles(db, version, dataset, filters, tree_id, node), method, top_k=top_k)


def vote_drop(
    dataset: str,
    filters: FilterArgs,
    tree_id: str | None = None,
    node: int = ROOT,
    *,
    top_k: int = 3,
    method: str = "bt",
) -> list[dict]:
    """How many of the votes :func:`battles` selects must be removed to change the Bradley–Terry #1
    and the top ``top_k`` (:func:`pipelines.vote_drop.board_drops`; for Rao–Kupper only a sentence
    saying why not): one dict each, with its ``sentence``."""
    key = _key(filters)
    return _vote_drop(
        str(db_path()), snapshot_version(), dataset, key, tree_id, int(node), int(top_k), method
    )


@st.cache_data(show_spinner=False, max_entries=16)
def _node_rank_sets(
    db: str, version: Version, dataset: str, filters: tuple, tree_id: str, node: int, rounds: int, seed: int,
    level: float,
) -> pd.DataFrame:  # fmt: skip
    _, cells = _node_slices(db, version, dataset, filters, tree_id, node)
    return _joint_node_sets(cells, rounds, seed, level)


def node_rank_sets(
    dataset: str, filters: FilterArgs, tree_id: str, node: int = ROOT, *, rounds: int = 100, seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:  # fmt: skip
    """Rank sets of every model in every child of ``node`` (the slices of :func:`node_slices`)
    that hold for all of them at once (:func:`pipelines.node_rank_sets.node_rank_sets`; the
    sentence saying how in ``attrs['method']``)."""
    return _node_rank_sets(
        str(db_path()), snapshot_version(), dataset, _key(filters), tree_id, int(node), int(rounds),
        int(seed), float(level),
    )  # fmt: skip


@st.cache_data(show_spinner=False, max_entries=32)
def _model_record(
    db: str, version: Version, dataset: str, filters: tuple, tree_id: str | None, node: int, model: str
) -> pd.DataFrame:
    return slices.model_record(_battles(db, version, dataset, filters, tree_id, node), model)


def model_record(
    dataset: str, filters: FilterArgs, tree_id: str | None, node: int, model: str
) -> pd.DataFrame:
    """``model``'s record against each opponent in the votes :func:`battles` selects
    (:func:`pipelines.slices.model_record`: opponent, battles, wins, losses, ties, win_rate,
    win_lower, win_upper; most battles first)."""
    return _model_record(
        str(db_path()), snapshot_version(), dataset, _key(filters), tree_id, int(node), model
    )


PAIR_BATTLES_SHOWN = 100  # votes of one pair shown on the Leaderboard page (the latest)


def pair_battles(
    dataset: str,
    filters: FilterArgs,
    tree_id: str | None,
    node: int,
    model: str,
    opponent: str,
    limit: int = PAIR_BATTLES_SHOWN,
) -> tuple[pd.DataFrame, int]:
    """The latest ``limit`` votes between ``model`` and ``opponent`` among those :func:`battles`
    selects, newest first, for reading (:func:`audit_evidence`: battle_id, judge, judge_kind,
    model_a, model_b, winner, prompt, response_a, response_b; raw text), plus ``outcome`` ('won',
    'lost', 'tie' for ``model``); and how many votes the pair has in all."""
    votes = battles(dataset, filters, tree_id, node)
    ids = slices.pair_battle_ids(votes, model, opponent)
    shown = audit_evidence(dataset, ids[::-1][:limit])
    won = np.where(shown["model_a"] == model, "model_a", "model_b")
    lost = np.where(shown["model_a"] == model, "model_b", "model_a")
    outcome = np.select([shown["winner"] == won, shown["winner"] == lost], ["won", "lost"], "tie")
    return shown.assign(outcome=outcome), len(ids)


# --- reports --------------------------------------------------------------------------------------
# Built reports are cached by hand (as audits are): building reports progress to a bar the page owns.
# The rendered files are cached with them, so a download button's deferred callable (run outside the
# script, when clicked) renders a format once.
REPORT_CACHE_SIZE = 4
_REPORTS = ProcessCache(REPORT_CACHE_SIZE)
_REPORT_FILES = ProcessCache(5 * REPORT_CACHE_SIZE)  # (report key, format) -> bytes


@st.cache_data(show_spinner=False, max_entries=16)
def _report_models(db: str, version: Version, dataset: str) -> list[str]:
    sql = """
        SELECT model FROM (
            SELECT model_a AS model FROM battles WHERE dataset = ?
            UNION SELECT model_b FROM battles WHERE dataset = ?
            UNION SELECT model FROM results WHERE dataset = ?
        ) ORDER BY model
    """
    with store.reader(db) as con:
        return [r[0] for r in con.execute(sql, [dataset, dataset, dataset]).fetchall()]


def report_models(dataset: str) -> list[str]:
    """Every model with votes or results in ``dataset``, sorted by name."""
    return _report_models(str(db_path()), snapshot_version(), dataset)


def report_key(
    dataset: str,
    filters: FilterArgs,
    tree_id: str | None,
    node: int,
    models: tuple[str, ...],
    sections: tuple[str, ...],
    alpha: float = 0.05,
    min_votes: int = 20,
) -> tuple:
    """The cache key of a report: the snapshot and every choice that shapes it (``alpha`` and
    ``min_votes``: the voter audit's settings)."""
    audit = (float(alpha), int(min_votes))
    return (
        str(db_path()),
        snapshot_version(),
        dataset,
        _key(filters),
        tree_id,
        int(node),
        models,
        sections,
        audit,
    )


def cached_report(key: tuple) -> Any:
    """The report built under ``key`` (:func:`report_key`) in this server process, or None."""
    return _REPORTS.get(key)


def report(key: tuple, on_progress: Callable[[str, float], None] | None = None) -> Any:
    """The :class:`pipelines.report.Report` of ``key`` (:func:`report_key`): built once per server
    process (the last :data:`REPORT_CACHE_SIZE` kept), from the read snapshot; ``node`` ROOT means
    the whole dataset. ``on_progress(section, fraction)`` is called while building. Raises
    ArenatreeError for choices the pipelines refuse. Never modify the result."""
    from pipelines.report import ReportRequest, build_report

    found = cached_report(key)
    if found is not None:
        return found
    db, _, dataset, filters, tree_id, node, models, sections, (alpha, min_votes) = key
    request = ReportRequest(
        dataset,
        sections=sections,
        node=None if node == ROOT or tree_id is None else node,
        tree_id=tree_id,
        models=models,
        filters=battles_io.Filters(**dict(filters)),
        alpha=alpha,
        min_votes=min_votes,
    )
    with store.reader(db) as con:
        built = build_report(con, request, progress=on_progress)
    return _REPORTS.put(key, built)


def report_file(key: tuple, fmt: str) -> bytes:
    """The report of ``key`` rendered as ``fmt`` ('html', 'pdf', 'md' = zip with figures, 'csv' /
    'parquet' = zip of every table), rendered once. The report must have been built (:func:`report`)."""
    from pipelines.report.export import report_bytes

    content = _REPORT_FILES.get((key, fmt))
    return content if content is not None else _REPORT_FILES.put((key, fmt), report_bytes(report(key), fmt))
