"""Sandwich (CLT) intervals and inverse-frequency reweighting against LMArena's own code, the
``arena-rank`` package (a dev dependency): the same battles give the same ratings and interval
widths, for plain and style-controlled Bradley–Terry, weighted and not; plus hand-checked
weights, the anchor transform, and when 'auto' must not use the sandwich."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from arena_rank.models.bradley_terry import BradleyTerry  # a dev dependency, as statsmodels
from arena_rank.models.contextual_bradley_terry import ContextualBradleyTerry
from arena_rank.utils.data_utils import ContextualPairDataset, PairDataset
from helpers import load, pairwise_batch, run_cli

from pipelines import ratings, sandwich
from pipelines import style_control as SC
from pipelines.errors import ArenatreeError


def arena(seed: int, n_models: int = 10, n: int = 8000, style: bool = False) -> pd.DataFrame:
    """Simulated battles with known strengths, ~15% ties, and very uneven pair counts (models 0-1
    play ~3x as often), so reweighting changes the fit; with ``style`` the four style columns and
    a true length effect."""
    rng = np.random.default_rng(seed)
    strength = rng.normal(0, 1, n_models)
    a = rng.integers(0, n_models, n)
    b = (a + rng.integers(1, n_models, n)) % n_models
    keep = rng.random(n) < np.where((a < 2) | (b < 2), 1.0, 0.3)
    a, b = a[keep], b[keep]
    logit = strength[a] - strength[b]
    frame = pd.DataFrame()
    if style:
        for f in SC.STYLE_FEATURES:
            size = (len(a),)
            if f == "tokens":  # answer lengths from 50 to 1,000 tokens
                frame["tokens_a"], frame["tokens_b"] = (
                    rng.integers(50, 1000, size),
                    rng.integers(50, 1000, size),
                )
            else:
                frame[f"{f}_a"], frame[f"{f}_b"] = rng.poisson(4, size), rng.poisson(4, size)
        logit = logit + 2.0 * (frame.tokens_a - frame.tokens_b) / (frame.tokens_a + frame.tokens_b + 1)
    won = rng.random(len(a)) < 1 / (1 + np.exp(-np.asarray(logit)))
    tie = rng.random(len(a)) < 0.15
    names = np.array([f"model-{i:02d}" for i in range(n_models)])
    frame["model_a"], frame["model_b"] = names[a], names[b]
    frame["winner"] = np.where(tie, "tie", np.where(won, "model_a", "model_b"))
    return frame


def arena_rank_bt(battles: pd.DataFrame, reweighted: bool) -> pd.DataFrame:
    data = PairDataset.from_pandas(battles, reweighted=reweighted)
    out = BradleyTerry(n_competitors=len(data.competitors)).compute_ratings_and_cis(
        data, ci_method="sandwich"
    )
    return pd.DataFrame(out).set_index("competitors").astype(float)


def compare(ours: pd.DataFrame, theirs: pd.DataFrame) -> tuple[float, float]:
    """(max |rating difference| in points, max relative difference of the CI half-widths)."""
    ours = ours.set_index("model").loc[theirs.index]
    half, their_half = (ours.upper - ours.lower) / 2, (theirs.rating_upper - theirs.rating_lower) / 2
    return float((ours.rating - theirs.ratings).abs().max()), float((half / their_half - 1).abs().max())


@pytest.mark.slow
@pytest.mark.parametrize("reweight", [False, True])
def test_bt_sandwich_equals_arena_rank(reweight):
    battles = arena(0)
    ours = ratings.leaderboard(battles, ci="sandwich", reweight=reweight)
    theirs = arena_rank_bt(battles, reweight)
    d_rating, d_width = compare(ours, theirs)
    assert d_rating < 0.1 and d_width < 0.02  # the bar; measured 1e-5 points and 3e-4
    assert ours.attrs["ci"] == "sandwich"
    if reweight:  # reweighting moves the fit here (uneven pairs), so the equality is not vacuous
        plain = ratings.leaderboard(battles, ci="sandwich").set_index("model")
        assert (plain.rating - ours.set_index("model").rating).abs().max() > 1.0


@pytest.mark.slow
@pytest.mark.parametrize("reweight", [False, True])
def test_style_controlled_sandwich_equals_arena_rank_contextual_bt(reweight):
    battles = arena(1, n_models=8, n=6000, style=True)
    got = SC.style_control(battles, ci="sandwich", reweight=reweight)
    # arena-rank on the same standardised style differences, unpenalised like ours (reg=0)
    _, diffs = SC.style_differences(battles)
    z = (diffs - diffs.mean(axis=0)) / diffs.std(axis=0)
    cols = [f"z_{f}" for f in SC.STYLE_FEATURES]
    frame = battles.assign(**{c: z[:, i] for i, c in enumerate(cols)})
    data = ContextualPairDataset.from_pandas(frame, cols, reweighted=reweight, normalize_features=False)
    model = ContextualBradleyTerry(n_competitors=8, n_features=4, reg=0.0)
    out = model.compute_ratings_and_cis(data, ci_method="sandwich")
    coeffs = np.asarray(out.pop("coeffs"))
    theirs = pd.DataFrame(out).set_index("competitors").astype(float)
    d_rating, d_width = compare(got.leaderboard, theirs)
    assert d_rating < 0.1 and d_width < 0.02
    np.testing.assert_allclose(got.coefficients["coef"], coeffs, atol=1e-4)
    # the planted length effect is found, its sandwich interval excludes 0; headers (none) do not
    tokens, headers = got.coefficients.set_index("feature").loc[["tokens", "headers"]].itertuples()
    assert tokens.lower > 0 and headers.lower < 0 < headers.upper


def test_inverse_frequency_weights_by_hand():
    # rows: (0,1) 30 battles, (1,0) 40 battles -> the pair {0,1} has 70; (0,2) 20 -> floor 50
    a, b = np.array([0, 1, 0]), np.array([1, 0, 2])
    counts = np.array([[10, 10, 10], [20, 20, 0], [5, 5, 10]], dtype=float)
    np.testing.assert_allclose(sandwich.inverse_frequency_weights(a, b, counts), [1 / 70, 1 / 70, 1 / 50])


def test_sandwich_matches_statsmodels_robust_logit_on_decisive_battles():
    """An independent reference for the covariance itself: statsmodels' Logit with HC0 (White)
    standard errors on one row per battle, one model dropped for identifiability, gives the same
    SE for every rating difference to the dropped model."""
    battles = arena(2, n_models=6, n=3000)
    battles = battles[battles.winner != "tie"].reset_index(drop=True)
    models, cells = ratings.aggregate(battles)
    point = ratings.fit_pairwise(cells.a, cells.b, len(models), cells.counts)
    cov = sandwich.pairwise_covariance(cells.a, cells.b, len(models), cells.counts, point)
    index = {m: i for i, m in enumerate(models)}
    x = sandwich.design(
        battles.model_a.map(index).to_numpy(), battles.model_b.map(index).to_numpy(), len(models)
    )
    fit = sm.Logit((battles.winner == "model_a").astype(float), x[:, 1:]).fit(disp=0, cov_type="HC0")
    diff = np.eye(len(models))[1:] - np.eye(len(models))[0]  # beta_i - beta_0
    np.testing.assert_allclose(np.sqrt(np.diag(diff @ cov @ diff.T)), fit.bse, rtol=1e-6)


def test_anchor_pins_the_anchor_and_widens_by_the_difference_variance():
    battles = arena(3, n_models=6, n=4000)
    free = ratings.leaderboard(battles, ci="sandwich").set_index("model")
    pinned = ratings.leaderboard(battles, ci="sandwich", anchor="model-03").set_index("model")
    assert pinned.loc["model-03", "lower"] == pytest.approx(1000.0) == pinned.loc["model-03", "upper"]
    np.testing.assert_allclose(
        pinned.rating - pinned.loc["model-03", "rating"],
        free.rating - free.loc["model-03", "rating"],
        atol=1e-6,
    )
    # anchored widths are the SEs of differences to model-03, not the centred ones
    assert not np.allclose(
        (pinned.upper - pinned.lower).drop("model-03"), (free.upper - free.lower).drop("model-03")
    )


def test_auto_falls_back_to_bootstrap_where_the_sandwich_is_invalid():
    battles = arena(4, n_models=5, n=2000)
    champion = battles.model_a.eq("model-00") | battles.model_b.eq("model-00")
    # model-00 wins every battle it plays: its MLE is infinite
    battles.loc[champion, "winner"] = np.where(
        battles.loc[champion, "model_a"] == "model-00", "model_a", "model_b"
    )
    auto = ratings.leaderboard(battles, rounds=20, ci="auto")
    assert auto.attrs["ci"] == "bootstrap" and "never lose" in auto.attrs["ci_reason"]
    with pytest.raises(ArenatreeError, match="use --ci bootstrap"):
        ratings.leaderboard(battles, ci="sandwich")
    rk = ratings.leaderboard(arena(4, n_models=5, n=2000), rounds=20, method="rao-kupper", ci="auto")
    assert rk.attrs["ci"] == "bootstrap" and "Rao" in rk.attrs["ci_reason"]
    assert ratings.leaderboard(arena(4, n_models=5, n=2000), ci="auto").attrs["ci"] == "sandwich"


def test_sandwich_and_bootstrap_agree_on_a_big_arena():
    """Two honest intervals of the same fit: on 8,000 battles the bootstrap and the sandwich
    half-widths agree to within the bootstrap's Monte-Carlo noise (~10% at 200 rounds)."""
    battles = arena(5)
    sw = ratings.leaderboard(battles, ci="sandwich").set_index("model")
    bs = ratings.leaderboard(battles, rounds=200, ci="bootstrap").set_index("model").loc[sw.index]
    np.testing.assert_allclose(bs.rating, sw.rating, atol=1e-6)
    ratio = (bs.upper - bs.lower) / (sw.upper - sw.lower)
    assert ratio.between(0.8, 1.2).all(), ratio


@pytest.mark.slow
def test_cli_defaults_to_sandwich_and_says_so(tmp_path):
    db = tmp_path / "arenatree.duckdb"
    load(db, "demo", [pairwise_batch(300)])
    out = run_cli("leaderboard", "--dataset", "demo", "--json", db=db)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["params"]["ci"] == "auto" and got["params"]["ci_used"] == "sandwich"
    from pipelines import store
    from pipelines.battles import load_battles

    with store.reader(db) as con:
        votes = load_battles(con, "demo")
    want = ratings.leaderboard(votes, ci="sandwich").set_index("model")
    table = pd.DataFrame(got["models"]).set_index("model").loc[want.index]
    np.testing.assert_allclose(
        table[["rating", "lower", "upper"]], want[["rating", "lower", "upper"]], atol=1e-9
    )
    text = run_cli("leaderboard", "--dataset", "demo", "--reweight", db=db)
    assert text.returncode == 0 and "sandwich (CLT) intervals" in text.stdout and "reweighted" in text.stdout
    boot = run_cli("leaderboard", "--dataset", "demo", "--ci", "bootstrap", "--bootstrap", "20", db=db)
    assert boot.returncode == 0 and "20 bootstrap rounds" in boot.stdout
