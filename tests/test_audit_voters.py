"""Anomalous and concentrated voters (pipelines/audit/anomalous.py, concentrated.py).

Numbers are checked against brute-force definitions, scipy/sklearn, and the simulator's planted
voter types (validity floors are the measured values minus a margin; see each test)."""

from __future__ import annotations

import inspect

import duckdb
import numpy as np
import pandas as pd
import pytest
from helpers import WINNERS
from scipy import integrate, optimize, stats
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from pipelines.audit.anomalous import (
    anomalous_voters,
    checkpoint_positions,
    conformal_pvalues,
    mixture_evalue,
)
from pipelines.audit.concentrated import chernoff_tail, concentrated_voters, vote_expectations, voter_slopes
from pipelines.audit.frame import AuditVotes, load_audit_votes
from pipelines.audit.validity import detection, simulated_votes, voter_truth
from pipelines.tree.read import resolve_tree


@pytest.fixture(scope="module")
def biased(planted_arena):
    """100k simulated votes, 12 models, 1000 voters of all planted types."""
    return planted_arena


@pytest.fixture(scope="module")
def null(tmp_path_factory):
    """100k simulated votes from unbiased voters only."""
    return simulated_votes(
        tmp_path_factory.mktemp("null"),
        votes=100_000,
        models=12,
        voters=1000,
        seed=2,
        voter_mix={"unbiased": 1},
    )


def small_frame(n: int = 400, seed: int = 0) -> AuditVotes:
    rng = np.random.default_rng(seed)
    models = np.array(["m0", "m1", "m2", "m3"])
    a = rng.integers(0, 4, n)
    b = (a + rng.integers(1, 4, n)) % 4
    winner = rng.choice(WINNERS, n, p=[0.45, 0.3, 0.15, 0.1])
    judge = rng.choice([f"j{k}" for k in range(6)], n, p=[0.4, 0.2, 0.15, 0.1, 0.1, 0.05])
    frame = pd.DataFrame({"model_a": models[a], "model_b": models[b], "winner": winner, "judge": judge})
    return AuditVotes.from_frame(frame)


def brute_pvalues(v: AuditVotes, score: str, u: np.ndarray) -> np.ndarray:
    """The conformal p-value straight from its definition, one vote at a time, by model names."""
    votes = v.votes
    pairs = [frozenset(x) for x in zip(votes.model_a, votes.model_b, strict=True)]
    out = np.empty(len(votes))
    for i, row in votes.iterrows():
        pair = {row.model_a, row.model_b}
        first = min(pair)

        def label(r):
            if r.winner == "model_a":
                return r.model_a
            if r.winner == "model_b":
                return r.model_b
            return r.winner

        same = votes[(votes.judge != row.judge).to_numpy() & np.array([q == pair for q in pairs])]
        bag = [label(r) for r in same.itertuples()] + [label(row)]
        if score == "rarity":
            strange = [-bag.count(x) for x in bag]
        else:
            vals = [1.0 if x == first else 0.0 if x in pair else 0.5 for x in bag]
            mean = sum(vals) / len(vals)
            strange = [abs(x - mean) for x in vals]
        own = strange[-1]
        stranger = sum(s > own + 1e-12 for s in strange[:-1])
        ties = sum(abs(s - own) <= 1e-12 for s in strange[:-1]) + 1
        out[i] = (stranger + u[i] * ties) / len(bag)
    return out


@pytest.mark.parametrize("score", ["distance", "rarity"])
def test_conformal_pvalues_match_definition(score):
    v = small_frame()
    u = 1.0 - np.random.default_rng(3).random(v.n)
    np.testing.assert_allclose(
        conformal_pvalues(v, score=score, seed=3), brute_pvalues(v, score, u), atol=1e-12
    )


def test_conformal_direction_by_hand():
    # nine other voters say x beat y; voter z says y beat x (on the other side): p = U / 10
    frame = pd.DataFrame(
        {
            "model_a": ["x"] * 9 + ["x"],
            "model_b": ["y"] * 9 + ["y"],
            "winner": ["model_a"] * 9 + ["model_b"],
            "judge": [f"o{k}" for k in range(9)] + ["z"],
        }
    )
    v = AuditVotes.from_frame(frame)
    u = 1.0 - np.random.default_rng(0).random(10)
    p = conformal_pvalues(v, seed=0)
    assert p[9] == pytest.approx(u[9] / 10)
    # an agreeing vote: z's vote is stranger, the 8 other agreeing votes are as strange (+ itself)
    assert p[0] == pytest.approx((1 + 9 * u[0]) / 10)
    # orientation is by model: the same disagreement with sides swapped gives the same p
    swapped = frame.copy()
    swapped.loc[9, ["model_a", "model_b", "winner"]] = ["y", "x", "model_a"]
    assert conformal_pvalues(AuditVotes.from_frame(swapped), seed=0)[9] == pytest.approx(u[9] / 10)


