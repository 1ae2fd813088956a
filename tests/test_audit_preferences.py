"""Preference audits (position, style, refusal, ties, identity leakage): numerical pieces checked
against independent references (sklearn's logistic regression, hand-computed Fisher information,
brute-force loops, scipy), detectors against the simulator's planted voters, and the real
bundled datasets. Validity floors sit below what was measured on the same seeds (simulated_votes
votes=100_000, models=12, voters=1000, seed=1), so they catch regressions, not noise."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats
from sklearn.linear_model import LogisticRegression

from pipelines.audit.covariates import VOTER_RIDGE, batched_fit, outcome_counts, voter_score_test
from pipelines.audit.frame import AuditVotes, load_audit_votes
from pipelines.audit.leakage import identity_leakage
from pipelines.audit.position import position_preference
from pipelines.audit.refusal import refusal_handling
from pipelines.audit.style_bias import style_preference
from pipelines.audit.ties import expected_tie_probability, ties_and_bothbad
from pipelines.audit.validity import detection, simulated_votes, voter_truth
from pipelines.tree.read import resolve_tree

pytestmark = pytest.mark.slow  # the whole module: its simulated-arena fixtures are the slow part

AUDITS = (position_preference, style_preference, refusal_handling, ties_and_bothbad, identity_leakage)


@pytest.fixture(scope="module")
def sim(planted_arena):
    """Mixed voters (70% unbiased, planted position / length / refusal-averse / random / fan)."""
    av, truth = planted_arena
    return av, truth, {f.__name__: f(av) for f in AUDITS}


@pytest.fixture(scope="module")
def null_sim(tmp_path_factory):
    """Unbiased voters only: the planted global style and refusal terms, no voter biases."""
    av, truth = simulated_votes(
        tmp_path_factory.mktemp("pref_null"),
        votes=50_000,
        models=12,
        voters=500,
        seed=3,
        voter_mix={"unbiased": 1.0},
    )
    return av, truth, {f.__name__: f(av) for f in AUDITS}


def _frame(n: int, seed: int, *, n_models: int = 5, n_judges: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n_models, n)
    b = (a + rng.integers(1, n_models, n)) % n_models
    return pd.DataFrame(
        {
            "model_a": [f"m{i}" for i in a],
            "model_b": [f"m{i}" for i in b],
            "winner": rng.choice(["model_a", "model_b", "tie", "tie_bothbad"], n, p=[0.4, 0.35, 0.15, 0.1]),
            "judge": [f"j{i:02d}" for i in rng.integers(0, n_judges, n)],
        }
    )


# --------------------------------------------------------------------------- numerical pieces


def test_batched_fit_matches_logistic_regression_and_fisher_information():
    """Bradley–Terry + one covariate on decisive votes is a logistic regression on (e_a - e_b, x):
    the coefficient must match sklearn's unpenalised fit and the Wald SE the inverse Fisher
    information X' W X computed by hand."""
    rng = np.random.default_rng(0)
    n, m = 4000, 5
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    x = rng.normal(size=n)
    beta = np.array([0.0, 0.5, -0.3, 1.0, 0.2])
    y = rng.uniform(size=n) < 1 / (1 + np.exp(-(beta[a] - beta[b] + 0.7 * x)))
    outcome = np.where(y, 0, 1)
    params, se = batched_fit(a, b, m, outcome_counts(outcome)[None], x[:, None], "drop")
    design = np.zeros((n, m))
    design[np.arange(n), a] += 1
    design[np.arange(n), b] -= 1
    design = np.column_stack([design[:, 1:], x])  # model 0 as reference
    ref = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-10, max_iter=10_000).fit(design, y)
    assert params[0, -1] == pytest.approx(ref.coef_[0, -1], abs=1e-4)
    diffs = params[0, 1:m] - params[0, 0]
    np.testing.assert_allclose(diffs, ref.coef_[0, : m - 1], atol=1e-4)
    p = 1 / (1 + np.exp(-design @ ref.coef_[0]))
    info = design.T @ (design * (p * (1 - p))[:, None])
    assert se[0, -1] == pytest.approx(np.sqrt(np.linalg.inv(info)[-1, -1]), rel=1e-3)


