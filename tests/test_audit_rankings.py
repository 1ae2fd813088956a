"""Ranking audits: inversions per tree node (pipelines.audit.inversions) and the votes that decide
#1 (pipelines.audit.robustness), checked against scipy, hand computations, brute force over vote
subsets and simulations with planted per-group offsets."""

from __future__ import annotations

import itertools

import duckdb
import numpy as np
import pandas as pd
import pytest
from helpers import WINNERS
from scipy import stats

from pipelines import ratings
from pipelines.audit.cells import NodeVotes, node_counts, vote_cells
from pipelines.audit.frame import AuditVotes, load_audit_votes
from pipelines.audit.inversions import (
    batched_bootstrap,
    holm,
    kendall_tau,
    max_t_pvalues,
    ranking_inversions,
    sandwich_covariance,
)
from pipelines.audit.robustness import FLIP_EPS, flip_search, robustness
from pipelines.audit.validity import simulated_votes
from pipelines.tree.read import resolve_tree

OUTCOME_NAMES = np.array(WINNERS)


@pytest.fixture(scope="module")
def planted(planted_arena):
    """100k votes, 12 models, per-group offsets planted (simulator defaults)."""
    return planted_arena


@pytest.fixture(scope="module")
def null(tmp_path_factory):
    """Same arena without any planted offset: no node truly reorders the models."""
    return simulated_votes(
        tmp_path_factory.mktemp("null"),
        votes=100_000,
        models=12,
        voters=1000,
        seed=1,
        weak_share=0.0,
        strong_share=0.0,
    )


# --------------------------------------------------------------------------- helpers


def expected_ratings(v: AuditVotes, idx: np.ndarray) -> np.ndarray:
    """True Bradley–Terry ratings (points, all models) of the votes ``idx``: the fit on the
    simulator's expected outcome counts (its per-vote outcome probabilities)."""
    n = len(v.models)
    p = v.votes[["p_model_a", "p_model_b", "p_tie", "p_tie_bothbad"]].to_numpy()[idx]
    counts = np.zeros((n * n, 3))
    code = v.a[idx] * n + v.b[idx]
    np.add.at(counts, code, np.column_stack([p[:, 0], p[:, 1], p[:, 2] + p[:, 3]]))
    keep = np.flatnonzero(counts.sum(axis=1) > 0)
    return ratings.to_ratings(ratings.fit_pairwise(keep // n, keep % n, n, counts[keep]), v.models)


def true_inversion(v: AuditVotes, node_id: int) -> float:
    """Largest true inversion in a node, points >= 0: over pairs ordered by the true global
    ratings, the most negative true node gap (strong minus weak), negated."""
    g = expected_ratings(v, np.arange(v.n))
    row = int(np.flatnonzero(v.nodes["node_id"].to_numpy() == node_id)[0])
    r = expected_ratings(v, NodeVotes(v)(row))
    i, j = np.triu_indices(len(g), 1)
    strong, weak = np.where(g[i] >= g[j], i, j), np.where(g[i] >= g[j], j, i)
    return float(max(0.0, -(r[strong] - r[weak]).min()))


def top_of(votes: pd.DataFrame) -> str:
    """#1 of the plain Bradley–Terry fit on a votes frame (independent of the audit's cells)."""
    models, cells = ratings.aggregate(votes)
    return models[int(np.argmax(ratings.bradley_terry(models, cells)))]


def brute_force_k(a: np.ndarray, b: np.ndarray, outcome: np.ndarray, n: int) -> int | None:
    """Fewest votes to drop so that #1 changes, over every vote subset by increasing size.

    Each vote is its own row (no cells), all subsets of one size refitted in one batch. #1 as in
    the audit's definition: highest rating among models with a vote left; it changes when it has
    no vote left or another such model is above it by more than FLIP_EPS."""
    m = len(a)
    one_hot = np.zeros((m, 3))
    one_hot[np.arange(m), np.minimum(outcome, 2)] = 1.0

    def fit(keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # keep (R, m) bool
        beta = ratings.fit_pairwise(a, b, n, keep[:, :, None] * one_hot[None], tol=1e-10, maxiter=100)
        present = np.zeros((len(keep), n), dtype=bool)
        for side in (a, b):
            np.logical_or.at(present, (np.nonzero(keep)[0], side[np.nonzero(keep)[1]]), True)
        return beta, present

    beta, present = fit(np.ones((1, m), dtype=bool))
    top = int(np.argmax(np.where(present[0], beta[0], -np.inf)))
    for size in range(1, m + 1):
        drops = np.array(list(itertools.combinations(range(m), size)))
        keep = np.ones((len(drops), m), dtype=bool)
        keep[np.arange(len(drops))[:, None], drops] = False
        beta, present = fit(keep)
        others = np.where(present, beta, -np.inf)
        others[:, top] = -np.inf
        if (~present[:, top] | (others.max(axis=1) > beta[:, top] + FLIP_EPS)).any():
            return size
    return None


def tiny_votes(rng: np.random.Generator, n: int, m: int, lead: float) -> pd.DataFrame:
    """``m`` random votes among ``n`` models; model 0 is ``lead`` log-odds stronger; ~20% ties."""
    strength = np.r_[lead, rng.normal(0, 0.5, n - 1)]
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    p = 1 / (1 + np.exp(-(strength[a] - strength[b])))
    outcome = np.where(
        rng.uniform(size=m) < 0.2, rng.choice([2, 3], m), np.where(rng.uniform(size=m) < p, 0, 1)
    )
    return pd.DataFrame(
        {
            "model_a": [f"m{i}" for i in a],
            "model_b": [f"m{i}" for i in b],
            "winner": OUTCOME_NAMES[outcome],
            "judge": "u",
        }
    )


# --------------------------------------------------------------------------- inversions: pieces


def test_kendall_tau_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=9)
    y = rng.normal(size=(5, 9))
    y[0] = np.round(y[0])  # ties, where tau-b differs from tau-a
    x_tied = np.round(x * 2) / 2
    for xx in (x, x_tied):
        got = kendall_tau(xx, y)
        want = [stats.kendalltau(xx, row).statistic for row in y]
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_holm_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])


