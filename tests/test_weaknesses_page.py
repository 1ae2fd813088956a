"""Page tests of the Weaknesses page and of the Capability tree page's score colouring: AppTest on a
real DuckDB with real (offline) trees and stored node scores.

The arena votes are those of the Leaderboard page tests (alpha is strong overall but planted weak
on the SQL and the hostile-HTML prompts); 'quiz' holds per-instance results over the same topic
prompts where 'solver-a' fails every SQL item. Every profile on the page is checked against
:mod:`pipelines.weaknesses` run on the stored scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import EVIL, TOPICS, load, metrics, open_app_page, rerun, topic_prompts
from streamlit.testing.v1 import AppTest
from test_leaderboard_page import ARENA, build_arena, sidebar_select, table_with

from dashboard import data
from pipelines import scores, store, weaknesses
from pipelines.battles import Filters
from pipelines.ingest.base import Batch
from pipelines.tree import read
from pipelines.tree.build import build_tree

PAGE = "views/weaknesses.py"
QUIZ = "quiz"


def quiz_batch(n: int = 72) -> Batch:
    """Per-instance results over the topic prompts: solver-a wrong on every SQL item, right
    elsewhere; solver-b right on every other item."""
    topics = list(TOPICS)
    rows = []
    for i, text in enumerate(topic_prompts(n)):
        sql = topics[i % len(topics)] == "sql"
        rows += [
            {
                "instance_id": f"item-{i}",
                "prompt_text": text,
                "model": "solver-a",
                "score": 0.0 if sql else 1.0,
            },
            {"instance_id": f"item-{i}", "prompt_text": text, "model": "solver-b", "score": float(i % 2)},
        ]
    df = pd.DataFrame(rows).assign(line=range(1, len(rows) + 1))
    return Batch(kind="instances", format="test", path=Path("quiz.csv"), rows_read=len(df), results=df)


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The arena and quiz datasets, their trees and their node scores (default parameters)."""
    db = tmp_path_factory.mktemp("weaknesses-page") / "arenatree.duckdb"
    tree_id = build_arena(db)
    load(db, QUIZ, [quiz_batch()])
    quiz_tree = build_tree(QUIZ, db=db, min_size=4)["tree_id"]
    out = {"db": db, "tree_id": tree_id, "quiz_tree": quiz_tree}
    for name, dataset, tree in (("scores", ARENA, tree_id), ("quiz_scores", QUIZ, quiz_tree)):
        run_id = scores.compute_node_scores(db, dataset, tree)
        with store.reader(db) as con:
            out[name] = scores.stored_node_scores(con, run_id)
            out[name.replace("scores", "nodes")] = read.tree_nodes(con, tree)
    return out


def profile_of(scored: dict, model: str, dataset: str = ARENA) -> pd.DataFrame:
    nodes, stored = (
        (scored["nodes"], scored["scores"])
        if dataset == ARENA
        else (scored["quiz_nodes"], scored["quiz_scores"])
    )
    tree_nodes = nodes.assign(
        parent_id=nodes["parent_id"].astype("Int64"), keywords=nodes["keywords"].map(list)
    )
    return data.model_nodes(tree_nodes, stored, model)


def profile_tables(at: AppTest) -> list[list[int]]:
    """Node ids of every profile table on the page, in page order: weaknesses, strengths, then
    the two compared models' weaknesses (an empty profile shows a caption, not a table)."""
    tables = [d.value for d in at.dataframe]
    return [
        t["node_id"].tolist() for t in tables if {"label", "score", "upper"} <= set(t) and "p_adj" not in t
    ]


def adjusted_tables(at: AppTest) -> list[list[int]]:
    """Node ids of the opponent-adjusted tables: the significant nodes, then every tested node."""
    return [d.value["node_id"].tolist() for d in at.dataframe if "p_adj" in d.value.columns]


def tau_slider(at: AppTest):
    (slider,) = [s for s in at.slider if s.label.startswith("Threshold τ")]
    return slider


def prompts_under(db: Path, tree_id: str, node: int) -> list[str]:
    with store.reader(db) as con:
        return read.node_items(con, tree_id, node, limit=None)["text"].tolist()


