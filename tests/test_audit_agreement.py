"""Judge agreement audit: hand computations, Krippendorff's alpha against the ``krippendorff``
package, kappa against scikit-learn, a simulation with known flip rates, and the real LLMFAO /
PandaLM numbers recomputed independently with pandas."""

from __future__ import annotations

from pathlib import Path

import duckdb
import krippendorff
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import cohen_kappa_score

from pipelines.audit.agreement import (
    judge_agreement,
    judge_labels,
    kappa_from_confusion,
    krippendorff_alpha,
)
from pipelines.audit.frame import AuditVotes, load_audit_votes
from pipelines.audit.validity import simulated_votes
from pipelines.tree.read import resolve_tree

F, S, T = 0, 1, 2  # labels relative to the item's first model


def _votes(labels: dict[str, list[int]], kinds: dict[str, str], rng=None, swap=None) -> pd.DataFrame:
    """One vote per (judge, item) with a label (NaN = no vote) on prompt p<i>, models 'm1' (first)
    and 'm2'. A vote is shown swapped (model_a = 'm2') where ``swap`` / ``rng`` says so; label
    T alternates 'tie' and 'tie_bothbad'."""
    rows = []
    for judge, labs in labels.items():
        for i, lab in enumerate(labs):
            if lab is None or lab != lab:
                continue
            swapped = bool(rng.random() < 0.5) if rng is not None else bool(swap and swap(judge, i))
            if lab == T:
                winner = "tie" if i % 2 else "tie_bothbad"
            elif (lab == F) != swapped:
                winner = "model_a"
            else:
                winner = "model_b"
            a, b = ("m2", "m1") if swapped else ("m1", "m2")
            rows.append(
                {
                    "battle_id": f"{judge}:{i}",
                    "prompt_id": f"p{i}",
                    "model_a": a,
                    "model_b": b,
                    "winner": winner,
                    "judge": judge,
                    "judge_kind": kinds[judge],
                }
            )
    return pd.DataFrame(rows)


def test_hand_computed_agreement_and_kappa() -> None:
    h = [F, F, F, S, S, T, F, S, T, F]
    m = [F, F, S, S, T, T, F, S, F, F]
    frame = _votes({"h": h, "m": m}, {"h": "human", "m": "llm"}, swap=lambda j, i: j == "m" and i % 3 == 0)
    f = judge_agreement(AuditVotes.from_frame(frame), min_items=10, rounds=50)
    assert f.applicable
    # 7 of 10 agree; marginals F 5/5, S 3/3, T 2/2 -> p_e = 0.38, kappa = 0.32 / 0.62 = 16/31
    row = f.tables["groups"].set_index("comparison").loc["m vs human majority"]
    assert row["items"] == 10 and row["agree"] == 7
    assert row["kappa"] == pytest.approx(16 / 31)
    ci = stats.binomtest(7, 10).proportion_ci(confidence_level=0.95, method="wilson")
    assert (row["lower"], row["upper"]) == pytest.approx((ci.low, ci.high))
    pair = f.tables["pairs"].iloc[0]
    assert (pair["judge_1"], pair["judge_2"], pair["items"], pair["agree"]) == ("h", "m", 10, 7)
    assert pair["kappa"] == pytest.approx(16 / 31)
    assert f.headline["estimate"] == pytest.approx(0.7) and f.headline["n"] == 10
    # evidence: the three disagreeing items, each with m's vote then the human's
    assert set(row["battle_ids"]) == {"m:2", "h:2", "m:4", "h:4", "m:8", "h:8"}
    assert row["battle_ids"][0].startswith("m:")
    # one fewer item than min_items -> not applicable
    assert not judge_agreement(AuditVotes.from_frame(frame), min_items=11).applicable


def test_repeated_votes_and_orientation() -> None:
    rows = [  # one judge, one prompt, votes in both orders
        ("x", "p0", "m1", "m2", "model_a"),  # first wins
        ("x", "p0", "m2", "m1", "model_b"),  # first wins (swapped)
        ("x", "p1", "m1", "m2", "model_a"),  # first wins
        ("x", "p1", "m2", "m1", "model_a"),  # second wins -> 1:1, a tie
        ("x", "p2", "m2", "m1", "tie_bothbad"),
    ]
    frame = pd.DataFrame(rows, columns=["judge", "prompt_id", "model_a", "model_b", "winner"])
    jl = judge_labels(AuditVotes.from_frame(frame))
    assert jl.n_items == 3 and list(jl.label) == [F, T, T] and list(jl.votes) == [2, 2, 1]


