"""Recursive k-means over unit vectors: the clustering stage of a capability tree (EvalTree §3.1).

At every node the items are split by k-means for k = ``k_min`` .. ``k_max`` and the k with the
best **cosine** silhouette wins; the children are split in turn until a node is too small, too
deep, or no split has a positive silhouette. EvalTree itself recurses down to single items with
full k-means and ``sklearn.metrics.silhouette_score(metric="cosine")`` at every node; this module
keeps the method and makes it practical at 10^5 items:

* **Exact cosine silhouette in O(n·k·d).** For unit rows the cosine distance is ``1 - x·y``, so an
  item's mean distance to a cluster is ``1 - x·mean(cluster)`` (own cluster: corrected for the
  item itself). The silhouette of every candidate split is computed exactly from the cluster sums
  (no n×n distance matrix, no sampling); it equals sklearn's value to ~1e-6.
* **Spherical k-means in numpy** (k-means++ seeding shared by all k, cosine assignment, unit
  centroids), single-threaded BLAS; nodes above ``minibatch_above`` items are clustered on a
  fixed random subset of that many items, then every item gets a few full Lloyd steps.
* **A minimum node size** (``min_size``): a node with fewer than ``2 * min_size`` items is a leaf,
  k is capped at ``n // min_size``, and a candidate split's clusters smaller than ``min_size`` are
  dissolved into the nearest surviving cluster (by cosine to its mean) before the split is scored.
  So every node except a small root has at least ``min_size`` items.
* **Spherical refinement of the chosen split**: a few Lloyd steps with unit-norm centroids, so an
  item's child is the child whose ``centroid_`` is most similar to it (what :meth:`route` does),
  stopping before any child would fall below ``min_size``.

Defaults, measured with ``bench/bench_tree_cluster.py`` (MiniLM embeddings; 2-core machine):
``min_size=3`` — leaves of 3-5 items; 12.4% of the 250 Arena-Hard same-cluster pairs share a node
of <= 10 prompts (random placement 1.1%; faithful EvalTree recursion 14.4%), against 10% at
``min_size=5`` and 2.4% at 8, while MATH NMI is the same for 2..8. ``minibatch_above=20_000``
and ``n_init=1`` (3 restarts did not raise NMI and cost 3x): 100,000 × 384 points fit in ~57 s,
~0.7 GB peak; 5,000 MATH problems in ~2-3 s against ~23-160 s for the sklearn reference (load
dependent). ``silhouette_sample=None``: exact silhouette, it costs as much as one Lloyd step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

ProgressCallback = Callable[[int, int, int], None]
"""Called after every node as ``progress(nodes_done, items_in_leaves, n_items)``."""

_REFINE_STEPS = 10  # spherical Lloyd steps on the chosen split
_BIG_NODE_STEPS = 5  # full-node Lloyd steps after clustering a big node's subset
_LEVEL_STEPS = 10  # spherical Lloyd steps over a whole level (see RecursiveKMeans.refine_levels)


@dataclass
class _Split:
    """A candidate split of one node: child label per item, in 0..k-1, and its silhouette."""

    labels: np.ndarray  # (n,) int
    silhouette: float


def _unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows of X scaled to unit L2 norm (zero rows stay zero). (n, d) -> (n, d) float32."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def _cluster_sums(X: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster vector sums (k, d) float64 and counts (k,) int of rows X (n, d) by labels (n,)."""
    onehot = (labels[None, :] == np.arange(k)[:, None]).astype(X.dtype)  # k <= 10: one BLAS call
    return (onehot @ X).astype(np.float64), np.bincount(labels, minlength=k)