@pytest.mark.slow
def test_node_counts_and_batched_fit_match_direct_fits(planted):
    v, _ = planted
    pairs, category = vote_cells(v)
    rows = np.array([1, 4, 7])
    counts = node_counts(v, rows, category, len(pairs))
    node_votes = NodeVotes(v)
    n = len(v.models)
    point, boot = batched_bootstrap(pairs[:, 0], pairs[:, 1], n, counts, 20, 0, rows)
    assert boot.shape == (3, 20, n)
    for t, row in enumerate(rows):
        frame = v.votes.iloc[node_votes(row)]
        assert counts[t].sum() == len(frame)
        models, cells = ratings.aggregate(frame)
        assert models == v.models  # every model plays in these nodes
        want = ratings.bradley_terry(models, cells)
        np.testing.assert_allclose(ratings.to_ratings(point[t], v.models), want, atol=1e-6)
        # bootstrap rounds spread around the point fit like bootstrap_fit's do
        ref = ratings.bootstrap(models, cells, rounds=200, seed=1)
        ours = ratings.to_ratings(boot[t], v.models)
        np.testing.assert_allclose(ours.std(axis=0), ref.std(axis=0), rtol=0.5)


def test_max_t_pvalues_match_multivariate_normal():
    """P(max_k T_k >= t) for 3 correlated standardised gaps (pairs 0-1, 2-3, 0-2 of 4 models),
    against scipy's multivariate normal cdf; one pair alone is the plain normal tail."""
    cov = np.array([[1.0, 0.2, 0.1, 0.0], [0.2, 0.5, 0.0, 0.1], [0.1, 0.0, 2.0, 0.3], [0.0, 0.1, 0.3, 0.8]])
    strong, weak = np.array([0, 2, 0]), np.array([1, 3, 2])
    contrast = np.zeros((3, 4))
    contrast[np.arange(3), strong], contrast[np.arange(3), weak] = 1.0, -1.0
    c = contrast @ cov @ contrast.T
    corr = c / np.sqrt(np.outer(np.diag(c), np.diag(c)))
    assert abs(corr[0, 2]) > 0.3  # really correlated
    t = np.array([1.0, 2.0, 2.5])
    got = max_t_pvalues(t, strong, weak, cov, np.random.default_rng(0))
    mvn = stats.multivariate_normal(mean=np.zeros(3), cov=corr)
    want = [1 - mvn.cdf(np.full(3, x), rng=np.random.default_rng(1)) for x in t]
    np.testing.assert_allclose(got, want, atol=0.006)
    one = max_t_pvalues(np.array([2.0]), np.array([0]), np.array([1]), cov[:2, :2], np.random.default_rng(0))
    assert abs(one[0] - stats.norm.sf(2.0)) < 0.005


