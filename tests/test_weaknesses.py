"""Weakness profiles: EvalTree extraction, the exact τ sweep, strengths, node tests, BH and the
opponent-adjusted arena test — each against an independent reference (hand-built trees with
known answers, a recursive transcription of the authors' rule, brute force over τ, scipy's
own tests, and simulations with known truth)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipelines import weaknesses as W

# --------------------------------------------------------------------------- fixtures


def hand_tree() -> pd.DataFrame:
    """root 0 (60) -> 1 (30), 2 (30); 1 -> 3 (25), 4 (5). Bounds chosen by hand."""
    return pd.DataFrame(
        {
            "node_id": [0, 1, 2, 3, 4],
            "parent_id": [None, 0, 0, 1, 1],
            "size": [60, 30, 30, 25, 5],
            "score": [0.40, 0.20, 0.50, 0.15, 0.45],
            "lower": [0.30, 0.10, 0.40, 0.05, 0.20],
            "upper": [0.50, 0.30, 0.60, 0.25, 0.70],
            "description": ["all", "algebra", "geometry", "quadratics", "tiny"],
        }
    )


def random_tree(rng: np.random.Generator, n_nodes: int = 60) -> pd.DataFrame:
    """A random tree (each node's parent an earlier node; node ids shuffled so the frame is not
    in preorder), random sizes consistent with the tree (leaves 1-40 items, parents the sum),
    random nested intervals; some nodes without an interval (size < 5)."""
    parent = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, n_nodes)])
    size = np.zeros(n_nodes, dtype=int)
    kids = np.bincount(parent[1:], minlength=n_nodes)
    size[kids == 0] = rng.integers(1, 41, (kids == 0).sum())
    for v in range(n_nodes - 1, 0, -1):
        size[parent[v]] += size[v]
    score = rng.uniform(0.1, 0.9, n_nodes)
    half = rng.uniform(0.01, 0.3, n_nodes)
    lower, upper = np.clip(score - half, 0, 1), np.clip(score + half, 0, 1)
    lower[size < 5], upper[size < 5] = np.nan, np.nan
    ids = rng.permutation(1000)[:n_nodes] + 7  # arbitrary, non-contiguous ids
    return pd.DataFrame(
        {
            "node_id": ids,
            "parent_id": [None if p < 0 else int(ids[p]) for p in parent],
            "size": size,
            "score": score,
            "lower": np.round(lower, 2),  # rounding makes ties between bounds common
            "upper": np.round(upper, 2),
        }
    ).sample(frac=1.0, random_state=int(rng.integers(1 << 30)))


def reference_extract(nodes: pd.DataFrame, tau: float, direction: str = "weak", min_child: int = 20) -> set:
    """Transcription of the authors' recursive ``extract_subtrees`` (EvalTree repository,
    ``EvalTree/WeaknessProfile/extract_subtrees.py``) over the frame, independent of the module."""
    rows = {int(r.node_id): r for r in nodes.itertuples()}
    kids: dict[int, list[int]] = {v: [] for v in rows}
    root = None
    for v, r in rows.items():
        if pd.isna(r.parent_id):
            root = v
        else:
            kids[int(r.parent_id)].append(v)

    def fails(v: int) -> bool:
        r = rows[v]
        if pd.isna(r.lower):
            return False
        return r.upper < tau if direction == "weak" else r.lower > tau

    out: set[int] = set()

    def walk(v: int, above: bool) -> None:
        extracted = False
        if not above and fails(v):
            extracted = all(fails(c) for c in kids[v] if rows[c].size >= min_child)
        if extracted:
            out.add(v)
        for c in kids[v]:
            walk(c, above or extracted)

    walk(root, False)
    return out


# --------------------------------------------------------------------------- extraction


def test_extract_on_hand_tree():
    nodes = hand_tree()
    # 0.35: nodes 1 and 3 fail; 1's only big child (3) fails -> 1, and 3 is below it
    assert W.extract(nodes, 0.35)["node_id"].tolist() == [1]
    # 0.28: only 3 fails (1's upper 0.30 is not < 0.28)
    assert W.extract(nodes, 0.28)["node_id"].tolist() == [3]
    # 0.55: root fails but its big child 2 (upper 0.60) does not -> descend: 1
    assert W.extract(nodes, 0.55)["node_id"].tolist() == [1]
    # 0.65: everything with size >= 20 fails -> the root alone
    assert W.extract(nodes, 0.65)["node_id"].tolist() == [0]
    # 0.20: nothing fails
    assert W.extract(nodes, 0.20).empty
    out = W.extract(nodes, 0.35)
    assert list(out.columns[:6]) == W.PROFILE_COLUMNS
    assert out.iloc[0]["description"] == "algebra" and out.iloc[0]["size"] == 30


def test_small_children_do_not_block_but_big_ones_do():
    """A failing node is extracted although a child of 19 items does not fail; a child of 20
    items that does not fail sends the walk down to the failing children instead."""
    nodes = pd.DataFrame(
        {
            "node_id": [0, 1, 2],
            "parent_id": [None, 0, 0],
            "size": [80, 61, 19],
            "lower": [0.1, 0.05, 0.5],
            "upper": [0.3, 0.25, 0.9],
        }
    )
    assert W.extract(nodes, 0.4)["node_id"].tolist() == [0]
    nodes.loc[1, "size"], nodes.loc[2, "size"] = 60, 20
    assert W.extract(nodes, 0.4)["node_id"].tolist() == [1]
    assert W.extract(nodes, 0.4, min_child_size=21)["node_id"].tolist() == [0]


def test_nodes_without_interval_never_fail():
    nodes = hand_tree()
    nodes.loc[nodes.node_id == 1, ["lower", "upper"]] = np.nan
    # 1 has no interval: its failing child 3 is extracted instead
    assert W.extract(nodes, 0.35)["node_id"].tolist() == [3]


@pytest.mark.parametrize("seed", range(4))
def test_extract_matches_the_authors_recursion_and_never_nests(seed):
    rng = np.random.default_rng(seed)
    nodes = random_tree(rng)
    index = W.tree_index(nodes)
    pos = {int(v): i for i, v in enumerate(index.node_id)}
    for tau in np.r_[rng.uniform(0, 1, 15), nodes["upper"].dropna().to_numpy()[:10]]:
        for direction in ("weak", "strong"):
            got = W.extract(nodes, tau, direction)["node_id"].astype(int).tolist()
            assert set(got) == reference_extract(nodes, tau, direction)
            for v in got:  # no extracted node below another
                p = index.parent[pos[v]]
                while p >= 0:
                    assert int(index.node_id[p]) not in got
                    p = index.parent[p]


def test_tree_index_rejects_broken_trees():
    with pytest.raises(ValueError, match="exactly one root"):
        W.tree_index(pd.DataFrame({"node_id": [0, 1], "parent_id": [None, None]}))
    with pytest.raises(ValueError, match="not node ids"):
        W.tree_index(pd.DataFrame({"node_id": [0, 1], "parent_id": [None, 5]}))
    with pytest.raises(ValueError, match="cycle"):
        W.tree_index(pd.DataFrame({"node_id": [0, 1, 2], "parent_id": [None, 2, 1]}))


# --------------------------------------------------------------------------- sweep


def brute_force_profiles(nodes: pd.DataFrame, direction: str) -> set:
    """Every profile seen at τ on a fine grid through, between and beyond all bounds."""
    col = "upper" if direction == "weak" else "lower"
    b = np.unique(nodes[col].dropna().to_numpy())
    probes = np.r_[b, (b[1:] + b[:-1]) / 2, b[0] - 1, b[-1] + 1]
    seen = set()
    for tau in probes:
        got = tuple(sorted(W.extract(nodes, tau, direction)["node_id"].astype(int)))
        if got:
            seen.add(got)
    return seen


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("direction", ["weak", "strong"])
def test_sweep_lists_exactly_the_distinct_profiles_with_their_intervals(seed, direction):
    nodes = random_tree(np.random.default_rng(100 + seed), 30)
    profiles = W.sweep(nodes, direction)
    assert {tuple(sorted(p.node_ids)) for p in profiles} == brute_force_profiles(nodes, direction)
    for p in profiles:
        assert p.tau_low < p.tau_high
        lo, hi = p.tau_low, p.tau_high
        # the profile holds inside its interval, at the included end and not at the excluded one
        inside = [t for t in ((lo + hi) / 2, hi if direction == "weak" else lo) if np.isfinite(t)]
        inside += [lo + 1 if not np.isfinite(hi) else hi - 1e-9] if direction == "weak" else []
        for t in inside:
            got = tuple(W.extract(nodes, t, direction)["node_id"].astype(int))
            assert sorted(got) == sorted(p.node_ids), (t, p)
        excluded = lo if direction == "weak" else hi
        if np.isfinite(excluded):
            got = tuple(W.extract(nodes, excluded, direction)["node_id"].astype(int))
            assert sorted(got) != sorted(p.node_ids)
    # adjacent profiles differ; between two listed intervals the profile is empty (not listed)
    for a, b in zip(profiles, profiles[1:], strict=False):
        assert a.node_ids != b.node_ids
        gap = (b.tau_high, a.tau_low) if direction == "weak" else (a.tau_high, b.tau_low)
        assert gap[0] <= gap[1]
        if gap[0] < gap[1]:
            assert W.extract(nodes, sum(gap) / 2, direction).empty


def test_sweep_on_hand_tree():
    assert W.sweep(hand_tree()) == [
        W.Profile(0.6, math.inf, (0,)),
        W.Profile(0.3, 0.6, (1,)),
        W.Profile(0.25, 0.3, (3,)),
    ]
    assert W.sweep(hand_tree(), "strong") == [
        W.Profile(-math.inf, 0.1, (0,)),
        W.Profile(0.1, 0.2, (2, 4)),
        W.Profile(0.2, 0.4, (2,)),
    ]


def test_strengths_mirror_weaknesses():
    """Strengths at τ are the weaknesses at 1 - τ of the mirrored scores (p -> 1 - p)."""
    rng = np.random.default_rng(7)
    nodes = random_tree(rng)
    mirrored = nodes.assign(lower=1 - nodes["upper"], upper=1 - nodes["lower"], score=1 - nodes["score"])
    for tau in rng.uniform(0, 1, 25):
        got = W.strengths(nodes, tau)["node_id"].tolist()
        assert got == W.extract(mirrored, 1 - tau)["node_id"].tolist()
    flip = [W.Profile(1 - p.tau_high, 1 - p.tau_low, p.node_ids) for p in W.sweep(mirrored)]
    got = W.sweep(nodes, "strong")
    assert [p.node_ids for p in got] == [p.node_ids for p in flip]
    assert np.allclose([p[:2] for p in got], [p[:2] for p in flip])


# --------------------------------------------------------------------------- intervals and counts


def test_binomial_intervals_match_scipy():
    k = np.array([0, 3, 10, 25, 40])
    n = np.array([10, 10, 40, 50, 40])
    for method, ref in (("clopper-pearson", "exact"), ("wilson", "wilson")):
        lower, upper = W.binomial_interval(k, n, 0.9, method)
        for i in range(len(k)):
            ci = stats.binomtest(int(k[i]), int(n[i])).proportion_ci(0.9, method=ref)
            assert lower[i] == pytest.approx(ci.low, abs=1e-9)
            assert upper[i] == pytest.approx(ci.high, abs=1e-9)
    lower, upper = W.binomial_interval([2], [4])
    assert np.isnan(lower[0]) and np.isnan(upper[0])  # EvalTree: no interval below 5 items


def test_accuracy_by_node_sums_leaves_up_the_tree():
    nodes = hand_tree()[["node_id", "parent_id", "description"]]
    item_leaf = np.array([3] * 25 + [4] * 5 + [2] * 30)
    correct = np.r_[np.ones(5), np.zeros(20), np.ones(5), np.ones(30)]
    acc = W.accuracy_by_node(nodes, item_leaf, correct).set_index("node_id")
    assert acc.loc[:, "size"].tolist() == [60, 30, 30, 25, 5]
    assert acc.loc[:, "wins"].tolist() == [40, 10, 30, 5, 5]
    assert acc.loc[1, "score"] == pytest.approx(1 / 3)
    ci = stats.binomtest(10, 30).proportion_ci(0.95, "exact")
    assert (acc.loc[1, "lower"], acc.loc[1, "upper"]) == pytest.approx((ci.low, ci.high))


# --------------------------------------------------------------------------- tests and BH


def test_bh_matches_the_step_up_definition():
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = np.r_[rng.uniform(0, 1, 40), rng.uniform(0, 0.01, int(rng.integers(0, 10)))]
        adj = W.bh_adjust(p)
        for q in (0.01, 0.05, 0.2):
            # Benjamini & Hochberg (1995): reject the k smallest, k = max{i : p_(i) <= i q / m}
            order = np.sort(p)
            ok = np.flatnonzero(order <= np.arange(1, len(p) + 1) * q / len(p))
            k = ok[-1] + 1 if len(ok) else 0
            assert set(np.flatnonzero(adj <= q)) == set(np.argsort(p, kind="stable")[:k])
    # hand example: m = 4, p = (0.01, 0.04, 0.03, 0.5) -> adjusted (0.04, 0.0533, 0.0533, 0.5)
    assert W.bh_adjust([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert np.isnan(W.bh_adjust([0.2, np.nan])[1])


def test_node_pvalues_equal_fishers_and_the_binomial_test():
    wins, n = np.array([3, 10, 0, 30]), np.array([20, 20, 5, 40])
    total_wins, total_n = 120, 200
    p = W.accuracy_pvalues(wins, n, total_wins, total_n, "rest", mid_p=False)
    for i in range(len(n)):
        table = [[wins[i], n[i] - wins[i]], [total_wins - wins[i], total_n - n[i] - total_wins + wins[i]]]
        assert p[i] == pytest.approx(stats.fisher_exact(table, alternative="less").pvalue)
    p = W.accuracy_pvalues(wins, n, total_wins, total_n, "overall", "strong", mid_p=False)
    for i in range(len(n)):
        ref = stats.binomtest(int(wins[i]), int(n[i]), total_wins / total_n, alternative="greater")
        assert p[i] == pytest.approx(ref.pvalue)


def test_node_pvalues_are_calibrated_without_weaknesses():
    """All items i.i.d.: the mid-p node test rejects about alpha of random nodes."""
    rng = np.random.default_rng(11)
    total_n, rejected, tested = 2000, 0, 0
    for _ in range(40):
        correct = rng.random(total_n) < 0.6
        sizes = rng.integers(10, 300, 100)
        wins = np.array([correct[rng.choice(total_n, s, replace=False)].sum() for s in sizes])
        p = W.accuracy_pvalues(wins, sizes, correct.sum(), total_n)
        rejected += (p <= 0.05).sum()
        tested += len(p)
    assert 0.035 < rejected / tested < 0.065


def test_extract_significant_walks_the_tree():
    nodes = hand_tree().assign(p=[0.2, 0.001, 0.9, 0.01, 0.5])
    assert W.extract_significant(nodes, "p", 0.05)["node_id"].tolist() == [1]
    assert W.extract_significant(nodes, "p", 0.005)["node_id"].tolist() == []  # 3 (25 items) not
    assert W.extract_significant(nodes, "p", 0.3, rule="maximal")["node_id"].tolist() == [0]


# --------------------------------------------------------------------------- penalised pruning


def test_pruning_prefers_the_pure_child_and_merges_uniform_children():
    nodes = hand_tree()[["node_id", "parent_id"]]
    index = W.tree_index(nodes)
    # weak part only in node 3: its gain beats its parent's diluted gain
    gain = np.array([4.0, 9.0, 0.0, 10.0, 0.0])
    assert W.index_ids(index, W.prune_mask(index, gain, 2.0)) == [3]
    # 1's children both carry gain: one block (one penalty) wins over two
    gain = np.array([4.0, 9.5, 0.0, 6.0, 4.0])
    assert W.index_ids(index, W.prune_mask(index, gain, 2.0)) == [1]
    # the same with a smaller penalty: two blocks explain more (6 + 4 - 2 - 2 > 9.5 - 2 fails)
    assert W.index_ids(index, W.prune_mask(index, gain, 0.1)) == [3, 4]
    # nothing passes a large penalty
    assert W.index_ids(index, W.prune_mask(index, gain, 20.0)) == []
    out = W.extract_pruned(hand_tree().assign(gain=[4.0, 9.0, 0.0, 10.0, 0.0]), penalty=2.0)
    assert out["node_id"].tolist() == [3] and out["description"].tolist() == ["quadratics"]


def reference_prune(nodes: pd.DataFrame, gain: dict, penalty: float) -> set:
    """Brute force: the non-nested node set maximising Σ (gain - penalty) (ties: fewer, higher)."""
    kids: dict[int, list[int]] = {int(v): [] for v in nodes["node_id"]}
    root = None
    for v, p in zip(nodes["node_id"], nodes["parent_id"], strict=True):
        if pd.isna(p):
            root = int(v)
        else:
            kids[int(p)].append(int(v))

    def best(v: int) -> tuple[float, set]:
        below = [best(c) for c in kids[v]]
        value_below = sum(b[0] for b in below)
        block = gain[v] - penalty
        if block > 0 and block >= value_below:
            return block, {v}
        if value_below > 0:
            return value_below, set().union(*(b[1] for b in below))
        return 0.0, set()

    return best(root)[1]


@pytest.mark.parametrize("seed", range(4))
def test_pruning_matches_a_recursive_reference(seed):
    rng = np.random.default_rng(seed)
    nodes = random_tree(rng, 40)
    gain = np.where(rng.random(len(nodes)) < 0.5, rng.exponential(3.0, len(nodes)), 0.0)
    index = W.tree_index(nodes)
    for penalty in (0.5, 2.0, 5.0):
        got = set(W.index_ids(index, W.prune_mask(index, gain, penalty)))
        by_id = dict(zip(nodes["node_id"].astype(int), gain, strict=True))
        assert got == reference_prune(nodes, by_id, penalty)


def test_accuracy_gain_is_half_the_likelihood_ratio_statistic():
    wins, n, p0 = np.array([3, 12, 30, 0]), np.array([20, 20, 40, 10]), 0.6
    g = W.accuracy_gain(wins, n, p0)
    for i in range(3):
        p = wins[i] / n[i]
        ll = stats.binom.logpmf(wins[i], n[i], p) - stats.binom.logpmf(wins[i], n[i], p0)
        assert g[i] == pytest.approx(ll if p < p0 else 0.0)
    assert g[3] == pytest.approx(-stats.binom.logpmf(0, 10, p0))  # all wrong
    assert W.accuracy_gain(wins, n, p0, "strong")[2] == pytest.approx(
        stats.binom.logpmf(30, 40, 0.75) - stats.binom.logpmf(30, 40, p0)
    )
    assert W.penalty_for(0.001) == pytest.approx(stats.norm.isf(0.001) ** 2 / 2)
    assert W.z_gain(np.array([-2.0, 2.0])).tolist() == [2.0, 0.0]


# --------------------------------------------------------------------------- opponent-adjusted test


def simulated_node_cells(rng: np.random.Generator, k: int = 8, battles: int = 20_000, effect=None):
    """Bradley–Terry votes (20% ties) over a 3-level tree: root 0, nodes 1-3 each holding 10 of the
    30 leaves 4-33; every battle falls in a random leaf. ``effect = (model, leaf, log-odds)`` makes
    the model that much weaker (negative) in that leaf. Returns a NodeCells-like namespace."""
    from types import SimpleNamespace

    strength = rng.normal(0, 1, k)
    a = rng.integers(0, k, battles)
    b = (a + rng.integers(1, k, battles)) % k
    leaf = rng.integers(0, 30, battles)
    eta = strength[a] - strength[b]
    if effect is not None:
        m, where, d = effect
        eta = eta + d * ((a == m) & (leaf == where)) - d * ((b == m) & (leaf == where))
    tie = rng.random(battles) < 0.2
    outcome = np.where(tie, 2, np.where(rng.random(battles) < 1 / (1 + np.exp(-eta)), 0, 1))
    codes, pair = np.unique(a * k + b, return_inverse=True)
    counts = np.zeros((34, len(codes) * 3))
    for rows in (np.zeros_like(leaf), 1 + leaf // 10, 4 + leaf):
        np.add.at(counts, (rows, pair * 3 + outcome), 1)
    return SimpleNamespace(
        models=[f"m{i}" for i in range(k)],
        pairs=np.column_stack([codes // k, codes % k]),
        node_ids=np.arange(34),
        counts=counts,
    )


def test_adjusted_test_is_calibrated_without_planted_effects():
    rng = np.random.default_rng(0)
    runs = [W.opponent_adjusted_tests(simulated_node_cells(rng)) for _ in range(12)]
    p = np.concatenate([t.loc[t["node_id"] > 0, "p_weak"].to_numpy() for t in runs])
    assert 0.035 < (p <= 0.05).mean() < 0.065
    assert 0.003 < (p <= 0.01).mean() < 0.02
    assert stats.kstest(p, "uniform").pvalue > 0.01


def test_adjusted_test_finds_a_planted_offset_and_estimates_it():
    rng = np.random.default_rng(1)
    cells = simulated_node_cells(rng, battles=40_000, effect=(2, 5, -1.0))  # -1 log-odds = -174 points
    t = W.opponent_adjusted_tests(cells).set_index(["node_id", "model"])
    hit = t.loc[(9, "m2")]  # leaf 5 is node 9
    assert hit["p_weak"] < 1e-4
    assert hit["offset_lower"] < -400 / math.log(10) < hit["offset_upper"]
    assert abs(t.loc[(0, "m2"), "z"]) < 1e-6  # the root holds the fit itself: no offset there
    others = t.drop(index=[(9, "m2"), (1, "m2"), (0, "m2")], errors="ignore")
    assert (W.bh_adjust(others["p_weak"].to_numpy()) > 0.05).all()


def test_adjusted_test_accepts_given_ratings_and_reports_battles():
    rng = np.random.default_rng(2)
    cells = simulated_node_cells(rng, battles=5_000)
    t = W.opponent_adjusted_tests(cells)
    top = t[t["node_id"] == 0].set_index("model")
    assert top["n"].sum() == 2 * 5_000  # every battle counted once per side
    assert np.allclose(top["observed"], top["expected"], atol=1e-3)  # the global MLE's score is 0
    from pipelines import ratings as rt

    root = rt.Cells(cells.pairs[:, 0], cells.pairs[:, 1], *cells.counts[0].reshape(-1, 3).T)
    fitted = rt.bradley_terry(cells.models, root)
    again = W.opponent_adjusted_tests(cells, fitted + 123.0)  # any constant shift: same answer
    assert np.allclose(again["z"], t["z"], atol=1e-5)
