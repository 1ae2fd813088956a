"""Ratings: aggregation, closed forms, the batched Newton solver, Rao–Kupper, online Elo, bootstrap.

Agreement with evalica and FastChat on the same votes lives in ``test_ratings_reference.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import approx_fprime, check_grad, minimize

from pipelines.ratings import (
    aggregate,
    bootstrap,
    bootstrap_fit,
    bradley_terry,
    fit_pairwise,
    leaderboard,
    online_elo,
    outcome_weights,
    pairwise_loss,
    rank_upper_bound,
    rao_kupper,
    resample_counts,
    separated_rounds,
)

LLMFAO = Path("/work/shared/data/llmfao/crowd-comparisons.csv")


def win_prob(ratings: np.ndarray) -> np.ndarray:
    """p[i, j] = P(i beats j) on the 400-point / base-10 scale; shift- and scale-free given ratings."""
    return 1 / (1 + 10 ** ((ratings[None, :] - ratings[:, None]) / 400))


def simulate(
    n_models: int = 20, n_battles: int = 6000, seed: int = 1, spread: float = 120.0
) -> tuple[pd.DataFrame, np.ndarray]:
    """Battles from known Bradley–Terry ratings (centred on 1000) plus ties; returns (battles, truth).

    Ties are taken symmetrically out of both sides, keeping P(a) + P(tie)/2 = p: the half-win BT
    model is then correctly specified. Half of the ties are 'tie_bothbad'.
    """
    rng = np.random.default_rng(seed)
    truth = rng.normal(0, spread, n_models)
    truth += 1000 - truth.mean()
    a = rng.integers(0, n_models, n_battles)
    b = (a + rng.integers(1, n_models, n_battles)) % n_models
    p = win_prob(truth)[a, b]
    tie = 0.2 * np.minimum(p, 1 - p) * 2
    u = rng.random(n_battles)
    winner = np.select(
        [u < p - tie / 2, u < p, u < p + tie / 2], ["model_a", "tie", "tie_bothbad"], default="model_b"
    )
    names = np.array([f"m{i:02d}" for i in range(n_models)])
    return pd.DataFrame({"model_a": names[a], "model_b": names[b], "winner": winner}), truth


def simulate_rao_kupper(
    beta: np.ndarray, theta: float, n_battles: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Battles drawn from the Rao–Kupper model with natural log-strengths ``beta`` and ``theta``."""
    n = len(beta)
    a = rng.integers(0, n, n_battles)
    b = (a + rng.integers(1, n, n_battles)) % n
    pi_a, pi_b = np.exp(beta[a]), np.exp(beta[b])
    p_a = pi_a / (pi_a + theta * pi_b)
    p_b = pi_b / (pi_b + theta * pi_a)
    u = rng.random(n_battles)
    winner = np.select([u < p_a, u < p_a + p_b], ["model_a", "model_b"], default="tie")
    names = np.array([f"m{i}" for i in range(n)])
    return pd.DataFrame({"model_a": names[a], "model_b": names[b], "winner": winner})


@pytest.fixture(scope="module")
def llmfao() -> pd.DataFrame:
    raw = pd.read_csv(LLMFAO)
    winner = raw["winner"].map({"left": "model_a", "right": "model_b", "tie": "tie"})
    return pd.DataFrame({"model_a": raw["left"], "model_b": raw["right"], "winner": winner})


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, np.ndarray]:
    return simulate()


def test_aggregate_counts_per_ordered_pair() -> None:
    battles = pd.DataFrame(
        {
            "model_a": ["y", "y", "x", "y", "x", "y"],
            "model_b": ["x", "x", "y", "x", "y", "z"],
            "winner": ["model_a", "tie_bothbad", "model_b", "tie", "model_a", "model_b"],
        }
    )
    models, cells = aggregate(battles)
    assert models == ["x", "y", "z"]
    got = {(models[i], models[j]): tuple(c) for i, j, c in zip(cells.a, cells.b, cells.counts, strict=True)}
    assert got == {("x", "y"): (1, 1, 0), ("y", "x"): (1, 0, 2), ("y", "z"): (0, 1, 0)}
    with pytest.raises(ValueError, match="unknown winner"):
        aggregate(battles.assign(winner="left"))
    with pytest.raises(ValueError, match="unknown winner"):
        aggregate(battles.assign(winner=[None, "tie", "tie", "tie", "tie", "tie"]))


