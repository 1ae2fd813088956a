"""Node scores against brute force: every node's counts recomputed from the raw votes of its
subtree (path prefix), intervals against scipy, node leaderboards against ratings.leaderboard
on the node's own votes, and keyed, all-or-nothing storage."""

from __future__ import annotations

import json
import shutil
import time

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from helpers import load, topic_prompts
from scipy import sparse
from scipy.stats import binomtest
from test_battles import random_votes

from pipelines import ratings, scores, store
from pipelines.battles import NO_FILTERS, Filters
from pipelines.errors import ArenatreeError
from pipelines.ingest.base import Batch
from pipelines.scores import (
    MIN_FIT_BATTLES,
    MIN_N,
    SCORE_COLUMNS,
    ancestor_matrix,
    clopper_pearson_interval,
    compute_leaderboard,
    compute_node_scores,
    find_run,
    fitted_models,
    node_cells,
    score_nodes,
    stored_node_scores,
    wilson_interval,
)
from pipelines.tree.build import build_tree
from pipelines.tree.read import resolve_tree

ROUNDS = 20  # bootstrap rounds in these tests
FILTERED = Filters(judge_kind="human", exclude_ties=True)


def accuracy_batch(n_items: int, seed: int = 0, fractional: bool = False) -> Batch:
    """Per-instance results over topic prompts: 4 models whose skill differs by topic; a few items
    have no prompt text (they count at the root only)."""
    rng = np.random.default_rng(seed)
    texts = topic_prompts(n_items)
    skill = rng.uniform(0.2, 0.9, (4, 6))
    rows = []
    for j, model in enumerate(["m-a", "m-b", "m-c", "m-d"]):
        for i in range(n_items):
            p = skill[j, i % 6]
            score = round(float(rng.beta(4 * p, 4 * (1 - p))), 3) if fractional else float(rng.random() < p)
            rows.append(
                {
                    "line": len(rows) + 1,
                    "instance_id": f"item-{i}",
                    "prompt_text": None if i % 40 == 39 else texts[i],
                    "model": model,
                    "score": score,
                }
            )
    df = pd.DataFrame(rows)
    return Batch(
        kind="instances", format="test", path=pd.io.common.Path("acc.csv"), rows_read=len(df), results=df
    )


@pytest.fixture(scope="module")
def base_db(tmp_path_factory):
    """'votes' (pairwise, a tree built on its first 400 votes (where one model never loses on one
    topic), then 40 more votes with prompts the
    tree has never seen and 6 without prompt text) and 'acc' (0/1 results with a tree) and 'frac'
    (fractional results, no tree). Tests copy it before they write."""
    db = tmp_path_factory.mktemp("scores") / "base.duckdb"
    votes = random_votes(400, seed=3)
    df = votes.battles
    evil = df.index % 6 == 5  # topic_prompts cycles the topics; 'echo' never loses on the 'evil' ones
    df.loc[evil & (df["model_a"] == "echo"), "winner"] = "model_a"
    df.loc[evil & (df["model_b"] == "echo"), "winner"] = "model_b"
    load(db, "votes", [votes])
    load(db, "acc", [accuracy_batch(160, seed=1)])
    load(db, "frac", [accuracy_batch(60, seed=2, fractional=True)])
    build_tree("votes", db=db, min_size=8)
    build_tree("acc", db=db, min_size=8)
    later = random_votes(40, seed=5, start=400, repeat_every=10**6, path="later.jsonl")
    none = random_votes(6, seed=6, start=440, path="noprompt.jsonl")
    none.battles["prompt_text"] = None
    load(db, "votes", [later, none])
    return db


@pytest.fixture()
def db(base_db, tmp_path):
    path = tmp_path / "arenatree.duckdb"
    shutil.copyfile(base_db, path)
    return path


@pytest.fixture(scope="module")
def con(base_db):
    with store.reader(base_db) as c:
        yield c


@pytest.fixture(scope="module")
def tree(con):
    return resolve_tree(con, "votes")


@pytest.fixture(scope="module")
def raw(con) -> pd.DataFrame:
    return con.execute("SELECT * FROM battles WHERE dataset = 'votes'").df()