@pytest.mark.slow
@pytest.mark.parametrize("score", ["distance", "rarity"])
def test_pvalues_uniform_under_null(null, score):
    av, _ = null
    p = conformal_pvalues(av, score=score)
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert np.mean(-2 * np.log(p)) == pytest.approx(2.0, abs=0.03)  # chi2(2) mean


def test_mixture_evalue_against_quad():
    for p in [1e-8, 1e-3, 0.05, 0.3, 0.7, 0.99999, 1.0]:
        ref, _ = integrate.quad(lambda k, p=p: k * p ** (k - 1), 0, 1)
        assert mixture_evalue(np.array([p]))[0] == pytest.approx(ref, rel=1e-6)
    # expectation under U(0, 1) is 1: integral over (eps, 1] = 1 - integral_0^eps = 1 - (1 - eps) / ln(1/eps)
    # (from integral_0^eps k p^(k-1) dp = eps^k), here with p = exp(-x), eps = exp(-600)
    part, _ = integrate.quad(
        lambda x: mixture_evalue(np.array([np.exp(-x)]))[0] * np.exp(-x), 0, 600, limit=200
    )
    assert part == pytest.approx(1 - (1 - np.exp(-600)) / 600, abs=1e-6)


def test_checkpoints_deterministic_per_voter():
    one = checkpoint_positions(["a", "b", "c"], np.array([10, 500, 1000]), 5, seed=0)
    two = checkpoint_positions(["c", "zz"], np.array([1000, 3]), 5, seed=0)
    np.testing.assert_array_equal(one[2], two[0])
    assert one.min() >= 1 and (one <= np.array([[10], [500], [1000]])).all()
    assert not np.array_equal(one[2], checkpoint_positions(["c"], np.array([1000]), 5, seed=1)[0])


def test_voter_statistics_recomputed(biased):
    av, _ = biased
    finding = anomalous_voters(av, seed=4)
    table = finding.tables["voters"].set_index("judge")
    p = conformal_pvalues(av, seed=4)
    for judge in table.index[[0, 5, 100, 400]]:
        mine = p[np.array(av.judges)[av.judge] == judge]  # vote order
        pos = checkpoint_positions([judge], np.array([len(mine)]), 5, seed=4)[0]
        m = np.array([-2 * np.log(mine[:j]).sum() for j in pos])
        pj = stats.chi2.sf(m, 2 * pos)
        row = table.loc[judge]
        assert row.p_value == pytest.approx(min(1.0, 5 * pj.min()), rel=1e-9)
        assert row.checkpoint == pos[np.argmin(pj)]
        e_path = np.cumprod(mixture_evalue(mine))
        assert row.e_value == pytest.approx(e_path.max(), rel=1e-9)


def test_anomalous_finding_shape(biased):
    av, _ = biased
    finding = anomalous_voters(av)
    table = finding.tables["voters"]
    assert finding.audit == "anomalous_voters" and finding.applicable
    assert set(inspect.signature(anomalous_voters).parameters) - {"v"} == set(finding.params)
    assert len(table) == len(av.judges) and table["p_value"].is_monotonic_increasing
    eligible = table["votes"] >= 20
    assert table.loc[~eligible, "q_value"].isna().all() and not table.loc[~eligible, "flagged"].any()
    np.testing.assert_allclose(
        table.loc[eligible, "q_value"], stats.false_discovery_control(table.loc[eligible, "p_value"])
    )
    assert finding.headline["n"] == int(eligible.sum())
    assert finding.headline["estimate"] == pytest.approx(table["flagged"].sum() / eligible.sum())
    assert {finding.plot["x"], finding.plot["y"], finding.plot["color"]} <= set(table.columns)
    # evidence: the voter's own votes, lowest p first
    p = pd.Series(conformal_pvalues(av), index=av.votes["battle_id"].astype(str))
    judge_of = pd.Series(av.votes["judge"].to_numpy(), index=av.votes["battle_id"].astype(str))
    for row in table.head(5).itertuples():
        assert len(row.battle_ids) == min(20, row.votes)
        assert (judge_of[row.battle_ids] == row.judge).all()
        assert p[row.battle_ids].is_monotonic_increasing


