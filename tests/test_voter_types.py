"""Anomalous voter types (pipelines/audit/voter_types.py): always one side, always one model,
length-loving and random voters, each found and labelled.

Checked on a simulated arena with the four anomalies planted at the strengths of
``STRONG_ANOMALIES`` (precision and recall per type, flag rate of unbiased voters), on an honest
arena (p-values no smaller than uniform), on hand-built votes with one voter of each type, and the
tail approximations against exact distributions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit

from pipelines.audit.frame import AuditVotes
from pipelines.audit.result import Finding
from pipelines.audit.run import AUDITS, audit_votes
from pipelines.audit.validity import simulated_votes, voter_truth
from pipelines.audit.voter_types import TYPES, lattice_tail, llr_tail, voter_types
from pipelines.simulate.population import STRONG_ANOMALIES

MIX = {"unbiased": 0.80, "position": 0.05, "length": 0.05, "fan": 0.05, "random": 0.05}
LABELS = {"position": "side", "fan": "one_model", "length": "length", "random": "random"}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """100k simulated votes, 12 models, 1000 voters: 80% unbiased, 5% of each strong anomaly."""
    v, truth = simulated_votes(
        tmp_path_factory.mktemp("voter-types"), votes=100_000, models=12, voters=1000, seed=1,
        voter_mix=MIX, voter_params=STRONG_ANOMALIES,
    )  # fmt: skip
    finding = voter_types(v)
    planted = voter_truth(truth)[["judge", "type", "votes"]].rename(columns={"type": "planted"})
    table = planted.merge(finding.tables["voters"].drop(columns="votes"), on="judge", how="left")
    return v, truth, finding, table


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    """60k simulated votes from 600 unbiased voters."""
    v, _ = simulated_votes(
        tmp_path_factory.mktemp("voter-types-null"), votes=60_000, models=12, voters=600, seed=5,
        voter_mix={"unbiased": 1},
    )  # fmt: skip
    return voter_types(v)


@pytest.mark.slow
def test_simulator_plants_strong_anomalies(planted):
    v, truth, _, _ = planted
    d = v.votes
    decisive = d["winner"].isin(["model_a", "model_b"])
    left = (d["winner"] == "model_a")[decisive].groupby(d["voter_type"][decisive]).mean()
    assert left["position"] > 0.97 and abs(left["unbiased"] - 0.5) < 0.02
    fans = {x["judge"]: x["params"] for x in truth["voters"] if x["type"] == "fan"}
    assert all(p["loyalty"] == 1.0 and p["presence"] == 1.0 for p in fans.values())
    f = d[d["judge"].isin(fans)]
    fav = f["judge"].map({j: p["model"] for j, p in fans.items()})
    shown = (f["model_a"] == fav) | (f["model_b"] == fav)
    assert shown.all()  # every battle of a fan shows its model ...
    won = np.where(f["model_a"] == fav, "model_a", "model_b")
    assert (f["winner"] == won).all()  # ... and it always votes for it
    diff = d["tokens_a"] - d["tokens_b"]
    longer_won = ((diff > 0) == (d["winner"] == "model_a"))[decisive & (diff != 0)]
    by_type = longer_won.groupby(d["voter_type"][decisive & (diff != 0)]).mean()
    assert by_type["length"] > 0.9 > by_type["unbiased"]
    assert truth["params"]["voter_params"]["position_logit"] == list(STRONG_ANOMALIES["position_logit"])


def scores(table: pd.DataFrame, planted_type: str, min_votes: int = 20) -> dict[str, float]:
    t = table[table["votes"] >= min_votes]
    mine = t["planted"] == planted_type
    given = t["flagged"].astype(bool) & (t["type"] == LABELS[planted_type])
    return {
        "detect_recall": (mine & t["flagged"]).sum() / mine.sum(),
        "detect_precision": (given & (t["planted"] != "unbiased")).sum() / given.sum(),
        "label_recall": (mine & given).sum() / mine.sum(),
        "label_precision": (mine & given).sum() / given.sum(),
    }


@pytest.mark.slow
@pytest.mark.parametrize("planted_type", list(LABELS))
def test_precision_and_recall_per_planted_type(planted, planted_type):
    """>= 0.9 for voters with >= 20 votes (measured on this arena: 0.96-1.00, see README)."""
    _, _, _, table = planted
    assert (table[table["votes"] >= 20]["planted"] == planted_type).sum() >= 30
    for name, value in scores(table, planted_type).items():
        assert value >= 0.9, (planted_type, name, value)


def test_unbiased_voters_flagged_below_nominal_level(planted):
    _, _, finding, table = planted
    honest = table[(table["planted"] == "unbiased") & (table["votes"] >= 20)]
    assert honest["flagged"].mean() <= finding.params["alpha"]
    flagged = table[table["flagged"].astype(bool)]
    assert (flagged["planted"] == "unbiased").mean() <= finding.params["alpha"] + 0.02  # the FDR
    assert not table.loc[table["votes"] < 20, "flagged"].any()


@pytest.mark.slow
def test_honest_arena_pvalues_not_below_uniform(honest):
    t = honest.tables["voters"]
    eligible = t[t["votes"] >= 20]
    assert len(eligible) > 400
    assert int(t["flagged"].sum()) <= 1
    for kind in TYPES:
        p = eligible[f"p_{kind}"].dropna()
        assert len(p) > 400
        for level in (0.05, 0.01):
            assert (p < level).mean() <= level * 1.5 + 0.005, (kind, level)
    # the exact-ish tests are not trivially conservative either
    assert (eligible["p_side"] < 0.05).mean() > 0.01
    assert (eligible["p_random"] < 0.05).mean() > 0.01


def test_evidence_and_table(planted):
    _, _, finding, table = planted
    voters = finding.tables["voters"]
    flagged = voters[voters["flagged"]]
    assert (flagged["type"] == flagged["strongest"]).all() and set(flagged["type"]) == set(TYPES)
    assert (voters.loc[~voters["flagged"], "type"] == "").all()
    side = flagged[flagged["type"] == "side"].iloc[0]
    side_text = f"left on {100 * side['left_rate']:.0f}% of {side['decisive']} decisive votes"
    assert side["evidence"].startswith(side_text)
    fan = flagged[flagged["type"] == "one_model"].iloc[0]
    assert fan["evidence"].startswith(f"voted for {fan['favourite']} in {fan['favourite_wins']:.0f} of")
    # a flagged voter's q-value clears alpha and p-values are the Bonferroni over the four types
    assert (flagged["q_value"] <= finding.params["alpha"]).all()
    pmin = voters[[f"p_{k}" for k in TYPES]].min(axis=1)
    assert np.allclose(voters["p_value"], np.minimum(1, 4 * pmin), rtol=1e-9, equal_nan=True)
    # battle ids behind a side voter are its left wins
    ids = set(side["battle_ids"])
    v = planted[0].votes
    rows = v[v["battle_id"].isin(ids)]
    assert len(rows) == len(ids) > 0 and (rows["judge"] == side["judge"]).all()
    assert (rows["winner"] == "model_a").all()
    types = finding.tables["types"]
    assert types["voters_flagged"].sum() == finding.flagged


def _hand_built(seed: int = 0) -> pd.DataFrame:
    """A crowd of 30 voters voting by Bradley–Terry with ties, plus one voter of each type (60
    votes each): 'left' (always model_a), 'fan' (m3, the weakest, in every battle and always its
    winner), 'long' (the longer answer always wins), 'coin' (either model at random, ties 10%),
    and 'sharp' (never ties, always the stronger model)."""
    rng = np.random.default_rng(seed)
    strength = np.array([1.5, 0.5, -0.5, -1.5])

    def battles(n: int, judge: str, fixed: int | None = None) -> pd.DataFrame:
        a = rng.integers(0, 4, n)
        b = (a + rng.integers(1, 4, n)) % 4
        if fixed is not None:
            other = rng.choice([m for m in range(4) if m != fixed], n)
            left = rng.uniform(size=n) < 0.5
            a, b = np.where(left, fixed, other), np.where(left, other, fixed)
        tokens_a = np.rint(rng.lognormal(np.log(200), 0.5, n)).astype(int)
        tokens_b = np.rint(rng.lognormal(np.log(200), 0.5, n)).astype(int)
        p = expit(strength[a] - strength[b])
        u = rng.uniform(size=n)
        tie = rng.uniform(size=n) < 0.3
        winner = np.where(tie, np.where(rng.uniform(size=n) < 0.5, "tie", "tie_bothbad"),
                          np.where(u < p, "model_a", "model_b"))  # fmt: skip
        return pd.DataFrame(
            {"model_a": [f"m{i}" for i in a], "model_b": [f"m{i}" for i in b], "winner": winner,
             "judge": judge, "tokens_a": tokens_a, "tokens_b": tokens_b}
        )  # fmt: skip

    parts = [battles(40, f"crowd{j:02d}") for j in range(30)]
    left = battles(60, "left")
    left["winner"] = "model_a"
    fan = battles(60, "fan", fixed=3)
    fan["winner"] = np.where(fan["model_a"] == "m3", "model_a", "model_b")
    long = battles(60, "long")
    long = long[long["tokens_a"] != long["tokens_b"]].copy()
    long["winner"] = np.where(long["tokens_a"] > long["tokens_b"], "model_a", "model_b")
    sharp = battles(60, "sharp")  # never ties, always the stronger model: decisive, not random
    left_stronger = (
        strength[sharp["model_a"].str[1].astype(int)] > strength[sharp["model_b"].str[1].astype(int)]
    )
    sharp["winner"] = np.where(left_stronger, "model_a", "model_b")
    coin = battles(60, "coin")
    coin["winner"] = rng.choice(
        ["model_a", "model_b", "tie", "tie_bothbad"], len(coin), p=[0.45, 0.45, 0.05, 0.05]
    )
    frame = pd.concat([*parts, left, fan, long, coin, sharp], ignore_index=True)
    for k in ("headers", "lists", "bold"):
        frame[f"{k}_a"] = 0
        frame[f"{k}_b"] = 0
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hand_built_voter_of_each_type(seed):
    finding = voter_types(AuditVotes.from_frame(_hand_built(seed)))
    t = finding.tables["voters"].set_index("judge")
    expected = {"left": "side", "fan": "one_model", "long": "length", "coin": "random"}
    for judge, kind in expected.items():
        assert t.loc[judge, "flagged"] and t.loc[judge, "type"] == kind, (judge, t.loc[judge].to_dict())
    assert t.loc["left", "left_rate"] == 1.0 and t.loc["left", "evidence"].startswith("left on 100% of 60")
    assert t.loc["fan", "favourite"] == "m3" and t.loc["fan", "favourite_wins"] == 60
    assert t.loc["long", "longer_wins"] == 1.0
    # the random test sees the sharp voter's missing ties, but its decisive votes follow the crowd
    assert t.loc["sharp", "p_random"] == 1.0 and t.loc["sharp", "type"] != "random"
    crowd = t[t.index.str.startswith("crowd")]
    assert crowd["flagged"].sum() <= 1


def test_hand_built_without_style_columns():
    frame = _hand_built(0).drop(
        columns=[c for c in _hand_built(0) if c[:-2] in ("tokens", "headers", "lists", "bold")]
    )
    t = voter_types(AuditVotes.from_frame(frame)).tables["voters"].set_index("judge")
    assert t["p_length"].isna().all()
    assert t.loc["left", "type"] == "side" and t.loc["fan", "type"] == "one_model"


def test_lattice_tail_matches_binomial():
    """Equal probabilities make the count binomial: the continuity-corrected saddlepoint tail is
    within 10% of scipy's exact tail from the centre to 1e-16 (the clean sweep)."""
    n, p = 40, 0.3
    ks = np.arange(14, 38)
    group = np.repeat(np.arange(len(ks)), n)
    values = np.column_stack([np.ones(len(group)), np.zeros(len(group))])
    probs = np.column_stack([np.full(len(group), p), np.full(len(group), 1 - p)])
    got = np.exp(lattice_tail(values, probs, group, ks.astype(float), len(ks)))
    exact = stats.binom.sf(ks - 1, n, p)
    assert np.all(np.abs(got / exact - 1) < 0.1), np.c_[ks, got, exact]


