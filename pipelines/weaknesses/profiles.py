"""Weakness and strength profiles over a capability tree: EvalTree's extraction (§3.2) with its
exact τ sweep, per-node tests with Benjamini–Hochberg control, and penalised-likelihood pruning.

Everything here works on plain inputs, so it runs on whatever produced the node scores:

* a **nodes frame**: one row per node with ``node_id``, ``parent_id`` (NaN / None for the root),
  ``size`` (items under the node; battles for arenas) and, per model, ``lower`` / ``upper`` (the
  node score's interval; NaN where the node has none) and optionally ``score``, ``description``;
* for per-instance data, per-leaf counts (items, correct) that :func:`subtree_counts` sums up
  the tree (:func:`accuracy_by_node` does it from item -> leaf and 0/1 results).

**EvalTree's extraction rule** (the authors' ``extract_subtrees``): a node *fails* at threshold
τ when its interval's upper bound is below τ (nodes without an interval — EvalTree: fewer than 5
items — never fail). Walking from the root, a node is extracted when it fails, every child with
at least ``min_child_size`` (20) items fails too, and no ancestor was extracted; the walk goes on
below nodes that fail without being extracted. Strengths mirror it (lower bound above τ). The
profile only changes where τ crosses a bound, so :func:`sweep` lists every distinct profile
exactly, each with the τ interval on which it holds.

**Without a threshold**: :func:`accuracy_pvalues` tests each node against the model's level on
the rest of the benchmark (exact conditional test, mid-p), :func:`bh_adjust` controls the false
discovery rate over every node tested, and :func:`extract_significant` walks the tree over the
discoveries. :func:`prune_mask` chooses the nodes by penalised likelihood instead (each node:
one level of its own, or explained by its children, or at the model's overall level), which
prefers the purest node the tree offers. Measured recovery of planted weaknesses, for all of
them: ``bench/bench_weakness_validity.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from ..stats import bh_adjust  # noqa: F401  (re-exported: part of the weaknesses API)

Direction = Literal["weak", "strong"]
IntervalMethod = Literal["clopper-pearson", "wilson", "jeffreys"]

MIN_CHILD_SIZE = 20  # EvalTree: children with at least this many items must fail too
MIN_INTERVAL_N = 5  # EvalTree: no interval (and so no extraction) below this many items
PROFILE_COLUMNS = ["node_id", "description", "size", "score", "lower", "upper"]


# --------------------------------------------------------------------------- tree structure


@dataclass(frozen=True)
class TreeIndex:
    """Array view of a tree given by a nodes frame (positions are rows of that frame).

    Attributes (n = number of nodes):
        node_id: (n,) int, the frame's node ids.
        parent: (n,) int, position of each node's parent, -1 for the root.
        depth: (n,) int, root 0.
        levels: positions of the nodes at depth 0, 1, 2, ... (parents always in an earlier level).
    """

    node_id: np.ndarray
    parent: np.ndarray
    depth: np.ndarray
    levels: tuple[np.ndarray, ...]

    @property
    def root(self) -> int:
        """Position of the root."""
        return int(self.levels[0][0])


def tree_index(nodes: pd.DataFrame) -> TreeIndex:
    """Index a nodes frame (columns ``node_id``, ``parent_id``; exactly one root, whose parent is
    NaN/None/-1). Raises ValueError for unknown parents, several roots or cycles."""
    ids = nodes["node_id"].to_numpy().astype(np.int64)
    raw = pd.to_numeric(nodes["parent_id"], errors="coerce").to_numpy(dtype=float)
    is_root = np.isnan(raw) | (raw < 0)
    if is_root.sum() != 1:
        raise ValueError(f"a tree needs exactly one root (parent_id null), found {int(is_root.sum())}")
    pos = pd.Index(ids)
    if not pos.is_unique:
        raise ValueError("node_id values must be unique")
    parent = np.full(len(ids), -1, dtype=np.int64)
    parent[~is_root] = pos.get_indexer(raw[~is_root].astype(np.int64))
    if (parent[~is_root] < 0).any():
        raise ValueError("some parent_id values are not node ids of the frame")
    depth = np.zeros(len(ids), dtype=np.int64)
    hop = parent.copy()
    for _ in range(len(ids)):  # pointer jumping: depth = number of hops to the root
        live = hop >= 0
        if not live.any():
            break
        depth[live] += 1
        hop[live] = parent[hop[live]]
    else:
        raise ValueError("parent_id links contain a cycle")
    order = np.argsort(depth, kind="stable")
    cuts = np.flatnonzero(np.diff(depth[order])) + 1
    return TreeIndex(ids, parent, depth, tuple(np.split(order, cuts)))


def subtree_sums(index: TreeIndex, values: np.ndarray) -> np.ndarray:
    """Sum per-node values over each node's subtree.

    Args:
        index: the tree.
        values: (n_nodes, ...) values attached to nodes (e.g. counts of the items of each leaf;
            zeros elsewhere).

    Returns:
        (n_nodes, ...) float array: each node's own value plus those of all its descendants.
    """
    out = np.array(values, dtype=np.float64, copy=True)
    for level in reversed(index.levels[1:]):  # deepest first: children before parents
        np.add.at(out, index.parent[level], out[level])
    return out


def ancestor_any(index: TreeIndex, flags: np.ndarray) -> np.ndarray:
    """(..., n_nodes) bool: whether any strict ancestor of each node has ``flags`` set.

    ``flags`` is (n_nodes,) or (n_rows, n_nodes) for many flag vectors at once.
    """
    out = np.zeros_like(flags, dtype=bool)
    for level in index.levels[1:]:
        par = index.parent[level]
        out[..., level] = out[..., par] | flags[..., par]
    return out


def _children_all(index: TreeIndex, flags: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """(..., n_nodes) bool: every child with ``counted`` set has ``flags`` set (True for leaves).

    ``flags`` and ``counted`` are (n_nodes,) or (n_rows, n_nodes).
    """
    bad = (counted & ~flags).astype(np.int64)
    kids = np.flatnonzero(index.parent >= 0)
    blocked = np.zeros(flags.shape, dtype=np.int64)
    np.add.at(blocked, (..., index.parent[kids]), bad[..., kids])
    return blocked == 0


# --------------------------------------------------------------------------- intervals


def binomial_interval(
    k: np.ndarray,
    n: np.ndarray,
    level: float = 0.95,
    method: IntervalMethod = "clopper-pearson",
    min_n: int = MIN_INTERVAL_N,
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided ``level`` interval of a proportion k/n, elementwise.

    Args:
        k: successes (may be fractional, e.g. half-wins), shape (m,).
        n: trials, shape (m,).
        method: 'clopper-pearson' (exact beta quantiles; EvalTree's ``proportion_confint(method=
            'beta')``), 'wilson' (score interval) or 'jeffreys' (Beta(k+1/2, n-k+1/2) quantiles).
        min_n: nodes with fewer trials get NaN bounds (EvalTree: 5).

    Returns:
        (lower, upper), each (m,) float in [0, 1], NaN where n < min_n.
    """
    from ..scores import clopper_pearson_interval, wilson_interval  # the node scores' own intervals

    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    alpha = 1.0 - level
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "clopper-pearson":
            lower, upper = clopper_pearson_interval(k, n, level)
        elif method == "wilson":
            lower, upper = wilson_interval(k, n, level)
        elif method == "jeffreys":
            lower = np.where(k > 0, stats.beta.ppf(alpha / 2, k + 0.5, n - k + 0.5), 0.0)
            upper = np.where(k < n, stats.beta.isf(alpha / 2, k + 0.5, n - k + 0.5), 1.0)
        else:
            raise ValueError(f"unknown interval method {method!r}")
    small = ~(n >= max(min_n, 1))
    return np.where(small, np.nan, np.clip(lower, 0, 1)), np.where(small, np.nan, np.clip(upper, 0, 1))


