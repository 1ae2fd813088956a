"""Model vs model per node (pipelines/compare.py): the tests against independent references
(scipy's binomtest as McNemar's exact test, a direct scipy.optimize fit of the Bradley–Terry
likelihood; statsmodels is not a dependency here), simulations with planted per-node differences,
the CLI and formula-safe CSV."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import load, pairwise_batch
from scipy import optimize, sparse, stats
from test_leaderboard_page import ARENA, build_arena
from test_weaknesses_page import QUIZ, quiz_batch

from pipelines import compare, store
from pipelines.battles import load_battles, load_results
from pipelines.cli import main
from pipelines.report.tables import csv_bytes
from pipelines.scores import NodeCells
from pipelines.tree import read
from pipelines.tree.build import build_tree

FORMULA = "formula"  # a dataset whose prompts and answers look like spreadsheet formulas


def formula_batch():
    batch = pairwise_batch(40, models=("m-one", "m-two"), prompt='=HYPERLINK("http://evil.example",{i})')
    batch.battles["response_a"] = [f"@SUM(A{i})" for i in range(40)]
    batch.battles["response_b"] = [f"+cmd|' /C calc'!A{i}" for i in range(40)]
    return batch


@pytest.fixture(scope="module")
def compare_db(tmp_path_factory: pytest.TempPathFactory) -> dict:
    db = tmp_path_factory.mktemp("compare") / "arenatree.duckdb"
    tree_id = build_arena(db)
    load(db, QUIZ, [quiz_batch()])
    quiz_tree = build_tree(QUIZ, db=db, min_size=4)["tree_id"]
    load(db, FORMULA, [formula_batch()])
    return {"db": db, "tree_id": tree_id, "quiz_tree": quiz_tree}


def prompts_under(con, tree_id: str, node: int) -> set[str]:
    return set(read.node_items(con, tree_id, node, limit=None)["prompt_id"])


# --------------------------------------------------------------------------- exact tests


def test_sign_test_is_scipys_binomtest() -> None:
    rng = np.random.default_rng(0)
    n = rng.integers(1, 60, 200)
    k = rng.integers(0, n + 1)
    expected = [stats.binomtest(int(a), int(b), 0.5).pvalue for a, b in zip(k, n, strict=True)]
    np.testing.assert_allclose(compare.sign_test(k, n), expected, rtol=1e-10)
    assert np.isnan(compare.sign_test(np.array([0]), np.array([0])))[0]


def test_paired_interval_covers_and_brackets_the_difference() -> None:
    lower, upper = compare.paired_interval(np.array([10, 0, 3]), np.array([2, 0, 9]), np.array([40, 20, 30]))
    d = np.array([8 / 40, 0, -6 / 30])
    assert (lower < d).all() and (d < upper).all() and (lower >= -1).all() and (upper <= 1).all()


@pytest.mark.slow
def test_instances_match_mcnemar_exact_in_every_node(compare_db: dict) -> None:
    with store.reader(compare_db["db"]) as con:
        table = compare.compare_models(con, QUIZ, "solver-a", "solver-b", compare_db["quiz_tree"])
        results = load_results(con, QUIZ)
        by_node = {n: prompts_under(con, compare_db["quiz_tree"], n) for n in table["node_id"]}
    wide = results.pivot(index="prompt_id", columns="model", values="score")
    for row in table.itertuples():
        items = wide.loc[wide.index.isin(by_node[row.node_id])] if row.node_id else wide
        a, b = items["solver-a"], items["solver-b"]
        assert row.n == len(items)
        assert (row.a_better, row.b_better) == (
            int(((a == 1) & (b == 0)).sum()),
            int(((a == 0) & (b == 1)).sum()),
        )
        assert row.score_a == pytest.approx(a.mean()) and row.score_b == pytest.approx(b.mean())
        if len(items) < compare.MIN_ITEMS:
            assert np.isnan(row.p) and row.reason
            continue
        discordant = int((a != b).sum())  # McNemar's exact test: binomial on the discordant items
        expected = stats.binomtest(int((a > b).sum()), discordant).pvalue if discordant else 1.0
        assert row.p == pytest.approx(expected, rel=1e-9), row.node_id
        assert row.reason == "" and row.diff_lower <= row.diff <= row.diff_upper
    assert table.attrs["test"].startswith("mcnemar")
    tested = table["p"].notna()
    np.testing.assert_allclose(table.loc[tested, "q"], stats.false_discovery_control(table.loc[tested, "p"]))
    assert table.loc[~tested, "q"].isna().all()


def test_head_to_head_counts_and_sign_test_match_the_raw_votes(compare_db: dict) -> None:
    with store.reader(compare_db["db"]) as con:
        table = compare.compare_models(con, ARENA, "alpha", "gamma", compare_db["tree_id"])
        votes = load_battles(con, ARENA)
        by_node = {n: prompts_under(con, compare_db["tree_id"], n) for n in table["node_id"]}
    pair = votes[votes[["model_a", "model_b"]].isin(["alpha", "gamma"]).all(axis=1)]
    for row in table.itertuples():
        mine = pair[pair["prompt_id"].isin(by_node[row.node_id])] if row.node_id else pair
        a_won = ((mine["winner"] == "model_a") & (mine["model_a"] == "alpha")) | (
            (mine["winner"] == "model_b") & (mine["model_b"] == "alpha")
        )
        tie = mine["winner"].isin(["tie", "tie_bothbad"])
        b_won = ~a_won & ~tie
        assert (row.h2h, row.h2h_a_wins, row.h2h_b_wins, row.h2h_ties) == (
            len(mine),
            a_won.sum(),
            b_won.sum(),
            tie.sum(),
        )
        decisive = int(a_won.sum() + b_won.sum())
        if decisive:
            assert row.h2h_p == pytest.approx(stats.binomtest(int(a_won.sum()), decisive).pvalue)
    q = table["h2h_q"].dropna().to_numpy()
    np.testing.assert_allclose(q, stats.false_discovery_control(table["h2h_p"].dropna().to_numpy()))


def bt_reference(votes: pd.DataFrame, models: list[str], ref: str) -> tuple[np.ndarray, np.ndarray]:
    """Bradley–Terry (ties as half) fitted directly with scipy.optimize: log-strengths with ``ref``
    pinned at 0, and their standard errors from a finite-difference Hessian of the likelihood."""
    free = [m for m in models if m != ref]
    col = {m: i for i, m in enumerate(free)}
    x = np.zeros((len(votes), len(free)))
    for j, (a, b) in enumerate(zip(votes["model_a"], votes["model_b"], strict=True)):
        if a in col:
            x[j, col[a]] += 1
        if b in col:
            x[j, col[b]] -= 1
    y = votes["winner"].map({"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie_bothbad": 0.5}).to_numpy()

    def loss(beta: np.ndarray) -> float:
        eta = x @ beta
        return float(np.sum(np.logaddexp(0, eta) - y * eta))

    def grad(beta: np.ndarray) -> np.ndarray:
        return x.T @ (1 / (1 + np.exp(-(x @ beta))) - y)

    fit = optimize.minimize(loss, np.zeros(len(free)), jac=grad, method="BFGS", options={"gtol": 1e-10})
    h = 1e-5
    hess = np.array([(grad(fit.x + h * e) - grad(fit.x - h * e)) / (2 * h) for e in np.eye(len(free))])
    return fit.x, np.sqrt(np.diag(np.linalg.inv(hess)))


def test_rating_difference_matches_a_direct_likelihood_fit(compare_db: dict) -> None:
    """The node fit is Bradley–Terry with ties as half: a direct fit of that likelihood on the
    node's votes gives the same difference and (before the dispersion) the same standard error."""
    with store.reader(compare_db["db"]) as con:
        table = compare.compare_models(con, ARENA, "alpha", "beta", compare_db["tree_id"])
        votes = load_battles(con, ARENA)
        nodes = {n: prompts_under(con, compare_db["tree_id"], n) for n in (0, 1)}
    phi = table.attrs["dispersion"]
    assert 0.5 < phi < 1.0  # 8% ties: a tie scored 1/2 varies less than a win
    models = sorted(set(votes["model_a"]) | set(votes["model_b"]))
    for node in (0, 1):
        mine = votes if node == 0 else votes[votes["prompt_id"].isin(nodes[node])]
        beta, se_ref = bt_reference(mine, models, ref="beta")  # alpha's coefficient is alpha - beta
        row = table.set_index("node_id").loc[node]
        assert row["diff"] == pytest.approx(compare.POINTS * beta[0], rel=1e-4)
        se = (row["diff_upper"] - row["diff_lower"]) / (2 * stats.norm.isf(0.025))
        assert se / np.sqrt(phi) == pytest.approx(compare.POINTS * se_ref[0], rel=1e-3)
        assert row["p"] == pytest.approx(2 * stats.norm.sf(abs(row["diff"]) / se), rel=1e-9)