def test_two_models_closed_form_and_anchor() -> None:
    # 7 wins, 3 losses, 2 ties for a -> w' = 8, l' = 4 -> gap = 400 * log10(2)
    winners = ["model_a"] * 7 + ["model_b"] * 3 + ["tie"] * 2
    battles = pd.DataFrame({"model_a": "a", "model_b": "b", "winner": winners})
    models, cells = aggregate(battles)
    r = bradley_terry(models, cells)
    assert r[0] - r[1] == pytest.approx(400 * math.log10(8 / 4), abs=1e-6)
    assert r.mean() == pytest.approx(1000, abs=1e-6)
    anchored = bradley_terry(models, cells, anchor="b", init_rating=1500)
    assert anchored[1] == pytest.approx(1500, abs=1e-9)
    assert anchored[0] - anchored[1] == pytest.approx(r[0] - r[1], abs=1e-6)
    # ties dropped: 7 vs 3; other scale/base: gap = scale * log_base(w/l)
    assert np.diff(bradley_terry(models, cells, ties="drop"))[0] == pytest.approx(
        -400 * math.log10(7 / 3), abs=1e-6
    )
    nat = bradley_terry(models, cells, scale=1, base=math.e, init_rating=0)
    assert nat[0] - nat[1] == pytest.approx(math.log(2), abs=1e-9)
    with pytest.raises(ValueError, match="ties"):
        bradley_terry(models, cells, ties="third")


def test_newton_reaches_the_minimum_scipy_finds(simulated: tuple[pd.DataFrame, np.ndarray]) -> None:
    """The batched Newton solution equals an independent L-BFGS minimisation of the same loss."""
    models, cells = aggregate(simulated[0])
    for method, extra in (("bt", 0), ("rao-kupper", 1)):
        score_a, score_b, tie_total = outcome_weights(cells.counts[None], method)
        fit_eta = method == "rao-kupper"
        args = (cells.a, cells.b, score_a, score_b, tie_total, None, fit_eta, len(models))

        def fun(x: np.ndarray, args: tuple = args) -> tuple[float, np.ndarray]:
            loss, grad, _ = pairwise_loss(x[None], *args)
            return float(loss[0]), grad[0]

        x0 = np.r_[np.zeros(len(models)), [0.5] * extra]
        bounds = [(None, None)] * len(models) + [(1e-6, None)] * extra
        ref = minimize(
            fun, x0, jac=True, method="L-BFGS-B", bounds=bounds, options={"gtol": 1e-12, "ftol": 0}
        )
        ours = fit_pairwise(cells.a, cells.b, len(models), cells.counts, method=method)
        assert fun(ours)[0] <= ref.fun + 1e-12
        np.testing.assert_allclose(ours, ref.x, atol=2e-5)


@pytest.mark.parametrize("method", ["bt", "rao-kupper"])
def test_loss_gradient_and_hessian_are_analytic(
    method: str, simulated: tuple[pd.DataFrame, np.ndarray]
) -> None:
    """Gradient and Hessian of the loss against finite differences, with style-like covariates too."""
    models, cells = aggregate(simulated[0])
    rng = np.random.default_rng(0)
    features = rng.normal(0, 1, (len(cells.a), 2))
    score_a, score_b, tie_total = outcome_weights(cells.counts[None], method)
    fit_eta = method == "rao-kupper"
    args = (cells.a, cells.b, score_a, score_b, tie_total, features, fit_eta, len(models))
    x = np.r_[rng.normal(0, 1, len(models)), rng.normal(0, 0.3, 2), [0.4] * fit_eta]

    def loss(v: np.ndarray) -> float:
        return float(pairwise_loss(v[None], *args)[0][0])

    def grad(v: np.ndarray) -> np.ndarray:
        return pairwise_loss(v[None], *args)[1][0]

    g = grad(x)
    assert check_grad(loss, grad, x, epsilon=1e-7) < 1e-5 * np.linalg.norm(g)
    hess = pairwise_loss(x[None], *args)[2][0]
    numeric = np.stack([approx_fprime(x, lambda v, i=i: grad(v)[i], 1e-7) for i in range(len(x))])
    np.testing.assert_allclose(hess, numeric, atol=1e-5 * np.abs(hess).max())
    np.testing.assert_allclose(hess, hess.T)