def test_voter_score_test_against_brute_force():
    """z = sum x (y - p) / sqrt(sum x^2 p (1 - p)) per voter, p-values from the normal, and the
    voter's own coefficient = the maximiser of their (ridge-penalised) log-likelihood."""
    rng = np.random.default_rng(1)
    n, v = 3000, 7
    s = rng.normal(0, 1, n)
    x = rng.normal(0, 1, n)
    voter = rng.integers(0, v, n)
    delta = np.linspace(-1, 1.5, v)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(s + delta[voter] * x)))).astype(float)
    out = voter_score_test(s, y, x, voter, v, alternative="greater")
    for j in range(v):
        sel = voter == j
        p = 1 / (1 + np.exp(-s[sel]))
        z = (x[sel] * (y[sel] - p)).sum() / np.sqrt((x[sel] ** 2 * p * (1 - p)).sum())
        assert out["z"][j] == pytest.approx(z, rel=1e-10)
        assert out["p_value"][j] == pytest.approx(stats.norm.sf(z), rel=1e-8)

        def nll(d, sel=sel):
            eta = s[sel] + d * x[sel]
            return -(y[sel] * eta - np.logaddexp(0, eta)).sum() + 0.5 * VOTER_RIDGE * d * d

        assert out["estimate"][j] == pytest.approx(optimize.minimize_scalar(nll).x, abs=1e-4)
    # the planted extra coefficients come back (in order, roughly)
    assert np.corrcoef(out["estimate"], delta)[0, 1] > 0.9


def test_voter_score_test_with_nuisance_is_the_efficient_score():
    """With a per-voter nuisance covariate the statistic is U_t - I_tn I_nn^-1 U_n at the voter's
    restricted MLE of the nuisance coefficient (checked by brute force for each voter)."""
    rng = np.random.default_rng(2)
    n, v = 2000, 4
    s, x, w = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    voter = rng.integers(0, v, n)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(s + 0.8 * w)))).astype(float)
    out = voter_score_test(s, y, x, voter, v, nuisance=w[:, None])
    for j in range(v):
        sel = voter == j

        def nll(t, sel=sel):
            eta = s[sel] + t * w[sel]
            return -(y[sel] * eta - np.logaddexp(0, eta)).sum() + 0.5 * VOTER_RIDGE * t * t

        theta = optimize.minimize_scalar(nll).x
        p = 1 / (1 + np.exp(-(s[sel] + theta * w[sel])))
        q = p * (1 - p)
        u_t, u_n = (x[sel] * (y[sel] - p)).sum(), (w[sel] * (y[sel] - p)).sum()
        i_tt, i_tn, i_nn = (q * x[sel] ** 2).sum(), (q * x[sel] * w[sel]).sum(), (q * w[sel] ** 2).sum()
        z = (u_t - i_tn / i_nn * u_n) / np.sqrt(i_tt - i_tn**2 / i_nn)
        assert out["z"][j] == pytest.approx(z, abs=1e-5)


def test_expected_tie_probability_brute_force():
    """Each vote's expectation = tie rate of its unordered pair among the other voters' votes."""
    av = AuditVotes.from_frame(_frame(600, 3, n_models=4, n_judges=12))
    got = expected_tie_probability(av)
    tie = av.outcome >= 2
    pair = [frozenset((i, j)) for i, j in zip(av.a, av.b, strict=True)]
    for k in range(0, av.n, 7):
        others = [i for i in range(av.n) if pair[i] == pair[k] and av.judge[i] != av.judge[k]]
        if others:
            assert got[k] == pytest.approx(tie[others].mean())
        else:
            rest = av.judge != av.judge[k]
            assert got[k] == pytest.approx(tie[rest].mean())


# --------------------------------------------------------------------------- position


