"""Node scores: for every node of a capability tree and every model, how well the model does there.

**Additive counts.** Votes are aggregated once, in DuckDB, per (tree member node, model_a,
model_b, outcome). A sparse node x node ancestor-or-self matrix times that member x cell matrix
gives every node's cells in one product (:func:`node_cells`), so no node ever rescans votes.
Votes whose prompt is not in the tree (no prompt text, or a prompt the tree never saw) count
in the root only: the root holds every vote that passes the filters, and its scores are the
global ones. Per-instance results go the same way with (member node, model) cells.

**Pairwise scores** per (node, model): ``n`` battles played in the node (either side), ``wins``
= wins + ties / 2, ``ties`` (either kind), ``score`` = wins / n, and a ``level`` interval on it:
the Wilson score interval with the battle count as ``n``. Each battle scores 0, 1/2 or 1 for the
model; its variance p(1-p) - (tie rate)/4 is at most the binomial p(1-p), so with ties the
interval is conservative (exactly Wilson without ties). Win rates depend on the opponents a
model happened to meet in the node; the node's Bradley-Terry fit adjusts for them.

**Node leaderboard.** Each node gets its own Bradley-Terry fit (:func:`pipelines.ratings.bradley_terry`,
ties as half) with percentile intervals from :func:`pipelines.ratings.bootstrap` (``rounds``,
``seed``; the same seed in every node, so a node's numbers equal :func:`pipelines.ratings.leaderboard`
on that node's votes) and :func:`pipelines.ratings.rank_upper_bound`. The maximum-likelihood fit
only exists for models that are *strongly connected* by wins: every model in the set has
beaten, and been beaten by, the rest of it through some chain (a tie counts both ways; Ford
1957). So the fit runs on the largest such set of the node (most models, then most battles),
and only when that set has at least 2 models and :data:`MIN_FIT_BATTLES` battles among them.
Models outside it (e.g. one that won every battle in the node) and nodes that fail the rule
get NaN ratings; their win rates still stand. Ratings average 1000 over the fitted models of
each node, so ratings of different nodes share a scale but not an origin.

**Per-instance scores** per (node, model): ``n`` results, ``wins`` = sum of scores (the number
correct for 0/1 data), ``score`` = mean (accuracy), and a ``level`` interval: Clopper-Pearson
(exact binomial) when every score of the dataset is 0 or 1; otherwise the Wilson interval on
the mean (a score in [0, 1] with mean p has variance at most p(1-p), so the binomial variance
is a conservative stand-in). As in EvalTree there is no interval below :data:`MIN_N` (NaN);
the same rule applies to win rates.

**Storage.** :func:`compute_node_scores` writes one ``score_runs`` row and the ``node_scores``
rows in one transaction. The run id hashes the dataset, tree, kind, every parameter (filters,
rounds, seed, level, the method constants of this module) and the dataset's import ids, so
the same request returns the stored run at once and new data gives a new run.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from . import __version__, ratings, sandwich
from .battles import NO_FILTERS, Filters, checked_battles_query, dataset_kind
from .errors import ArenatreeError
from .stats import clopper_pearson_interval, wilson_interval
from .store import one, run, transaction, writer
from .tree.read import resolve_tree, tree_nodes

# Bump whenever a change here changes numbers, so stored runs are recomputed
# (v2: node rating intervals are sandwich (CLT) by default, not bootstrap).
METHOD_VERSION = 2
MIN_N = 5  # no interval on a score with fewer battles / results (EvalTree)
NODE_CI = ("sandwich", "bootstrap")  # interval methods of the node ratings
MIN_FIT_BATTLES = 20  # battles a node's fitted set needs before it gets a Bradley-Terry fit
OUTCOMES = ("wins_a", "wins_b", "ties")  # column 3 * pair + outcome of NodeCells.counts

# The contract other code consumes: one row per (node, model) with data, NaN where not applicable.
SCORE_COLUMNS = [
    "node_id",
    "model",
    "n",
    "wins",
    "ties",
    "score",
    "lower",
    "upper",
    "rating",
    "rating_lower",
    "rating_upper",
    "rank_ub",
]

ProgressFn = Callable[[str, float], None]  # (stage, fraction done in [0, 1]), as tree.build


# --------------------------------------------------------------------------- intervals


def proportion_table(
    node_ids: np.ndarray,
    models: list[str],
    n: np.ndarray,
    successes: np.ndarray,
    interval,
    level: float,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """One row per (node, model) cell with ``n > 0`` of the dense (n_nodes, n_models) ``n`` and
    ``successes`` (wins with ties as half, or summed scores): node_id, model, n, wins, score,
    lower, upper (``interval(successes, n, level)``; NaN under :data:`MIN_N`). Also returns the
    cells' (node_row, model_idx) so callers can add columns from other matrices."""
    node_row, model_idx = np.nonzero(n)
    cell_n = n[node_row, model_idx]
    k = successes[node_row, model_idx]
    lower, upper = interval(k, cell_n, level)
    few = cell_n < MIN_N
    table = pd.DataFrame(
        {
            "node_id": node_ids[node_row],
            "model": np.asarray(models, dtype=object)[model_idx],
            "n": cell_n.astype(np.int64),
            "wins": k,
            "score": k / cell_n,
            "lower": np.where(few, np.nan, lower),
            "upper": np.where(few, np.nan, upper),
        }
    )
    return table, node_row, model_idx