def test_anomalous_validity(biased):
    """Measured (seed 1): random clickers with >= 100 votes 0.96 recall; precision 0.98 for
    (random, fan, position) at >= 20 votes; no unbiased voter flagged. Position voters (0.7-1.5
    log-odds for the left side) are not detectable by per-vote disagreement (recall 0)."""
    av, truth = biased
    table = anomalous_voters(av).tables["voters"]
    at20 = detection(table, truth, ("random", "fan", "position"))
    assert at20["precision"] >= 0.9
    random100 = detection(table, truth, ("random", "fan"), min_votes=100)
    types = table.merge(voter_truth(truth)[["judge", "type"]], on="judge")
    big = types[types["votes"] >= 100]
    assert big.loc[big["type"] == "random", "flagged"].mean() >= 0.85
    assert random100["precision"] >= 0.9
    assert types.loc[(types["type"] == "unbiased") & (types["votes"] >= 20), "flagged"].mean() <= 0.01
    # the literal 'rarity' generalisation has almost no power here (ties are the rare outcomes)
    rarity = anomalous_voters(av, score="rarity").tables["voters"].merge(types[["judge", "type"]], on="judge")
    assert rarity.loc[(rarity["type"] == "random") & (rarity["votes"] >= 100), "flagged"].mean() <= 0.2


def test_pure_left_clicker_is_anomalous(null):
    av, _ = null
    votes = av.votes.copy()
    rows = np.random.default_rng(0).choice(len(votes), 150, replace=False)
    votes.loc[rows, "judge"] = "left-clicker"
    votes.loc[rows, "winner"] = "model_a"
    table = anomalous_voters(AuditVotes.from_frame(votes)).tables["voters"].set_index("judge")
    assert table.loc["left-clicker", "flagged"]
    assert table.loc["left-clicker", "disagree_rate"] > 0.3
    assert table["flagged"].sum() == 1


def test_null_flag_rates(null):
    """Measured: 0 flags with BH; 3.1% of voters with p <= 0.05 (Bonferroni over checkpoints is
    conservative); concentrated_voters 0."""
    av, _ = null
    for fdr in (True, False):
        table = anomalous_voters(av, fdr=fdr).tables["voters"]
        eligible = table[table["votes"] >= 20]
        assert eligible["flagged"].mean() <= (0.01 if fdr else 0.07)
        assert eligible["flagged_e"].mean() <= (0.01 if fdr else 0.05)
        table = concentrated_voters(av, fdr=fdr).tables["voters"]
        assert table.loc[table["votes"] >= 20, "flagged"].mean() <= 0.02
    assert (table["p_value"] <= 0.05).mean() <= 0.05


def test_chernoff_tail_bounds_exact_tail():
    rng = np.random.default_rng(5)
    cells, sizes = 300, rng.integers(1, 30, 300)
    cell = np.repeat(np.arange(cells), sizes)
    p = rng.uniform(0.02, 0.98, len(cell))
    wins = (rng.random(len(cell)) < np.clip(p + 0.25, 0, 1)).astype(float)  # some excess
    s = np.bincount(cell, weights=wins, minlength=cells)
    bound = chernoff_tail(s, p, cell, cells)
    exact = np.empty(cells)
    for c in range(cells):  # Poisson-binomial tail by convolution
        dist = np.array([1.0])
        for q in p[cell == c]:
            dist = np.convolve(dist, [1 - q, q])
        exact[c] = dist[int(round(s[c])) :].sum()
    assert (bound >= exact * (1 - 1e-9)).all() and (bound <= 1).all()
    sweep = s == sizes
    np.testing.assert_allclose(bound[sweep], exact[sweep], rtol=1e-9)
    tail = exact < 1e-2
    assert tail.sum() > 20 and (bound[tail] / exact[tail]).max() < 30


def test_vote_expectations_match_sklearn(null):
    av, _ = null
    score, x = vote_expectations(av)
    n = len(av.models)
    design = np.zeros((av.n, n))
    design[np.arange(av.n), av.a] = 1
    design[np.arange(av.n), av.b] = -1
    X = np.vstack([design, design])  # ties half: each vote as a win and a loss with weights
    y = np.r_[np.ones(av.n), np.zeros(av.n)]
    w = np.r_[score, 1 - score]
    keep = w > 0
    ref = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-10, max_iter=1000)
    ref.fit(X[keep], y[keep], sample_weight=w[keep])
    np.testing.assert_allclose(expit(x), expit(design @ ref.coef_[0]), atol=1e-4)