def test_bootstrap_rounds_equal_independent_fits(simulated: tuple[pd.DataFrame, np.ndarray]) -> None:
    """Batched, warm-started rounds give the same ratings as separate fits on the same draws (up to
    the rounds' Newton tolerance ROUND_TOL = 1e-6 log-odds, ~2e-4 points)."""
    models, cells = aggregate(simulated[0])
    boot = bootstrap(models, cells, rounds=6, seed=11)
    draws = resample_counts(cells, 6, np.random.default_rng(11))
    for row, counts in zip(boot, draws, strict=True):
        np.testing.assert_allclose(row, bradley_terry(models, cells, counts=counts), atol=1e-3)
    rk = bootstrap_fit(models, cells, rounds=4, seed=11, method="rao-kupper")
    for row, counts in zip(rk.draws, draws[:4], strict=True):
        ratings, theta = rao_kupper(models, cells, counts=counts, scale=1, base=math.e, init_rating=0)
        np.testing.assert_allclose(row[:-1], ratings, atol=1e-5)
        assert math.exp(row[-1]) == pytest.approx(theta, abs=1e-5)


def test_model_that_never_loses_is_far_out_but_finite() -> None:
    battles = pd.DataFrame(
        {
            "model_a": ["a"] * 5 + ["b"] * 5 + ["c"] * 3,
            "model_b": ["b"] * 5 + ["c"] * 5 + ["b"] * 3,
            "winner": ["model_a"] * 8 + ["model_b"] * 2 + ["model_a"] * 3,
        }
    )
    models, cells = aggregate(battles)
    r = bradley_terry(models, cells)
    assert np.all(np.isfinite(r)) and r[0] - max(r[1], r[2]) > 1000
    # b vs c: c won 5 of 8 (2 as model_b, 3 as model_a); the runaway model barely touches that gap
    assert r[2] - r[1] == pytest.approx(400 * math.log10(5 / 3), abs=1e-3)
    table = leaderboard(battles, rounds=30).set_index("model")
    assert np.isfinite(table[["lower", "upper"]].to_numpy()).all()
    # every round leaves 'a' unbeaten: capped at SEPARATED_MAXITER, its interval stays far out
    assert table.loc["a", "lower"] - max(table.loc["b", "upper"], table.loc["c", "upper"]) > 800


def test_separated_rounds_by_hand() -> None:
    """A round is separated when the models playing in it are not strongly connected by wins."""
    a, b = np.array([0, 1, 2]), np.array([1, 2, 0])  # pairs 0-1, 1-2, 2-0; model 3 never plays
    counts = np.array(
        [
            [[1, 1, 0], [1, 1, 0], [1, 1, 0]],  # everyone beats everyone: connected
            [[2, 0, 0], [1, 1, 0], [0, 1, 0]],  # 0 never loses (beats 1, and 2 loses to it)
            [[1, 0, 0], [1, 0, 0], [1, 0, 0]],  # a cycle 0 > 1 > 2 > 0: connected
            [[0, 0, 2], [0, 0, 0], [0, 0, 0]],  # only 0 and 1 play, and tie: connected
            [[1, 0, 0], [0, 0, 0], [0, 0, 0]],  # 0 beat 1, nothing else: separated
        ],
        dtype=float,
    )
    assert separated_rounds(a, b, 4, counts).tolist() == [False, True, False, False, True]
    assert separated_rounds(a, b, 4, counts[3:4], ties="drop").tolist() == [False]  # no battle counts