def test_sandwich_covariance_matches_bootstrap(planted):
    v, _ = planted
    pairs, category = vote_cells(v)
    counts = node_counts(v, np.array([8]), category, len(pairs))[0]  # ~30k votes
    n = len(v.models)
    point, boot = batched_bootstrap(pairs[:, 0], pairs[:, 1], n, counts[None], 300, 0, np.array([8]))
    cov = sandwich_covariance(pairs[:, 0], pairs[:, 1], n, counts, point[0])
    i, j = np.triu_indices(n, 1)
    want = (boot[0][:, i] - boot[0][:, j]).var(axis=0)
    got = cov[i, i] + cov[j, j] - 2 * cov[i, j]
    np.testing.assert_allclose(got, want, rtol=0.25)


# --------------------------------------------------------------------------- inversions: validity


def test_inversions_find_planted_reorderings(planted):
    v, _ = planted
    f = ranking_inversions(v)
    nodes = f.tables["nodes"]
    assert f.applicable and f.params["min_node_votes"] == 300 and len(nodes) >= 15
    truth = {nid: true_inversion(v, nid) for nid in nodes["node_id"]}
    big = [nid for nid, x in truth.items() if x >= 100]
    flagged = nodes.loc[nodes["flagged"], "node_id"].tolist()
    assert len(big) >= 3
    recall = np.mean([nid in flagged for nid in big])
    assert recall >= 0.75, (truth, flagged)
    # precision: every flagged node truly reorders some pair (the node's null is false)
    assert all(truth[nid] > 5 for nid in flagged), (truth, flagged)
    # significant pairs are inversions and only in flagged nodes
    pairs = f.tables["pairs"]
    assert len(pairs) and (pairs["node_gap"] < 0).all() and (pairs["global_gap"] > 0).all()
    assert set(pairs["node_id"]) <= set(flagged)
    assert (pairs["p_adjusted"] <= 0.05).all() and (
        pairs["p_adjusted"] <= pairs["p_value"] * 66 + 1e-12
    ).all()
    # evidence: votes in the node where the globally stronger model of the worst pair lost
    node_votes = NodeVotes(v)
    top = nodes[nodes["flagged"]].iloc[0]
    strong = top["worst_pair"].split(" (global")[0]
    row = int(np.flatnonzero(v.nodes["node_id"].to_numpy() == top["node_id"])[0])
    inside = set(v.votes["battle_id"].iloc[node_votes(row)])
    ev = v.votes.set_index("battle_id").loc[top["battle_ids"]]
    assert len(ev) == 20 and set(ev.index) <= inside
    lost = ((ev["model_a"] == strong) & (ev["winner"] == "model_b")) | (
        (ev["model_b"] == strong) & (ev["winner"] == "model_a")
    )
    assert lost.all()
    # tau: in [-1, 1]; a flagged node's ranking agrees less than the median node's
    assert nodes["tau"].between(-1, 1).all()
    assert nodes.loc[nodes["flagged"], "tau"].median() <= nodes["tau"].median()


@pytest.mark.slow
def test_inversions_null_flags_at_most_alpha(null):
    v, truth = null
    assert not truth["planted"]
    f = ranking_inversions(v)
    nodes = f.tables["nodes"]
    assert len(nodes) >= 15
    assert nodes["flagged"].sum() <= max(1, int(0.05 * len(nodes)))
    assert set(f.tables["pairs"]["node_id"]) <= set(nodes.loc[nodes["flagged"], "node_id"])
    # the smallest node p-values are not piled up near 0 (Bonferroni within nodes is conservative)
    assert (nodes["p_value"] < 0.05).sum() <= max(1, int(0.1 * len(nodes)))


def test_inversions_not_applicable_without_tree(planted):
    v, _ = planted
    flat = AuditVotes.from_frame(v.votes[["model_a", "model_b", "winner", "judge"]])
    f = ranking_inversions(flat)
    assert not f.applicable and "tree" in f.summary.lower()


# --------------------------------------------------------------------------- robustness


@pytest.mark.parametrize("case", range(8))
def test_robustness_exact_equals_brute_force(case):
    rng = np.random.default_rng(100 + case)
    n = 3 + case % 2
    m = 10 + case % 7  # 10..16 votes
    votes = tiny_votes(rng, n, m, lead=[0.3, 1.5, 3.0][case % 3])
    v = AuditVotes.from_frame(votes)
    f = robustness(v, exact_max_votes=16, exact_candidates=1_000_000, max_remove=1.0)
    g = f.tables["leaderboards"].iloc[0]
    want = brute_force_k(v.a, v.b, v.outcome.astype(np.int64), len(v.models))
    assert g["method"] == "exact"
    assert int(g["k"]) == want
    # the listed votes are k real votes whose removal changes #1
    removed = f.tables["removed"]["battle_id"]
    assert len(removed) == want and removed.is_unique
    left = votes.assign(battle_id=v.votes["battle_id"])
    left = left[~left["battle_id"].isin(removed)]
    if set(left["model_a"]).union(left["model_b"]) >= {g["top"]}:
        models, cells = ratings.aggregate(left)
        r = ratings.bradley_terry(models, cells)
        top = models.index(g["top"])
        assert (np.delete(r, top) > r[top]).any()


