"""Rank sets over models x nodes: on simulated sibling nodes with known strengths they cover every
model's true rank in every node at once in about ``level`` of the arenas; they are never narrower
than each node's own sets, and the critical value grows with the number of nodes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines import slices
from pipelines.node_rank_sets import node_rank_sets

# Elo-like strengths per node (rows) of five models: a different order in every node
TRUTH = np.array(
    [
        [0.0, 50.0, 100.0, 150.0, 200.0],
        [200.0, 150.0, 100.0, 50.0, 0.0],
        [100.0, 0.0, 200.0, 50.0, 150.0],
        [60.0, 120.0, 0.0, 180.0, 240.0],
    ]
)
NAMES = [f"m{i}" for i in range(TRUTH.shape[1])]


def arena(rng: np.random.Generator, truth: np.ndarray, votes: int = 1200) -> tuple[pd.DataFrame, pd.Series]:
    """Votes of every node (prompt ids 'n{node}-{i}') and the prompt -> node map."""
    frames = []
    k = truth.shape[1]
    for node, strength in enumerate(truth):
        a = rng.integers(0, k, votes)
        b = (a + rng.integers(1, k, votes)) % k
        win = rng.random(votes) < 1 / (1 + 10 ** ((strength[b] - strength[a]) / 400))
        frames.append(
            pd.DataFrame(
                {
                    "model_a": np.array(NAMES)[a],
                    "model_b": np.array(NAMES)[b],
                    "winner": np.where(win, "model_a", "model_b"),
                    "prompt_id": [f"n{node}-{i}" for i in range(votes)],
                }
            )
        )
    votes_ = pd.concat(frames, ignore_index=True)
    return votes_, pd.Series(
        [int(p[1 : p.index("-")]) for p in votes_["prompt_id"]], index=votes_["prompt_id"]
    )


def true_rank(truth: np.ndarray) -> dict[tuple[int, str], int]:
    return {
        (node, NAMES[i]): int(1 + (row > row[i]).sum())
        for node, row in enumerate(truth)
        for i in range(len(row))
    }


@pytest.mark.slow
def test_joint_sets_cover_every_node_and_model_at_about_the_level() -> None:
    rng = np.random.default_rng(11)
    truth = true_rank(TRUTH)
    joint = 0
    reps, level = 40, 0.9
    for r in range(reps):
        votes, slice_of = arena(rng, TRUTH)
        cells = slices.slice_cells(votes, slice_of, range(len(TRUTH)))
        sets = node_rank_sets(cells, rounds=200, seed=r, level=level)
        assert sets.attrs["nodes"] == len(TRUTH) and len(sets) == TRUTH.size
        rank = pd.Series([truth[(n, m)] for n, m in zip(sets["node_id"], sets["model"], strict=True)])
        joint += bool(((sets["set_low"] <= rank) & (rank <= sets["set_high"])).all())
        # the joint sets contain each node's own sets, and the point rank lies in both
        assert (sets["set_low"] <= sets["node_set_low"]).all() and (
            sets["node_set_high"] <= sets["set_high"]
        ).all()
        assert ((sets["set_low"] <= sets["rank"]) & (sets["rank"] <= sets["set_high"])).all()
        assert sets.attrs["critical"] >= max(sets.attrs["node_critical"].values())
    assert joint / reps >= level - 0.05, joint / reps  # nominal 0.9 over 20 ranks at once
    assert "no Bonferroni" in sets.attrs["method"] and "all 4 nodes" in sets.attrs["method"]


def test_more_nodes_need_a_larger_critical_value_and_unfit_nodes_are_left_out() -> None:
    rng = np.random.default_rng(2)
    votes, slice_of = arena(rng, TRUTH)
    one = node_rank_sets(slices.slice_cells(votes, slice_of, [0]), rounds=200)
    four = node_rank_sets(slices.slice_cells(votes, slice_of, range(4)), rounds=200)
    assert one.attrs["critical"] < four.attrs["critical"]
    # a node's numbers do not depend on the order the nodes are listed in (the page sorts by votes)
    backwards = node_rank_sets(slices.slice_cells(votes, slice_of, [3, 2, 1, 0]), rounds=200)
    pd.testing.assert_frame_equal(backwards, four)
    # one node alone: the joint set is that node's own set (the same critical value)
    assert (one["set_low"] == one["node_set_low"]).all() and (one["set_high"] == one["node_set_high"]).all()
    # a node with a handful of votes gets no fit and no rows; an empty node neither
    few = pd.concat([votes, votes.head(5).assign(prompt_id=[f"x{i}" for i in range(5)])], ignore_index=True)
    where = pd.concat([slice_of, pd.Series(9, index=[f"x{i}" for i in range(5)])])
    sets = node_rank_sets(slices.slice_cells(few, where, [0, 1, 9]), rounds=50)
    assert set(sets["node_id"]) == {0, 1} and sets.attrs["nodes"] == 2
    none = node_rank_sets(slices.slice_cells(few, where, [9]), rounds=50)
    assert none.empty and "No node" in none.attrs["method"]


@pytest.mark.slow
def test_on_equal_models_the_joint_sets_hold_where_per_node_sets_read_together_do_not() -> None:
    # six nodes of four equally strong models: every true rank is 1, so a set covers only when it
    # is the whole range [1, 4]. Each node's own 90% set does that in ~90% of arenas, so all six at
    # once only in about 0.9**6 = 53% of arenas; the joint sets keep about 90%.
    rng = np.random.default_rng(5)
    joint = alone = 0
    reps, level = 80, 0.9
    for r in range(reps):
        votes, slice_of = arena(rng, np.zeros((6, 4)), votes=400)
        sets = node_rank_sets(slices.slice_cells(votes, slice_of, range(6)), rounds=200, seed=r, level=level)
        joint += bool(((sets["set_low"] == 1) & (sets["set_high"] == 4)).all())
        alone += bool(((sets["node_set_low"] == 1) & (sets["node_set_high"] == 4)).all())
    assert joint / reps >= level - 0.05, joint / reps
    assert alone / reps <= joint / reps - 0.15, (alone / reps, joint / reps)