def test_kappa_from_confusion_matches_sklearn() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        x, y = rng.integers(0, 3, 60), rng.integers(0, 3, 60)
        y = np.where(rng.random(60) < 0.5, x, y)
        w = rng.poisson(1.0, 60).astype(float)
        conf = np.zeros((3, 3))
        np.add.at(conf, (x, y), w)
        ref = cohen_kappa_score(x, y, labels=[0, 1, 2], sample_weight=w)
        assert kappa_from_confusion(conf) == pytest.approx(ref)


def test_alpha_matches_krippendorff_package() -> None:
    rng = np.random.default_rng(7)
    judges, items = 6, 120
    truth = rng.integers(0, 3, items)
    data = np.where(rng.random((judges, items)) < 0.6, truth, rng.integers(0, 3, (judges, items))).astype(
        float
    )
    data[rng.random((judges, items)) < 0.35] = np.nan  # missing values; some items get < 2 labels
    ref = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    counts = np.stack([(data == c).sum(axis=0) for c in range(3)], axis=1)
    assert krippendorff_alpha(counts) == pytest.approx(ref, abs=1e-12)
    # through the audit: votes shown in random order, every judge human
    labels = {f"j{k}": list(data[k]) for k in range(judges)}
    frame = _votes(labels, dict.fromkeys(labels, "human"), rng=rng)
    f = judge_agreement(AuditVotes.from_frame(frame), min_items=5, rounds=100)
    alpha = f.tables["alpha"].set_index("group")
    assert alpha.loc["all judges", "alpha"] == pytest.approx(ref, abs=1e-12)
    assert alpha.loc["human judges", "alpha"] == pytest.approx(ref, abs=1e-12)
    assert alpha.loc["all judges", "items"] == int(((~np.isnan(data)).sum(axis=0) >= 2).sum())
    assert alpha.loc["all judges", "lower"] < ref < alpha.loc["all judges", "upper"]
    # pair kappas (batched formula) equal scikit-learn on the raw shared labels
    for _, p in f.tables["pairs"].iterrows():
        a, b = data[int(p["judge_1"][1:])], data[int(p["judge_2"][1:])]
        both = ~np.isnan(a) & ~np.isnan(b)
        assert p["items"] == both.sum() and p["agree"] == (a[both] == b[both]).sum()
        assert p["kappa"] == pytest.approx(cohen_kappa_score(a[both], b[both], labels=[0, 1, 2]))


FLIP_H, FLIP_LLM, FLIP_LLM_NODE2 = 0.1, 0.2, 0.5