@pytest.mark.slow
def test_page_lists_the_weaknesses_the_pipeline_extracts(scored: dict, monkeypatch) -> None:
    at = open_page(scored["db"], monkeypatch, dataset=ARENA)
    profile = profile_of(scored, "alpha")
    root = profile[profile["parent_id"].isna()].iloc[0]

    assert at.selectbox(key="_shared_model").value == "alpha"  # the best model overall first
    assert metrics(at, keep="first")["Overall win rate"] == f"{root['score']:.1%}"
    assert metrics(at, keep="first")["Battles"] == "432"
    tau = tau_slider(at).value
    assert tau == round(root["score"], 2)  # default: the model's own overall win rate
    expected = weaknesses.extract(profile, tau)
    assert len(expected) > 0
    strong = weaknesses.strengths(profile, tau)
    assert len(strong) > 0
    assert profile_tables(at)[:2] == [expected["node_id"].tolist(), strong["node_id"].tolist()]
    # The planted weakness: every extracted node is mostly SQL / hostile-HTML prompts.
    for node in expected["node_id"]:
        texts = prompts_under(scored["db"], scored["tree_id"], node)
        planted = sum(("SQL" in t or "PostgreSQL" in t or EVIL in t) for t in texts)
        assert planted / len(texts) > 0.5, texts

    # A lower τ: fewer (or no) nodes fail; the table follows the pipeline.
    tau_slider(at).set_value(round(tau - 0.15, 2))
    rerun(at)
    lower = weaknesses.extract(profile, round(tau - 0.15, 2))
    assert profile_tables(at)[0] == lower["node_id"].tolist() if len(lower) else True
    assert len(lower) <= len(expected)


def test_evidence_shows_the_votes_behind_a_weakness_as_text(scored: dict, monkeypatch) -> None:
    at = open_page(scored["db"], monkeypatch, dataset=ARENA)
    tau = tau_slider(at).value
    weak = weaknesses.extract(profile_of(scored, "alpha"), tau)
    hostile = [
        i
        for i in weak["node_id"]
        if any(EVIL in t for t in prompts_under(scored["db"], scored["tree_id"], i))
    ]
    assert hostile, "the hostile-prompt weakness should be extracted"
    node = hostile[0]
    (table,) = [d for d in at.dataframe if f"weak-{scored['tree_id']}-alpha" in d.proto.id]
    row = weak["node_id"].tolist().index(node)
    at.session_state[f"weak-{scored['tree_id']}-alpha"] = {"selection": {"rows": [row], "columns": []}}
    rerun(at)

    votes = table_with(at, "opponent", "outcome")
    assert 0 < len(votes) <= 20
    assert votes["prompt"].str.contains(EVIL, regex=False).any()  # the prompt, as data
    assert set(votes["opponent"]) <= {"beta", "gamma", "delta"}
    order = votes["outcome"].map({"lost": 0, "tie": 1, "won": 2})
    assert order.is_monotonic_increasing and votes["outcome"].iloc[0] == "lost"  # losses first
    assert any(f"Evidence for node {node}" in c.value for c in at.caption)
    # Untrusted text never reaches Markdown or HTML.
    assert not at.get("html")
    for md in at.markdown:
        assert not md.proto.allow_html and "<script>" not in md.value
    for text in [e.value for e in (*at.caption, *at.subheader, *at.title)]:
        assert "<script>" not in text


def test_sweep_lists_every_distinct_profile(scored: dict, monkeypatch) -> None:
    at = open_page(scored["db"], monkeypatch, dataset=ARENA)
    profile = profile_of(scored, "alpha")
    expected = weaknesses.sweep(profile)
    sweep = table_with(at, "tau_low", "members")
    assert len(sweep) == len(expected) > 1
    assert [tuple(ids) for ids in sweep["node_ids"]] == [p.node_ids for p in expected]
    np.testing.assert_allclose(sweep["tau_low"], [p.tau_low for p in expected])
    assert sweep["tau_high"].iloc[0] == np.inf  # the loosest profile holds for every high τ


def test_opponent_adjusted_view_with_bh_toggle(scored: dict, monkeypatch) -> None:
    at = open_page(scored["db"], monkeypatch, dataset=ARENA)
    profile = profile_of(scored, "alpha")
    tested = data.opponent_adjusted(ARENA, scored["tree_id"], {}, profile, "alpha")
    with_bh = weaknesses.extract_significant(tested, "p_adj", 0.05)
    assert len(with_bh) > 0  # the planted weakness is significant even after FDR control
    assert adjusted_tables(at)[0] == with_bh["node_id"].tolist()
    assert (with_bh["offset"] < 0).all()

    at.toggle(key="bh").set_value(False)
    rerun(at)
    raw = weaknesses.extract_significant(tested, "p", 0.05)
    assert adjusted_tables(at)[0] == raw["node_id"].tolist()
    assert set(with_bh["node_id"]) <= set(raw["node_id"]) | set(with_bh["node_id"])


def test_selected_groups_are_shown_as_the_pipeline_chooses_them(scored: dict, monkeypatch) -> None:
    from pipelines import store
    from pipelines.weaknesses import stepwise

    at = open_page(scored["db"], monkeypatch, dataset=ARENA)
    with store.reader(scored["db"]) as con:
        votes, cand = stepwise.load_groups(con, ARENA, scored["tree_id"])
    table = stepwise.arena_weaknesses(votes, cand, q=0.05)["alpha"]
    want = table.loc[table["step"] > 0, "key"].tolist()
    assert want  # the planted weakness of "alpha" is chosen
    (shown,) = [d.value for d in at.dataframe if "p_bh" in d.value.columns]
    assert shown["key"].tolist() == want
    assert (shown["offset"] < 0).any()


