"""Style control: feature construction, agreement with sklearn, recovery of a planted length effect."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from pipelines.errors import NotApplicable
from pipelines.style_control import STYLE_FEATURES, style_control, style_differences

COLUMNS = [f"{f}_{s}" for f in STYLE_FEATURES for s in ("a", "b")]


def simulate_style(
    n_models: int = 10, n_battles: int = 20_000, length_coef: float = 1.0, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray]:
    """Battles whose outcome depends on model strength AND answer length; returns (battles, beta).

    ``beta`` (natural log-strengths, mean 0). Model m00 is verbose (3x the tokens of the others)
    and sits mid-pack. The log-odds that model_a wins are ``beta_a - beta_b + length_coef * f``
    with ``f = (t_a - t_b) / (t_a + t_b + 1)``; headers, lists and bold vary by model but have no
    effect. Ties are taken symmetrically out of both sides (half-win model correctly specified).
    """
    rng = np.random.default_rng(seed)
    beta = np.linspace(-0.8, 0.8, n_models)
    beta[[0, n_models // 2]] = beta[[n_models // 2, 0]]  # the verbose model m00 is mid-pack
    mean_tokens = np.full(n_models, 300.0)
    mean_tokens[0] = 900.0
    a = rng.integers(0, n_models, n_battles)
    b = (a + rng.integers(1, n_models, n_battles)) % n_models
    t_a = rng.poisson(mean_tokens[a] * rng.lognormal(0, 0.5, n_battles))
    t_b = rng.poisson(mean_tokens[b] * rng.lognormal(0, 0.5, n_battles))
    f = (t_a - t_b) / (t_a + t_b + 1)
    p = 1 / (1 + np.exp(-(beta[a] - beta[b] + length_coef * f)))
    tie = 0.2 * np.minimum(p, 1 - p) * 2
    u = rng.random(n_battles)
    winner = np.select(
        [u < p - tie / 2, u < p, u < p + tie / 2], ["model_a", "tie", "tie_bothbad"], "model_b"
    )
    rate = rng.uniform(0.5, 4, (3, n_models))
    names = np.array([f"m{i:02d}" for i in range(n_models)])
    battles = pd.DataFrame(
        {
            "model_a": names[a],
            "model_b": names[b],
            "winner": winner,
            "tokens_a": t_a,
            "tokens_b": t_b,
            **{f"{name}_{side}": rng.poisson(rate[j][idx]) for j, name in enumerate(STYLE_FEATURES[1:])
               for side, idx in (("a", a), ("b", b))},
        }
    )  # fmt: skip
    return battles, beta


@pytest.fixture(scope="module")
def planted() -> tuple[pd.DataFrame, np.ndarray]:
    return simulate_style()


def test_style_differences_by_hand() -> None:
    battles = pd.DataFrame(
        {
            "tokens_a": [100, 0, 5],
            "tokens_b": [50, 0, None],
            "headers_a": [2, 0, 1],
            "headers_b": [0, 3, 1],
            "lists_a": [0, 0, 0],
            "lists_b": [1, 0, 0],
            "bold_a": [4, 1, 0],
            "bold_b": [4, 0, 0],
        }
    )
    keep, diffs = style_differences(battles)
    assert keep.tolist() == [True, True, False]
    expected = [[50 / 151, 2 / 3, -1 / 2, 0 / 9], [0, -3 / 4, 0, 1 / 2]]
    np.testing.assert_allclose(diffs, expected)


def test_matches_sklearn_logistic_regression(planted: tuple[pd.DataFrame, np.ndarray]) -> None:
    """Point fit = unpenalised sklearn LogisticRegression on a design matrix built here, by hand.

    Rows: +1 for model_a's column, -1 for model_b's, then the four z-scored normalised differences;
    a tie is two rows (a win and a loss) of weight 1/2, as LMArena's duplicated-battle encoding.
    """
    battles = planted[0].iloc[:6000]
    models = sorted(set(battles["model_a"]) | set(battles["model_b"]))
    idx = {m: i for i, m in enumerate(models)}
    n = len(battles)
    x_models = np.zeros((n, len(models)))
    x_models[np.arange(n), battles["model_a"].map(idx)] = 1.0
    x_models[np.arange(n), battles["model_b"].map(idx)] = -1.0
    raw = battles[COLUMNS].to_numpy(dtype=float)
    norm = (raw[:, 0::2] - raw[:, 1::2]) / (raw[:, 0::2] + raw[:, 1::2] + 1)
    z = (norm - norm.mean(axis=0)) / norm.std(axis=0)
    design = np.hstack([x_models, z])
    tie = battles["winner"].str.startswith("tie").to_numpy()
    y = (battles["winner"] == "model_a").to_numpy(dtype=float)
    X = np.vstack([design, design[tie]])
    Y = np.concatenate([np.where(tie, 1.0, y), np.zeros(tie.sum())])
    w = np.concatenate([np.where(tie, 0.5, 1.0), np.full(tie.sum(), 0.5)])
    lr = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-12, max_iter=10_000)  # = penalty=None
    lr.fit(X, Y, sample_weight=w)
    beta, gamma = lr.coef_[0][: len(models)], lr.coef_[0][len(models) :]

    fit = style_control(battles, rounds=10, seed=0)
    np.testing.assert_allclose(fit.coefficients["coef"], gamma, atol=1e-4)
    theirs = pd.Series(400 / math.log(10) * (beta - beta.mean()) + 1000, index=models)
    ours = fit.leaderboard.set_index("model")["rating"]
    np.testing.assert_allclose(ours.loc[models], theirs, atol=0.02)
    assert fit.battles_used == n and fit.battles_dropped == 0


def test_recovers_planted_length_effect_and_removes_bias(planted: tuple[pd.DataFrame, np.ndarray]) -> None:
    battles, beta = planted
    fit = style_control(battles, rounds=100, seed=1)
    coef = fit.coefficients.set_index("feature")
    # the truth per standard deviation of the normalised length difference
    f = style_differences(battles)[1][:, 0]
    true_len = 1.0 * f.std()
    assert coef.loc["tokens", "lower"] <= true_len <= coef.loc["tokens", "upper"]
    assert coef.loc["tokens", "upper"] - coef.loc["tokens", "lower"] < 0.1
    for name in ("headers", "lists", "bold"):  # no planted effect
        assert coef.loc[name, "lower"] <= 0 <= coef.loc[name, "upper"]

    truth = pd.Series(400 / math.log(10) * beta + 1000, index=[f"m{i:02d}" for i in range(len(beta))])
    plain = fit.plain.set_index("model").loc[truth.index]
    ctrl = fit.leaderboard.set_index("model").loc[truth.index]
    # without control the verbose model is inflated well beyond its interval ...
    assert plain.loc["m00", "rating"] - truth["m00"] > 40
    assert plain.loc["m00", "lower"] > truth["m00"]
    # ... and with control it is not; the rest stay covered too
    assert ctrl.loc["m00", "lower"] <= truth["m00"] <= ctrl.loc["m00", "upper"]
    assert ((ctrl["lower"] <= truth) & (truth <= ctrl["upper"])).sum() >= 8
    # rank_change = plain rank_ub - controlled rank_ub; the verbose model drops
    np.testing.assert_array_equal(ctrl["rank_change"], plain["rank_ub"] - ctrl["rank_ub"])
    assert ctrl.loc["m00", "rank_change"] < 0
    assert list(fit.leaderboard.columns) == [
        "model",
        "rating",
        "lower",
        "upper",
        "rank_ub",
        "battles",
        "rank_low",
        "rank_high",
        "p_top",
        "set_low",
        "set_high",
        "rank_change",
    ]
    assert np.isclose(fit.leaderboard["p_top"].sum(), 1.0)
    assert (fit.leaderboard["rank_low"] <= fit.leaderboard["rank_high"]).all()
    best = fit.leaderboard.iloc[0]  # sorted by rating: the best model's rank range starts at 1
    assert best["rank_low"] == 1 and best["p_top"] == fit.leaderboard["p_top"].max()
    assert list(fit.coefficients.columns) == ["feature", "coef", "lower", "upper", "battles_nonzero"]
    # battles_nonzero counts the used battles whose answers differ in the feature
    _, diffs = style_differences(battles)
    assert list(fit.coefficients["battles_nonzero"]) == list((diffs != 0).sum(axis=0))
    assert fit.leaderboard["rating"].is_monotonic_decreasing


def test_no_style_effect_leaves_ratings_alone() -> None:
    battles, beta = simulate_style(n_battles=8000, length_coef=0.0, seed=3)
    fit = style_control(battles, rounds=20, seed=0)
    ctrl = fit.leaderboard.set_index("model")["rating"]
    plain = fit.plain.set_index("model")["rating"]
    # the verbose model's length is collinear with its identity, so its two ratings differ by the
    # (small, noisy) fitted length coefficient only
    assert np.abs(ctrl - plain.loc[ctrl.index]).max() < 25
    coef = fit.coefficients.set_index("feature")
    assert coef.loc["tokens", "lower"] <= 0 <= coef.loc["tokens", "upper"]


def test_missing_features_are_dropped_and_counted(planted: tuple[pd.DataFrame, np.ndarray]) -> None:
    battles = planted[0].iloc[:3000].copy()
    battles["bold_a"] = battles["bold_a"].astype("Int64")
    battles.loc[battles.index[:40], "bold_a"] = pd.NA  # NULL from DuckDB
    battles.loc[battles.index[40:50], "tokens_b"] = np.nan
    fit = style_control(battles, rounds=10, seed=2)
    assert fit.battles_used == 2950 and fit.battles_dropped == 50
    clean = style_control(battles.iloc[50:].astype({"bold_a": "int64"}), rounds=10, seed=2)
    pd.testing.assert_frame_equal(fit.leaderboard, clean.leaderboard)
    pd.testing.assert_frame_equal(fit.coefficients, clean.coefficients)
    assert fit.leaderboard["battles"].sum() == 2 * 2950
    with pytest.raises(NotApplicable, match="none of the 3,000 votes has them"):
        style_control(battles.assign(tokens_a=np.nan), rounds=10)


def test_feature_without_variance_reports_nan(planted: tuple[pd.DataFrame, np.ndarray]) -> None:
    battles = planted[0].iloc[:3000].assign(bold_a=0, bold_b=0)
    fit = style_control(battles, rounds=10, seed=0)
    coef = fit.coefficients.set_index("feature")
    assert coef.loc["bold", ["coef", "lower", "upper"]].isna().all()
    assert coef.loc["bold", "battles_nonzero"] == 0
    three = style_control(battles, rounds=10, seed=0, features=("tokens", "headers", "lists"))
    np.testing.assert_allclose(coef["coef"].iloc[:3], three.coefficients["coef"], atol=1e-9)
    pd.testing.assert_frame_equal(fit.leaderboard, three.leaderboard)


def test_anchor_and_determinism(planted: tuple[pd.DataFrame, np.ndarray]) -> None:
    battles = planted[0].iloc[:4000]
    first = style_control(battles, rounds=20, seed=5, anchor="m03", init_rating=1200)
    again = style_control(battles, rounds=20, seed=5, anchor="m03", init_rating=1200)
    pd.testing.assert_frame_equal(first.leaderboard, again.leaderboard)
    pd.testing.assert_frame_equal(first.coefficients, again.coefficients)
    row = first.leaderboard.set_index("model").loc["m03"]
    assert row["rating"] == pytest.approx(1200) and row["lower"] == pytest.approx(1200)
    assert first.plain.set_index("model").loc["m03", "rating"] == pytest.approx(1200)
    centred = style_control(battles, rounds=20, seed=5)
    gap = first.leaderboard.set_index("model")["rating"] - centred.leaderboard.set_index("model")["rating"]
    assert np.ptp(gap) < 1e-6  # anchoring only shifts
    other = style_control(battles, rounds=20, seed=6)
    assert not np.allclose(other.coefficients["lower"], centred.coefficients["lower"])