@pytest.fixture(scope="module")
def flips() -> AuditVotes:
    """2,000 items with a true label; humans h0..h2 copy it with flip probability 0.1 (a flip
    picks one of the other two labels), h3 clicks at random; the LLM judge flips with 0.2 on
    node 1's prompts and 0.5 on node 2's. Orientation random per vote."""
    rng = np.random.default_rng(11)
    n = 2000
    truth = rng.integers(0, 3, n)
    node = np.where(np.arange(n) < n // 2, 1, 2)

    def copy(flip):
        flipped = rng.random(n) < flip
        return np.where(flipped, (truth + rng.integers(1, 3, n)) % 3, truth)

    labels = {f"h{k}": list(copy(FLIP_H)) for k in range(3)}
    labels["h3"] = list(rng.integers(0, 3, n))
    labels["llm"] = list(copy(np.where(node == 1, FLIP_LLM, FLIP_LLM_NODE2)))
    kinds = {j: "llm" if j == "llm" else "human" for j in labels}
    frame = _votes(labels, kinds, rng=rng)
    nodes = pd.DataFrame(
        {
            "node_id": [0, 1, 2],
            "parent_id": [None, 0, 0],
            "depth": [0, 1, 1],
            "size": [n, n // 2, n // 2],
            "description": ["all", "easy", "hard"],
        }
    )
    members = pd.DataFrame({"prompt_id": [f"p{i}" for i in range(n)], "node_id": node})
    return AuditVotes.from_frame(frame, tree_id="t", nodes=nodes, members=members)


def test_simulated_flip_rates(flips: AuditVotes) -> None:
    f = judge_agreement(flips, rounds=200)
    pairs = f.tables["pairs"].set_index(["judge_1", "judge_2"])

    def agree(f1: float, f2: float) -> float:  # both copy the truth, or both flip to the same label
        return (1 - f1) * (1 - f2) + f1 * f2 / 2

    expect_hh = agree(FLIP_H, FLIP_H)
    for a, b in (("h0", "h1"), ("h0", "h2"), ("h1", "h2")):
        row = pairs.loc[(a, b)]
        assert row["lower"] < expect_hh < row["upper"]
        assert row["kappa_lower"] < (expect_hh - 1 / 3) / (2 / 3) < row["kappa_upper"]
    for h in ("h0", "h1", "h2"):  # the random clicker agrees 1/3 of the time with anyone
        assert pairs.loc[(h, "h3"), "lower"] < 1 / 3 < pairs.loc[(h, "h3"), "upper"]
    llm_mean = (agree(FLIP_H, FLIP_LLM) + agree(FLIP_H, FLIP_LLM_NODE2)) / 2
    row = pairs.loc[("h0", "llm")]
    assert abs(row["agreement"] - llm_mean) < 3 * np.sqrt(llm_mean * (1 - llm_mean) / 2000)
    # the random clicker is the one flagged among the humans
    voters = f.tables["voters"].set_index("judge")
    assert voters.loc["h3", "flagged"] and not voters.loc[["h0", "h1", "h2"], "flagged"].any()
    assert voters.loc["h3", "crowd_agreement"] < 0.45 < voters.loc["h0", "crowd_agreement"]
    # nodes: the LLM disagrees with the human majority far more on node 2 (flip 0.5 vs 0.2)
    nodes = f.tables["nodes"]
    assert list(nodes["node_id"]) == [2, 0, 1]
    by = nodes.set_index("node_id")
    assert by.loc[2, "flagged"] and by.loc[1, "flagged"] and not by.loc[0, "flagged"]
    assert by.loc[2, "disagreement"] > 0.45 and by.loc[1, "disagreement"] < 0.35
    assert by.loc[0, "items"] == by.loc[1, "items"] + by.loc[2, "items"]
    maj = f.tables["groups"].set_index("comparison").loc["llm vs human majority"]
    assert maj["items"] == by.loc[0, "items"] and maj["agree"] == by.loc[0, "items"] - by.loc[0, "disagree"]
    # the same seed gives the same intervals
    again = judge_agreement(flips, rounds=200)
    pd.testing.assert_frame_equal(again.tables["pairs"], f.tables["pairs"])


@pytest.mark.slow
def test_single_judge_per_vote_is_not_applicable(tmp_path_factory) -> None:
    av, _ = simulated_votes(
        tmp_path_factory.mktemp("agreement_sim"), votes=20_000, models=8, voters=300, seed=1
    )
    f = judge_agreement(av)
    assert not f.applicable and "No two judges" in f.summary


def _reference(v: AuditVotes) -> pd.DataFrame:
    """Independent pandas version: each LLM judge's label vs the human plurality label per item
    (items with a tied plurality dropped); returns judge, items, agree, kappa."""
    d = v.votes[["prompt_id", "model_a", "model_b", "winner", "judge", "judge_kind"]].copy()
    first = np.where(d["model_a"] < d["model_b"], d["model_a"], d["model_b"])
    second = np.where(d["model_a"] < d["model_b"], d["model_b"], d["model_a"])
    d["item"] = d["prompt_id"].astype(str) + "|" + first + "|" + second
    won = d["winner"].map({"model_a": "A", "model_b": "B"})
    winner_model = np.where(won == "A", d["model_a"], np.where(won == "B", d["model_b"], None))
    d["label"] = np.where(winner_model == None, "tie", np.where(winner_model == first, "first", "second"))  # noqa: E711
    h = d[d["judge_kind"] == "human"].groupby(["item", "label"]).size().unstack(fill_value=0)
    top = h.max(axis=1)
    maj = h.idxmax(axis=1)[(h.eq(top, axis=0)).sum(axis=1) == 1]
    rows = []
    for judge, g in d[d["judge_kind"] == "llm"].groupby("judge"):
        g = g[g["item"].isin(maj.index)]
        y = maj.loc[g["item"]].to_numpy()
        rows.append(
            {
                "judge": judge,
                "items": len(g),
                "agree": int((g["label"].to_numpy() == y).sum()),
                "kappa": cohen_kappa_score(g["label"], y),
            }
        )
    return pd.DataFrame(rows).set_index("judge")


@pytest.fixture(scope="module")
def real(bundled_db: Path) -> dict:
    out = {}
    with duckdb.connect(str(bundled_db), read_only=True) as con:
        for ds in ("llmfao", "pandalm"):
            v = load_audit_votes(con, ds, tree_id=resolve_tree(con, ds))
            out[ds] = (v, judge_agreement(v))
    return out


@pytest.mark.parametrize("dataset", ["llmfao", "pandalm"])
def test_real_llm_vs_human_majority(real: dict, dataset: str) -> None:
    v, f = real[dataset]
    assert f.applicable
    ref = _reference(v)
    groups = f.tables["groups"].set_index("comparison")
    for judge, r in ref.iterrows():
        row = groups.loc[f"{judge} vs human majority"]
        assert (row["items"], row["agree"]) == (r["items"], r["agree"])
        assert row["kappa"] == pytest.approx(r["kappa"])
        assert row["kappa_lower"] < row["kappa"] < row["kappa_upper"]
    pooled = groups.loc["LLM judges (pooled) vs human majority"]
    assert pooled["items"] == ref["items"].sum()
    assert f.headline["estimate"] == pytest.approx(ref["agree"].sum() / ref["items"].sum())
    assert f.headline["lower"] < f.headline["estimate"] < f.headline["upper"]


def test_real_item_counts(real: dict) -> None:
    v, f = real["llmfao"]
    assert f.params["items"] == 2139 and f.params["items_without_human_majority"] == 308
    groups = f.tables["groups"].set_index("comparison")
    assert groups.loc["gpt-4 vs human majority", "items"] == 2139 - 308
    alpha = f.tables["alpha"].set_index("group")
    humans_per_item = (
        v.votes[v.votes["judge_kind"] == "human"]
        .assign(pair=lambda d: d[["model_a", "model_b"]].apply(sorted, axis=1).str.join("|"))
        .groupby(["prompt_id", "pair"])
        .size()
    )
    assert alpha.loc["human judges", "items"] == int((humans_per_item >= 2).sum()) == 2124
    assert alpha.loc["all judges", ["judges", "items", "values"]].tolist() == [126, 2139, 13209]
    assert len(f.tables["voters"]) == 124
    # LLMFAO crowd workers agree with each other more than with the LLM judges
    assert (
        groups.loc["human vs human (pooled over pairs)", "lower"]
        > groups.loc["human vs LLM (pooled over pairs)", "upper"]
    )
    nodes = f.tables["nodes"]
    roots = nodes[nodes["depth"] == 0].set_index("judge")["items"]
    assert (roots == 2139 - 308).all()

    v, f = real["pandalm"]
    assert f.params["items"] == 999
    pairs = f.tables["pairs"]
    humans = pairs[(pairs["kind_1"] == "human") & (pairs["kind_2"] == "human")]
    assert len(humans) == 3 and (humans["items"] == 999).all()
    assert len(pairs) == 10  # every pair of the 5 judges shares >= 974 items
    groups = f.tables["groups"].set_index("comparison")
    assert groups.loc["gpt-3.5-turbo vs human majority", "items"] == 974
    assert groups.loc["pandalm-7b vs human majority", "items"] == 999
    # PandaLM's three annotators agree far more with each other than with either LLM judge
    alpha = f.tables["alpha"].set_index("group")
    assert alpha.loc["human judges", "lower"] > alpha.loc["all judges", "upper"]
    assert alpha.loc["human judges", ["judges", "items", "values"]].tolist() == [3, 999, 2997]
