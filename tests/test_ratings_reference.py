"""Our ratings against independent implementations on the same votes: evalica and FastChat (fschat 0.2.36).

- evalica ``bradley_terry`` (Newman's MM iteration in Rust): same ordering and pairwise win
  probabilities to 1e-4, on the real LLMFAO crowd votes and on simulated votes; its ``bootstrap``
  (scipy, resampling battles) gives the same interval widths as our multinomial cell bootstrap.
- FastChat ``compute_elo_mle_with_tie`` (sklearn logistic regression): within 1 rating point.
- FastChat ``compute_elo`` (online Elo): equal to 1e-9.
"""

from __future__ import annotations

import warnings

import evalica
import numpy as np
import pandas as pd
import pytest
from test_ratings import LLMFAO, simulate, win_prob

from pipelines.ratings import aggregate, bootstrap, bradley_terry, online_elo

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # fastchat's import chain warns about optional backends
    from fastchat.serve.monitor.elo_analysis import compute_elo, compute_elo_mle_with_tie

EVALICA_WINNER = {
    "model_a": evalica.Winner.X,
    "model_b": evalica.Winner.Y,
    "tie": evalica.Winner.Draw,
    "tie_bothbad": evalica.Winner.Draw,
}
FASTCHAT_WINNER = {"tie_bothbad": "tie (bothbad)"}  # FastChat's spelling of the both-bad tie


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
def simulated() -> pd.DataFrame:
    return simulate()[0]


@pytest.mark.parametrize("data", ["llmfao", "simulated"])
def test_bradley_terry_matches_evalica(data: str, request: pytest.FixtureRequest) -> None:
    battles = request.getfixturevalue(data)
    models, cells = aggregate(battles)
    ours = bradley_terry(models, cells)
    theirs = evalica_ratings(battles, models)
    assert np.array_equal(np.argsort(-ours, kind="stable"), np.argsort(-theirs, kind="stable"))
    np.testing.assert_allclose(win_prob(ours), win_prob(theirs), atol=1e-4)
    # ties matter: dropping them is a different fit, and matches evalica's tie_weight=0
    dropped = bradley_terry(models, cells, ties="drop")
    np.testing.assert_allclose(win_prob(dropped), win_prob(evalica_ratings(battles, models, 0.0)), atol=1e-4)
    assert np.abs(win_prob(dropped) - win_prob(ours)).max() > 1e-3


@pytest.mark.slow
def test_bootstrap_spread_matches_evalica_bootstrap(llmfao: pd.DataFrame) -> None:
    """Same resampling law (battles with replacement == multinomial over cells), same spread.

    evalica's bootstrap distribution (scipy.stats.bootstrap, percentile, 200 resamples) is put on
    our basis first: 400 log10(score), each resample centred on its model mean. Standard deviations
    from 200 rounds carry ~5% Monte-Carlo error each, so the per-model ratio is checked loosely
    and the median ratio tightly.
    """
    models, cells = aggregate(llmfao)
    ours = bootstrap(models, cells, rounds=200, seed=0, init_rating=0)
    result = evalica.bootstrap(
        evalica.bradley_terry,
        llmfao["model_a"],
        llmfao["model_b"],
        llmfao["winner"].map(EVALICA_WINNER),
        n_resamples=200,
        bootstrap_method="percentile",
        random_state=0,
        tolerance=1e-10,
        limit=10_000,
    )
    theirs = 400 * np.log10(result.distribution[models].to_numpy())
    theirs -= theirs.mean(axis=1, keepdims=True)
    ratio = ours.std(axis=0) / theirs.std(axis=0)
    assert 0.93 < np.median(ratio) < 1.07, np.median(ratio)
    assert np.all((ratio > 0.75) & (ratio < 1.33)), ratio
    # and the centres agree: both bootstraps centre on the point fit
    np.testing.assert_allclose(np.median(ours, axis=0), np.median(theirs, axis=0), atol=12)


def test_bradley_terry_matches_fastchat_mle_with_tie() -> None:
    """Within 1 point of FastChat's ``compute_elo_mle_with_tie`` on 20,000 simulated battles.

    FastChat fits sklearn ``LogisticRegression`` with its default C=1 L2 penalty on duplicated
    battles (a tie = one win each way). At 40,000 rows and 10 models the penalty moves ratings by
    ~0.03 points (penalty gradient |w| <= ~0.6 against a per-model curvature of ~8,000), and
    sklearn's default tol=1e-4 leaves ~0.1 point, so 1 point is a strict bound. Model names avoid
    'llama-13b', which FastChat would re-anchor at 800.
    """
    battles, _ = simulate(n_models=10, n_battles=20_000, seed=5)
    models, cells = aggregate(battles)
    ours = pd.Series(bradley_terry(models, cells), index=models)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = compute_elo_mle_with_tie(battles.replace({"winner": FASTCHAT_WINNER}))
    diff = (ours - ours.mean()) - (theirs - theirs.mean()).reindex(models)
    assert diff.abs().max() < 1.0, diff.abs().max()
    assert ours.mean() == pytest.approx(1000) and theirs.mean() == pytest.approx(1000, abs=1)


@pytest.mark.parametrize("data", ["llmfao", "simulated"])
def test_online_elo_equals_fastchat_compute_elo(data: str, request: pytest.FixtureRequest) -> None:
    battles = request.getfixturevalue(data)
    for k in (4, 32):
        ours = online_elo(battles, k=k)
        theirs = pd.Series(compute_elo(battles.replace({"winner": FASTCHAT_WINNER}), K=k))
        assert set(ours.index) == set(theirs.index)
        np.testing.assert_allclose(ours.to_numpy(), theirs.reindex(ours.index).to_numpy(), rtol=0, atol=1e-9)
