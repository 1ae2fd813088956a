"""Rank spread, P(#1) and slice weighting (pipelines/slices.py), checked by hand cases, by
simulations with known truth and against independent computations (duplicated votes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines import ratings, slices


def simulate(strength: dict[str, float], n: int, rng: np.random.Generator, prompt: str = "p") -> pd.DataFrame:
    """``n`` Bradley–Terry votes between random pairs of the models of ``strength`` (natural
    log-strengths), 10% ties, all on prompt ``prompt``."""
    names = list(strength)
    a = rng.integers(0, len(names), n)
    b = (a + rng.integers(1, len(names), n)) % len(names)
    s = np.array([strength[m] for m in names])
    p = 1 / (1 + np.exp(-(s[a] - s[b])))
    u = rng.random(n)
    winner = np.where(u < 0.1, "tie", np.where(u < 0.1 + 0.9 * p, "model_a", "model_b"))
    return pd.DataFrame(
        {
            "battle_id": [f"{prompt}-{i}" for i in range(n)],
            "prompt_id": prompt,
            "model_a": np.array(names)[a],
            "model_b": np.array(names)[b],
            "winner": winner,
        }
    )


# --- rank spread and P(#1) -------------------------------------------------------------------------


def test_rank_spread_hand_case():
    boot = np.array(
        [
            [3.0, 2.0, 1.0],
            [3.0, 1.0, 2.0],
            [1.0, 3.0, 2.0],
            [3.0, 3.0, 1.0],  # a tie for the top: half a round each
        ]
    )
    ranks = slices.round_ranks(boot)
    assert ranks.tolist() == [[1, 2, 3], [1, 3, 2], [3, 1, 2], [1, 1, 3]]
    out = slices.rank_spread(boot, level=0.5)  # 25%-75% of the ranks, taken outward
    assert out["p_top"].tolist() == pytest.approx([2.5 / 4, 1.5 / 4, 0.0])
    assert out["p_top"].sum() == pytest.approx(1.0)
    assert out["rank_low"].tolist() == [1, 1, 2]
    assert out["rank_high"].tolist() == [3, 3, 3]
    full = slices.rank_spread(boot, level=1.0)  # min and max rank
    assert full["rank_low"].tolist() == [1, 1, 2] and full["rank_high"].tolist() == [3, 3, 3]


def test_p_top_clear_leader_and_two_equal_models():
    rng = np.random.default_rng(1)
    # A clear leader: P(#1) ~ 1 and its rank interval is [1, 1].
    votes = simulate({"lead": 2.0, "b": 0.0, "c": -0.3, "d": -0.6}, 4000, rng)
    table = slices.spread_leaderboard(votes, rounds=200)
    lead = table.set_index("model").loc["lead"]
    assert lead["p_top"] > 0.99 and (lead["rank_low"], lead["rank_high"]) == (1, 1)
    # Two equal models with exactly mirrored records: each is #1 in about half the rounds.
    rows = []
    for x, y in (("x", "y"), ("y", "x")):
        rows += [(x, y, "model_a")] * 150 + [(x, y, "model_b")] * 150
        rows += [(x, "weak", "model_a")] * 200 + [(x, "weak", "model_b")] * 50
        rows += [("weak", y, "model_b")] * 200 + [("weak", y, "model_a")] * 50
    sym = pd.DataFrame(rows, columns=["model_a", "model_b", "winner"])
    p = slices.spread_leaderboard(sym, rounds=400).set_index("model")["p_top"]
    assert p["x"] == pytest.approx(0.5, abs=0.1) and p["y"] == pytest.approx(0.5, abs=0.1)
    assert p["weak"] == 0.0
    # Equal in truth, over many arenas: P(#1) averages one half (each arena's is a random draw).
    shares = [
        slices.spread_leaderboard(
            simulate({"x": 0.5, "y": 0.5, "z": -1.0}, 600, np.random.default_rng(s)), rounds=100
        ).set_index("model")["p_top"]["x"]
        for s in range(24)
    ]
    assert np.mean(shares) == pytest.approx(0.5, abs=0.15)


def test_spread_leaderboard_is_the_ratings_leaderboard_plus_spread():
    votes = simulate({"a": 0.5, "b": 0.0, "c": -0.5}, 1500, np.random.default_rng(2))
    for method in ("bt", "rao-kupper"):
        ours = slices.spread_leaderboard(votes, rounds=50, seed=3, method=method)
        ref = ratings.leaderboard(votes, rounds=50, seed=3, method=method)
        pd.testing.assert_frame_equal(
            ours.drop(columns=["rank_low", "rank_high", "p_top", "set_low", "set_high"]), ref
        )
        assert ours.attrs.get("theta") == ref.attrs.get("theta")
        boot = ratings.bootstrap(*ratings.aggregate(votes), rounds=50, seed=3, method=method)
        spread = slices.rank_spread(boot).assign(model=ratings.aggregate(votes)[0]).set_index("model")
        assert ours.set_index("model")["p_top"].to_dict() == spread["p_top"].to_dict()


# --- slice weighting ---------------------------------------------------------------------------------


def sliced_votes(seed: int = 0) -> pd.DataFrame:
    """Three slices (prompts s0, s1, s2) of 1500 / 900 / 300 votes over four models; 'niche' is
    strong only in slice s2."""
    rng = np.random.default_rng(seed)
    base = {"top": 1.0, "mid": 0.5, "niche": -0.5, "low": -1.0}
    parts = [
        simulate(base, 1500, rng, "s0"),
        simulate(base, 900, rng, "s1"),
        simulate(dict(base, niche=2.5), 300, rng, "s2"),
    ]
    return pd.concat(parts, ignore_index=True)


SLICE_OF = {"s0": 10, "s1": 11, "s2": 12}


def test_slice_cells_counts_and_outside_votes():
    votes = sliced_votes()
    extra = votes.head(7).assign(prompt_id="elsewhere")
    cells = slices.slice_cells(pd.concat([votes, extra]), SLICE_OF, [10, 11, 12])
    assert cells.votes.tolist() == [1500, 900, 300] and cells.outside == 7
    models, whole = ratings.aggregate(votes)
    assert cells.models == models
    np.testing.assert_array_equal(cells.counts.sum(axis=0), whole.counts)


def test_as_voted_weights_are_the_unweighted_fit():
    votes = sliced_votes()
    cells = slices.slice_cells(votes, SLICE_OF, [10, 11, 12])
    assert slices.vote_weights(cells.votes, cells.votes) == pytest.approx([1, 1, 1])
    board = slices.weighted_leaderboard(cells, cells.votes, rounds=20)
    ref = ratings.leaderboard(votes, rounds=20)
    pd.testing.assert_series_equal(
        board.table.set_index("model")["rating"], ref.set_index("model")["rating"], rtol=0, atol=1e-6
    )


def test_integer_weights_equal_duplicated_votes():
    """Weights chosen so each vote of slice k counts m_k times give the point ratings of the
    ordinary fit on the votes with slice k copied m_k times."""
    votes = sliced_votes(seed=4)
    cells = slices.slice_cells(votes, SLICE_OF, [10, 11, 12])
    m = np.array([1, 3, 2])
    weights = m * cells.votes  # w_k proportional to m_k * s_k -> v_k proportional to m_k
    v = slices.vote_weights(cells.votes, weights)
    assert v / v[0] == pytest.approx(m)
    board = slices.weighted_leaderboard(cells, weights, rounds=10)
    pd.testing.assert_frame_equal(slices.weighted_ratings(cells, weights), board.table[["model", "rating"]])
    copies = [
        votes[votes["prompt_id"] == p] for p, k in zip(("s0", "s1", "s2"), m, strict=True) for _ in range(k)
    ]
    duplicated = pd.concat(copies, ignore_index=True)
    expected = pd.Series(
        ratings.bradley_terry(*ratings.aggregate(duplicated)), index=ratings.aggregate(duplicated)[0]
    )
    got = board.table.set_index("model")["rating"]
    pd.testing.assert_series_equal(
        got.sort_index(), expected.sort_index(), check_names=False, atol=1e-6, rtol=0
    )


def test_weighting_up_a_slice_raises_its_specialist_and_widens_intervals():
    votes = sliced_votes(seed=5)
    cells = slices.slice_cells(votes, SLICE_OF, [10, 11, 12])
    as_voted = slices.weighted_leaderboard(cells, cells.votes, rounds=100).table
    niche_up = slices.weighted_leaderboard(cells, [10, 10, 80], rounds=100).table
    changed = slices.rank_changes(niche_up, as_voted).set_index("model")
    assert changed.loc["niche", "rank"] < changed.loc["niche", "rank_before"]
    assert changed.loc["niche", "rank_change"] > 0
    assert changed["rank_change"].sum() == 0
    # 300 votes now count as 80% of the data: the intervals widen (stratified bootstrap).
    width = lambda t: (t["upper"] - t["lower"]).set_axis(t["model"]).sort_index()  # noqa: E731
    assert (width(niche_up) > 1.3 * width(as_voted)).all()


def test_stratified_bootstrap_keeps_slice_totals():
    cells = slices.slice_cells(sliced_votes(), SLICE_OF, [10, 11, 12])
    v = np.array([0.5, 0.0, 2.0])
    draws = slices.stratified_counts(cells, v, 5, np.random.default_rng(0))
    assert draws.sum(axis=(1, 2)) == pytest.approx(np.full(5, 0.5 * 1500 + 2.0 * 300))
    # Each slice keeps its own total: redrawing only slice 12 (weight 1) gives its 300 votes per round.
    only = slices.stratified_counts(cells, np.array([0.0, 0.0, 1.0]), 5, np.random.default_rng(0))
    assert only.sum(axis=(1, 2)) == pytest.approx(np.full(5, 300.0))
    assert (only[:, cells.counts[2].sum(axis=1) == 0] == 0).all()  # never a pair slice 12 lacks
    with pytest.raises(ValueError):
        slices.vote_weights(cells.votes, np.zeros(3))


# --- presets, URL encoding, drill-down -------------------------------------------------------------------


def test_presets_and_weights_encoding():
    frame = pd.DataFrame(
        {
            "node_id": [3, 7, 9],
            "votes": [600, 300, 100],
            "keywords": [["story", "poem"], ["python", "function"], ["math"]],
            "description": ["creative writing", "write code", "arithmetic"],
        }
    )
    assert slices.preset_weights(frame, "as voted") == {3: 60.0, 7: 30.0, 9: 10.0}
    assert slices.preset_weights(frame, "equal") == {3: 33.3, 7: 33.3, 9: 33.3}
    coding = slices.preset_weights(frame, "coding-heavy")
    assert coding[7] == pytest.approx(100 * 900 / 1600, abs=0.05) and coding[3] == pytest.approx(
        37.5, abs=0.05
    )
    assert slices.encode_weights({1: 0.5, 4: 2.0}) == "1:0.5,4:2"
    assert slices.parse_weights("1:0.5,4:2") == {1: 0.5, 4: 2.0}
    for bad in ("", "1", "a:1", "1:x", "1:-2", "1:nan", "1:inf"):
        assert slices.parse_weights(bad) is None, bad


def test_model_record_and_pair_battles():
    votes = pd.DataFrame(
        {
            "battle_id": ["b1", "b2", "b3", "b4", "b5"],
            "model_a": ["x", "y", "x", "x", "z"],
            "model_b": ["y", "x", "y", "z", "y"],
            "winner": ["model_a", "model_a", "tie", "model_b", "model_a"],
        }
    )
    rec = slices.model_record(votes, "x").set_index("opponent")
    assert rec.loc["y", ["battles", "wins", "losses", "ties"]].tolist() == [3, 1, 1, 1]
    assert rec.loc["y", "win_rate"] == pytest.approx(0.5)
    assert rec.loc["y", "win_lower"] < 0.5 < rec.loc["y", "win_upper"]
    assert rec.loc["z", ["battles", "wins", "losses", "ties"]].tolist() == [1, 0, 1, 0]
    assert slices.pair_battle_ids(votes, "x", "y") == ["b1", "b2", "b3"]
