"""Page test of Model vs model (dashboard/views/compare.py): AppTest on a real DuckDB with real
(offline) trees; every table is checked against :func:`pipelines.compare.compare_models`."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import load, open_app_page, rerun
from test_compare import FORMULA, formula_batch
from test_leaderboard_page import ARENA, build_arena

from dashboard import widgets
from pipelines import compare, store
from pipelines.report.tables import csv_bytes

PAGE = "views/compare.py"


@pytest.fixture(scope="module")
def page_db(tmp_path_factory: pytest.TempPathFactory) -> dict:
    db = tmp_path_factory.mktemp("compare-page") / "arenatree.duckdb"
    tree_id = build_arena(db)
    load(db, FORMULA, [formula_batch()])
    return {"db": db, "tree_id": tree_id}


@pytest.fixture()
def downloads(monkeypatch) -> list:
    """Every table a CSV download button of the page was given (the page and the widgets share
    this process), passed on to the real button."""
    seen: list = []
    real = widgets.download_csv

    def record(df, name, *args, **kwargs):
        seen.append((name, df))
        return real(df, name, *args, **kwargs)

    monkeypatch.setattr(widgets, "download_csv", record)
    return seen


def codes(at) -> list[str]:
    return [c.value for c in at.code]


@pytest.mark.slow
def test_page_lists_the_significant_nodes_with_both_answers(page_db: dict, monkeypatch, downloads) -> None:
    at = open_app_page(page_db["db"], monkeypatch, PAGE, dataset=ARENA, model="alpha")
    assert at.selectbox(key="_shared_model").value == "alpha"
    box = at.selectbox(key="compare-b-arena-alpha")
    assert box.value == "beta" and box.options == ["beta", "delta", "gamma"]
    with store.reader(page_db["db"]) as con:
        expected = compare.compare_models(con, ARENA, "alpha", "beta", page_db["tree_id"])
        examples = compare.node_examples(con, ARENA, "alpha", "beta", page_db["tree_id"], 0, limit=10)
    (table,) = [d.value for d in at.dataframe]
    assert table["node_id"].tolist() == expected.loc[expected["significant"], "node_id"].tolist()
    assert table["q"].tolist() == pytest.approx(expected.loc[expected["significant"], "q"].tolist())
    # the first topmost significant node (here the root) is shown side by side
    shown = codes(at)
    for ex in examples.itertuples():
        assert ex.prompt in shown and ex.answer_a in shown and ex.answer_b in shown
    assert not at.get("html")  # untrusted text only through st.code / st.text / st.dataframe
    name, df = downloads[0]
    assert (
        name.startswith("compare-alpha-vs-beta-arena") and df["node_id"].tolist() == table["node_id"].tolist()
    )

    at.toggle(key="compare-all").set_value(True)
    rerun(at)
    (table,) = [d.value for d in at.dataframe]
    assert len(table) == len(expected) and (table["reason"] == "").sum() == expected["p"].notna().sum()

    at.selectbox(key="compare-b-arena-alpha").set_value("delta")
    rerun(at)
    with store.reader(page_db["db"]) as con:
        delta = compare.compare_models(con, ARENA, "alpha", "delta", page_db["tree_id"])
    (table,) = [d.value for d in at.dataframe]
    assert table["diff"].tolist() == pytest.approx(delta["diff"].tolist(), nan_ok=True)


def test_no_tree_and_formula_text_download_safely(page_db: dict, monkeypatch, downloads) -> None:
    at = open_app_page(page_db["db"], monkeypatch, PAGE, dataset=FORMULA, model="m-one")
    assert any("no capability tree" in c.value for c in at.caption)
    assert at.selectbox(key=f"compare-b-{FORMULA}-m-one").value == "m-two"
    assert any(c.startswith('=HYPERLINK("http://evil.example"') for c in codes(at))  # plain text
    by_name = dict(downloads)
    examples = next(df for name, df in by_name.items() if name.endswith("examples.csv"))
    text = csv_bytes(examples).decode()
    assert "'=HYPERLINK" in text and "'@SUM(A" in text and "'+cmd|" in text
    assert "\n=HYPERLINK" not in text and ",@SUM" not in text


def test_a_node_too_small_to_test_says_why(tmp_path: Path, monkeypatch) -> None:
    from helpers import pairwise_batch

    db = tmp_path / "arenatree.duckdb"
    load(db, "pair", [pairwise_batch(4, models=("x", "y"))])
    at = open_app_page(db, monkeypatch, PAGE, dataset="pair", model="x")
    assert not at.dataframe and any("No node differs" in c.value for c in at.caption)
    at.toggle(key="compare-all").set_value(True)
    rerun(at)
    (table,) = [d.value for d in at.dataframe]
    assert table["reason"].iloc[0].startswith("too few votes")
