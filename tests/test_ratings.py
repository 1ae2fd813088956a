"""Bradley–Terry ratings: aggregation, closed form, agreement with evalica, bootstrap behaviour."""

from __future__ import annotations

import math
from pathlib import Path

import evalica
import numpy as np
import pandas as pd
import pytest

from pipelines.ratings import (
    aggregate,
    bootstrap,
    bradley_terry,
    leaderboard,
    rank_upper_bound,
    resample_counts,
)

LLMFAO = Path("/work/shared/data/llmfao/crowd-comparisons.csv")
EVALICA_WINNER = {"model_a": evalica.Winner.X, "model_b": evalica.Winner.Y, "tie": evalica.Winner.Draw}


def win_prob(ratings: np.ndarray) -> np.ndarray:
    """p[i, j] = P(i beats j) on the 400-point / base-10 scale; shift- and scale-free given ratings."""
    return 1 / (1 + 10 ** ((ratings[None, :] - ratings[:, None]) / 400))


def simulate(n_models: int = 20, n_battles: int = 6000, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """Battles from known ratings (centred on 1000) plus ties; returns (battles, truth)."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(0, 120, n_models)
    truth += 1000 - truth.mean()
    a = rng.integers(0, n_models, n_battles)
    b = (a + rng.integers(1, n_models, n_battles)) % n_models
    p = win_prob(truth)[a, b]
    # ties taken symmetrically out of both sides keep P(a)+P(tie)/2 = p, the half-win BT target
    tie = 0.2 * np.minimum(p, 1 - p) * 2
    u = rng.random(n_battles)
    winner = np.where(u < p - tie / 2, "model_a", np.where(u < p + tie / 2, "tie", "model_b"))
    names = np.array([f"m{i:02d}" for i in range(n_models)])
    return pd.DataFrame({"model_a": names[a], "model_b": names[b], "winner": winner}), truth


def evalica_ratings(battles: pd.DataFrame, models: list[str], tie_weight: float = 0.5) -> np.ndarray:
    """evalica BT strengths for ``models`` converted to 400-point ratings (up to a shift)."""
    result = evalica.bradley_terry(
        battles["model_a"],
        battles["model_b"],
        battles["winner"].map(EVALICA_WINNER),
        win_weight=1.0,
        tie_weight=tie_weight,
        tolerance=1e-12,
        limit=100_000,
    )
    return 400 * np.log10(result.scores.reindex(models).to_numpy())


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


def test_two_models_closed_form_and_anchor() -> None:
    # 7 wins, 3 losses, 2 ties for a -> w' = 8, l' = 4 -> gap = 400 * log10(2)
    winners = ["model_a"] * 7 + ["model_b"] * 3 + ["tie"] * 2
    battles = pd.DataFrame({"model_a": "a", "model_b": "b", "winner": winners})
    models, cells = aggregate(battles)
    r = bradley_terry(models, cells)
    assert r[0] - r[1] == pytest.approx(400 * math.log10(8 / 4), abs=1e-4)
    assert r.mean() == pytest.approx(1000, abs=1e-6)
    anchored = bradley_terry(models, cells, anchor="b", init_rating=1500)
    assert anchored[1] == pytest.approx(1500, abs=1e-9)
    assert anchored[0] - anchored[1] == pytest.approx(r[0] - r[1], abs=1e-6)
    # ties dropped: 7 vs 3; other scale/base: gap = scale * log_base(w/l)
    assert np.diff(bradley_terry(models, cells, ties="drop"))[0] == pytest.approx(
        -400 * math.log10(7 / 3), abs=1e-4
    )
    nat = bradley_terry(models, cells, scale=1, base=math.e, init_rating=0)
    assert nat[0] - nat[1] == pytest.approx(math.log(2), abs=1e-6)


@pytest.mark.parametrize("data", ["llmfao", "simulated"])
def test_matches_evalica(data: str, request: pytest.FixtureRequest) -> None:
    battles = request.getfixturevalue(data)
    battles = battles[0] if isinstance(battles, tuple) else battles
    models, cells = aggregate(battles)
    ours = bradley_terry(models, cells)
    theirs = evalica_ratings(battles, models)
    assert np.array_equal(np.argsort(-ours, kind="stable"), np.argsort(-theirs, kind="stable"))
    np.testing.assert_allclose(win_prob(ours), win_prob(theirs), atol=1e-4)
    # ties matter: dropping them is a different fit, and matches evalica's tie_weight=0
    dropped = bradley_terry(models, cells, ties="drop")
    np.testing.assert_allclose(win_prob(dropped), win_prob(evalica_ratings(battles, models, 0.0)), atol=1e-4)
    assert np.abs(win_prob(dropped) - win_prob(ours)).max() > 1e-3


def test_recovers_truth_and_bootstrap_covers(simulated: tuple[pd.DataFrame, np.ndarray]) -> None:
    battles, truth = simulated
    table = leaderboard(battles, rounds=100, seed=0).set_index("model")
    order = [f"m{i:02d}" for i in range(len(truth))]
    table = table.loc[order]
    assert np.corrcoef(table["rating"], truth)[0, 1] > 0.97
    assert np.all(table["lower"] <= table["rating"]) and np.all(table["rating"] <= table["upper"])
    width = (table["upper"] - table["lower"]).to_numpy()
    assert np.all((width > 20) & (width < 200))  # ~600 battles/model at ~0.25 info -> ~±40 points
    covered = ((table["lower"] <= truth) & (truth <= table["upper"])).sum()
    assert 16 <= covered <= 20
    assert table["battles"].sum() == 2 * len(battles)
    assert table["battles"].to_numpy().tolist() == (
        pd.concat([battles["model_a"], battles["model_b"]]).value_counts().loc[order].tolist()
    )


def test_resample_keeps_total_and_mean(simulated: tuple[pd.DataFrame, np.ndarray]) -> None:
    _, cells = aggregate(simulated[0])
    draws = resample_counts(cells, 200, np.random.default_rng(0))
    assert draws.shape == (200, len(cells.a), 3)
    assert np.all(draws.sum(axis=(1, 2)) == cells.counts.sum())
    np.testing.assert_allclose(draws.mean(axis=0), cells.counts, atol=4 * np.sqrt(cells.counts.max() / 200))
    assert draws.std(axis=0).max() > 0


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


def test_loss_gradient_is_analytic(simulated: tuple[pd.DataFrame, np.ndarray]) -> None:
    from scipy.optimize import check_grad

    from pipelines.ratings import _bt_loss_and_grad

    models, cells = aggregate(simulated[0])
    args = (cells.a, cells.b, cells.wins_a + 0.5 * cells.ties, cells.wins_b + 0.5 * cells.ties)
    beta = np.random.default_rng(0).normal(0, 1, len(models))
    err = check_grad(lambda x: _bt_loss_and_grad(x, *args)[0], lambda x: _bt_loss_and_grad(x, *args)[1], beta)
    assert err < 1e-3 * np.linalg.norm(_bt_loss_and_grad(beta, *args)[1])