def test_position_detects_planted_voters(sim):
    av, truth, res = sim
    f = res["position_preference"]
    voters = f.tables["voters"]
    # measured: >=100 votes recall 0.89 / precision 0.96; >=150 0.94 / 1.0; >=20 precision 0.91
    d100 = detection(voters, truth, ("position",), min_votes=100)
    d150 = detection(voters, truth, ("position",), min_votes=150)
    d20 = detection(voters, truth, ("position",), min_votes=20)
    assert d100["recall"] >= 0.8 and d100["precision"] >= 0.9
    assert d150["recall"] >= 0.85 and d150["precision"] >= 0.9
    assert d20["precision"] >= 0.85
    # effect size: the voters' own left log-odds vs the planted ones (measured mean 1.04 vs 1.18)
    m = voter_truth(truth).merge(voters, on="judge", suffixes=("_truth", ""))
    big = m[(m["type"] == "position") & (m["votes"] >= 100)]
    assert abs(big["left_logit"].mean() - big["position_logit"].mean()) < 0.35
    assert np.corrcoef(big["left_logit"], big["position_logit"])[0, 1] > 0.4
    # never flagged below min_votes; q only for eligible voters
    assert not voters.loc[voters["votes"] < 20, "flagged"].any()
    assert voters.loc[voters["votes"] < 20, "q_value"].isna().all()
    # battle_ids: the voter's own left wins
    top = voters.iloc[0]
    ids = set(top["battle_ids"])
    rows = av.votes[av.votes["battle_id"].isin(ids)]
    assert len(ids) == 20 and (rows["judge"] == top["judge"]).all() and (rows["winner"] == "model_a").all()
    # overall: left coefficient positive (position voters exist), bootstrap interval around it
    h = f.headline
    assert 0 < h["lower"] < h["estimate"] < h["upper"]
    ov = f.tables["overall"].iloc[0]
    lo, hi = stats.binomtest(int(ov["left_wins"]), int(ov["decisive"])).proportion_ci(method="wilson")
    assert ov["lower"] == pytest.approx(lo, abs=1e-9) and ov["upper"] == pytest.approx(hi, abs=1e-9)
    nodes = f.tables["nodes"]
    assert len(nodes) == len(set(av.top_row[av.top_row >= 0]))  # every top-level node
    assert (nodes["coef_lower"] <= nodes["left_coef"]).all() and (
        nodes["left_coef"] <= nodes["coef_upper"]
    ).all()


def test_position_null(null_sim):
    _, truth, res = null_sim
    f = res["position_preference"]
    assert int(f.tables["voters"]["flagged"].sum()) <= 2
    se = f.tables["overall"]["coef_se"].iloc[0]
    assert abs(f.headline["estimate"]) < 3 * se


# --------------------------------------------------------------------------- style


def test_style_detects_length_voters(sim):
    _, truth, res = sim
    voters = res["style_preference"].tables["voters"]
    # measured: >=200 votes recall 1.0 / precision 1.0; >=100 recall 0.53 / precision 1.0
    d200 = detection(voters, truth, ("length",), min_votes=200)
    d100 = detection(voters, truth, ("length",), min_votes=100)
    assert d200["recall"] >= 0.8 and d200["precision"] >= 0.9
    assert d100["recall"] >= 0.4 and d100["precision"] >= 0.9
    # refusal-averse voters are not mistaken for length lovers (refusals are short)
    m = voter_truth(truth).merge(voters, on="judge", suffixes=("_truth", ""))
    assert not m.loc[m["type"] == "refusal_averse", "flagged"].any()
    big = m[(m["type"] == "length") & (m["votes"] >= 100)]
    # measured: estimated mean 2.96 vs planted 3.31 (correlation 0.6)
    assert abs(big["length_coef"].mean() - big["length_coef_truth"].mean()) < 0.6
    assert np.corrcoef(big["length_coef"], big["length_coef_truth"])[0, 1] > 0.3


