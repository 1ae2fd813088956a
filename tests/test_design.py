"""Design checks: what the votes cannot identify is said, and no number is shown for it.

Each check runs on data built to trigger it (tests/shapes.py) and on data built not to, and the
AlpacaEval case of the issue (a baseline always on one side) runs on the real bundled file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import load, open_app_page, run_cli
from shapes import SHAPES

from pipelines import store
from pipelines.audit.frame import load_audit_votes
from pipelines.audit.position import position_preference
from pipelines.design import (
    POSITION_SENTENCE,
    comparison_groups,
    judges_sentence,
    node_sentence,
    position_identifiable,
    thin_models,
)


def votes_of(name: str):
    return SHAPES[name]().battles


def test_a_fixed_side_baseline_hides_the_position_effect() -> None:
    assert not position_identifiable(votes_of("fixed-side"))
    assert position_identifiable(votes_of("no-ties"))  # pairs shown both ways round
    one_way = votes_of("one-pair")
    one_way = one_way.assign(model_a="gpt-4o", model_b="claude-3.5-sonnet")
    assert not position_identifiable(one_way)  # one ordered pair: left = that pair's gap
    # the rank test itself, on a design where the constant is free: two models swapped sides
    both = one_way.copy()
    both.loc[both.index[::2], ["model_a", "model_b"]] = ["claude-3.5-sonnet", "gpt-4o"]
    assert position_identifiable(both)


def test_groups_that_never_meet_are_found() -> None:
    assert comparison_groups(votes_of("disconnected")) == [["m1", "m2"], ["m3", "m4"]]
    assert len(comparison_groups(votes_of("no-ties"))) == 1


@pytest.mark.slow
def test_the_cli_report_and_page_say_what_the_design_cannot_support(
    db: Path, tmp_path: Path, monkeypatch
) -> None:
    for name in ("disconnected", "one-vote", "fixed-side", "no-ties"):
        load(db, name, [SHAPES[name]()])
    out = run_cli("leaderboard", "--dataset", "disconnected", db=db)
    assert out.returncode == 0, out.stderr
    assert "note: The models fall into 2 groups that never meet (m1, m2; m3, m4)" in out.stdout
    assert "group" in out.stdout.splitlines()[1]
    doc = json.loads(run_cli("leaderboard", "--dataset", "disconnected", "--json", db=db).stdout)
    assert {m["model"]: m["group"] for m in doc["models"]} == {"m1": 1, "m2": 1, "m3": 2, "m4": 2}
    # the group note, and why the intervals are bootstrap (no sandwich across groups that never meet)
    assert len(doc["notes"]) == 2 and doc["params"]["ci_used"] == "bootstrap"
    assert "not sandwich: the models fall into groups that never meet" in doc["notes"][1]

    thin = json.loads(run_cli("leaderboard", "--dataset", "one-vote", "--json", db=db).stdout)
    assert "fewer than 20 battles" in thin["notes"][0]
    assert "not sandwich: some models never lose" in thin["notes"][-1]
    assert not json.loads(run_cli("leaderboard", "--dataset", "no-ties", "--json", db=db).stdout)["notes"]

    report = tmp_path / "r.html"
    assert run_cli("report", "--dataset", "fixed-side", "--out", str(report), db=db).returncode == 0
    html = report.read_text()
    assert "cannot be told apart from the models" in html  # the position audit says why

    at = open_app_page(db, monkeypatch, "views/leaderboard.py", dataset="disconnected")
    assert any("2 groups that never meet" in i.value for i in at.info)
    (table,) = [d.value for d in at.dataframe if "rating" in d.value.columns]
    assert sorted(table["group"]) == [1, 1, 2, 2]


def test_position_audit_shows_no_number_it_cannot_identify(db: Path) -> None:
    load(db, "fixed", [SHAPES["fixed-side"]()])
    load(db, "free", [SHAPES["no-ties"]()])
    with store.reader(db) as con:
        fixed = position_preference(load_audit_votes(con, "fixed"), rounds=10)
        free = position_preference(load_audit_votes(con, "free"), rounds=10)
    assert not fixed.applicable and fixed.summary == POSITION_SENTENCE and not fixed.headline
    assert free.applicable and np.isfinite(free.headline["estimate"])


def test_thin_models_are_named() -> None:
    import pandas as pd

    table = pd.DataFrame({"model": ["a", "b", "c"], "battles": [500, 19, 3]})
    assert thin_models(table) == ["b", "c"]


def test_alpaca_eval_position_effect_is_not_shown(bundled_db: Path) -> None:
    """The issue's case: AlpacaEval's baseline is always output 2; the old audit reported its
    strength as a 'left-side advantage of -0.96 log-odds'."""
    out = run_cli("audit", "--dataset", "alpaca_eval", "--json", db=bundled_db)
    assert out.returncode == 0, out.stderr
    (position,) = [f for f in json.loads(out.stdout)["findings"] if f["audit"] == "position"]
    assert position["applicable"] is False and position["summary"] == POSITION_SENTENCE


@pytest.mark.slow
@pytest.mark.parametrize("name", ["no-ties", "never-wins"])
def test_connected_designs_get_no_group_column(db: Path, name: str) -> None:
    load(db, name, [SHAPES[name]()])
    doc = json.loads(run_cli("leaderboard", "--dataset", name, "--json", db=db).stdout)
    assert "group" not in doc["models"][0]


def test_an_llm_jury_or_a_single_judge_is_said() -> None:
    llm = judges_sentence(votes_of("llm-judges"))
    assert llm is not None and "2 LLM judges" in llm and "not human preference" in llm
    one = judges_sentence(votes_of("one-judge"))
    assert one is not None and "one judge (voter-1)" in one
    assert judges_sentence(votes_of("no-ties")) is None  # several human voters: nothing to say


@pytest.mark.slow
def test_the_leaderboard_says_an_llm_jury(db: Path) -> None:
    load(db, "llm-judges", [SHAPES["llm-judges"]()])
    doc = json.loads(run_cli("leaderboard", "--dataset", "llm-judges", "--json", db=db).stdout)
    assert any("LLM judges" in n for n in doc["notes"])


def test_a_node_too_small_for_an_interval_is_said() -> None:
    small = node_sentence(7, "solving linear equations", 3)
    assert small is not None and small.startswith("Node 7 (solving linear equations) holds 3 prompts")
    assert "fewer than the 5" in small
    assert node_sentence(7, None, 1).startswith("Node 7 holds 1 prompt with")
    assert node_sentence(7, "x", 5) is None  # 5 items: the node scores give it an interval


@pytest.mark.slow
@pytest.mark.parametrize("name", ["no-ties", "scores-mixed"])
def test_the_leaderboard_of_a_small_node_says_it_is_too_small(db: Path, monkeypatch, name: str) -> None:
    from pipelines.cli import main

    load(db, name, [SHAPES[name]()])
    assert main(["--db", str(db), "tree", "build", "--dataset", name, "--min-size", "2"]) == 0
    tree = json.loads(run_cli("tree", "show", "--dataset", name, "--json", db=db).stdout)
    small = next(n for n in tree["nodes"] if n["size"] < 5)
    big = tree["nodes"][0]
    assert big["size"] >= 5
    said = json.loads(
        run_cli("leaderboard", "--dataset", name, "--node", str(small["node_id"]), "--json", db=db).stdout
    )
    assert any(f"Node {small['node_id']} (" in n and "fewer than the 5" in n for n in said["notes"]), said[
        "notes"
    ]
    quiet = json.loads(
        run_cli("leaderboard", "--dataset", name, "--node", str(big["node_id"]), "--json", db=db).stdout
    )
    assert not any("fewer than the 5" in n for n in quiet["notes"])
    text = run_cli("leaderboard", "--dataset", name, "--node", str(small["node_id"]), db=db).stdout
    assert "note: Node " in text

    at = open_app_page(
        db,
        monkeypatch,
        "views/leaderboard.py",
        dataset=name,
        tree=tree["tree_id"],
        node=str(small["node_id"]),
    )
    assert any("fewer than the 5" in i.value for i in at.info), [i.value for i in at.info]