def test_recovers_truth_and_bootstrap_covers(simulated: tuple[pd.DataFrame, np.ndarray]) -> None:
    battles, truth = simulated
    table = leaderboard(battles, rounds=100, seed=0).set_index("model")
    order = [f"m{i:02d}" for i in range(len(truth))]
    table = table.loc[order]
    assert np.corrcoef(table["rating"], truth)[0, 1] > 0.97
    assert np.all(table["lower"] <= table["rating"]) and np.all(table["rating"] <= table["upper"])
    width = (table["upper"] - table["lower"]).to_numpy()
    assert np.all((width > 20) & (width < 200))  # ~600 battles/model at ~0.25 info -> ~±40 points
    assert table["battles"].sum() == 2 * len(battles)
    assert table["battles"].to_numpy().tolist() == (
        pd.concat([battles["model_a"], battles["model_b"]]).value_counts().loc[order].tolist()
    )


def test_bootstrap_coverage_over_repeated_simulations() -> None:
    """95% percentile intervals cover the truth for 90-99% of models over 50 simulated arenas.

    What is covered: each bootstrap round is centred on its own model mean, so the interval is
    for a model's rating relative to the mean of all models; the truth is centred the same way
    (an anchored interval would instead mix in the anchor's noise and give the anchor zero width).
    50 runs x 15 models = 750 intervals (binomial s.e. ~0.8 points at 95%). 200 rounds keep the
    Monte-Carlo error of the 2.5/97.5 percentiles small next to the interval width.
    """
    covered = []
    for run in range(50):
        battles, truth = simulate(n_models=15, n_battles=3000, seed=1000 + run)
        models, cells = aggregate(battles)
        boot = bootstrap(models, cells, rounds=200, seed=run, init_rating=0)
        lower, upper = np.percentile(boot, [2.5, 97.5], axis=0)
        centred = truth - truth.mean()
        covered.append((lower <= centred) & (centred <= upper))
    rate = np.mean(covered)
    assert 0.90 <= rate <= 0.99, rate


@pytest.mark.parametrize("scale", [1, 20])  # N < 10 K: battle-index sampler; N >= 10 K: numpy multinomial
def test_resample_is_multinomial(scale: int, simulated: tuple[pd.DataFrame, np.ndarray]) -> None:
    """Both samplers: total fixed, mean N p and variance N p (1 - p) per (cell, outcome)."""
    _, cells = aggregate(simulated[0])
    cells = cells._replace(wins_a=cells.wins_a * scale, wins_b=cells.wins_b * scale, ties=cells.ties * scale)
    draws = resample_counts(cells, 400, np.random.default_rng(0))
    assert draws.shape == (400, len(cells.a), 3)
    assert np.all(draws.sum(axis=(1, 2)) == cells.counts.sum())
    expected = cells.counts
    np.testing.assert_allclose(draws.mean(axis=0), expected, atol=5 * np.sqrt(expected.max() / 400))
    variance = expected * (1 - expected / expected.sum())
    busy = expected > 5
    ratio = draws.var(axis=0)[busy].sum() / variance[busy].sum()
    assert 0.95 < ratio < 1.05, ratio
    assert np.all(draws[:, expected == 0] == 0)


def test_rank_upper_bound_constructed() -> None:
    lower = np.array([1100, 1060, 990, 900, 880])
    upper = np.array([1200, 1120, 1060, 1000, 1040])
    # model 0: no lower bound above 1200 -> 1; model 1: 1100 > 1120? no -> 1
    # model 2: 1100 > 1060 but 1060 is not *strictly* above 1060 -> 2
    # model 3: 1100, 1060 > 1000 (990 is not) -> 3; model 4: 1100, 1060 > 1040 -> 3
    assert rank_upper_bound(lower, upper).tolist() == [1, 1, 2, 3, 3]


def test_leaderboard_columns_order_and_determinism(llmfao: pd.DataFrame) -> None:
    first = leaderboard(llmfao, rounds=20, seed=3)
    assert list(first.columns) == ["model", "rating", "lower", "upper", "rank_ub", "battles"]
    assert first["rating"].is_monotonic_decreasing
    assert first["rank_ub"].iloc[0] == 1 and first["rank_ub"].iloc[-1] > 1
    pd.testing.assert_frame_equal(first, leaderboard(llmfao, rounds=20, seed=3))
    other = leaderboard(llmfao, rounds=20, seed=4)
    pd.testing.assert_series_equal(first["rating"], other["rating"])  # point fit does not depend on seed
    assert not np.allclose(first["lower"], other["lower"])
    models, cells = aggregate(llmfao)
    boot = bootstrap(models, cells, rounds=5, seed=3, anchor=models[0])
    assert boot.shape == (5, len(models)) and np.allclose(boot[:, 0], 1000)
    with pytest.raises(ValueError, match="method"):
        leaderboard(llmfao, rounds=5, method="davidson")