def test_llr_tail_matches_exact_convolution():
    """A sum of 12 four-valued variables with differing probabilities: the saddlepoint tail
    against the exact distribution (all 4^12 outcomes, by convolution)."""
    rng = np.random.default_rng(3)
    m = 12
    q = rng.dirichlet(np.ones(4) * 2, m)
    values = rng.integers(-3, 6, (m, 4)).astype(float)
    dist = {0.0: 1.0}
    for i in range(m):
        nxt: dict[float, float] = {}
        for s, w in dist.items():
            for k in range(4):
                nxt[s + values[i, k]] = nxt.get(s + values[i, k], 0.0) + w * q[i, k]
        dist = nxt
    support = np.array(sorted(dist))
    mass = np.array([dist[s] for s in support])
    mean = float((q * values).sum())
    for t in support[(support > mean + 2) & (np.cumsum(mass[::-1])[::-1] > 1e-6)]:
        exact = mass[support >= t].sum()
        got = np.exp(lattice_tail(values, q, np.zeros(m, dtype=int), np.array([t]), 1))[0]
        assert 0.9 < got / exact < 1.1, (t, got, exact)
    # non-integer values (the random test's log-likelihood ratios), 8 variables: the exact law by
    # convolution has 4^8 atoms
    m = 8
    q = q[:m]
    scaled = values[:m] * 0.37 + rng.normal(0, 0.01, (m, 4))
    dist = {0.0: 1.0}
    for i in range(m):
        nxt = {}
        for s, w in dist.items():
            for k in range(4):
                nxt[s + scaled[i, k]] = nxt.get(s + scaled[i, k], 0.0) + w * q[i, k]
        dist = nxt
    support = np.array(sorted(dist))
    mass = np.array([dist[s] for s in support])
    tail = np.cumsum(mass[::-1])[::-1]  # P(T >= support[i])
    for level in (1e-2, 1e-3, 1e-4):
        t = support[np.flatnonzero(tail >= level)[-1]]
        exact = tail[support == t][0]
        got = np.exp(llr_tail(scaled, q, np.zeros(m, dtype=int), np.array([t]), 1))[0]
        assert 0.5 < got / exact < 2.0, (t, got, exact)


def test_registered_audit_round_trips(planted):
    v = planted[0]
    assert "voter_types" in AUDITS
    (finding,) = audit_votes(v, only=["voter_types"])
    back = Finding.from_dict(finding.as_dict())
    assert back.flagged == finding.flagged > 0
    assert list(back.tables["voters"].columns) == list(finding.tables["voters"].columns)


def test_voter_params_are_checked():
    from pipelines.errors import ArenatreeError
    from pipelines.simulate.population import VOTER_PARAMS, check_voter_params

    assert check_voter_params(None) == VOTER_PARAMS
    assert check_voter_params({"position_logit": 7})["position_logit"] == (7.0, 7.0)
    for bad in ({"left_logit": 1.0}, {"length_coef": (3.0, 2.0)}, {"fan_presence": (0.5, 1.5)}):
        with pytest.raises(ArenatreeError):
            check_voter_params(bad)


def test_not_applicable_with_one_judge():
    frame = pd.DataFrame({"model_a": ["a", "b", "c"], "model_b": ["b", "c", "a"], "winner": ["model_a"] * 3,
                          "judge": "j"})  # fmt: skip
    finding = voter_types(AuditVotes.from_frame(frame))
    assert not finding.applicable