# --------------------------------------------------------------------------- simulations


def simulated_cells(rng, n_leaves: int, planted: set[int], shift: float, repeats: int) -> NodeCells:
    """A root with ``n_leaves`` leaves; 6 models (A = index 0, B = 1, strengths 0 otherwise spread);
    every pair meets ``repeats`` times per leaf, 10% ties; A is ``shift`` log-odds above B in the
    planted leaves, equal elsewhere."""
    base = np.array([0.0, 0.0, 0.6, -0.4, 0.2, -0.8])
    k = len(base)
    pairs = np.array([(i, j) for i in range(k) for j in range(k) if i < j])
    leaves = np.zeros((n_leaves, len(pairs) * 3))
    for leaf in range(n_leaves):
        s = base.copy()
        if leaf in planted:
            s[0] += shift / 2
            s[1] -= shift / 2
        p = 1 / (1 + np.exp(-(s[pairs[:, 0]] - s[pairs[:, 1]])))
        probs = np.column_stack([0.9 * p, 0.9 * (1 - p), np.full(len(p), 0.1)])
        draws = np.array([rng.multinomial(repeats, pr) for pr in probs])
        leaves[leaf] = draws.reshape(-1)
    counts = np.vstack([leaves.sum(axis=0), leaves])
    return NodeCells(
        models=[f"m{i}" for i in range(k)],
        pairs=pairs,
        node_ids=np.arange(n_leaves + 1),
        counts=sparse.csr_matrix(counts),
    )