# ------------------------------------------------------------------------------------------ Rao–Kupper


def test_rao_kupper_two_models_matches_hand_solution() -> None:
    """Two models, one side: the model is saturated, so the MLE reproduces the observed frequencies.

    P(a) = 1 / (1 + theta e^-d) = 6/12, P(b) = 1 / (1 + theta e^d) = 2/12 (4 ties), solved by hand:
    theta * e^-d = 1, theta * e^d = 5  ->  theta = sqrt(5), d = ln(5) / 2.
    """
    winners = ["model_a"] * 6 + ["model_b"] * 2 + ["tie"] * 2 + ["tie_bothbad"] * 2
    battles = pd.DataFrame({"model_a": "a", "model_b": "b", "winner": winners})
    models, cells = aggregate(battles)
    ratings, theta = rao_kupper(models, cells, scale=1, base=math.e, init_rating=0)
    assert theta == pytest.approx(math.sqrt(5), abs=1e-9)
    assert ratings[0] - ratings[1] == pytest.approx(math.log(5) / 2, abs=1e-9)
    # no ties at all: theta = 1 and the fit is Bradley–Terry with ties dropped
    no_ties = battles[~battles["winner"].str.startswith("tie")]
    m, c = aggregate(no_ties)
    r, t = rao_kupper(m, c)
    assert t == 1.0
    np.testing.assert_allclose(r, bradley_terry(m, c, ties="drop"), atol=1e-9)


def test_rao_kupper_recovers_simulated_truth() -> None:
    """Battles drawn from Rao–Kupper (theta = 1.6): strengths and theta come back within intervals."""
    rng = np.random.default_rng(7)
    beta = rng.normal(0, 0.6, 8)
    beta -= beta.mean()
    battles = simulate_rao_kupper(beta, 1.6, 40_000, rng)
    table = leaderboard(battles, rounds=200, seed=1, method="rao-kupper", scale=1, base=math.e, init_rating=0)
    table = table.set_index("model").loc[[f"m{i}" for i in range(8)]]
    assert np.abs(table["rating"] - beta).max() < 0.05  # s.e. ~0.012 natural units per model
    covered = ((table["lower"] <= beta) & (beta <= table["upper"])).sum()
    assert covered >= 6
    lo, hi = table.attrs["theta_interval"]
    assert lo < 1.6 < hi and hi - lo < 0.1
    assert table.attrs["theta"] == pytest.approx(1.6, abs=0.03)


# ------------------------------------------------------------------------------------------ online Elo


def test_online_elo_by_hand() -> None:
    battles = pd.DataFrame(
        {
            "model_a": ["x", "y", "x"],
            "model_b": ["y", "z", "z"],
            "winner": ["model_a", "tie_bothbad", "model_b"],
        }
    )
    got = online_elo(battles, k=32)
    r = {"x": 1000.0, "y": 1000.0, "z": 1000.0}

    def expected(ra: float, rb: float) -> float:
        return 1 / (1 + 10 ** ((rb - ra) / 400))

    for a, b, s in (("x", "y", 1.0), ("y", "z", 0.5), ("x", "z", 0.0)):
        ea, eb = expected(r[a], r[b]), expected(r[b], r[a])
        r[a], r[b] = r[a] + 32 * (s - ea), r[b] + 32 * (1 - s - eb)
    assert got.to_dict() == pytest.approx(r, abs=1e-12)
    assert got.is_monotonic_decreasing and got.name == "elo"
    assert online_elo(battles.iloc[::-1]).to_dict() != pytest.approx(online_elo(battles).to_dict())
    with pytest.raises(ValueError, match="unknown winner"):
        online_elo(battles.assign(winner="draw"))