def test_style_recovers_planted_coefficients(null_sim):
    """Unbiased voters: the coefficients per unit of normalised difference are the simulator's
    (tokens 0.7, markdown 0.1 each; refusal -0.5 per refusing side)."""
    _, truth, res = null_sim
    f = res["style_preference"]
    coefs = f.tables["coefficients"].set_index("feature")
    planted = truth["vote_model"]["style_coefs"]
    assert coefs.loc["tokens", "coef_per_unit"] == pytest.approx(planted["tokens"], abs=0.1)
    for feat in ("headers", "lists", "bold"):
        assert coefs.loc[feat, "coef_per_unit"] == pytest.approx(planted[feat], abs=0.1)
    assert coefs.loc["refusal", "coef_per_unit"] == pytest.approx(
        -truth["vote_model"]["refusal_penalty"], abs=0.15
    )
    assert int(f.tables["voters"]["flagged"].sum()) <= 1
    groups = f.tables["groups"]
    all_rows = groups[groups["group_kind"] == "all"].set_index("feature")["coef"]
    np.testing.assert_allclose(all_rows.loc[coefs.index].to_numpy(), coefs["coef"].to_numpy())
    assert set(groups["group_kind"]) >= {"all", "judge_kind", "activity", "node"}


def test_style_bootstrap_path_and_not_applicable(sim):
    av, _, _ = sim
    small = AuditVotes.from_frame(av.votes.iloc[:8000])
    f = style_preference(small, rounds=30)
    coefs = f.tables["coefficients"]
    assert (coefs["interval"] == "bootstrap").all()
    assert ((coefs["lower"] < coefs["coef"]) & (coefs["coef"] < coefs["upper"])).all()
    wald = style_preference(small, max_bootstrap_votes=0).tables["coefficients"]
    np.testing.assert_allclose(wald["coef"], coefs["coef"])
    assert (wald["interval"] == "wald").all()
    bare = AuditVotes.from_frame(av.votes[["battle_id", "model_a", "model_b", "winner", "judge"]].iloc[:2000])
    assert not style_preference(bare).applicable
    assert not refusal_handling(bare).applicable
    assert not identity_leakage(bare).applicable


# --------------------------------------------------------------------------- refusal


def test_refusal_effects(sim, null_sim):
    av, truth, res = sim
    f = res["refusal_handling"]
    assert f.headline["upper"] < 0  # refusing loses beyond strength
    nodes = f.tables["nodes"]
    assert (np.diff(nodes["coef"].dropna().to_numpy()) >= 0).all()  # most punished first
    voters = f.tables["voters"]
    d = detection(voters, truth, ("refusal_averse",), min_votes=20)
    assert d["fp"] <= 1  # measured 0: length lovers and random clickers are not flagged
    m = voter_truth(truth).merge(voters, on="judge", suffixes=("_truth", ""))
    big = m[(m["type"] == "refusal_averse") & (m["votes"] >= 100)]
    assert abs(big["refusal_extra"].mean() - big["refusal_penalty"].mean()) < 0.6  # measured 2.64 / 2.84
    # with style held fixed the coefficient is the planted global penalty (unbiased voters)
    _, truth0, res0 = null_sim
    adj = res0["refusal_handling"].tables["overall"].set_index("model").loc["strength + style"]
    assert adj["lower"] < -truth0["vote_model"]["refusal_penalty"] < adj["upper"]
    assert int(res0["refusal_handling"].tables["voters"]["flagged"].sum()) <= 1


def test_refusal_separated_and_absent():
    frame = _frame(400, 4)
    frame["refusal_a"] = np.arange(len(frame)) % 5 == 0
    frame["refusal_b"] = False
    frame.loc[frame["refusal_a"], "winner"] = "model_b"  # the refusing side always loses
    f = refusal_handling(AuditVotes.from_frame(frame))
    assert f.applicable and np.isnan(f.headline["estimate"])
    assert "lost every such vote" in f.summary
    frame["refusal_a"] = False
    assert not refusal_handling(AuditVotes.from_frame(frame)).applicable


# --------------------------------------------------------------------------- ties