def flat_nodes(n_leaves: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"node_id": np.arange(n_leaves + 1), "parent_id": [np.nan] + [0.0] * n_leaves, "diff": 0.0}
    )


@pytest.mark.slow
def test_simulated_arena_finds_planted_nodes_at_the_nominal_fdr() -> None:
    rng = np.random.default_rng(3)
    n_leaves, planted, q = 24, {1, 5, 9, 13}, 0.1
    found, false, discoveries, null_small_p, null_tested = 0, 0, [], 0, 0
    reps = 25
    for _ in range(reps):
        cells = simulated_cells(rng, n_leaves, {i - 1 for i in planted}, 1.6, 6)
        table = compare.pairwise_table(cells, "m0", "m1")
        table = compare.adjust(flat_nodes(n_leaves)[["node_id", "parent_id"]].merge(table, on="node_id"), q)
        leaves = table[table["node_id"] > 0]
        hit = leaves["significant"]
        found += int(hit[leaves["node_id"].isin(planted)].sum())
        wrong = int(hit[~leaves["node_id"].isin(planted)].sum())
        false += wrong
        discoveries.append(wrong / max(int(hit.sum()), 1))
        null = leaves[~leaves["node_id"].isin(planted)]
        null_small_p += int((null["p"] < 0.05).sum())
        null_tested += int(null["p"].notna().sum())
        assert (leaves.loc[hit & leaves["node_id"].isin(planted), "favours"] == "A").all()
    assert found / (reps * len(planted)) > 0.7  # power on a 1.6 log-odds (~280 point) gap
    assert np.mean(discoveries) <= q + 0.05  # the false discovery rate, at the nominal q
    assert null_tested == reps * (n_leaves - len(planted))
    assert null_small_p / null_tested < 0.08  # each null node's test is calibrated (nominal 5%)