# --------------------------------------------------------------------------- tree structure


def ancestor_matrix(parent: np.ndarray) -> sparse.csr_matrix:
    """Ancestor-or-self matrix of a tree, shape (n_nodes, n_nodes): ``[i, j] = 1`` when node ``i``
    is ``j`` or one of its ancestors. ``parent`` holds each node's parent *row* (-1 for the root)."""
    parent = np.asarray(parent, dtype=np.int64)
    n = len(parent)
    rows, cols = [], []
    cur, col = np.arange(n), np.arange(n)
    for _ in range(n + 1):
        if not len(cur):
            break
        rows.append(cur)
        cols.append(col)
        up = parent[cur]
        keep = up >= 0
        cur, col = up[keep], col[keep]
    else:
        raise ArenatreeError("the tree's parent links form a cycle")
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))


def tree_shape(con: duckdb.DuckDBPyConnection, tree_id: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(node_ids, parent_rows) of a stored tree, in preorder; ``tree_id=None`` is the one-node
    "tree" of a whole-dataset run (node 0). ``parent_rows[i]`` is the row of node i's parent, -1
    for the root (which must be row 0)."""
    if tree_id is None:
        return np.zeros(1, dtype=np.int64), np.full(1, -1, dtype=np.int64)
    nodes = tree_nodes(con, tree_id)
    if nodes.empty:
        raise ArenatreeError(f"tree {tree_id!r} has no nodes")
    node_ids = nodes["node_id"].to_numpy(np.int64)
    parent_ids = nodes["parent_id"].fillna(-1).to_numpy(np.int64)
    parent_rows = pd.Index(node_ids).get_indexer(parent_ids)  # -1 stays -1 (not a node id)
    if parent_rows[0] != -1 or (parent_rows[1:] < 0).any():
        raise ArenatreeError(f"tree {tree_id!r}: the first node must be the only root")
    return node_ids, parent_rows


def _member_rows(node_ids: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Row of each member node id (-1 = not in the tree -> the extra 'outside' row n_nodes)."""
    rows = pd.Index(node_ids).get_indexer(members)
    return np.where(members < 0, len(node_ids), rows)


def _sum_up(parent_rows: np.ndarray, member_matrix: sparse.spmatrix) -> sparse.csr_matrix:
    """Node totals (n_nodes, k) from per-member totals (n_nodes + 1, k): ancestors-or-self sum,
    and the last ('outside the tree') row goes to the root only."""
    n = len(parent_rows)
    anc = ancestor_matrix(parent_rows)
    outside = sparse.csr_matrix((np.ones(1), ([0], [0])), shape=(n, 1))
    return (sparse.hstack([anc, outside], format="csr") @ member_matrix.tocsr()).tocsr()


# --------------------------------------------------------------------------- pairwise cells


@dataclass(frozen=True, eq=False)
class NodeCells:
    """Battle outcome counts of every node of a tree, over one global model list.

    ``models``: sorted model names (every model in the filtered votes). ``pairs``: (n_pairs, 2)
    int, the ordered (model_a, model_b) index pairs that occur anywhere, sorted. ``node_ids``:
    (n_nodes,) in tree preorder. ``counts``: sparse (n_nodes, n_pairs * 3) float, column
    ``3 * p + o`` counts outcome ``o`` (0 model_a won, 1 model_b won, 2 tie of either kind) of
    pair ``p`` in the node's subtree. ``outside``: votes whose prompt is not in the tree (in the
    root only). ``seconds``: wall time of the aggregation and the summing.
    """

    models: list[str]
    pairs: np.ndarray
    node_ids: np.ndarray
    counts: sparse.csr_matrix
    outside: int = 0
    seconds: dict = field(default_factory=dict)

    def row(self, node_id: int) -> int:
        """Row of ``node_id`` in ``counts`` (ArenatreeError if the tree has no such node)."""
        hit = np.flatnonzero(self.node_ids == node_id)
        if not len(hit):
            raise ArenatreeError(f"the tree has no node {node_id}")
        return int(hit[0])

    def pair_counts(self, node_id: int) -> np.ndarray:
        """Dense (n_pairs, 3) outcome counts of one node."""
        r = self.counts.getrow(self.row(node_id))
        flat = np.zeros(len(self.pairs) * 3)
        flat[r.indices] = r.data
        return flat.reshape(-1, 3)

    def cells(self, node_id: int, local: bool = True) -> tuple[list[str], ratings.Cells]:
        """The node's votes as :class:`pipelines.ratings.Cells` (only pairs that met there).

        ``local=True``: over the sorted models that played in the node, exactly what
        :func:`pipelines.ratings.aggregate` gives on the node's raw votes. ``local=False``: over
        the global ``models`` list (indices into it; models absent from the node have no cell).
        """
        c = self.pair_counts(node_id)
        keep = np.flatnonzero(c.sum(axis=1))
        a, b = self.pairs[keep, 0], self.pairs[keep, 1]
        models = self.models
        if local:
            used = np.unique(np.concatenate([a, b]))
            models = [self.models[i] for i in used]
            a, b = np.searchsorted(used, a), np.searchsorted(used, b)
        return models, ratings.Cells(a, b, c[keep, 0], c[keep, 1], c[keep, 2])

    def model_totals(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(battles, wins, ties) per (node, model), each dense (n_nodes, n_models): battles played
        on either side, wins counting a tie as half, ties of either kind."""
        n_pairs, n_models = len(self.pairs), len(self.models)
        col = np.arange(n_pairs * 3)
        side_a = np.repeat(self.pairs[:, 0], 3)
        side_b = np.repeat(self.pairs[:, 1], 3)
        outcome = np.tile(np.arange(3), n_pairs)

        def to_models(weight_a: np.ndarray, weight_b: np.ndarray) -> np.ndarray:
            w = sparse.csr_matrix(
                (
                    np.concatenate([weight_a, weight_b]),
                    (np.concatenate([col, col]), np.concatenate([side_a, side_b])),
                ),
                shape=(n_pairs * 3, n_models),
            )
            return np.asarray((self.counts @ w).todense())

        ones = np.ones(n_pairs * 3)
        win_a = np.select([outcome == 0, outcome == 2], [1.0, 0.5], 0.0)
        win_b = np.select([outcome == 1, outcome == 2], [1.0, 0.5], 0.0)
        tie = (outcome == 2).astype(np.float64)
        return to_models(ones, ones), to_models(win_a, win_b), to_models(tie, tie)


def node_cells(
    con: duckdb.DuckDBPyConnection, dataset: str, tree_id: str | None, filters: Filters = NO_FILTERS
) -> NodeCells:
    """Aggregate the votes of ``dataset`` that pass ``filters`` once per (tree member node, pair,
    outcome) in DuckDB, then sum them up ``tree_id`` (None: a one-node tree holding everything).
    Raises ArenatreeError when no vote passes the filters."""
    node_ids, parent_rows = tree_shape(con, tree_id)
    t0 = time.perf_counter()
    sql, params = checked_battles_query(
        con, dataset, filters, ("prompt_id", "model_a", "model_b", "winner"), False
    )
    agg = con.sql(
        f"""
        SELECT coalesce(m.node_id, -1) AS member, b.model_a, b.model_b,
               CASE b.winner WHEN 'model_a' THEN 0 WHEN 'model_b' THEN 1 ELSE 2 END AS outcome,
               count(*) AS n
        FROM ({sql}) b
        LEFT JOIN node_members m ON m.tree_id = ? AND m.prompt_id = b.prompt_id
        GROUP BY ALL
        """,  # noqa: S608 - the query text comes from battles_query; values are parameters
        params=[*params, tree_id],
    ).to_arrow_table()
    if not agg.num_rows:
        raise ArenatreeError(f"no votes of dataset {dataset!r} pass the filters {filters.key()}")
    model_a = agg.column("model_a").to_pandas()
    model_b = agg.column("model_b").to_pandas()
    models = sorted(set(model_a).union(model_b))
    index = pd.Index(models)
    a, b = index.get_indexer(model_a), index.get_indexer(model_b)
    code = a.astype(np.int64) * len(models) + b
    pair_codes, pair = np.unique(code, return_inverse=True)
    pairs = np.column_stack([pair_codes // len(models), pair_codes % len(models)])
    member = agg.column("member").to_numpy()
    n = agg.column("n").to_numpy().astype(np.float64)
    member_rows = _member_rows(node_ids, member)
    if (member_rows < 0).any():
        raise ArenatreeError(f"tree {tree_id!r}: node_members names a node that is not in the tree")
    leaf = sparse.coo_matrix(
        (n, (member_rows, pair * 3 + agg.column("outcome").to_numpy())),
        shape=(len(node_ids) + 1, len(pairs) * 3),
    )
    t1 = time.perf_counter()
    counts = _sum_up(parent_rows, leaf)
    t2 = time.perf_counter()
    return NodeCells(
        models=models,
        pairs=pairs,
        node_ids=node_ids,
        counts=counts,
        outside=int(n[member < 0].sum()),
        seconds={"aggregate": t1 - t0, "sum": t2 - t1},
    )


# --------------------------------------------------------------------------- Bradley-Terry per node


def fitted_models(n_models: int, cells: ratings.Cells) -> np.ndarray:
    """Indices (sorted) of the models a Bradley-Terry fit on ``cells`` can rate: the largest set
    strongly connected by wins (a tie links both ways), most models then most battles, or an
    empty array when that set has under 2 models or fewer than :data:`MIN_FIT_BATTLES` battles."""
    if n_models < 2:
        return np.zeros(0, dtype=np.int64)
    credit_a = cells.wins_a + cells.ties > 0  # a has beaten (or tied) b at least once
    credit_b = cells.wins_b + cells.ties > 0
    graph = sparse.csr_matrix(
        (np.ones(credit_a.sum() + credit_b.sum()),
         (np.concatenate([cells.a[credit_a], cells.b[credit_b]]),
          np.concatenate([cells.b[credit_a], cells.a[credit_b]]))),
        shape=(n_models, n_models),
    )  # fmt: skip
    _, label = connected_components(graph, directed=True, connection="strong")
    total = cells.wins_a + cells.wins_b + cells.ties
    inside = label[cells.a] == label[cells.b]
    size = np.bincount(label)
    played = np.bincount(label[cells.a[inside]], total[inside], minlength=len(size))
    best = np.lexsort((-played, -size))[0]  # most models, then most battles, then lowest label
    if size[best] < 2 or played[best] < MIN_FIT_BATTLES:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(label == best)


def fit_node(
    models: list[str],
    cells: ratings.Cells,
    rounds: int = 100,
    seed: int = 0,
    level: float = 0.95,
    ci: str = "sandwich",
) -> pd.DataFrame:
    """The node's own Bradley-Terry leaderboard over ``models`` (the cells' model list).

    Returns one row per model in ``models`` order: rating, rating_lower, rating_upper (``level``
    interval: ``ci='sandwich'``, LMArena's CLT interval, valid on the fitted set since its MLE
    exists; or ``'bootstrap'``, percentile over ``rounds`` rounds from ``seed``), rank_ub; NaN for
    models outside :func:`fitted_models` (and for the interval columns when ``rounds == 0``).
    """
    out = pd.DataFrame(
        np.nan,
        index=pd.Index(models, name="model"),
        columns=["rating", "rating_lower", "rating_upper", "rank_ub"],
    )
    keep = fitted_models(len(models), cells)
    if not len(keep):
        return out
    mask = np.isin(cells.a, keep) & np.isin(cells.b, keep)
    a, b = np.searchsorted(keep, cells.a[mask]), np.searchsorted(keep, cells.b[mask])
    sub = ratings.Cells(a, b, cells.wins_a[mask], cells.wins_b[mask], cells.ties[mask])
    names = [models[i] for i in keep]
    if ci == "sandwich":
        point = ratings.fit_pairwise(sub.a, sub.b, len(names), sub.counts)
        out.iloc[keep, 0] = ratings.to_ratings(point, names)
        if rounds > 0:
            cov = sandwich.pairwise_covariance(sub.a, sub.b, len(names), sub.counts, point)
            rated, rating_cov = sandwich.rating_law(point, cov, names)
            lower, upper = sandwich.normal_intervals(rated, rating_cov, level)
            out.iloc[keep, 1] = lower
            out.iloc[keep, 2] = upper
            out.iloc[keep, 3] = ratings.rank_upper_bound(lower, upper)
        return out
    fit = ratings.bootstrap_fit(names, sub, rounds=rounds, seed=seed)  # point fit once, with the rounds
    out.iloc[keep, 0] = ratings.to_ratings(fit.point, names)
    if rounds > 0:
        boot = ratings.to_ratings(fit.draws, names)
        tail = 100 * (1 - level) / 2
        lower, upper = np.percentile(boot, [tail, 100 - tail], axis=0)
        out.iloc[keep, 1] = lower
        out.iloc[keep, 2] = upper
        out.iloc[keep, 3] = ratings.rank_upper_bound(lower, upper)
    return out


# --------------------------------------------------------------------------- scores


def _check_params(rounds: int, level: float, ci: str = "sandwich") -> None:
    if ci not in NODE_CI:
        raise ArenatreeError(f"ci={ci!r}: node intervals are one of {', '.join(NODE_CI)}")
    if not 0 < level < 1:
        raise ArenatreeError(f"level={level}: expected a confidence level between 0 and 1, e.g. 0.95")
    if rounds < 0:
        raise ArenatreeError(f"rounds={rounds}: expected 0 or more bootstrap rounds")


def pairwise_scores(
    cells: NodeCells,
    rounds: int = 100,
    seed: int = 0,
    level: float = 0.95,
    progress: ProgressFn | None = None,
    ci: str = "sandwich",
) -> tuple[pd.DataFrame, dict]:
    """Scores of every (node, model) with battles in the node, :data:`SCORE_COLUMNS`, sorted by
    node_id then model; and an info dict (fits made, interval methods, stage seconds). ``ci``:
    the node ratings' intervals (:func:`fit_node`)."""
    _check_params(rounds, level, ci)
    t0 = time.perf_counter()
    played, wins, ties = cells.model_totals()
    table, node_row, model_idx = proportion_table(
        cells.node_ids, cells.models, played, wins, wilson_interval, level
    )
    table["ties"] = ties[node_row, model_idx]
    t1 = time.perf_counter()
    fits = []
    n_nodes = len(cells.node_ids)
    for i, node_id in enumerate(cells.node_ids):
        models, node_cells_ = cells.cells(int(node_id))
        fit = fit_node(models, node_cells_, rounds, seed, level, ci)
        fits.append(fit.reset_index().assign(node_id=node_id))
        if progress and (i % 16 == 0 or i == n_nodes - 1):
            progress("fit", (i + 1) / n_nodes)
    bt = pd.concat(fits, ignore_index=True)
    t2 = time.perf_counter()
    table = table.merge(bt, on=["node_id", "model"], how="left", validate="one_to_one")
    info = {
        "interval": "wilson (battles as n; conservative with ties)",
        "rating_interval": ci,
        "fitted_nodes": int(bt.groupby("node_id")["rating"].count().gt(0).sum()),
        "rows": int(cells.counts[0].sum()),  # votes at the root: all of them
        "outside_tree": cells.outside,
        "seconds": {**cells.seconds, "stats": t1 - t0, "fit": t2 - t1},
    }
    return table[SCORE_COLUMNS], info


@dataclass(frozen=True, eq=False)
class NodeResults:
    """Per-instance results of every node of a tree: ``models`` sorted; ``node_ids`` (n_nodes,);
    ``n`` and ``total`` dense (n_nodes, n_models): results and sum of scores in the subtree;
    ``binary``: every score of the dataset is 0 or 1; ``outside``: results whose prompt is not in
    the tree (root only)."""

    models: list[str]
    node_ids: np.ndarray
    n: np.ndarray
    total: np.ndarray
    binary: bool
    outside: int = 0
    seconds: dict = field(default_factory=dict)


def node_results(con: duckdb.DuckDBPyConnection, dataset: str, tree_id: str | None) -> NodeResults:
    """Sum the dataset's results up the tree: one pass over the rows (ordered, so float sums are
    reproducible), then one sparse product."""
    if dataset_kind(con, dataset) != "instances":
        raise ArenatreeError(f"dataset {dataset!r} has no per-instance results")
    node_ids, parent_rows = tree_shape(con, tree_id)
    t0 = time.perf_counter()
    rows = con.sql(
        """
        SELECT coalesce(m.node_id, -1) AS member, r.model, r.score
        FROM results r LEFT JOIN node_members m ON m.tree_id = ? AND m.prompt_id = r.prompt_id
        WHERE r.dataset = ? ORDER BY r.instance_id, r.model
        """,
        params=[tree_id, dataset],
    ).to_arrow_table()
    if not rows.num_rows:
        raise ArenatreeError(f"dataset {dataset!r} has no results")
    model = rows.column("model").to_pandas()
    models = sorted(set(model))
    m = pd.Index(models).get_indexer(model)
    member = rows.column("member").to_numpy()
    score = rows.column("score").to_numpy().astype(np.float64)
    member_rows = _member_rows(node_ids, member)
    if (member_rows < 0).any():
        raise ArenatreeError(f"tree {tree_id!r}: node_members names a node that is not in the tree")
    k = len(models)
    flat = member_rows * k + m
    size = (len(node_ids) + 1) * k
    count = sparse.csr_matrix(np.bincount(flat, minlength=size).reshape(-1, k).astype(np.float64))
    total = sparse.csr_matrix(np.bincount(flat, score, minlength=size).reshape(-1, k))
    t1 = time.perf_counter()
    n_sum = np.asarray(_sum_up(parent_rows, count).todense())
    total_sum = np.asarray(_sum_up(parent_rows, total).todense())
    t2 = time.perf_counter()
    return NodeResults(
        models=models,
        node_ids=node_ids,
        n=n_sum,
        total=total_sum,
        binary=bool(np.isin(score, (0.0, 1.0)).all()),
        outside=int((member < 0).sum()),
        seconds={"aggregate": t1 - t0, "sum": t2 - t1},
    )


def instance_scores(results: NodeResults, level: float = 0.95) -> tuple[pd.DataFrame, dict]:
    """Accuracy of every (node, model) with results in the node, :data:`SCORE_COLUMNS` (rating
    columns NaN), sorted by node_id then model; and an info dict."""
    _check_params(0, level)
    t0 = time.perf_counter()
    interval = clopper_pearson_interval if results.binary else wilson_interval
    table = proportion_table(results.node_ids, results.models, results.n, results.total, interval, level)[0]
    table[["ties", "rating", "rating_lower", "rating_upper", "rank_ub"]] = np.nan
    info = {
        "interval": "clopper-pearson" if results.binary else "wilson (mean score; conservative)",
        "rows": int(results.n[0].sum()),  # results at the root: all of them
        "outside_tree": results.outside,
        "seconds": {**results.seconds, "stats": time.perf_counter() - t0},
    }
    return table[SCORE_COLUMNS], info


# --------------------------------------------------------------------------- runs


def run_params(
    kind: str, filters: Filters, rounds: int, seed: int, level: float, ci: str = "sandwich"
) -> dict:
    """Every parameter that shapes a run's numbers, JSON-able (what ``score_runs.params`` holds).
    Per-instance runs have no votes to filter and no fit, so filters, rounds and seed are left out."""
    params: dict = {"method_version": METHOD_VERSION, "level": float(level), "min_n": MIN_N}
    if kind == "pairwise":
        params.update(
            filters=filters.key(),
            rounds=int(rounds),
            seed=int(seed),
            min_fit_battles=MIN_FIT_BATTLES,
            ties="half",
            ci=ci,
        )
    return params


def import_ids(con: duckdb.DuckDBPyConnection, dataset: str) -> list[str]:
    """The sorted import ids of ``dataset``: a stored result computed from them is current."""
    return [
        r[0]
        for r in run(con, "SELECT import_id FROM imports WHERE dataset = ? ORDER BY import_id", [dataset])
    ]


def run_id_for(dataset: str, tree_id: str | None, kind: str, params: dict, import_ids: list[str]) -> str:
    """Deterministic run id: sha256 of the canonical JSON of everything that shaped the run."""
    doc = {"dataset": dataset, "tree_id": tree_id, "kind": kind, "params": params, "imports": import_ids}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _request(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    tree_id: str | None,
    whole: bool,
    filters: Filters,
    rounds: int,
    seed: int,
    level: float,
    ci: str = "sandwich",
) -> tuple[str, str | None, dict, list[str], str]:
    """(kind, tree_id, params, import_ids, run_id) of a request, validated."""
    kind = dataset_kind(con, dataset)
    if kind not in ("pairwise", "instances"):
        raise ArenatreeError(f"dataset {dataset!r} holds {kind} data; node scores need votes or results")
    if kind == "instances" and not filters.is_default():
        raise ArenatreeError(f"dataset {dataset!r} holds per-instance results; vote filters do not apply")
    _check_params(rounds, level, ci)
    tree = None if whole else resolve_tree(con, dataset, tree_id)
    params = run_params(kind, filters, rounds, seed, level, ci)
    imports = import_ids(con, dataset)
    return kind, tree, params, imports, run_id_for(dataset, tree, kind, params, imports)


def score_nodes(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    tree_id: str | None,
    filters: Filters = NO_FILTERS,
    rounds: int = 100,
    seed: int = 0,
    level: float = 0.95,
    progress: ProgressFn | None = None,
    ci: str = "sandwich",
) -> tuple[pd.DataFrame, dict]:
    """Compute (without storing) the scores of every node of ``tree_id`` (None: one node, the
    whole dataset): the :data:`SCORE_COLUMNS` frame and an info dict. ``ci``: the node ratings'
    interval method (:func:`fit_node`)."""
    kind = dataset_kind(con, dataset)
    if progress:
        progress("aggregate", 0.0)
    if kind == "instances":
        table, info = instance_scores(node_results(con, dataset, tree_id), level)
    else:
        cells = node_cells(con, dataset, tree_id, filters)
        if progress:
            progress("aggregate", 1.0)
        table, info = pairwise_scores(cells, rounds, seed, level, progress, ci)
    return table, info


def store_run(con: duckdb.DuckDBPyConnection, row: dict, table: pd.DataFrame) -> None:
    """Write one ``score_runs`` row and its ``node_scores`` in ONE transaction (all or nothing)."""
    marks = ", ".join("?" * len(row))
    con.register("new_node_scores", table)
    try:
        with transaction(con):
            run(con, f"INSERT INTO score_runs ({', '.join(row)}) VALUES ({marks})", list(row.values()))  # noqa: S608
            run(
                con,
                "INSERT INTO node_scores SELECT ?, node_id, model, n, wins, ties, score, lower, upper, "
                "rating, rating_lower, rating_upper, CAST(rank_ub AS INTEGER) FROM new_node_scores",
                [row["run_id"]],
            )
    finally:
        con.unregister("new_node_scores")


def _compute(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    tree_id: str | None,
    whole: bool,
    filters: Filters,
    rounds: int,
    seed: int,
    level: float,
    progress: ProgressFn | None,
    ci: str = "sandwich",
) -> str:
    kind, tree, params, imports, run_id = _request(
        con, dataset, tree_id, whole, filters, rounds, seed, level, ci
    )
    if one(con, "SELECT 1 FROM score_runs WHERE run_id = ?", [run_id]):
        return run_id
    started = time.perf_counter()
    table, info = score_nodes(con, dataset, tree, filters, rounds, seed, level, progress, ci)
    if progress:
        progress("store", 0.0)
    t0 = time.perf_counter()
    row = {
        "run_id": run_id,
        "dataset": dataset,
        "tree_id": tree,
        "kind": kind,
        "params": json.dumps(params, sort_keys=True),
        "import_ids": json.dumps(imports),
        "info": None,
        "n_nodes": int(table["node_id"].nunique()),
        "n_models": int(table["model"].nunique()),
        "n_rows": info["rows"],
        "created_at": datetime.now(UTC).replace(tzinfo=None),
        "seconds": 0.0,
        "tool_version": __version__,
    }
    info["seconds"]["compute"] = t0 - started
    row["seconds"] = t0 - started
    row["info"] = json.dumps(info, sort_keys=True)
    store_run(con, row, table)
    if progress:
        progress("store", 1.0)
    return run_id


def compute_node_scores(
    con_or_db: duckdb.DuckDBPyConnection | str | None,
    dataset: str,
    tree_id: str | None = None,
    filters: Filters = NO_FILTERS,
    rounds: int = 100,
    seed: int = 0,
    level: float = 0.95,
    progress: ProgressFn | None = None,
    ci: str = "sandwich",
) -> str:
    """Score every node of a tree of ``dataset`` for every model and store the run; returns its id.

    ``con_or_db``: a connection of an open :func:`pipelines.store.writer` session, or a database
    path (None: the default) to open one. ``tree_id=None`` takes the dataset's newest tree.
    The node ratings' ``level`` intervals (pairwise data only) are ``ci='sandwich'`` (LMArena's
    CLT interval; ``rounds=0``: none) or ``'bootstrap'`` (``rounds`` rounds from ``seed``). When
    the same run (same data, tree and parameters) is stored, returns its id at once.
    ``progress(stage, fraction)`` reports 'aggregate', 'fit' and 'store'.
    """
    if isinstance(con_or_db, duckdb.DuckDBPyConnection):
        return _compute(con_or_db, dataset, tree_id, False, filters, rounds, seed, level, progress, ci)
    with writer(con_or_db) as con:
        return _compute(con, dataset, tree_id, False, filters, rounds, seed, level, progress, ci)


def compute_leaderboard(
    con_or_db: duckdb.DuckDBPyConnection | str | None,
    dataset: str,
    filters: Filters = NO_FILTERS,
    rounds: int = 100,
    seed: int = 0,
    level: float = 0.95,
    progress: ProgressFn | None = None,
    ci: str = "sandwich",
) -> str:
    """The whole-dataset run (no tree; one node, node_id 0), e.g. for votes without prompt text
    that can have no tree. Same storage and keying as :func:`compute_node_scores`."""
    if isinstance(con_or_db, duckdb.DuckDBPyConnection):
        return _compute(con_or_db, dataset, None, True, filters, rounds, seed, level, progress, ci)
    with writer(con_or_db) as con:
        return _compute(con, dataset, None, True, filters, rounds, seed, level, progress, ci)


def find_run(
    con: duckdb.DuckDBPyConnection, dataset: str, tree_id: str | None, params: dict | None = None
) -> str | None:
    """The id of the stored, current run for this request, or None (not computed yet, or the
    dataset got new imports since). ``params`` may hold filters (a :class:`Filters` or its key),
    rounds, seed, level, ci; missing ones take :func:`compute_node_scores`' defaults. ``tree_id=None``
    asks for the whole-dataset run of :func:`compute_leaderboard`."""
    params = dict(params or {})
    filters = params.pop("filters", NO_FILTERS)
    filters = filters if isinstance(filters, Filters) else Filters.from_key(filters)
    unknown = set(params) - {"rounds", "seed", "level", "ci"}
    if unknown:
        raise ArenatreeError(f"unknown score parameter(s) {sorted(unknown)}")
    *_, run_id = _request(
        con,
        dataset,
        tree_id,
        tree_id is None,
        filters,
        int(params.get("rounds", 100)),
        int(params.get("seed", 0)),
        float(params.get("level", 0.95)),
        str(params.get("ci", "sandwich")),
    )
    return run_id if one(con, "SELECT 1 FROM score_runs WHERE run_id = ?", [run_id]) else None


def stored_node_scores(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The :data:`SCORE_COLUMNS` frame of a stored run, sorted by node_id then model (NaN where a
    value does not apply). ArenatreeError for an unknown run."""
    if one(con, "SELECT 1 FROM score_runs WHERE run_id = ?", [run_id]) is None:
        raise ArenatreeError(f"no stored node scores {run_id!r}")
    df = con.execute(
        f"SELECT {', '.join(SCORE_COLUMNS)} FROM node_scores WHERE run_id = ? ORDER BY node_id, model",  # noqa: S608
        [run_id],
    ).df()
    df["node_id"] = df["node_id"].astype(np.int64)
    df["n"] = df["n"].astype(np.int64)
    for c in SCORE_COLUMNS[3:]:
        df[c] = df[c].astype(np.float64)
    return df


def list_runs(con: duckdb.DuckDBPyConnection, dataset: str | None = None) -> pd.DataFrame:
    """Stored score runs (all ``score_runs`` columns), newest first, optionally of one dataset."""
    return con.execute(
        "SELECT * FROM score_runs WHERE dataset = coalesce(?, dataset) ORDER BY created_at DESC", [dataset]
    ).df()