def test_ties_planted_tie_lover_and_null(sim):
    av, _, res = sim
    assert int(res["ties_and_bothbad"].tables["voters"]["flagged"].sum()) <= 1  # measured 0
    votes = av.votes.copy()
    counts = votes["judge"].value_counts()
    lover, always = counts.index[5], counts.index[6]
    rows = np.flatnonzero(votes["judge"] == lover)
    votes.loc[rows[::2], "winner"] = "tie"  # half of their votes more become ties
    votes.loc[votes["judge"] == always, "winner"] = "tie_bothbad"
    f = ties_and_bothbad(AuditVotes.from_frame(votes))
    voters = f.tables["voters"].set_index("judge")
    assert voters.loc[lover, "flagged"] and voters.loc[always, "flagged"]
    assert voters.loc[lover, "excess"] > 0.2
    assert list(f.tables["always_tie"]["judge"]) == [always]
    tie_ids = set(votes.loc[votes["winner"].isin(["tie", "tie_bothbad"]), "battle_id"])
    assert set(voters.loc[lover, "battle_ids"]) <= tie_ids
    ov = f.tables["overall"].iloc[0]
    assert ov["tie_rate"] == pytest.approx(votes["winner"].isin(["tie", "tie_bothbad"]).mean())


# --------------------------------------------------------------------------- leakage


def test_leakage_null_and_planted(sim):
    av, _, res = sim
    ov = res["identity_leakage"].tables["overall"].iloc[0]
    assert ov["adjusted_lower"] < 0 < ov["adjusted_upper"]  # no leak effect planted (measured +0.03)
    votes = av.votes.copy()
    la, lb = votes["leak_a"].astype(bool), votes["leak_b"].astype(bool)
    rng = np.random.default_rng(0)
    flip = rng.uniform(size=len(votes)) < 0.6
    votes.loc[la & ~lb & flip, "winner"] = "model_a"  # a leaking answer now often wins
    votes.loc[lb & ~la & flip, "winner"] = "model_b"
    f = identity_leakage(AuditVotes.from_frame(votes))
    assert f.headline["lower"] > 0.5
    assert f.tables["overall"]["adjusted_lower"].iloc[0] > 0.5
    models = f.tables["models"].set_index("model")
    assert models.loc[models["leak_decisive"] >= 200, "flagged"].all()
    assert (models.loc[models["leak_decisive"] >= 200, "z"] > 0).all()


def test_findings_are_json(sim):
    _, _, res = sim
    for f in res.values():
        assert f.applicable
        text = json.dumps(f.as_dict(), allow_nan=False)
        assert f.audit in text
        for table in f.tables.values():
            if "battle_ids" in table:
                assert (table["battle_ids"].map(len) <= 20).all()


# --------------------------------------------------------------------------- real data


def test_real_datasets(bundled_db):
    with duckdb.connect(str(bundled_db), read_only=True) as con:
        llmfao = load_audit_votes(con, "llmfao", tree_id=resolve_tree(con, "llmfao"))
        pandalm = load_audit_votes(con, "pandalm", tree_id=resolve_tree(con, "pandalm"))
    pos = position_preference(llmfao)
    voters = pos.tables["voters"].set_index("judge")
    # the instruct-tuned LLM judge prefers the left answer strongly
    assert voters.loc["gpt-3.5-turbo-instruct", "flagged"]
    assert voters.loc["gpt-3.5-turbo-instruct", "left_rate"] > 0.6
    assert pos.headline["lower"] > 0
    style = style_preference(llmfao)
    assert (style.tables["coefficients"]["interval"] == "bootstrap").all()
    assert refusal_handling(llmfao).applicable
    assert ties_and_bothbad(llmfao).applicable
    assert not refusal_handling(pandalm).applicable  # no refusal in pandalm
    leak = identity_leakage(pandalm)
    assert leak.applicable and leak.headline["estimate"] is not None and np.isnan(leak.headline["estimate"])
    assert "won every decisive vote" in leak.summary
