"""RecursiveKMeans (pipelines.tree.cluster): structure, determinism, routing and quality floors.

Quality is measured on real data embedded with the bundled MiniLM model: the 5,000 MATH test
problems against their 7 subjects, and the 500 Arena-Hard v0.1 prompts (250 pairs sharing a
``cluster`` label). The embeddings come from the session's bundled-data build (``bundled_db``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import dataset_embeddings
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

from pipelines.tree.cluster import RecursiveKMeans, cosine_silhouette


def _read_jsonl(path: Path) -> list[dict]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def _unit(X: np.ndarray) -> np.ndarray:
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="session")
def math_data(bundled_db: Path) -> tuple[np.ndarray, np.ndarray]:
    """MiniLM embeddings (5000, 384) of the MATH test problems and their subjects (5000,)."""
    X, items = dataset_embeddings(bundled_db, "math")
    return X, np.array([m["type"] for m in items["metadata"]])


@pytest.fixture(scope="session")
def math_tree(math_data) -> RecursiveKMeans:
    return RecursiveKMeans().fit(math_data[0])


@pytest.fixture(scope="session")
def arena_data(bundled_db: Path) -> tuple[np.ndarray, np.ndarray]:
    """MiniLM embeddings (500, 384) of Arena-Hard v0.1 and the (250, 2) same-cluster pairs."""
    X, items = dataset_embeddings(bundled_db, "arena-hard-v0.1")
    clusters = np.array([m["cluster"] for m in items["metadata"]])
    pairs = np.array([np.flatnonzero(clusters == c) for c in np.unique(clusters)])
    assert pairs.shape == (250, 2)
    return X.astype(np.float32), pairs


def _mixture(n_per: int = 200, k: int = 5, d: int = 64, spread: float = 0.25, seed: int = 0):
    """k gaussian blobs around random unit directions, rows re-normalised; labels (k * n_per,)."""
    rng = np.random.default_rng(seed)
    centers = _unit(rng.normal(size=(k, d)))
    y = np.repeat(np.arange(k), n_per)
    X = centers[y] + rng.normal(0, spread / np.sqrt(d), (len(y), d))
    return _unit(X), y


def _check_structure(t: RecursiveKMeans, n: int, min_size: int) -> None:
    n_nodes = len(t.parent_)
    assert t.parent_[0] == -1 and t.depth_[0] == 0 and t.path_[0] == "0" and t.size_[0] == n
    assert all(len(a) == n_nodes for a in (t.depth_, t.path_, t.size_, t.centroid_, t.silhouette_))
    assert (t.parent_[1:] < np.arange(1, n_nodes)).all()  # preorder: parents come first
    np.testing.assert_allclose(np.linalg.norm(t.centroid_, axis=1), 1.0, atol=1e-5)
    for node in range(1, n_nodes):
        par = t.parent_[node]
        assert t.depth_[node] == t.depth_[par] + 1
        assert t.path_[node].rsplit(".", 1)[0] == t.path_[par]
    leaves = t.n_children_ == 0
    assert np.isnan(t.silhouette_[leaves]).all() and (t.silhouette_[~leaves] > 0).all()
    for node in np.flatnonzero(~leaves):  # sizes add up; children ordered by size
        kids = t.children(node)
        assert len(kids) >= 2 and t.size_[kids].sum() == t.size_[node]
        assert (np.diff(t.size_[kids]) <= 0).all()
        assert (t.size_[kids] >= min_size).all()
        assert t.size_[node] >= 2 * min_size
    # every item in exactly one leaf; members() agrees with labels_ and with path prefixes
    assert leaves[t.labels_].all()
    assert sorted(np.concatenate([t.members(leaf) for leaf in t.leaves_]).tolist()) == list(range(n))
    for leaf in t.leaves_:
        np.testing.assert_array_equal(t.members(leaf), np.flatnonzero(t.labels_ == leaf))
    for node in range(0, n_nodes, max(1, n_nodes // 25)):
        prefix = t.path_[node]
        under = [i for i, p in enumerate(t.path_) if p == prefix or p.startswith(prefix + ".")]
        in_leaves = np.isin(t.labels_, under)
        np.testing.assert_array_equal(t.members(node), np.flatnonzero(in_leaves))
        assert in_leaves.sum() == t.size_[node]


# ---------------------------------------------------------------- fast tests


def test_cosine_silhouette_is_sklearns():
    X, y = _mixture(n_per=60, k=4, spread=1.5)
    for labels in (y, np.arange(len(y)) % 3, np.r_[0, np.ones(len(y) - 1, dtype=int)]):
        assert cosine_silhouette(X, labels) == pytest.approx(
            silhouette_score(X, labels, metric="cosine"), abs=1e-5
        )


def test_top_split_recovers_a_known_mixture():
    X, y = _mixture()
    t = RecursiveKMeans().fit(X)
    assert adjusted_rand_score(y, t.cut(1)) >= 0.9
    _check_structure(t, len(X), 3)


def test_same_input_same_tree_and_seed_matters():
    X, _ = _mixture(spread=1.0, seed=1)
    a, b = RecursiveKMeans(random_state=7).fit(X), RecursiveKMeans(random_state=7).fit(X.copy())
    for name in ("parent_", "depth_", "size_", "centroid_", "silhouette_", "labels_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.path_ == b.path_
    c = RecursiveKMeans(random_state=8).fit(X)
    assert len(c.parent_) != len(a.parent_) or not np.array_equal(c.labels_, a.labels_)


def test_min_size_max_depth_and_progress():
    X, _ = _mixture(spread=1.0, seed=2)
    calls: list[tuple[int, int, int]] = []
    t = RecursiveKMeans(min_size=12, max_depth=2, progress=lambda *a: calls.append(a)).fit(X)
    _check_structure(t, len(X), 12)
    assert t.depth_.max() <= 2
    assert [c[0] for c in calls] == list(range(1, len(t.parent_) + 1))
    assert calls[-1][1:] == (len(X), len(X))
    with pytest.raises(ValueError):
        RecursiveKMeans(k_min=1).fit(X)


def test_small_and_degenerate_inputs():
    t = RecursiveKMeans().fit(_unit(np.random.default_rng(0).normal(size=(4, 8))))
    assert len(t.parent_) == 1 and (t.labels_ == 0).all() and t.route(np.ones((2, 8))).tolist() == [0, 0]
    same = np.tile(_unit(np.ones((1, 8))), (50, 1))  # all rows identical: nothing to split
    t = RecursiveKMeans().fit(same)
    assert len(t.parent_) == 1


def test_big_nodes_use_the_subset_path():
    X, y = _mixture(n_per=600, k=4, d=32, spread=0.5)
    t = RecursiveKMeans(minibatch_above=500).fit(X)
    assert adjusted_rand_score(y, t.cut(1)) >= 0.9
    _check_structure(t, len(X), 3)
    assert (t.route(X) == t.labels_).mean() >= 0.95


# ---------------------------------------------------------------- real data (MiniLM)


def test_math_tree_structure_and_routing(math_data, math_tree):
    X, _ = math_data
    _check_structure(math_tree, len(X), 3)
    assert (math_tree.route(X) == math_tree.labels_).mean() >= 0.95
    rng = np.random.default_rng(0)
    src = rng.choice(len(X), 500, replace=False)
    near = _unit(X[src] + rng.normal(0, 0.003, (len(src), X.shape[1])))  # cosine ~0.998 to source
    assert (math_tree.route(near) == math_tree.labels_[src]).mean() >= 0.9


def _purity(truth: np.ndarray, clusters: np.ndarray) -> float:
    _, t = np.unique(truth, return_inverse=True)
    _, c = np.unique(clusters, return_inverse=True)
    table = np.zeros((c.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(table, (c, t), 1)
    return float(table.max(axis=1).sum() / len(truth))


@pytest.mark.parametrize(("depth", "nmi_floor", "purity_floor"), [(1, 0.27, 0.40), (2, 0.30, 0.54)])
def test_math_cut_matches_subjects(math_data, math_tree, depth, nmi_floor, purity_floor):
    X, subject = math_data
    cut = math_tree.cut(depth)
    assert normalized_mutual_info_score(subject, cut) >= nmi_floor and _purity(subject, cut) >= purity_floor


@pytest.mark.parametrize("depth", [1, 2])
def test_math_cuts_are_not_worse_than_flat_kmeans(math_data, depth):
    """Over three seeds, the tree's cut matches the subjects at least as well as a flat k-means
    with the same number of clusters (one seed alone varies by about +-0.02 NMI)."""
    X, subject = math_data
    tree_nmi, flat_nmi = [], []
    for seed in range(3):
        cut = RecursiveKMeans(random_state=seed).fit(X).cut(depth)
        flat = KMeans(n_clusters=len(np.unique(cut)), random_state=seed, n_init=1).fit_predict(X)
        tree_nmi.append(normalized_mutual_info_score(subject, cut))
        flat_nmi.append(normalized_mutual_info_score(subject, flat))
    assert np.mean(tree_nmi) >= np.mean(flat_nmi) - 0.005, (tree_nmi, flat_nmi)


def test_level_refinement_is_what_keeps_depth_two_level_with_flat(math_data):
    X, subject = math_data
    nmi = [
        np.mean(
            [
                normalized_mutual_info_score(
                    subject, RecursiveKMeans(random_state=s, refine_levels=r).fit(X).cut(2)
                )
                for s in range(3)
            ]
        )
        for r in (0, 2)
    ]
    assert nmi[1] > nmi[0] + 0.005, nmi


def _lca_size(t: RecursiveKMeans, leaf_a: int, leaf_b: int) -> int:
    pa, pb = t.path_[leaf_a].split("."), t.path_[leaf_b].split(".")
    common = []
    for x, y in zip(pa, pb, strict=False):
        if x != y:
            break
        common.append(x)
    return int(t.size_[t.path_.index(".".join(common))])


def _pair_rate(t: RecursiveKMeans, pairs: np.ndarray, where: np.ndarray) -> float:
    leaves = t.labels_[where[pairs]]
    return float(np.mean([_lca_size(t, a, b) <= 10 for a, b in leaves]))


def test_arena_hard_pairs_share_small_nodes(arena_data):
    X, pairs = arena_data
    t = RecursiveKMeans().fit(X)
    rate = _pair_rate(t, pairs, np.arange(len(X)))
    rng = np.random.default_rng(0)
    random_rate = np.mean([_pair_rate(t, pairs, rng.permutation(len(X))) for _ in range(100)])
    assert rate >= 0.10 and rate >= 5 * random_rate


@pytest.mark.slow
def test_fit_sample_fits_the_sample_and_routes_the_rest():
    """Sample-fit-then-route: the tree is exactly the sample's tree, every other item sits in the
    leaf :meth:`route` gives it, sizes / memberships / centroids count every item, and on a
    known mixture the top split still recovers the blobs."""
    X, y = _mixture(n_per=400, seed=3)
    t = RecursiveKMeans(random_state=5).fit_sample(X, 400)
    rows = t.sample_
    assert len(rows) == 400 and len(np.unique(rows)) == 400
    alone = RecursiveKMeans(random_state=5).fit(X[rows])
    np.testing.assert_array_equal(t.parent_, alone.parent_)
    assert t.path_ == alone.path_
    np.testing.assert_array_equal(t.labels_[rows], alone.labels_)
    rest = np.setdiff1d(np.arange(len(X)), rows)
    np.testing.assert_array_equal(t.labels_[rest], alone.route(X[rest]))
    assert t.size_[0] == len(X) and (t.n_children_[t.labels_] == 0).all()
    for node in np.flatnonzero(t.n_children_ > 0):
        assert t.size_[t.children(node)].sum() == t.size_[node]
    for node in range(len(t.parent_)):
        members = t.members(node)
        assert len(members) == t.size_[node]
        mean = X[members].sum(axis=0)
        np.testing.assert_allclose(t.centroid_[node], mean / np.linalg.norm(mean), atol=1e-5)
    assert adjusted_rand_score(y, t.cut(1)) >= 0.9
    again = RecursiveKMeans(random_state=5).fit_sample(X, 400)  # deterministic
    np.testing.assert_array_equal(again.labels_, t.labels_)
    whole = RecursiveKMeans(random_state=5).fit_sample(X, len(X))  # a sample of everything is fit()
    np.testing.assert_array_equal(whole.labels_, RecursiveKMeans(random_state=5).fit(X).labels_)