def test_two_models_side_by_side(scored: dict, monkeypatch) -> None:
    at = open_page(scored["db"], monkeypatch, dataset=ARENA, model="beta")
    assert at.selectbox(key="_shared_model").value == "beta"  # a link chooses the model
    at.selectbox(key="_shared_model").select("alpha")
    rerun(at)
    tau = tau_slider(at).value
    (compare,) = [s for s in at.selectbox if s.label == "Compare with"]
    assert compare.value == "beta"  # the next model by overall win rate
    compare.select("gamma")
    rerun(at)
    expected = [
        weaknesses.extract(profile_of(scored, m), tau)["node_id"].tolist() for m in ("alpha", "gamma")
    ]
    assert all(expected)  # both have weaknesses at alpha's τ, so both tables are there
    assert profile_tables(at)[-2:] == expected
    assert {"alpha", "gamma"} <= {t.value for t in at.text}
    assert at.query_params["model"] == "alpha"


def test_per_instance_weaknesses_and_wrong_answers_first(scored: dict, monkeypatch) -> None:
    at = open_page(scored["db"], monkeypatch, dataset=QUIZ, model="solver-a")
    profile = profile_of(scored, "solver-a", QUIZ)
    tau = tau_slider(at).value
    expected = weaknesses.extract(profile, tau)
    assert len(expected) > 0
    assert profile_tables(at)[0] == expected["node_id"].tolist()
    results = table_with(at, "score", "instance_id")
    assert results["score"].iloc[0] == 0.0 and results["prompt"].str.contains("SQL").iloc[0]
    assert metrics(at, keep="first")["Overall accuracy"] == f"{60 / 72:.1%}"  # wrong on the 12 SQL items


@pytest.mark.slow
def test_compute_scores_button_for_new_filters(scored: dict, monkeypatch) -> None:
    at = open_page(scored["db"], monkeypatch, dataset=ARENA, judge_kind="human")
    assert "not computed yet" in at.info[0].value
    (button,) = [b for b in at.button if b.label == "Compute scores"]
    button.click()
    rerun(at)
    with store.reader(scored["db"]) as con:
        run_id = scores.find_run(con, ARENA, scored["tree_id"], {"filters": Filters(judge_kind="human")})
        stored = scores.stored_node_scores(con, run_id)
    assert run_id is not None
    root = stored[(stored["node_id"] == 0) & (stored["model"] == "alpha")].iloc[0]
    assert metrics(at, keep="first")["Battles"] == f"{int(root['n']):,}" and int(root["n"]) < 432
    assert not at.info


def test_tree_is_coloured_by_a_models_score_or_rank(scored: dict, monkeypatch) -> None:
    at = open_page(scored["db"], monkeypatch, "views/tree.py", dataset=ARENA)
    stored = scored["scores"]
    (colour_by,) = [s for s in at.selectbox if s.label == "Colour by"]
    assert colour_by.value == ""  # item count until a model is chosen
    colour_by.select("gamma")
    rerun(at)

    trace = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    mine = stored[stored["model"] == "gamma"].set_index("node_id")
    ids = [int(i) for i in trace["ids"]]
    np.testing.assert_allclose(
        np.array([np.nan if c is None else c for c in trace["marker"]["colors"]], dtype=float),
        mine["score"].reindex(ids).to_numpy(),
    )
    assert trace["marker"]["colorbar"]["title"]["text"] == "Win rate"
    assert (trace["marker"]["cmin"], trace["marker"]["cmax"]) == (0.0, 1.0)
    assert f"{int(mine.loc[0, 'n']):,} battles" in trace["customdata"][0][3]  # the votes behind it
    assert at.query_params["model"] == "gamma"

    # The node panel: every model's score in the chosen node, as stored.
    here = table_with(at, "score", "rating_lower")
    root = stored[stored["node_id"] == 0].set_index("model")
    assert sorted(here["model"]) == sorted(root.index)
    np.testing.assert_allclose(here.set_index("model")["score"].sort_index(), root["score"].sort_index())

    at.radio(key="_shared_measure").set_value("rank")
    rerun(at)
    trace = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    rank = mine["rank_ub"].reindex(ids).to_numpy()
    np.testing.assert_allclose(
        np.array([np.nan if c is None else c for c in trace["marker"]["colors"]], dtype=float), rank
    )
    assert trace["marker"]["colorbar"]["title"]["text"] == "Rank (UB)"
    assert "rank (upper bound) of gamma" in " ".join(c.value for c in at.caption)

    # The model choice is shared with the Weaknesses page.
    at.switch_page(PAGE)
    rerun(at)
    assert at.selectbox(key="_shared_model").value == "gamma"
    assert sidebar_select(at, "Dataset").value == ARENA


def open_page(db: Path, monkeypatch: pytest.MonkeyPatch, page: str = PAGE, **query: str) -> AppTest:
    return open_app_page(db, monkeypatch, page, **query)