def _kmeans_plusplus(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeding (as sklearn: 2 + log k candidates per step, keep the one that
    lowers the potential most) on unit rows X (n, d), squared distance 2 - 2 cos. Returns (k, d)."""
    n = len(X)
    trials = 2 + int(np.log(k))
    centers = [X[rng.integers(n)]]
    closest = np.maximum(2.0 - 2.0 * (X @ centers[0]), 0.0)
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # fewer distinct points than k: repeat a point, its cluster stays empty
            centers.append(X[rng.integers(n)])
            continue
        cand = np.searchsorted(np.cumsum(closest), rng.random(trials) * total).clip(max=n - 1)
        dist = np.minimum(closest[None, :], np.maximum(2.0 - 2.0 * (X[cand] @ X.T), 0.0))
        best = int(np.argmin(dist.sum(axis=1)))
        centers.append(X[cand[best]])
        closest = dist[best]
    return np.vstack(centers)


def cosine_silhouette(X: np.ndarray, labels: np.ndarray) -> float:
    """Exact mean cosine silhouette of a partition of unit rows, in O(n·k·d).

    Args:
        X: (n, d) rows of unit L2 norm.
        labels: (n,) cluster index per row, in 0..k-1 (empty clusters allowed).

    Returns:
        The mean over rows of ``(b - a) / max(a, b)`` with cosine distance ``1 - x·y``; rows alone
        in their cluster count 0 (as in sklearn). In [-1, 1]; nan if fewer than 2 clusters.
    """
    labels = np.asarray(labels)
    k = int(labels.max()) + 1
    sums, counts = _cluster_sums(X, labels, k)
    if np.count_nonzero(counts) < 2:
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        means = (sums / counts[:, None]).astype(X.dtype)  # (k, d); nan rows for empty clusters
    sim = (X @ means.T).astype(np.float64)  # (n, k) mean cosine similarity to every cluster
    rows = np.arange(len(X))
    own_n = counts[labels].astype(np.float64)
    # own cluster, without the item itself (x·x = 1): sum_j (1 - x·x_j) / (n_c - 1)
    a = own_n * (1.0 - sim[rows, labels]) / np.maximum(own_n - 1, 1)
    mean_dist = 1.0 - sim
    mean_dist[:, counts == 0] = np.inf
    mean_dist[rows, labels] = np.inf
    b = mean_dist.min(axis=1)
    s = (b - a) / np.maximum(np.maximum(a, b), 1e-12)
    s[own_n == 1] = 0.0
    return float(s.mean())


def _unit_centroids(X: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm mean direction (k, d) float32 and size (k,) of each cluster of rows X."""
    sums, counts = _cluster_sums(X, labels, k)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.where(norms > 0, norms, 1.0)).astype(np.float32), counts