def test_simulated_results_find_planted_nodes_at_the_nominal_fdr() -> None:
    rng = np.random.default_rng(4)
    n_leaves, items, planted, q = 30, 40, {2, 7, 11, 20}, 0.1
    found, fdp = 0, []
    for _ in range(40):
        acc_b = rng.uniform(0.3, 0.8, n_leaves)
        acc_a = np.where(
            np.isin(np.arange(1, n_leaves + 1), list(planted)), np.minimum(acc_b + 0.35, 0.98), acc_b
        )
        a = rng.random((n_leaves, items)) < acc_a[:, None]
        b = rng.random((n_leaves, items)) < acc_b[:, None]
        leaf = np.column_stack(
            [
                np.full(n_leaves, items), a.sum(1), b.sum(1), (a & ~b).sum(1), (~a & b).sum(1),
                (a != b).sum(1), np.full(n_leaves, items), np.full(n_leaves, items),
            ]
        ).astype(float)  # fmt: skip
        sums = np.vstack([leaf.sum(axis=0), leaf])
        table = compare.instance_table(np.arange(n_leaves + 1), sums, True)
        table = compare.adjust(flat_nodes(n_leaves)[["node_id", "parent_id"]].merge(table, on="node_id"), q)
        leaves = table[table["node_id"] > 0]
        hit = leaves["significant"]
        found += int(hit[leaves["node_id"].isin(planted)].sum())
        fdp.append(int(hit[~leaves["node_id"].isin(planted)].sum()) / max(int(hit.sum()), 1))
    assert found / (40 * len(planted)) > 0.7
    assert np.mean(fdp) <= q + 0.05


def test_nested_nodes_mark_the_topmost_significant_ones() -> None:
    nodes = pd.DataFrame(
        {
            "node_id": [0, 1, 2, 3, 4],
            "parent_id": [np.nan, 0, 1, 1, 0],
            "p": [0.5, 1e-6, 1e-5, 0.9, 1e-4],
            "diff": [1.0, 2.0, 2.0, 0.1, -3.0],
        }
    )
    out = compare.adjust(nodes, 0.05)
    assert out["significant"].tolist() == [False, True, True, False, True]
    assert out["topmost"].tolist() == [False, True, False, False, True]
    assert out["favours"].tolist() == ["", "A", "A", "", "B"]


# --------------------------------------------------------------------------- shapes and errors


def test_small_or_unlinked_nodes_say_why(compare_db: dict) -> None:
    with store.reader(compare_db["db"]) as con:
        table = compare.compare_models(con, FORMULA, "m-one", "m-two")  # no tree: the whole dataset
        assert table.attrs["tree_id"] is None and len(table) == 1 and table["size"].iloc[0] == 40
        with pytest.raises(compare.ArenatreeError, match="model 'nobody' has no votes"):
            compare.compare_models(con, ARENA, "alpha", "nobody")
        with pytest.raises(compare.ArenatreeError, match="two different models"):
            compare.compare_models(con, ARENA, "alpha", "alpha")
    cells = simulated_cells(np.random.default_rng(0), 2, set(), 0.0, 1)  # 5 votes per model per leaf
    table = compare.pairwise_table(cells, "m0", "m1")
    assert table["reason"].iloc[1].startswith("too few votes") and np.isnan(table["p"].iloc[1])


