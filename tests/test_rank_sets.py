"""Joint rank confidence sets: on arenas with known strengths they cover every model's true rank
at once in about ``level`` of the arenas, while still telling most models apart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.slices import joint_rank_sets, spread_leaderboard

STRENGTHS = np.array([0.0, 40.0, 80.0, 120.0, 160.0, 200.0])  # Elo-like points; true ranks 6..1


def arena(rng: np.random.Generator, votes: int = 3000) -> pd.DataFrame:
    k = len(STRENGTHS)
    a = rng.integers(0, k, votes)
    b = (a + rng.integers(1, k, votes)) % k
    p_a = 1 / (1 + 10 ** ((STRENGTHS[b] - STRENGTHS[a]) / 400))
    win = rng.random(votes) < p_a
    names = np.array([f"m{i}" for i in range(k)])
    return pd.DataFrame(
        {"model_a": names[a], "model_b": names[b], "winner": np.where(win, "model_a", "model_b")}
    )


def test_joint_sets_cover_all_true_ranks_at_about_the_level() -> None:
    rng = np.random.default_rng(7)
    truth = {f"m{i}": len(STRENGTHS) - i for i in range(len(STRENGTHS))}
    joint, widths, reps = 0, [], 60
    for r in range(reps):
        t = spread_leaderboard(arena(rng), rounds=200, seed=r)
        true = t["model"].map(truth)
        joint += bool(((t["set_low"] <= true) & (true <= t["set_high"])).all())
        widths.append((t["set_high"] - t["set_low"] + 1).mean())
    assert joint / reps >= 0.9, (
        joint / reps
    )  # nominal 0.95 for all six at once (max-t: conservative, 1.0 here)
    assert np.mean(widths) < 2.5, np.mean(widths)  # not the trivial set {1..6}: ~1.9 ranks


def test_rank_sets_by_hand() -> None:
    # three models, the bootstrap spread tiny: every order is sure, sets are single ranks
    point = np.array([300.0, 0.0, 100.0])
    boot = point + np.random.default_rng(0).normal(0, 1.0, (200, 3))
    sets = joint_rank_sets(point, boot)
    assert sets["set_low"].tolist() == [1, 3, 2] and sets["set_high"].tolist() == [1, 3, 2]
    # two models that cannot be told apart share the set {1, 2}; the third is surely last
    point = np.array([100.0, 100.0, -500.0])
    boot = point + np.random.default_rng(1).normal(0, 30.0, (200, 3))
    sets = joint_rank_sets(point, boot)
    assert sets["set_low"].tolist() == [1, 1, 3] and sets["set_high"].tolist() == [2, 2, 3]


@pytest.mark.slow
def test_cli_report_and_page_show_the_joint_sets(db, tmp_path, monkeypatch) -> None:
    from helpers import load, open_app_page, run_cli
    from shapes import SHAPES

    load(db, "votes", [SHAPES["no-ties"]()])
    out = run_cli("leaderboard", "--dataset", "votes", db=db)
    assert out.returncode == 0 and "rank set" in out.stdout.splitlines()[1], out.stderr
    doc = __import__("json").loads(run_cli("leaderboard", "--dataset", "votes", "--json", db=db).stdout)
    assert all(m["set_low"] <= m["rank_low"] and m["rank_high"] <= m["set_high"] for m in doc["models"])
    report = tmp_path / "r.html"
    assert run_cli("report", "--dataset", "votes", "--out", str(report), db=db).returncode == 0
    assert "set_low" in report.read_text()
    at = open_app_page(db, monkeypatch, "views/leaderboard.py", dataset="votes")
    (table,) = [d.value for d in at.dataframe if "rating" in d.value.columns]
    assert {"set_low", "set_high", "rank_set"} <= set(table.columns)


@pytest.mark.slow
def test_cli_prints_and_returns_the_vote_drop(db) -> None:
    import json

    from helpers import load, run_cli
    from shapes import SHAPES

    from pipelines import store
    from pipelines.battles import load_battles
    from pipelines.vote_drop import drop_sentence, leaderboard_drops

    load(db, "votes", [SHAPES["no-ties"]()])
    with store.reader(db) as con:
        votes = load_battles(con, "votes")
    want = leaderboard_drops(votes, 2)
    out = run_cli("leaderboard", "--dataset", "votes", "--top-k", "2", db=db)
    assert out.returncode == 0, out.stderr
    for drop in want:
        assert f"vote drop: {drop_sentence(drop)}" in out.stdout
    doc = json.loads(run_cli("leaderboard", "--dataset", "votes", "--top-k", "2", "--json", db=db).stdout)
    assert [d["k"] for d in doc["vote_drop"]] == [1, 2]
    assert [d["removed"] for d in doc["vote_drop"]] == [d.removed for d in want]
    rk = json.loads(
        run_cli("leaderboard", "--dataset", "votes", "--method", "rao-kupper", "--json", db=db).stdout
    )
    assert rk["vote_drop"][0]["removed"] is None and "Rao–Kupper" in rk["vote_drop"][0]["sentence"]
