"""``arenatree leaderboard`` on the real bundled data: the numbers are the ratings module's on
exactly the votes the flags select, and bad requests fail with one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import run_cli
from scipy.stats import beta

from pipelines import store
from pipelines.battles import Filters, load_battles
from pipelines.ratings import leaderboard
from pipelines.slices import spread_leaderboard


def cli_json(*args: str, db: Path) -> dict:
    out = run_cli("leaderboard", *args, "--json", db=db)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("ci", ["auto", "bootstrap"])  # auto: LMArena's sandwich, valid on these votes
def test_global_leaderboard_is_the_bt_fit_of_every_vote(bundled_db, ci):
    got = cli_json("--dataset", "llmfao", "--bootstrap", "20", "--ci", ci, db=bundled_db)
    with store.reader(bundled_db) as con:
        votes = load_battles(con, "llmfao")
    want = leaderboard(votes, rounds=20, seed=0, ci=ci)
    assert got["params"]["ci_used"] == ("sandwich" if ci == "auto" else "bootstrap")
    table = pd.DataFrame(got["models"])
    assert got["n_votes"] == len(votes) == 13209
    assert list(table["model"]) == list(want["model"])
    np.testing.assert_allclose(table["rating"], want["rating"], atol=1e-6)
    np.testing.assert_allclose(table["lower"], want["lower"], atol=1e-6)
    assert (table["lower"] <= table["rating"]).all() and (table["rating"] <= table["upper"]).all()
    assert list(table["rank_ub"]) == list(want["rank_ub"])
    # rank range and P(#1) from the same bootstrap rounds as the intervals (pipelines.slices)
    spread = spread_leaderboard(votes, rounds=20, seed=0, ci=ci)
    assert list(table["rank_low"]) == list(spread["rank_low"])
    assert list(table["rank_high"]) == list(spread["rank_high"])
    np.testing.assert_allclose(table["p_top"], spread["p_top"])
    assert np.isclose(table["p_top"].sum(), 1.0) and (table["rank_low"] <= table["rank_high"]).all()


def test_judge_kind_filter_selects_only_those_votes(bundled_db):
    human = cli_json("--dataset", "llmfao", "--judge-kind", "human", "--bootstrap", "10", db=bundled_db)
    llm = cli_json("--dataset", "llmfao", "--judge-kind", "llm", "--bootstrap", "10", db=bundled_db)
    with store.reader(bundled_db) as con:
        counts = dict(
            con.execute(
                "SELECT judge_kind, count(*) FROM battles WHERE dataset = 'llmfao' GROUP BY ALL"
            ).fetchall()
        )
        votes = load_battles(con, "llmfao", Filters(judge_kind="llm"))
    assert human["n_votes"] == counts["human"] and llm["n_votes"] == counts["llm"]
    want = leaderboard(votes, rounds=10, seed=0).set_index("model")["rating"]
    got = pd.DataFrame(llm["models"]).set_index("model")["rating"]
    np.testing.assert_allclose(got.loc[want.index], want, atol=1e-6)


def test_node_leaderboard_uses_only_the_votes_under_the_node(bundled_db):
    tree = json.loads(run_cli("tree", "show", "--dataset", "pandalm", "--json", db=bundled_db).stdout)
    child = next(n for n in tree["nodes"] if n["depth"] == 1)
    got = cli_json(
        "--dataset", "pandalm", "--node", str(child["node_id"]), "--bootstrap", "10", db=bundled_db
    )
    with store.reader(bundled_db) as con:
        n_under = con.execute(
            """
            SELECT count(*) FROM battles b JOIN node_members m ON m.prompt_id = b.prompt_id
            JOIN nodes n ON n.tree_id = m.tree_id AND n.node_id = m.node_id
            WHERE b.dataset = 'pandalm' AND m.tree_id = ? AND (n.path = ? OR n.path LIKE ? || '.%')
            """,
            [tree["tree_id"], child["path"], child["path"]],
        ).fetchone()[0]
    assert got["node"] == child["node_id"] and got["tree_id"] == tree["tree_id"]
    assert 0 < got["n_votes"] == n_under < 4970


def test_accuracy_leaderboard_on_per_instance_data_has_clopper_pearson_intervals(bundled_db):
    got = cli_json("--dataset", "math", db=bundled_db)
    table = pd.DataFrame(got["models"]).set_index("model")
    with store.reader(bundled_db) as con:
        raw = con.execute(
            "SELECT model, sum(score), count(*) FROM results WHERE dataset = 'math' GROUP BY model"
        ).fetchall()
    for model, k, n in raw:
        assert table.loc[model, "items"] == n == 5000
        assert table.loc[model, "score"] == pytest.approx(k / n)
        assert table.loc[model, "lower"] == pytest.approx(beta.ppf(0.025, k, n - k + 1))
        assert table.loc[model, "upper"] == pytest.approx(beta.ppf(0.975, k + 1, n - k))
    assert list(table["score"]) == sorted(table["score"], reverse=True)


def test_style_control_reports_coefficients_and_rank_changes(bundled_db):
    got = cli_json("--dataset", "pandalm", "--style-control", "--bootstrap", "20", db=bundled_db)
    coefs = {c["feature"]: c for c in got["style_coefficients"]}
    assert set(coefs) == {"tokens", "headers", "lists", "bold"}
    assert coefs["tokens"]["lower"] <= coefs["tokens"]["coef"] <= coefs["tokens"]["upper"]
    assert all("rank_change" in m for m in got["models"])
    assert got["battles_used"] + got["battles_dropped"] == got["n_votes"]


def test_text_output_lists_every_model(bundled_db):
    out = run_cli("leaderboard", "--dataset", "pandalm", "--bootstrap", "10", db=bundled_db)
    assert out.returncode == 0, out.stderr
    for model in ("llama-7b", "bloom-7b", "pythia-6.9b", "opt-7b", "cerebras-gpt-6.7B"):
        assert model in out.stdout
    got = cli_json("--dataset", "pandalm", "--bootstrap", "10", db=bundled_db)["models"]
    assert "rank range" in out.stdout and "P(#1)" in out.stdout
    for m in got:  # each model's line carries its rank range and P(#1)
        line = next(row for row in out.stdout.splitlines() if f" {m['model']} " in row)
        assert f"{m['rank_low']}-{m['rank_high']}" in line and f"{m['p_top']:.1%}" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "nope"], "nope"),
        (["--dataset", "llmfao", "--judge", "nobody-xyz"], "nobody-xyz"),
        (["--dataset", "math", "--style-control"], "per-instance"),
        (["--dataset", "arena-hard-v0.1"], "nothing to rank"),
        (["--dataset", "llmfao", "--node", "999999"], "999999"),
        (["--dataset", "llmfao", "--since", "2030-13-01"], "since"),
    ],
)
def test_bad_requests_fail_with_one_line(bundled_db, args, message):
    out = run_cli("leaderboard", *args, db=bundled_db)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("arenatree: error:") and message in lines[0]