def test_voter_slopes_match_scipy(biased):
    av, truth = biased
    score, x = vote_expectations(av)
    gamma = voter_slopes(av.judge, score, x, len(av.judges))
    planted = voter_truth(truth).set_index("judge")
    judges = np.array(av.judges)
    for j in [int(np.argmax(np.bincount(av.judge)))] + list(range(0, 40, 13)):
        mine = av.judge == j

        def nll(g, mine=mine):
            q = expit(g * x[mine])
            return -(score[mine] * np.log(q) + (1 - score[mine]) * np.log(1 - q)).sum()

        ref = optimize.minimize_scalar(nll, bounds=(0, 4), method="bounded", options={"xatol": 1e-8}).x
        assert gamma[j] == pytest.approx(ref, abs=1e-4)
    random = [k for k, name in enumerate(judges) if planted.loc[name, "type"] == "random"]
    assert np.median(gamma[random]) < 0.3 < np.median(gamma)


def test_concentrated_table_recomputed(biased):
    av, _ = biased
    finding = concentrated_voters(av, calibrate=False)
    table = finding.tables["voters"]
    assert set(inspect.signature(concentrated_voters).parameters) - {"v"} == set(finding.params)
    score, x = vote_expectations(av)
    votes = av.votes.assign(score=score, p=expit(x))
    for row in table.head(3).itertuples():
        mine = votes[votes["judge"] == row.judge]
        as_a, as_b = mine[mine["model_a"] == row.favourite], mine[mine["model_b"] == row.favourite]
        s = as_a["score"].sum() + (1 - as_b["score"]).sum()
        e = as_a["p"].sum() + (1 - as_b["p"]).sum()
        var = (as_a["p"] * (1 - as_a["p"])).sum() + (as_b["p"] * (1 - as_b["p"])).sum()
        assert row.battles_with_favourite == len(as_a) + len(as_b)
        assert row.excess_wins == pytest.approx(s - e)
        assert row.z == pytest.approx((s - e) / np.sqrt(var))
        assert set(row.battle_ids) <= set(mine["battle_id"].astype(str))
        won = mine[
            ((mine["model_a"] == row.favourite) & (mine["winner"] == "model_a"))
            | ((mine["model_b"] == row.favourite) & (mine["winner"] == "model_b"))
        ]
        assert row.battle_ids[: min(20, len(won))] == won["battle_id"].astype(str).tolist()[:20]


def test_concentrated_validity(biased):
    """Measured (seed 1): fans recall 0.51 / 0.74 / 0.95 at >= 20 / 50 / 100 votes, precision 1.0;
    without the per-voter consistency slope 3 random clickers were flagged as well."""
    av, truth = biased
    table = concentrated_voters(av).tables["voters"]
    assert detection(table, truth, ("fan",))["precision"] >= 0.9
    assert detection(table, truth, ("fan",), min_votes=100)["recall"] >= 0.85
    assert detection(table, truth, ("fan",), min_votes=50)["recall"] >= 0.6
    plain = concentrated_voters(av, calibrate=False).tables["voters"]
    assert detection(plain, truth, ("fan",))["fp"] > detection(table, truth, ("fan",))["fp"]


def test_not_applicable_with_one_judge():
    frame = pd.DataFrame(
        {"model_a": ["x", "y", "z"], "model_b": ["y", "z", "x"], "winner": list(WINNERS[:3]), "judge": "solo"}
    )
    v = AuditVotes.from_frame(frame)
    assert not anomalous_voters(v).applicable
    assert not concentrated_voters(v).applicable


def test_real_datasets(bundled_db):
    with duckdb.connect(str(bundled_db), read_only=True) as con:
        data = {ds: load_audit_votes(con, ds, tree_id=resolve_tree(con, ds)) for ds in ("llmfao", "pandalm")}
    for ds, av in data.items():
        for fn in (anomalous_voters, concentrated_voters):
            finding = fn(av)
            table = finding.tables["voters"]
            assert finding.applicable and len(table) == len(av.judges)
            ids = av.votes.groupby("judge")["battle_id"].agg(lambda s: set(s.astype(str)))
            assert all(set(r.battle_ids) <= ids[r.judge] for r in table.itertuples())
            if ds == "pandalm":  # 5 judges rating the same battles: nobody stands out
                assert not table["flagged"].any()
    llmfao = anomalous_voters(data["llmfao"]).tables["voters"].set_index("judge")
    assert llmfao.loc["gpt-3.5-turbo-instruct", "flagged"]  # the weak LLM judge disagrees most