def test_examples_show_both_answers_from_each_models_side(compare_db: dict) -> None:
    with store.reader(compare_db["db"]) as con:
        ex = compare.node_examples(con, ARENA, "alpha", "beta", compare_db["tree_id"], 1, limit=50)
        votes = load_battles(con, ARENA).set_index("battle_id")
        under = prompts_under(con, compare_db["tree_id"], 1)
        texts = dict(
            con.execute("SELECT response_id, text FROM responses WHERE dataset = ?", [ARENA]).fetchall()
        )
        quiz = compare.node_examples(con, QUIZ, "solver-a", "solver-b", compare_db["quiz_tree"], 0, limit=5)
    assert len(ex) and set(ex["prompt_id"]) <= under
    for e in ex.itertuples():
        v = votes.loc[e.battle_id]
        a_side = "response_a" if v["model_a"] == "alpha" else "response_b"
        b_side = "response_b" if a_side == "response_a" else "response_a"
        assert (e.answer_a, e.answer_b) == (texts[v[a_side]], texts[v[b_side]])
        assert "by alpha" in e.answer_a and "by beta" in e.answer_b
    order = ex["outcome"].map({"A": 0, "B": 0, "tie": 1}).to_numpy()
    assert (np.diff(order) >= 0).all()  # decisive first
    assert len(quiz) == 5 and (quiz["outcome"] != "same").all()  # discordant items first


# --------------------------------------------------------------------------- CLI and CSV


def test_cli_compare_prints_json_and_formula_safe_csv(compare_db: dict, tmp_path: Path, capsys) -> None:
    db = str(compare_db["db"])
    assert (
        main(["--db", db, "compare", "--dataset", ARENA, "--model-a", "alpha", "--model-b", "beta", "--json"])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    with store.reader(compare_db["db"]) as con:
        table = compare.compare_models(con, ARENA, "alpha", "beta")
    assert doc["significant"] == int(table["significant"].sum()) == len(doc["nodes"])
    assert doc["topmost"] == table.loc[table["topmost"], "node_id"].tolist()
    assert main(["--db", db, "compare", "--dataset", ARENA, "--model-a", "alpha", "--model-b", "beta"]) == 0
    out = capsys.readouterr().out
    assert "alpha (A) vs beta (B)" in out and "topmost" in out
    path = tmp_path / "all.csv"
    args = ["compare", "--dataset", QUIZ, "--model-a", "solver-a", "--model-b", "solver-b", "--all"]
    assert main(["--db", db, *args, "--csv", str(path), "--q", "0.1"]) == 0
    written = pd.read_csv(path, keep_default_na=False)
    with store.reader(compare_db["db"]) as con:
        every = compare.compare_models(con, QUIZ, "solver-a", "solver-b", q=0.1)
    assert len(written) == len(every) and written.columns.tolist() == every.columns.tolist()
    assert written["reason"].tolist() == every["reason"].tolist()
    assert "not tested" in capsys.readouterr().out
    for argv, message in (
        (["--model-a", "alpha", "--model-b", "nobody"], "model 'nobody' has no votes in dataset 'arena'"),
        (["--model-a", "alpha", "--model-b", "beta", "--q", "2"], "q=2.0"),
        (["--model-a", "alpha", "--model-b", "beta", "--tree", "nope"], "no tree 'nope'"),
    ):
        assert main(["--db", db, "compare", "--dataset", ARENA, *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_csv_neutralises_formulas(compare_db: dict) -> None:
    with store.reader(compare_db["db"]) as con:
        ex = compare.node_examples(con, FORMULA, "m-one", "m-two", None, 0)
        table = compare.compare_models(con, FORMULA, "m-one", "m-two")
    text = csv_bytes(ex).decode()
    rows = pd.read_csv(io.StringIO(text))
    assert rows["prompt"].str.startswith("'=HYPERLINK").all()
    assert rows["answer_a"].str.startswith("'@SUM").all() and rows["answer_b"].str.startswith("'+cmd").all()
    hostile = table.assign(description="=1+2", reason="-2+3")
    rows = pd.read_csv(io.StringIO(csv_bytes(hostile).decode()))
    assert rows["description"].iloc[0] == "'=1+2" and rows["reason"].iloc[0] == "'-2+3"