def subtree_counts(nodes: pd.DataFrame, leaf_counts: pd.DataFrame) -> pd.DataFrame:
    """Per-node totals of per-leaf counts.

    Args:
        nodes: nodes frame (``node_id``, ``parent_id``).
        leaf_counts: one row per node that holds items directly (the leaves), with ``node_id``
            and numeric count columns (e.g. ``n`` items, ``wins`` correct).

    Returns:
        ``nodes[['node_id']]`` plus every count column summed over each node's subtree (float).
    """
    index = tree_index(nodes)
    cols = [c for c in leaf_counts.columns if c != "node_id"]
    at = pd.Index(index.node_id).get_indexer(leaf_counts["node_id"].to_numpy())
    if (at < 0).any():
        raise ValueError("leaf_counts has node ids that are not in the nodes frame")
    base = np.zeros((len(index.node_id), len(cols)))
    np.add.at(base, at, leaf_counts[cols].to_numpy(dtype=np.float64))
    sums = subtree_sums(index, base)
    return pd.DataFrame({"node_id": index.node_id, **{c: sums[:, i] for i, c in enumerate(cols)}})


def accuracy_by_node(
    nodes: pd.DataFrame,
    item_leaf: np.ndarray,
    correct: np.ndarray,
    level: float = 0.95,
    method: IntervalMethod = "clopper-pearson",
    min_n: int = MIN_INTERVAL_N,
) -> pd.DataFrame:
    """Accuracy of one model in every node, with intervals (EvalTree's node scores).

    Args:
        nodes: nodes frame (``node_id``, ``parent_id``; ``description`` is carried along).
        item_leaf: (n_items,) leaf node id of every item.
        correct: (n_items,) score of the model on every item, in [0, 1].

    Returns:
        The nodes frame's ``node_id``, ``parent_id`` (and ``description``) plus ``size`` (items),
        ``wins`` (sum of scores), ``score`` (accuracy), ``lower``, ``upper``.
    """
    leaf = pd.DataFrame({"node_id": np.asarray(item_leaf), "n": 1.0, "wins": np.asarray(correct, float)})
    counts = subtree_counts(nodes, leaf.groupby("node_id", as_index=False).sum())
    lower, upper = binomial_interval(counts["wins"], counts["n"], level, method, min_n)
    keep = [c for c in ("node_id", "parent_id", "description") if c in nodes.columns]
    out = nodes[keep].reset_index(drop=True).copy()
    out["size"] = counts["n"].to_numpy().astype(np.int64)
    out["wins"] = counts["wins"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["score"] = out["wins"] / out["size"]
    out["lower"], out["upper"] = lower, upper
    return out


# --------------------------------------------------------------------------- EvalTree extraction


class Profile(NamedTuple):
    """One distinct weakness (or strength) profile of a τ sweep.

    Weaknesses: the profile holds for every τ with ``tau_low < τ <= tau_high``; strengths: for
    ``tau_low <= τ < tau_high``. ``node_ids`` are in tree preorder (as in the nodes frame).
    """

    tau_low: float
    tau_high: float
    node_ids: tuple[int, ...]


def _bound(nodes: pd.DataFrame, direction: Direction) -> np.ndarray:
    """The bound a node is compared with, oriented so that "fails" is always ``bound < t``:
    weak: upper bound; strong: minus the lower bound (t = -τ)."""
    if direction == "weak":
        return nodes["upper"].to_numpy(dtype=float)
    if direction == "strong":
        return -nodes["lower"].to_numpy(dtype=float)
    raise ValueError(f"direction must be 'weak' or 'strong', got {direction!r}")


def extract_mask(
    index: TreeIndex, flagged: np.ndarray, size: np.ndarray, min_child_size: int = MIN_CHILD_SIZE
) -> np.ndarray:
    """EvalTree's walk over any per-node flag ("fails", "significant", ...).

    Args:
        index: the tree.
        flagged: (n_nodes,) or (n_rows, n_nodes) bool; several flag vectors are handled at once.
        size: (n_nodes,) items under each node.
        min_child_size: children with at least this many items must be flagged too.

    Returns:
        Same shape as ``flagged``: True for extracted nodes — flagged, every child of at least
        ``min_child_size`` items flagged, and no strict ancestor extracted. Extracted nodes never
        nest.
    """
    flagged = np.asarray(flagged, dtype=bool)
    big = np.asarray(size) >= min_child_size
    candidate = flagged & _children_all(index, flagged, np.broadcast_to(big, flagged.shape))
    # the topmost candidate on a path is extracted, so: extracted = candidate, no candidate above
    return candidate & ~ancestor_any(index, candidate)


def extract(
    nodes: pd.DataFrame,
    tau: float,
    direction: Direction = "weak",
    min_child_size: int = MIN_CHILD_SIZE,
) -> pd.DataFrame:
    """EvalTree weakness (``direction='weak'``) or strength profile of one model at threshold τ.

    Args:
        nodes: one row per node: ``node_id``, ``parent_id``, ``size`` (items), ``lower``,
            ``upper`` (the node score's interval, same units as τ; NaN = no interval) and
            optionally ``score``, ``description``.
        tau: threshold. Weak: a node fails when ``upper < tau``; strong: when ``lower > tau``.
        min_child_size: EvalTree's 20.

    Returns:
        The extracted nodes (columns ``PROFILE_COLUMNS``), in the frame's order.
    """
    index = tree_index(nodes)
    bound = _bound(nodes, direction)
    t = tau if direction == "weak" else -tau
    mask = extract_mask(index, bound < t, nodes["size"].to_numpy(), min_child_size)
    return _profile_frame(nodes, mask)


def index_ids(index: TreeIndex, mask: np.ndarray) -> list[int]:
    """Node ids of the nodes set in ``mask`` ((n_nodes,) bool), in the frame's order."""
    return [int(v) for v in index.node_id[np.asarray(mask, bool)]]


def _profile_frame(nodes: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    out = nodes.loc[np.asarray(mask, bool)].reset_index(drop=True)
    for col in PROFILE_COLUMNS:
        if col not in out.columns:
            out[col] = "" if col == "description" else np.nan
    return out[PROFILE_COLUMNS + [c for c in out.columns if c not in PROFILE_COLUMNS]]


def sweep(
    nodes: pd.DataFrame, direction: Direction = "weak", min_child_size: int = MIN_CHILD_SIZE
) -> list[Profile]:
    """Every distinct non-empty profile as τ moves over the real line, computed exactly.

    The set of failing nodes only changes where τ crosses a node's bound, so the profile is
    constant between consecutive distinct bounds; each interval is evaluated once and adjacent
    intervals with the same profile are merged. Weaknesses are listed from the highest τ down
    (the whole tree at the top, as the design's downward sweep), strengths from the lowest τ up;
    either way the loosest profile comes first.

    Args and columns as :func:`extract`.

    Returns:
        ``Profile(tau_low, tau_high, node_ids)`` list (see :class:`Profile` for which interval
        end is included); the outermost intervals extend to ±inf.
    """
    index = tree_index(nodes)
    bound = _bound(nodes, direction)
    cuts = np.unique(bound[np.isfinite(bound)])  # ascending, in "fails iff bound < t" orientation
    if len(cuts) == 0:
        return []
    # Interval j (j = 1..m): cuts[j-1] < t <= cuts[j] (cuts[m] = +inf): fails = bound <= cuts[j-1].
    fails = bound[None, :] <= cuts[:, None]  # (m, n): row j-1 is interval j
    masks = extract_mask(index, fails, nodes["size"].to_numpy(), min_child_size)
    edges = np.append(cuts, np.inf)
    profiles: list[Profile] = []
    ids = index.node_id
    prev: tuple[int, ...] | None = None
    for j in range(len(cuts)):
        members = tuple(int(i) for i in ids[masks[j]])
        lo, hi = float(edges[j]), float(edges[j + 1])
        if members and members == prev:
            profiles[-1] = profiles[-1]._replace(tau_high=hi)
        elif members:
            profiles.append(Profile(lo, hi, members))
        prev = members
    if direction == "strong":  # t = -τ: (lo, hi] in t is [-hi, -lo) in τ
        profiles = [Profile(-p.tau_high, -p.tau_low, p.node_ids) for p in profiles]
    return profiles[::-1]  # loosest first: the highest t (weak: highest τ; strong: lowest τ)


def strengths(nodes: pd.DataFrame, tau: float, min_child_size: int = MIN_CHILD_SIZE) -> pd.DataFrame:
    """EvalTree strength profile: the mirror rule (a node qualifies when ``lower > tau``)."""
    return extract(nodes, tau, "strong", min_child_size)


# --------------------------------------------------------------------------- tests and FDR


def accuracy_pvalues(
    wins: np.ndarray,
    n: np.ndarray,
    total_wins: float,
    total_n: float,
    reference: Literal["rest", "overall"] = "rest",
    direction: Direction = "weak",
    mid_p: bool = True,
) -> np.ndarray:
    """One-sided p-values that a node's accuracy is below (weak) or above (strong) the model's.

    Args:
        wins, n: (m,) correct items and items of each node (integers).
        total_wins, total_n: the same over the whole benchmark.
        reference: 'rest' (default) compares the node with the items outside it — the exact
            conditional test for two proportions (hypergeometric, Fisher's one-sided test);
            'overall' is the exact binomial test of the node against the overall accuracy.
        mid_p: Lancaster's mid-p (half the probability of the observed count), which removes the
            discreteness conservatism of exact tests; its size stays close to nominal.

    Returns:
        (m,) p-values; 1 where the node is the whole benchmark or empty.
    """
    k = np.rint(np.asarray(wins, float)).astype(np.int64)
    m = np.rint(np.asarray(n, float)).astype(np.int64)
    big_n, big_k = int(round(total_n)), int(round(total_wins))
    if reference == "rest":
        dist = stats.hypergeom(big_n, big_k, m)
    elif reference == "overall":
        dist = stats.binom(m, big_k / big_n)
    else:
        raise ValueError(f"reference must be 'rest' or 'overall', got {reference!r}")
    if direction == "weak":
        p = dist.cdf(k) - (0.5 * dist.pmf(k) if mid_p else 0.0)
    else:
        p = dist.sf(k - 1) - (0.5 * dist.pmf(k) if mid_p else 0.0)
    p = np.clip(p, 0.0, 1.0)
    trivial = (m <= 0) | (m >= big_n) if reference == "rest" else m <= 0
    return np.where(trivial, 1.0, p)


def extract_significant(
    nodes: pd.DataFrame,
    pvalue: str | np.ndarray = "p_adj",
    alpha: float = 0.05,
    rule: Literal["evaltree", "maximal"] = "evaltree",
    min_child_size: int = MIN_CHILD_SIZE,
) -> pd.DataFrame:
    """Significance-based profile: nodes flagged when their (adjusted) p-value is <= ``alpha``,
    extracted with EvalTree's walk (``rule='evaltree'``: all children of at least
    ``min_child_size`` items significant too) or as the topmost significant nodes (``'maximal'``).

    Returns the extracted rows of ``nodes`` (``PROFILE_COLUMNS`` first, the others after).
    """
    p = nodes[pvalue].to_numpy(float) if isinstance(pvalue, str) else np.asarray(pvalue, float)
    flagged = np.nan_to_num(p, nan=1.0) <= alpha
    index = tree_index(nodes)
    if rule == "evaltree":
        mask = extract_mask(index, flagged, nodes["size"].to_numpy(), min_child_size)
    elif rule == "maximal":
        mask = flagged & ~ancestor_any(index, flagged)
    else:
        raise ValueError(f"unknown rule {rule!r}")
    return _profile_frame(nodes, mask)


# --------------------------------------------------------------------------- penalised pruning


def accuracy_gain(
    wins: np.ndarray, n: np.ndarray, reference: float, direction: Direction = "weak"
) -> np.ndarray:
    """Log-likelihood gain of giving a node its own accuracy instead of ``reference``.

    ``n * KL(p̂ || reference)`` with p̂ = wins / n (half the likelihood-ratio statistic of the
    binomial test of the node against the reference), kept only on the side asked for
    (weak: p̂ < reference; strong: p̂ > reference), 0 otherwise. Shapes (m,) -> (m,), nats.
    """
    wins = np.asarray(wins, dtype=float)
    n = np.asarray(n, dtype=float)
    p0 = float(np.clip(reference, 1e-12, 1 - 1e-12))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.clip(wins / n, 1e-12, 1 - 1e-12)
        gain = n * (p * np.log(p / p0) + (1 - p) * np.log((1 - p) / (1 - p0)))
        side = (wins / n < p0) if direction == "weak" else (wins / n > p0)
    return np.where(side & (n > 0), gain, 0.0)


def z_gain(z: np.ndarray, direction: Direction = "weak") -> np.ndarray:
    """Log-likelihood gain ``z² / 2`` of a score or Wald statistic (the quadratic approximation
    of half the likelihood-ratio statistic), on the side asked for (weak: z < 0). (m,) -> (m,)."""
    z = np.nan_to_num(np.asarray(z, dtype=float))
    side = z < 0 if direction == "weak" else z > 0
    return np.where(side, 0.5 * z * z, 0.0)


def penalty_for(alpha: float) -> float:
    """The pruning penalty (nats) that an isolated node's one-sided test at level ``alpha`` just
    passes: ``z²/2`` with ``z = Φ⁻¹(1 − alpha)``. 0.001 -> 4.77."""
    return 0.5 * float(stats.norm.isf(alpha)) ** 2


def prune_mask(index: TreeIndex, gain: np.ndarray, penalty: float) -> np.ndarray:
    """Penalised-likelihood pruning of the tree (a CART cost-complexity pruning with the
    likelihood as the criterion).

    Every node may be explained as one block with its own level (gain ``gain[v]`` over the
    reference, at a cost of ``penalty`` per block), or through its children, each explained in
    the same way, or left at the reference (0). Bottom-up dynamic programming picks the best
    explanation of the whole tree: ``best(v) = max(0, gain[v] - penalty, Σ best(children))``.
    The blocks of the best explanation are the extracted nodes. A node that mixes a weak part
    with a clean part loses to its weak child — its gain is diluted by the clean items — so
    profiles come out as pure as the tree allows, while a node whose children are all weak
    wins over them (one penalty instead of several). Non-nested by construction.

    Args:
        index: the tree.
        gain: (n_nodes,) nats, e.g. :func:`accuracy_gain` or :func:`z_gain`; 0 where not on the
            side of interest.
        penalty: nats per extracted node; :func:`penalty_for` converts a per-node test level.

    Returns:
        (n_nodes,) bool, the extracted nodes.
    """
    gain = np.nan_to_num(np.asarray(gain, dtype=float))
    block = gain - penalty
    below = np.zeros(len(gain))  # Σ best(children)
    for level in reversed(index.levels):
        best = np.maximum(np.maximum(block[level], below[level]), 0.0)
        par = index.parent[level]
        has = par >= 0
        np.add.at(below, par[has], best[has])
    chosen = (block > 0) & (block >= below)
    return chosen & ~ancestor_any(index, chosen)


def extract_pruned(
    nodes: pd.DataFrame, gain: str | np.ndarray = "gain", penalty: float = 4.77
) -> pd.DataFrame:
    """:func:`prune_mask` over a nodes frame (``node_id``, ``parent_id``; ``gain`` a column name
    or an (n_nodes,) array in the frame's order). Returns the extracted rows, ``PROFILE_COLUMNS``
    first."""
    g = nodes[gain].to_numpy(float) if isinstance(gain, str) else np.asarray(gain, float)
    return _profile_frame(nodes, prune_mask(tree_index(nodes), g, penalty))