def _spherical_lloyd(X: np.ndarray, centroids: np.ndarray, max_iter: int) -> tuple[np.ndarray, float]:
    """Spherical k-means from the unit ``centroids`` (k, d): assign every unit row of X (n, d) to
    its most similar centroid, re-centre on the unit mean direction, until the labels are stable
    or after ``max_iter`` steps. Returns labels (n,) and the total cosine similarity to the final
    centroids (higher is better). An emptied cluster keeps its previous centroid."""
    k = len(centroids)
    labels = None
    for _ in range(max_iter):
        sims = X @ centroids.T
        new = np.argmax(sims, axis=1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        fresh, counts = _unit_centroids(X, labels, k)
        centroids = np.where(counts[:, None] > 0, fresh, centroids)
    sims = X @ centroids.T
    return labels, float(sims[np.arange(len(X)), labels].sum())


def _dissolve_small(X: np.ndarray, labels: np.ndarray, min_size: int) -> np.ndarray | None:
    """Move the rows of clusters smaller than ``min_size`` to the most similar surviving cluster.

    Returns labels renumbered 0..k'-1 in the order of the old labels, or None when fewer than two
    clusters survive.
    """
    k = int(labels.max()) + 1
    centroids, counts = _unit_centroids(X, labels, k)
    keep = np.flatnonzero(counts >= min_size)
    if len(keep) < 2:
        return None
    remap = np.full(k, -1)
    remap[keep] = np.arange(len(keep))
    out = remap[labels]
    orphans = np.flatnonzero(out < 0)
    if len(orphans):
        out[orphans] = np.argmax(X[orphans] @ centroids[keep].T, axis=1)
    return out


def _spherical_refine(X: np.ndarray, labels: np.ndarray, min_size: int, steps: int) -> np.ndarray:
    """Spherical k-means steps: reassign every row to the child with the most similar unit-norm
    centroid, until stable, ``steps`` are done, or a step would leave a child below min_size."""
    k = int(labels.max()) + 1
    for _ in range(steps):
        centroids, _ = _unit_centroids(X, labels, k)
        new = np.argmax(X @ centroids.T, axis=1)
        if np.array_equal(new, labels) or np.bincount(new, minlength=k).min() < min_size:
            break
        labels = new
    return labels


class RecursiveKMeans:
    """EvalTree-style recursive k-means over unit vectors, with cosine silhouette model selection.

    Parameters:
        k_min, k_max: range of k tried at every node (EvalTree: 2..10). k is also capped at
            ``n // min_size`` and ``n - 1`` for a node of n items.
        min_size: smallest node (items). Nodes with fewer than ``2 * min_size`` items are leaves;
            clusters below it are dissolved into the most similar sibling (see module docstring).
            Default 3: leaves of 3-5 items (EvalTree itself goes down to single items).
        max_depth: nodes at this depth are leaves (root depth 0); None = unlimited.
        silhouette_sample: None (default) scores every split with the exact silhouette over the
            whole node, which costs O(n·k·d) here; an int m scores on a random subset of m items
            of nodes bigger than m (the subset is fixed per node, so all k compete on the same one).
        minibatch_above: nodes with more items than this run k-means on a fixed random subset of
            this many items, then a few Lloyd steps over all items (default 20,000).
        random_state: seed; the same X and seed give the same tree. Each node draws its own seed
            from (random_state, path), so a subtree does not depend on the order of the build.
        n_init: k-means restarts per candidate k (default 1: more restarts did not raise NMI).
        min_silhouette: a node is split only if its best silhouette exceeds this (default 0).
        refine_levels: levels 1..refine_levels (default 2) are refined as a whole once split:
            spherical Lloyd steps over all nodes of the level together, so an item can leave a
            branch chosen too early for the most similar node of its level (ancestors then hold
            the union of their children). Measured on MATH over 5 seeds: the depth-2 cut goes
            from 0.015 NMI below a flat k-means with the same k to level with it (0.331 vs
            0.334), depth 1 stays above flat; refining deeper levels too undid the gain (their
            fine-grained moves blur the top levels). 0 reproduces plain EvalTree recursion.
        refine_budget: skip a level's refinement when items x nodes exceeds this (its cost).
        progress: optional ``progress(nodes_done, items_in_leaves, n_items)`` after every node.

    Attributes (n_nodes nodes; ids in depth-first preorder, node 0 the root; the children of a node
    are ordered by size, largest first, ties by k-means label):
        parent_: (n_nodes,) int, parent id, -1 for the root.
        depth_: (n_nodes,) int, root 0.
        path_: list of n_nodes str, dotted child indices: root "0", its children "0.0", "0.1", ...;
            a node's subtree is the set of nodes whose path starts with its path + ".".
        size_: (n_nodes,) int, items under the node.
        centroid_: (n_nodes, d) float32, unit-norm mean direction of the node's items.
        silhouette_: (n_nodes,) float, cosine silhouette of the split chosen at the node (nan for
            leaves), over the node's items (or its sample, see ``silhouette_sample``).
        n_children_: (n_nodes,) int, 0 for leaves.
        labels_: (n,) int, leaf node id of every item.
        leaves_: (n_leaves,) int, leaf ids in preorder.
    """

    def __init__(
        self,
        k_min: int = 2,
        k_max: int = 10,
        min_size: int = 3,
        max_depth: int | None = None,
        silhouette_sample: int | None = None,
        minibatch_above: int = 20_000,
        random_state: int = 0,
        n_init: int = 1,
        max_iter: int = 100,
        min_silhouette: float = 0.0,
        refine_levels: int = 2,
        refine_budget: int = 20_000_000,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.k_min = k_min
        self.k_max = k_max
        self.min_size = min_size
        self.max_depth = max_depth
        self.silhouette_sample = silhouette_sample
        self.minibatch_above = minibatch_above
        self.random_state = random_state
        self.n_init = n_init
        self.max_iter = max_iter
        self.min_silhouette = min_silhouette
        self.refine_levels = refine_levels
        self.refine_budget = refine_budget
        self.progress = progress

    # ------------------------------------------------------------------ fitting

    def fit(self, X: np.ndarray) -> RecursiveKMeans:
        """Build the tree over X: (n, d) item embeddings (float32, rows L2-normalised; rows are
        re-normalised defensively). Returns self."""
        self._validate(X)
        # One BLAS thread: the work is many small products, and 2+ threads on a busy 2-core
        # machine made a 5,000-item fit 5x slower (spin-waits); the tree is the same either way.
        with threadpool_limits(limits=1):
            self._fit(_unit_rows(X))
        return self

    def _fit(self, X: np.ndarray) -> None:
        """Build level by level: split every node of a level, then (``refine_levels``) let the
        items of the new level move to the most similar node of that level, then go deeper."""
        n = len(X)
        items: list[np.ndarray] = [np.arange(n)]  # per working node (creation order)
        parent, depth, seed_path, sil = [-1], [0], ["0"], [np.nan]
        kids: list[list[int]] = [[]]
        level, in_leaves, processed = [0], 0, 0
        while level:
            created: list[int] = []
            for node in level:
                split = self._split_node(X[items[node]], seed_path[node], depth[node])
                if split is None:
                    in_leaves += len(items[node])
                else:
                    sil[node] = split.silhouette
                    for i, rows in enumerate(self._children_by_size(split.labels)):
                        kids[node].append(len(items))
                        created.append(len(items))
                        items.append(items[node][rows])
                        parent.append(node)
                        depth.append(depth[node] + 1)
                        seed_path.append(f"{seed_path[node]}.{i}")
                        sil.append(np.nan)
                        kids.append([])
                processed += 1
                if self.progress is not None:
                    self.progress(processed, in_leaves, n)
            too_deep = bool(created) and depth[created[0]] > self.refine_levels
            if not too_deep and self._refine_level(X, items, created):
                self._rebuild_ancestors(X, items, kids, sil, parent, created)
            level = created
        self._finalize(X, items, parent, kids, sil)

    def _refine_level(self, X: np.ndarray, items: list[np.ndarray], level: list[int]) -> bool:
        """Spherical Lloyd steps over all nodes of one level at once: an item may move to the
        most similar node of its level under another parent (a split made high in the tree is
        revised by what the level below learnt). Stops before any node would fall below
        ``min_size``; skipped when items x nodes exceeds ``refine_budget``. True if items moved."""
        k = len(level)
        pool = np.concatenate([items[c] for c in level]) if level else np.empty(0, dtype=np.int64)
        if k < 2 or len(pool) * k > self.refine_budget:
            return False
        lab = np.concatenate([np.full(len(items[c]), j) for j, c in enumerate(level)])
        start = lab.copy()
        Xp = X[pool]
        for _ in range(_LEVEL_STEPS):
            cents, _ = _unit_centroids(Xp, lab, k)
            new = np.argmax(Xp @ cents.T, axis=1)
            while True:  # a node that would fall below min_size keeps all its items
                short = np.bincount(new, minlength=k) < self.min_size
                if not short.any():
                    break
                keep = short[lab]
                new[keep] = lab[keep]
            if np.array_equal(new, lab):
                break
            lab = new
        if np.array_equal(lab, start):
            return False
        for j, c in enumerate(level):
            items[c] = np.sort(pool[lab == j])
        return True

    @staticmethod
    def _rebuild_ancestors(X, items, kids, sil, parent, level) -> None:
        """After a level moved items: every ancestor holds the union of its children, and the
        split silhouette of each changed parent is recomputed on its new items."""
        changed = set()
        for c in level:
            node = parent[c]
            while node >= 0:
                changed.add(node)
                node = parent[node]
        for node in sorted(changed, reverse=True):  # children were created after parents
            items[node] = np.sort(np.concatenate([items[c] for c in kids[node]]))
            labels = np.concatenate([np.full(len(items[c]), j) for j, c in enumerate(kids[node])])
            order = np.concatenate([items[c] for c in kids[node]])
            sil[node] = cosine_silhouette(X[order], labels)

    def _finalize(self, X, items, parent, kids, sil) -> None:
        """Number the working nodes in depth-first preorder (children by size, largest first,
        ties by creation) and set the fitted attributes."""
        n = len(X)
        order_nodes: list[int] = []
        stack = [0]
        while stack:
            node = stack.pop()
            order_nodes.append(node)
            ranked = sorted(kids[node], key=lambda c: (-len(items[c]), c))
            stack.extend(reversed(ranked))
        new_id = {old: i for i, old in enumerate(order_nodes)}
        m = len(order_nodes)
        self.parent_ = np.array(
            [-1 if parent[o] < 0 else new_id[parent[o]] for o in order_nodes], dtype=np.int64
        )
        self.size_ = np.array([len(items[o]) for o in order_nodes], dtype=np.int64)
        self.silhouette_ = np.array([sil[o] for o in order_nodes], dtype=np.float64)
        self.n_children_ = np.array([len(kids[o]) for o in order_nodes], dtype=np.int64)
        self.depth_ = np.zeros(m, dtype=np.int64)
        paths = ["0"] * m
        child_rank = np.zeros(m, dtype=np.int64)
        for i in range(1, m):
            p = self.parent_[i]
            self.depth_[i] = self.depth_[p] + 1
            paths[i] = f"{paths[p]}.{child_rank[p]}"
            child_rank[p] += 1
        self.path_ = paths
        self.centroid_ = np.vstack(
            [
                _unit_centroids(X[items[o]], np.zeros(len(items[o]), dtype=np.int64), 1)[0][0]
                for o in order_nodes
            ]
        ).astype(np.float32)
        self.leaves_ = np.flatnonzero(self.n_children_ == 0)
        labels = np.empty(n, dtype=np.int64)
        order = np.empty(n, dtype=np.int64)
        start = np.zeros(m, dtype=np.int64)
        offset = 0
        for i, o in enumerate(order_nodes):  # preorder: a node's items precede its later siblings'
            start[i] = offset
            if self.n_children_[i] == 0:
                labels[items[o]] = i
                order[offset : offset + len(items[o])] = items[o]
                offset += len(items[o])
        self.labels_ = labels
        self._start = start
        self._order = order
        self._children = self._child_lists()

    def _validate(self, X: np.ndarray) -> None:
        if np.ndim(X) != 2 or len(X) == 0:
            raise ValueError(f"X must be a non-empty (n, d) array, got shape {np.shape(X)}")
        if not 2 <= self.k_min <= self.k_max:
            raise ValueError(f"need 2 <= k_min <= k_max, got k_min={self.k_min}, k_max={self.k_max}")
        if self.min_size < 1:
            raise ValueError(f"min_size must be >= 1, got {self.min_size}")

    def _node_seed(self, path: str) -> int:
        """A seed for one node from (random_state, path): independent of the build order."""
        key = tuple(int(p) for p in path.split("."))
        return int(np.random.SeedSequence(self.random_state, spawn_key=key).generate_state(1)[0])

    def _split_node(self, Xn: np.ndarray, path: str, depth: int) -> _Split | None:
        """The best split of one node's items Xn (m, d), or None to make it a leaf."""
        m = len(Xn)
        if m < 2 * self.min_size or (self.max_depth is not None and depth >= self.max_depth):
            return None
        k_hi = min(self.k_max, m // self.min_size, m - 1)
        if k_hi < self.k_min:
            return None
        seed = self._node_seed(path)
        score_rows = self._score_rows(m, seed)
        best: _Split | None = None
        for raw in self._candidates(Xn, range(self.k_min, k_hi + 1), seed):
            labels = _dissolve_small(Xn, raw, self.min_size)
            if labels is None:
                continue
            s = cosine_silhouette(Xn[score_rows], labels[score_rows])
            if np.isfinite(s) and (best is None or s > best.silhouette):
                best = _Split(labels, s)
        if best is None or best.silhouette <= self.min_silhouette:
            return None
        labels = _spherical_refine(Xn, best.labels, self.min_size, _REFINE_STEPS)
        if labels is not best.labels:
            best = _Split(labels, cosine_silhouette(Xn[score_rows], labels[score_rows]))
        return best

    def _score_rows(self, m: int, seed: int) -> np.ndarray | slice:
        """Rows of a node of m items on which its splits are scored: all, or a fixed sample."""
        if self.silhouette_sample is None or m <= self.silhouette_sample:
            return slice(None)
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(m, size=self.silhouette_sample, replace=False))

    def _candidates(self, Xn: np.ndarray, ks: range, seed: int) -> list[np.ndarray]:
        """Spherical k-means labels (m,) of the unit rows Xn (m, d) for every k in ``ks``.

        One greedy k-means++ seeding of max(ks) centres per restart; k uses its first k centres
        (k-means++ is sequential, so that is exactly a k-means++ seeding for k). The best of
        ``n_init`` restarts (total cosine similarity to the centroids) is kept per k. Nodes above
        ``minibatch_above`` rows are clustered on a fixed random subset of that many rows, then
        all rows get ``_BIG_NODE_STEPS`` Lloyd steps from the subset's centroids.
        """
        m = len(Xn)
        rng = np.random.default_rng(seed)
        big = m > self.minibatch_above
        Xf = Xn[np.sort(rng.choice(m, self.minibatch_above, replace=False))] if big else Xn
        best: list[tuple[float, np.ndarray]] = [(-np.inf, np.empty(0, dtype=np.int64))] * len(ks)
        for _ in range(self.n_init):
            seeds = _kmeans_plusplus(Xf, ks[-1], rng)
            for i, k in enumerate(ks):
                labels, fit = _spherical_lloyd(Xf, seeds[:k], self.max_iter)
                if fit > best[i][0]:
                    best[i] = (fit, labels)
        out = [labels for _, labels in best]
        if big:
            starts = [_unit_centroids(Xf, lab, k)[0] for k, lab in zip(ks, out, strict=True)]
            out = [_spherical_lloyd(Xn, c, _BIG_NODE_STEPS)[0] for c in starts]
        return out

    @staticmethod
    def _children_by_size(labels: np.ndarray) -> list[np.ndarray]:
        """Row indices of each child, largest child first, ties by label."""
        counts = np.bincount(labels)
        ranked = sorted((c for c in range(len(counts)) if counts[c] > 0), key=lambda c: (-counts[c], c))
        return [np.flatnonzero(labels == c) for c in ranked]

    def _child_lists(self) -> list[np.ndarray]:
        """Child ids of every node, in child order (preorder ids increase along siblings)."""
        kids: list[list[int]] = [[] for _ in range(len(self.parent_))]
        for node, par in enumerate(self.parent_):
            if par >= 0:
                kids[par].append(node)
        return [np.asarray(k, dtype=np.int64) for k in kids]

    def fit_sample(self, X: np.ndarray, sample: int) -> RecursiveKMeans:
        """Fit on ``sample`` items of X (n, d) drawn without replacement from ``random_state``,
        then place every other item with :meth:`route`, as new prompts are placed (for trees
        over more prompts than a full build can afford). Node sizes, centroids and memberships
        then count all n items; the shape, paths and silhouettes are the sample's. With
        ``sample >= n`` this is :meth:`fit`. Returns self; ``sample_`` holds the fitted rows."""
        n = len(X)
        if sample >= n:
            self.sample_ = np.arange(n)
            return self.fit(X)
        rows = np.sort(np.random.default_rng([self.random_state, n, sample]).choice(n, sample, replace=False))
        self.fit(X[rows])
        labels = np.empty(n, dtype=np.int64)
        labels[rows] = self.labels_
        rest = np.setdiff1d(np.arange(n), rows)
        with threadpool_limits(limits=1):
            labels[rest] = self.route(X[rest])
        self.sample_ = rows
        self._assign(_unit_rows(X), labels)
        return self

    def _assign(self, X: np.ndarray, labels: np.ndarray) -> None:
        """Recount sizes, centroids and memberships for items X with leaf ``labels`` (the tree's
        shape unchanged; preorder ids put a node's subtree right after it)."""
        m = len(self.parent_)
        counts = np.bincount(labels, minlength=m).astype(np.int64)
        sums = np.zeros((m, X.shape[1]))
        np.add.at(sums, labels, X)
        size = counts.copy()
        for node in range(m - 1, 0, -1):  # children have larger preorder ids than their parent
            size[self.parent_[node]] += size[node]
            sums[self.parent_[node]] += sums[node]
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        self.size_ = size
        self.centroid_ = np.where(norms > 0, sums / np.where(norms > 0, norms, 1), self.centroid_).astype(
            np.float32
        )
        self.labels_ = labels
        self._order = np.argsort(labels, kind="stable")
        self._start = np.concatenate([[0], np.cumsum(counts)[:-1]])

    # ------------------------------------------------------------------ using the tree

    def children(self, node: int) -> np.ndarray:
        """Child ids of ``node`` (empty for a leaf), in child order."""
        return self._children[node]

    def members(self, node: int) -> np.ndarray:
        """Indices (into the fitted X) of the items under ``node``, sorted ascending."""
        s = self._start[node]
        return np.sort(self._order[s : s + self.size_[node]])

    def route(self, X: np.ndarray) -> np.ndarray:
        """Leaf id (m,) for every row of X (m, d), the way the build assigned items: see
        :func:`route_tree`."""
        return route_tree(self.parent_, self.centroid_, X, self.refine_levels)

    def cut(self, depth: int) -> np.ndarray:
        """(n,) node id of every fitted item's ancestor at ``depth`` (its leaf if shallower)."""
        node = self.labels_.copy()
        while True:
            deeper = self.depth_[node] > depth
            if not deeper.any():
                return node
            node[deeper] = self.parent_[node[deeper]]


def route_tree(parent: np.ndarray, centroid: np.ndarray, X: np.ndarray, flat_levels: int = 0) -> np.ndarray:
    """Leaf id (m,) of every row of X (m, d) in a tree given by ``parent`` (n_nodes,) (preorder,
    -1 for the root) and unit ``centroid`` (n_nodes, d).

    Levels 1..``flat_levels`` were refined as a whole (see ``RecursiveKMeans.refine_levels``), so
    there a row goes to the most similar node of the whole level (among those below a non-leaf),
    as the build placed items; below, it descends to the most similar child until a leaf.
    """
    X = _unit_rows(np.atleast_2d(X))
    parent = np.asarray(parent)
    n_nodes = len(parent)
    depth = np.zeros(n_nodes, dtype=np.int64)
    kids: list[list[int]] = [[] for _ in range(n_nodes)]
    for node in range(1, n_nodes):
        depth[node] = depth[parent[node]] + 1
        kids[parent[node]].append(node)
    out = np.zeros(len(X), dtype=np.int64)
    for level in range(1, flat_levels + 1):
        nodes = np.flatnonzero(depth == level)
        rows = np.flatnonzero([len(kids[o]) > 0 for o in out])
        if len(nodes) == 0 or len(rows) == 0:
            break
        out[rows] = nodes[np.argmax(X[rows] @ centroid[nodes].T, axis=1)]
    for i in range(len(X)):
        node = int(out[i])
        while kids[node]:
            options = kids[node]
            node = options[int(np.argmax(centroid[options] @ X[i]))]
        out[i] = node
    return out