def test_robustness_brute_force_covers_larger_answers():
    """Among the brute-force cases some need several votes (not only 1-2)."""
    ks = []
    for case in range(8):
        rng = np.random.default_rng(100 + case)
        v = AuditVotes.from_frame(tiny_votes(rng, 3 + case % 2, 10 + case % 7, [0.3, 1.5, 3.0][case % 3]))
        ks.append(brute_force_k(v.a, v.b, v.outcome.astype(np.int64), len(v.models)))
    assert max(ks) >= 4 and len(set(ks)) >= 3


@pytest.mark.slow
def test_approximation_is_verified_upper_bound():
    """On cases too large for brute force but small enough for the exact count-vector search,
    the approximation (exact search off) is never below the exact answer, and mostly equal."""
    rng = np.random.default_rng(7)
    equal = proved = 0
    for _ in range(10):
        votes = tiny_votes(rng, 4, 40, lead=0.5)
        v = AuditVotes.from_frame(votes)
        pairs, category = vote_cells(v)
        counts = np.bincount(category, minlength=len(pairs) * 3).reshape(-1, 3).astype(float)
        kw = {"max_remove": 1.0, "challengers": 3}
        approx = flip_search(pairs[:, 0], pairs[:, 1], 4, counts, exact_max_votes=0, exact_candidates=0, **kw)
        exact = flip_search(
            pairs[:, 0], pairs[:, 1], 4, counts, exact_max_votes=6, exact_candidates=200_000, **kw
        )
        assert approx.k is not None
        if exact.method == "exact":
            assert approx.k >= exact.k
            proved += 1
            equal += approx.k == exact.k
        # the approximate removal is a real removal of approx.k votes that changes #1
        assert approx.removal.sum() == approx.k and (approx.removal <= counts).all()
    assert proved >= 8 and equal >= proved - 1  # measured: equal in every proved case


def test_robustness_on_simulation_removal_flips_top(planted):
    v, _ = planted
    sub = v.votes.iloc[:5000]
    small = AuditVotes.from_frame(sub)
    f = robustness(small)
    g = f.tables["leaderboards"].iloc[0]
    assert g["method"] in ("exact", "upper bound") and g["k"] >= 1
    removed = f.tables["removed"]
    assert len(removed) == g["k"] and removed["battle_id"].is_unique
    before = top_of(sub)
    assert before == g["top"]
    after = top_of(sub[~sub["battle_id"].isin(removed["battle_id"])])
    assert after != before and after == g["new_top"]
    # per node on the full simulation: the node's removed votes are in the node and flip its #1
    full = robustness(v, max_nodes=3)
    nodes = full.tables["leaderboards"].iloc[1:]
    assert len(nodes) == 3
    node_votes = NodeVotes(v)
    for _, nd in nodes.iterrows():
        row = int(np.flatnonzero(v.nodes["node_id"].to_numpy() == nd["node_id"])[0])
        frame = v.votes.iloc[node_votes(row)]
        ids = full.tables["removed"].query("node_id == @nd.node_id")["battle_id"]
        if nd["k"] > 200:
            continue
        assert len(ids) == nd["k"] and ids.isin(frame["battle_id"]).all()
        assert top_of(frame) == nd["top"]
        assert top_of(frame[~frame["battle_id"].isin(ids)]) != nd["top"]


# --------------------------------------------------------------------------- real data


def test_real_datasets(bundled_db):
    with duckdb.connect(str(bundled_db), read_only=True) as con:
        for dataset in ("llmfao", "pandalm"):
            v = load_audit_votes(con, dataset, tree_id=resolve_tree(con, dataset))
            inv = ranking_inversions(v)
            assert inv.applicable and len(inv.tables["nodes"])
            rob = robustness(v)
            g = rob.tables["leaderboards"].iloc[0]
            assert g["k"] >= 1
            removed = rob.tables["removed"].query("node_id.isna()", engine="python")["battle_id"]
            if g["k"] <= 2000:
                after = top_of(v.votes[~v.votes["battle_id"].isin(removed)])
                assert after != g["top"]