def subtree_prompts(con, tree_id: str, node_id: int) -> set[str]:
    """Prompts under a node by the dotted path prefix (independent of parent links)."""
    rows = store.run(
        con,
        """
        SELECT m.prompt_id FROM node_members m
        JOIN nodes n ON n.tree_id = m.tree_id AND n.node_id = m.node_id
        WHERE m.tree_id = ? AND (n.path = (SELECT path FROM nodes WHERE tree_id = ? AND node_id = ?)
              OR starts_with(n.path, (SELECT path FROM nodes WHERE tree_id = ? AND node_id = ?) || '.'))
        """,
        [tree_id, tree_id, node_id, tree_id, node_id],
    )
    return {r[0] for r in rows}


def node_raw(con, tree_id: str, node_id: int, raw: pd.DataFrame) -> pd.DataFrame:
    """The raw votes of a node: its subtree's prompts; the root takes every vote."""
    if node_id == 0:
        return raw
    return raw[raw["prompt_id"].isin(subtree_prompts(con, tree_id, node_id))]


def by_hand(raw: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    """The filters used here, applied in pandas."""
    keep = pd.Series(True, index=raw.index)
    if filters.judge_kind:
        keep &= raw["judge_kind"] == filters.judge_kind
    if filters.exclude_ties:
        keep &= raw["winner"].isin(["model_a", "model_b"])
    return raw[keep]


@pytest.fixture(scope="module")
def node_ids(con, tree) -> list[int]:
    return [
        r[0] for r in store.run(con, "SELECT node_id FROM nodes WHERE tree_id = ? ORDER BY node_id", [tree])
    ]


@pytest.fixture(scope="module")
def table(con, tree) -> pd.DataFrame:
    df, _ = score_nodes(con, "votes", tree, rounds=ROUNDS, seed=7)  # sandwich node intervals
    return df


@pytest.fixture(scope="module")
def boot_table(con, tree) -> pd.DataFrame:
    df, _ = score_nodes(con, "votes", tree, rounds=ROUNDS, seed=7, ci="bootstrap")
    return df


# --------------------------------------------------------------------------- counts


@pytest.mark.slow
def test_tree_fixture_has_depth_and_votes_outside_it(con, tree, raw, node_ids):
    depth = store.one(
        con, "SELECT max(depth), count(*) FILTER (WHERE n_children = 0) FROM nodes WHERE tree_id = ?", [tree]
    )
    assert depth[0] >= 2 and depth[1] >= 8 and len(node_ids) >= 12
    in_tree = subtree_prompts(con, tree, 0)
    assert (~raw["prompt_id"].isin(in_tree)).sum() == 46  # 40 unseen prompts + 6 without text


@pytest.mark.parametrize("filters", [NO_FILTERS, FILTERED], ids=["all", "human-no-ties"])
def test_node_cells_equal_brute_force_per_node(con, tree, raw, node_ids, filters):
    cells = node_cells(con, "votes", tree, filters)
    votes = by_hand(raw, filters)
    assert cells.models == sorted(set(votes["model_a"]) | set(votes["model_b"]))
    assert cells.outside == (~votes["prompt_id"].isin(subtree_prompts(con, tree, 0))).sum() > 0
    for node_id in node_ids:
        mine = node_raw(con, tree, node_id, votes)
        want_models, want = ratings.aggregate(mine)
        got_models, got = cells.cells(node_id)
        assert got_models == want_models, node_id
        for field in ratings.Cells._fields:
            assert np.array_equal(getattr(got, field), getattr(want, field)), (node_id, field)
        # the global view holds the same cells, indexed into the global model list
        glob_models, glob = cells.cells(node_id, local=False)
        assert glob_models == cells.models
        assert [glob_models[i] for i in glob.a] == [want_models[i] for i in want.a]
        assert np.array_equal(glob.counts, want.counts)


def test_ancestor_matrix_by_hand():
    #      0
    #    1   2
    #   3 4   5
    parent = np.array([-1, 0, 0, 1, 1, 2])
    dense = ancestor_matrix(parent).toarray()
    want = np.zeros((6, 6))
    for j, chain in enumerate([[0], [0, 1], [0, 2], [0, 1, 3], [0, 1, 4], [0, 2, 5]]):
        want[chain, j] = 1
    assert np.array_equal(dense, want)
    with pytest.raises(ArenatreeError, match="cycle"):
        ancestor_matrix(np.array([-1, 2, 1]))


# --------------------------------------------------------------------------- win rates


@pytest.mark.slow
def test_win_rates_equal_brute_force_with_wilson_intervals(con, tree, raw, node_ids, table):
    assert list(table.columns) == SCORE_COLUMNS
    assert table[["node_id", "model"]].equals(table[["node_id", "model"]].sort_values(["node_id", "model"]))
    checked = 0
    for node_id in node_ids:
        mine = node_raw(con, tree, node_id, raw)
        got = table[table["node_id"] == node_id].set_index("model")
        models = sorted(set(mine["model_a"]) | set(mine["model_b"]))
        assert list(got.index) == models
        for m in models:
            side_a, side_b = mine[mine["model_a"] == m], mine[mine["model_b"] == m]
            n = len(side_a) + len(side_b)
            ties = side_a["winner"].str.startswith("tie").sum() + side_b["winner"].str.startswith("tie").sum()
            wins = (side_a["winner"] == "model_a").sum() + (side_b["winner"] == "model_b").sum() + ties / 2
            row = got.loc[m]
            assert (row["n"], row["wins"], row["ties"]) == (n, wins, ties)
            assert row["score"] == pytest.approx(wins / n, abs=1e-15)
            if n < MIN_N:
                assert np.isnan(row["lower"]) and np.isnan(row["upper"])
                continue
            if wins == int(wins):  # scipy's Wilson needs an integer count
                ci = binomtest(int(wins), int(n)).proportion_ci(0.95, method="wilson")
                assert (row["lower"], row["upper"]) == pytest.approx((ci.low, ci.high), abs=1e-12)
                checked += 1
            # and always: the Wilson bounds solve (p_hat - p)^2 = z^2 p (1 - p) / n
            z2 = 1.959963984540054**2
            roots = np.sort(np.roots([1 + z2 / n, -(2 * wins / n + z2 / n), (wins / n) ** 2]).real)
            assert (row["lower"], row["upper"]) == pytest.approx(tuple(roots), abs=1e-9)
    assert checked > 20


def test_wilson_is_exactly_scipy_without_ties_and_cp_is_scipy_exact():
    k = np.array([0, 1, 7, 19, 20, 3])
    n = np.array([20, 20, 20, 20, 20, 5])
    lo, hi = wilson_interval(k, n, 0.9)
    cp_lo, cp_hi = clopper_pearson_interval(k, n, 0.9)
    for i in range(len(k)):
        w = binomtest(int(k[i]), int(n[i])).proportion_ci(0.9, method="wilson")
        e = binomtest(int(k[i]), int(n[i])).proportion_ci(0.9, method="exact")
        assert (lo[i], hi[i]) == pytest.approx((w.low, w.high), abs=1e-12)
        assert (cp_lo[i], cp_hi[i]) == pytest.approx((e.low, e.high), abs=1e-12)
    assert np.isnan(wilson_interval(np.array([0.0]), np.array([0.0]))[0]).all()
    assert np.isnan(clopper_pearson_interval(np.array([0.0]), np.array([0.0]))[1]).all()


# --------------------------------------------------------------------------- node leaderboards


def strongly_connected_fit_set(mine: pd.DataFrame) -> list[str]:
    """The documented fit rule, recomputed with networkx on the raw votes: the largest set of
    models strongly connected by wins (a tie links both ways), by size then battles; empty
    below 2 models or MIN_FIT_BATTLES battles."""
    g = nx.DiGraph()
    g.add_nodes_from(set(mine["model_a"]) | set(mine["model_b"]))
    for a, b, w in mine[["model_a", "model_b", "winner"]].itertuples(index=False):
        if w != "model_b":
            g.add_edge(a, b)
        if w != "model_a":
            g.add_edge(b, a)
    best, best_key = [], None
    for comp in nx.strongly_connected_components(g):
        inside = mine["model_a"].isin(comp) & mine["model_b"].isin(comp)
        key = (len(comp), inside.sum())
        if best_key is None or key > best_key:
            best, best_key = sorted(comp), key
    return best if best_key[0] >= 2 and best_key[1] >= MIN_FIT_BATTLES else []


@pytest.mark.parametrize("ci", ["sandwich", "bootstrap"])
def test_node_leaderboards_equal_ratings_leaderboard_on_the_nodes_votes(
    con, tree, raw, node_ids, table, boot_table, ci
):
    table = table if ci == "sandwich" else boot_table
    fitted = partial = 0
    for node_id in node_ids:
        mine = node_raw(con, tree, node_id, raw)
        got = table[table["node_id"] == node_id].set_index("model")
        fit_set = strongly_connected_fit_set(mine)
        assert sorted(got.index[got["rating"].notna()]) == fit_set, node_id
        if not fit_set:
            assert got[["rating_lower", "rating_upper", "rank_ub"]].isna().all().all()
            continue
        fitted += 1
        partial += len(fit_set) < len(got)
        sub = mine[mine["model_a"].isin(fit_set) & mine["model_b"].isin(fit_set)]
        want = ratings.leaderboard(sub, rounds=ROUNDS, seed=7, level=0.95, ci=ci).set_index("model")
        have = got.loc[want.index]
        for mine_col, ref_col in [("rating", "rating"), ("rating_lower", "lower"), ("rating_upper", "upper")]:
            assert np.allclose(have[mine_col], want[ref_col], rtol=0, atol=1e-9), (node_id, mine_col)
        assert (have["rank_ub"] == want["rank_ub"]).all()
    assert fitted >= 5 and partial >= 1  # some nodes fit everyone, some only part, some nothing
    assert table.groupby("node_id")["rating"].count().eq(0).any()


def test_fit_rule_by_hand():
    # x beats everyone and never loses: no finite MLE, left out; y, z, w beat each other
    cells = ratings.Cells(
        a=np.array([0, 0, 0, 1, 2, 3]),
        b=np.array([1, 2, 3, 2, 3, 1]),
        wins_a=np.array([5.0, 5, 5, 4, 4, 4]),
        wins_b=np.array([0.0, 0, 0, 3, 3, 3]),
        ties=np.zeros(6),
    )
    assert fitted_models(4, cells).tolist() == [1, 2, 3]
    fit = scores.fit_node(["x", "y", "z", "w"], cells, rounds=5)
    assert fit.loc["x"].isna().all() and fit.loc[["y", "z", "w"], "rating"].notna().all()
    # a single tie links both ways; too few battles means no fit at all
    tie = ratings.Cells(
        np.array([0]), np.array([1]), np.array([0.0]), np.array([0.0]), np.array([MIN_FIT_BATTLES])
    )
    assert fitted_models(2, tie).tolist() == [0, 1]
    few = ratings.Cells(np.array([0]), np.array([1]), np.array([3.0]), np.array([2.0]), np.array([0.0]))
    assert fitted_models(2, few).tolist() == []


def test_a_node_without_votes_has_no_rows_and_no_fit():
    # root (0) holds 30 votes between x and y; its child 1 holds them all; child 2 holds none
    counts = sparse.csr_matrix(np.array([[12.0, 10, 8], [12, 10, 8], [0, 0, 0]]))
    cells = scores.NodeCells(["x", "y"], np.array([[0, 1]]), np.array([0, 1, 2]), counts)
    table, info = scores.pairwise_scores(cells, rounds=5)
    assert table["node_id"].tolist() == [0, 0, 1, 1] and info["fitted_nodes"] == 2 and info["rows"] == 30
    assert table["wins"].tolist() == [16.0, 14.0, 16.0, 14.0] and table["n"].tolist() == [30] * 4
    empty_models, empty = cells.cells(2)
    assert empty_models == [] and len(empty.a) == 0 and scores.fit_node([], empty).empty


def test_same_input_and_seed_give_identical_numbers(con, tree, table, boot_table):
    again, _ = score_nodes(con, "votes", tree, rounds=ROUNDS, seed=7)
    pd.testing.assert_frame_equal(table, again, check_exact=True)
    other, _ = score_nodes(con, "votes", tree, rounds=ROUNDS, seed=8, ci="bootstrap")
    assert other["rating"].equals(boot_table["rating"])
    assert not other["rating_lower"].equals(boot_table["rating_lower"])  # the bootstrap's seed matters
    # the sandwich has no randomness: another seed, the same intervals
    sandwich_other, _ = score_nodes(con, "votes", tree, rounds=ROUNDS, seed=8)
    pd.testing.assert_frame_equal(table, sandwich_other, check_exact=True)


# --------------------------------------------------------------------------- storage


def test_compute_stores_a_keyed_run_and_a_rerun_is_a_no_op(db):
    stages = []
    run_id = compute_node_scores(
        db, "votes", rounds=ROUNDS, seed=7, progress=lambda s, f: stages.append((s, f))
    )
    assert {s for s, _ in stages} == {"aggregate", "fit", "store"} and ("fit", 1.0) in stages
    with store.reader(db) as con:
        stored = stored_node_scores(con, run_id)
        tree = resolve_tree(con, "votes")
        fresh, _ = score_nodes(con, "votes", tree, rounds=ROUNDS, seed=7)
        run = con.execute("SELECT * FROM score_runs WHERE run_id = ?", [run_id]).df().iloc[0]
        assert find_run(con, "votes", tree, {"rounds": ROUNDS, "seed": 7}) == run_id
        assert find_run(con, "votes", tree, {"rounds": ROUNDS, "seed": 8}) is None
    pd.testing.assert_frame_equal(stored, fresh, check_exact=True)
    params = json.loads(run["params"])
    assert params["filters"] == NO_FILTERS.key() and params["rounds"] == ROUNDS and params["seed"] == 7
    assert run["tree_id"] == tree and run["kind"] == "pairwise" and run["n_rows"] == 446
    assert json.loads(run["info"])["fitted_nodes"] > 0 and run["n_nodes"] == stored["node_id"].nunique()
    t = time.perf_counter()
    assert compute_node_scores(db, "votes", rounds=ROUNDS, seed=7) == run_id
    assert time.perf_counter() - t < 5
    with store.reader(db) as con:
        assert store.one(con, "SELECT count(*) FROM score_runs")[0] == 1
        assert store.one(con, "SELECT count(*) FROM node_scores")[0] == len(stored)


@pytest.mark.slow
def test_other_parameters_or_new_data_give_a_new_run(db):
    first = compute_node_scores(db, "votes", rounds=ROUNDS, seed=7)
    others = {
        compute_node_scores(db, "votes", rounds=ROUNDS, seed=8),
        compute_node_scores(db, "votes", rounds=ROUNDS + 1, seed=7),
        compute_node_scores(db, "votes", rounds=ROUNDS, seed=7, level=0.9),
        compute_node_scores(db, "votes", rounds=ROUNDS, seed=7, filters=FILTERED),
        compute_node_scores(db, "votes", rounds=ROUNDS, seed=7, filters=Filters(dedup_prompts=True)),
        compute_node_scores(db, "votes", rounds=ROUNDS, seed=7, ci="bootstrap"),
    }
    assert first not in others and len(others) == 6
    with store.reader(db) as con:
        tree = resolve_tree(con, "votes")
        assert (
            find_run(con, "votes", tree, {"rounds": ROUNDS, "seed": 7, "filters": FILTERED.key()}) in others
        )
        assert (
            stored_node_scores(con, first)["n"].sum()
            > stored_node_scores(
                con, find_run(con, "votes", tree, {"rounds": ROUNDS, "seed": 7, "filters": FILTERED})
            )["n"].sum()
        )
    load(db, "votes", [random_votes(10, seed=9, start=500, path="newer.jsonl")])
    with store.reader(db) as con:  # the stored run no longer answers: the data changed
        assert find_run(con, "votes", tree, {"rounds": ROUNDS, "seed": 7}) is None
    newer = compute_node_scores(db, "votes", rounds=ROUNDS, seed=7)
    assert newer != first
    with store.reader(db) as con:
        assert stored_node_scores(con, newer).query("node_id == 0")["n"].sum() == 2 * 456


def test_a_failed_compute_writes_nothing(db, monkeypatch):
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("solver exploded")
        return real(*args, **kwargs)

    real = ratings.fit_pairwise  # the node fits' solver (sandwich intervals: no bootstrap)
    monkeypatch.setattr(ratings, "fit_pairwise", failing)
    with pytest.raises(RuntimeError, match="solver exploded"):
        compute_node_scores(db, "votes", rounds=ROUNDS)
    with store.reader(db) as con:
        assert store.one(con, "SELECT count(*) FROM score_runs")[0] == 0
        assert store.one(con, "SELECT count(*) FROM node_scores")[0] == 0


def test_a_failure_while_storing_rolls_back_the_run_row(db):
    with store.writer(db) as con:
        tree = resolve_tree(con, "votes")
        table, _ = score_nodes(con, "votes", tree, rounds=2)
        row = {
            "run_id": "r1", "dataset": "votes", "tree_id": tree, "kind": "pairwise", "params": "{}",
            "import_ids": "[]", "info": "{}", "n_nodes": 1, "n_models": 1, "n_rows": 1,
            "created_at": pd.Timestamp("2024-01-01"), "seconds": 0.0, "tool_version": "test",
        }  # fmt: skip
        broken = pd.concat([table, table.head(1)], ignore_index=True)  # duplicate (node, model)
        with pytest.raises(Exception, match="(?i)constraint|duplicate"):
            scores.store_run(con, row, broken)
        assert store.one(con, "SELECT count(*) FROM score_runs")[0] == 0
        assert store.one(con, "SELECT count(*) FROM node_scores")[0] == 0
        scores.store_run(con, row, table)  # the same connection is usable afterwards
        assert store.one(con, "SELECT count(*) FROM node_scores")[0] == len(table)


def test_compute_inside_an_open_writer_session(db):
    with store.writer(db) as con:
        run_id = compute_node_scores(con, "votes", rounds=2)
        assert stored_node_scores(con, run_id)["rating"].notna().any()


def test_whole_dataset_leaderboard_equals_ratings_leaderboard(db, raw):
    run_id = compute_leaderboard(db, "votes", filters=FILTERED, rounds=ROUNDS, seed=3)
    with store.reader(db) as con:
        got = stored_node_scores(con, run_id).set_index("model")
        assert store.one(con, "SELECT tree_id FROM score_runs WHERE run_id = ?", [run_id])[0] is None
        assert find_run(con, "votes", None, {"filters": FILTERED, "rounds": ROUNDS, "seed": 3}) == run_id
    votes = by_hand(raw, FILTERED)
    want = ratings.leaderboard(votes, rounds=ROUNDS, seed=3, ci="sandwich").set_index("model")
    assert (got["node_id"] == 0).all() and set(got.index) == set(want.index)
    assert np.allclose(got.loc[want.index, "rating"], want["rating"], atol=1e-9)
    assert np.allclose(got.loc[want.index, "rating_upper"], want["upper"], atol=1e-9)
    assert (got.loc[want.index, "n"] == want["battles"]).all()


# --------------------------------------------------------------------------- per-instance data


def test_instance_scores_equal_brute_force_with_clopper_pearson(db):
    run_id = compute_node_scores(db, "acc", rounds=ROUNDS, seed=1)
    with store.reader(db) as con:
        got = stored_node_scores(con, run_id)
        tree = resolve_tree(con, "acc")
        res = con.execute("SELECT * FROM results WHERE dataset = 'acc'").df()
        nodes = [r[0] for r in store.run(con, "SELECT node_id FROM nodes WHERE tree_id = ?", [tree])]
        info = json.loads(store.one(con, "SELECT info FROM score_runs WHERE run_id = ?", [run_id])[0])
        members = {n: subtree_prompts(con, tree, n) for n in nodes}
        # rounds and seed do not shape per-instance scores: the same run
    assert compute_node_scores(db, "acc", rounds=3, seed=9) == run_id
    assert info["interval"] == "clopper-pearson" and info["outside_tree"] == 4 * 4
    assert got[["rating", "rating_lower", "rating_upper", "rank_ub", "ties"]].isna().all().all()
    for node_id in nodes:
        mine = res if node_id == 0 else res[res["prompt_id"].isin(members[node_id])]
        want = mine.groupby("model")["score"].agg(["size", "sum"])
        have = got[got["node_id"] == node_id].set_index("model")
        assert list(have.index) == list(want.index)
        assert (have["n"] == want["size"]).all() and (have["wins"] == want["sum"]).all()
        for m, row in have.iterrows():
            if row["n"] < MIN_N:
                assert np.isnan(row["lower"]) and np.isnan(row["upper"])
            else:
                ci = binomtest(int(row["wins"]), int(row["n"])).proportion_ci(0.95, method="exact")
                assert (row["lower"], row["upper"]) == pytest.approx((ci.low, ci.high), abs=1e-12), (
                    node_id,
                    m,
                )


def test_no_interval_under_min_n_items():
    res = scores.NodeResults(
        models=["a", "b"],
        node_ids=np.array([0, 1]),
        n=np.array([[9.0, 4.0], [MIN_N, 0.0]]),
        total=np.array([[3.0, 4.0], [MIN_N, 0.0]]),
        binary=True,
    )
    table, info = scores.instance_scores(res)
    assert table[["node_id", "model", "n"]].values.tolist() == [[0, "a", 9], [0, "b", 4], [1, "a", MIN_N]]
    assert table["lower"].isna().tolist() == [False, True, False] and table["upper"].isna().tolist() == [
        False,
        True,
        False,
    ]
    ci = binomtest(MIN_N, MIN_N).proportion_ci(0.95, method="exact")
    assert table["lower"].iloc[2] == pytest.approx(ci.low) and table["upper"].iloc[2] == 1.0


def test_fractional_scores_use_wilson_on_the_mean(db):
    run_id = compute_leaderboard(db, "frac", level=0.9)
    with store.reader(db) as con:
        got = stored_node_scores(con, run_id).set_index("model")
        res = con.execute("SELECT model, score FROM results WHERE dataset = 'frac'").df()
        info = json.loads(store.one(con, "SELECT info FROM score_runs WHERE run_id = ?", [run_id])[0])
    assert info["interval"].startswith("wilson")
    want = res.groupby("model")["score"].agg(["size", "mean", "sum"])
    assert np.allclose(got.loc[want.index, "score"], want["mean"], atol=1e-12)
    lo, hi = wilson_interval(want["sum"].to_numpy(), want["size"].to_numpy(), 0.9)
    assert np.allclose(got.loc[want.index, "lower"], lo) and np.allclose(got.loc[want.index, "upper"], hi)
    assert ((got["lower"] < got["score"]) & (got["score"] < got["upper"])).all()


@pytest.mark.parametrize(
    ("dataset", "kwargs", "message"),
    [
        ("nope", {}, "no dataset 'nope'"),
        ("acc", {"filters": Filters(judge_kind="human")}, "vote filters do not apply"),
        ("votes", {"level": 1.5}, "level=1.5"),
        ("votes", {"rounds": -1}, "rounds=-1"),
        ("votes", {"tree_id": "acc:000000000000"}, "no tree 'acc:000000000000' for dataset 'votes'"),
        ("frac", {}, "dataset 'frac' has no tree yet"),
        ("votes", {"filters": Filters(judge="nobody")}, "no votes with judge 'nobody'"),
    ],
)
def test_bad_requests_say_why_and_write_nothing(db, dataset, kwargs, message):
    with pytest.raises(ArenatreeError, match=message):
        compute_node_scores(db, dataset, **kwargs)
    with store.reader(db) as con:
        assert store.one(con, "SELECT count(*) FROM score_runs")[0] == 0
