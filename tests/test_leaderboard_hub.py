"""Page tests of the Leaderboard page as the hub: rank spread and P(#1), slice weighting (sliders,
presets, thin slices, the weights in the URL) and the drill-down model -> opponent -> battles.

AppTest on the bundled demo database (real LLMFAO and PandaLM votes with their offline trees);
every number on the page is checked against pipelines.slices run on the votes read straight
from DuckDB.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest
from helpers import load, open_app_page, pairwise_batch, rerun
from streamlit.testing.v1 import AppTest

from dashboard import widgets
from dashboard.data import PAIR_BATTLES_SHOWN
from pipelines import slices
from pipelines.audit.frame import evidence_votes
from pipelines.battles import NO_FILTERS, load_battles

PAGE = "views/leaderboard.py"


def open_page(db: Path, monkeypatch: pytest.MonkeyPatch, **query: str) -> AppTest:
    return open_app_page(db, monkeypatch, PAGE, **query)


def table_with(at: AppTest, *columns: str, without: str = "rank_change") -> pd.DataFrame:
    """The one table on the page with ``columns`` and not ``without`` (the weighted table has
    every leaderboard column plus rank_change)."""
    (df,) = [
        d.value
        for d in at.dataframe
        if set(columns) <= set(d.value.columns) and (without in columns or without not in d.value.columns)
    ]
    return df


def has_table(at: AppTest, *columns: str) -> bool:
    return any(set(columns) <= set(d.value.columns) for d in at.dataframe)


def reference(db: Path, dataset: str, node: int = 0) -> tuple[pd.DataFrame, slices.SliceCells, pd.DataFrame]:
    """The dataset's votes under ``node``, the cells of the node's children (biggest slice first, as
    the page orders them) and the slice frame (node_id, votes), read straight from DuckDB."""
    with duckdb.connect(str(db), read_only=True) as con:
        votes = load_battles(con, dataset, NO_FILTERS)
        (tree_id,) = con.execute("SELECT tree_id FROM trees WHERE dataset = ?", [dataset]).fetchone()
        member = slices.slice_of_prompt(con, tree_id, node)
    if node != 0:
        votes = votes[votes["prompt_id"].isin(set(member["prompt_id"]))].reset_index(drop=True)
    slice_of = dict(zip(member["prompt_id"], member["slice"], strict=True))
    counts = votes["prompt_id"].map(slice_of).value_counts()
    order = pd.DataFrame({"node_id": sorted(member["slice"].unique())})
    order["votes"] = order["node_id"].map(counts).fillna(0).astype(int)
    order = order.sort_values(["votes", "node_id"], ascending=[False, True]).reset_index(drop=True)
    return votes, slices.slice_cells(votes, slice_of, order["node_id"].tolist()), order


@pytest.fixture(scope="module")
def db(bundled_db: Path) -> Path:
    return bundled_db


def test_rank_spread_and_p_top_columns(db: Path, monkeypatch) -> None:
    at = open_page(db, monkeypatch, dataset="llmfao")
    shown = table_with(at, "rank_ub", "p_top", "rank_low", "rank_high")
    votes, _, _ = reference(db, "llmfao")
    expected = slices.spread_leaderboard(votes, rounds=100, seed=0, ci="auto")
    pd.testing.assert_frame_equal(
        shown[["model", "rank_low", "rank_high", "p_top"]].reset_index(drop=True),
        expected[["model", "rank_low", "rank_high", "p_top"]],
        check_dtype=False,
    )
    assert shown["p_top"].sum() == pytest.approx(1.0)
    assert (shown["rank_low"] <= shown["rank_high"]).all()
    labels = [b.label for b in at.get("download_button")]
    assert "Leaderboard CSV" in labels and any(lbl.startswith("The ") for lbl in labels)


def test_slice_weights_from_url_reweight_and_rerank(db: Path, monkeypatch) -> None:
    votes, cells, order = reference(db, "llmfao")
    ids = order["node_id"].tolist()
    weights = {ids[0]: 10.0, ids[1]: 10.0, ids[2]: 80.0}
    at = open_page(db, monkeypatch, dataset="llmfao", w=slices.encode_weights(weights))
    assert [s.value for s in at.slider][:3] == [10.0, 10.0, 80.0]
    shown = table_with(at, "rank_change", "rank_before", "p_top")
    board = slices.weighted_leaderboard(cells, [weights[i] for i in ids], rounds=100, seed=0)
    as_voted = slices.weighted_ratings(cells, cells.votes)
    expected = slices.rank_changes(board.table, as_voted)
    pd.testing.assert_frame_equal(
        shown[["rank", "model", "rating", "lower", "upper", "rank_change"]].reset_index(drop=True),
        expected[["rank", "model", "rating", "lower", "upper", "rank_change"]],
        check_dtype=False,
    )
    assert (shown["rank_change"] != 0).any()  # LLMFAO's ranking moves when the smallest slice weighs 80%
    assert at.query_params["w"] == slices.encode_weights(weights)

    # Presets: 'Equal' writes its mix to the URL; 'As voted' drops the weighting and the table.
    at.button(key="preset-equal").click()
    rerun(at)
    equal = slices.preset_weights(order.assign(keywords=[[]] * 3, description=""), "equal")
    assert [s.value for s in at.slider][:3] == [equal[i] for i in ids]
    assert at.query_params["w"] == slices.encode_weights(equal)
    at.button(key="preset-as voted").click()
    rerun(at)
    assert "w" not in at.query_params and not has_table(at, "rank_change", "rank_before")

    # A slider move re-weights and goes to the URL.
    at.slider[0].set_value(5.0)
    rerun(at)
    assert at.query_params["w"].startswith(f"{ids[0]}:5,")
    assert has_table(at, "rank_change", "rank_before")


def test_thin_slices_are_greyed_and_warned(db: Path, monkeypatch) -> None:
    """Inside the PandaLM top-level node with the most children, most children are thin;
    weighting one up warns and widens the intervals."""
    with duckdb.connect(str(db), read_only=True) as con:
        tree_id, node = con.execute(
            """
            SELECT n.tree_id, n.node_id FROM nodes n JOIN trees t USING (tree_id)
            JOIN nodes c ON c.tree_id = n.tree_id AND c.parent_id = n.node_id
            WHERE t.dataset = 'pandalm' AND n.parent_id = 0
            GROUP BY ALL ORDER BY count(*) DESC, n.node_id LIMIT 1
            """
        ).fetchone()
    _, cells, order = reference(db, "pandalm", node)
    thin = order.loc[order["votes"] < slices.THIN_VOTES, "node_id"].tolist()
    assert thin, "a PandaLM node with children under 200 votes"
    weights = {int(i): 1.0 for i in order["node_id"]} | {int(thin[0]): 60.0}
    query = {"tree": tree_id, "node": str(node), "w": slices.encode_weights(weights)}
    at = open_page(db, monkeypatch, dataset="pandalm", **query)
    sliders = [s for s in at.slider if "votes" in s.label]
    assert len(sliders) == len(order)
    grey = [s.label for s in sliders if s.label.startswith(":gray[")]
    assert len(grey) == len(thin) and all("thin" in g for g in grey)
    assert any("thin slice" in w.value for w in at.warning)
    # The thin slice now dominates: intervals are wider than the unweighted leaderboard's.
    weighted = table_with(at, "rank_change", "rank_before")
    plain = table_with(at, "rank_ub", "p_top", "rank_low", "rank_high")
    width = lambda t: (t["upper"] - t["lower"]).median()  # noqa: E731
    assert width(weighted) > width(plain)


def test_drill_down_model_opponent_battles(db: Path, monkeypatch) -> None:
    votes, _, _ = reference(db, "llmfao")
    record = slices.model_record(votes, "GPT 4")
    opponent = record["opponent"].iloc[1]
    at = open_page(db, monkeypatch, dataset="llmfao", model="GPT 4", opponent=opponent)
    shown = table_with(at, "opponent", "win_rate", "win_lower")
    pd.testing.assert_frame_equal(shown.reset_index(drop=True), record, check_dtype=False)
    assert at.query_params["model"] == "GPT 4" and at.query_params["opponent"] == opponent
    battles = table_with(at, "prompt", "response_a", "response_b", "outcome")
    ids = slices.pair_battle_ids(votes, "GPT 4", opponent)
    assert len(battles) == min(len(ids), PAIR_BATTLES_SHOWN)
    assert set(battles["battle_id"]) <= set(ids)
    assert set(zip(battles["model_a"], battles["model_b"], strict=True)) <= {
        ("GPT 4", opponent),
        (opponent, "GPT 4"),
    }
    row = record.set_index("opponent").loc[opponent]
    if len(ids) <= PAIR_BATTLES_SHOWN:
        assert (battles["outcome"] == "won").sum() == row["wins"]
    assert battles["prompt"].str.len().gt(0).all()
    # Untrusted prompt text is only in the dataframe, never in markdown.
    sample = battles["prompt"].iloc[0][:40]
    assert not any(sample in m.value for m in at.markdown)
    # Long answers are cut in the table; selecting a vote shows it in full, as plain text.
    with duckdb.connect(str(db), read_only=True) as con:
        full = evidence_votes(con, "llmfao", battles["battle_id"].tolist()).set_index("battle_id")
    for column in ("prompt", "response_a", "response_b"):
        cells, texts = battles[column], full.loc[battles["battle_id"], column].to_numpy()
        assert cells.str.len().le(widgets.TEXT_SHOWN).all()
        assert all(
            c == t or (c.endswith("…") and t.startswith(c[:-1])) for c, t in zip(cells, texts, strict=True)
        )
    longest = int(full.loc[battles["battle_id"], "response_a"].str.len().to_numpy().argmax())
    assert (
        len(full["response_a"].iloc[0])
        and len(full.loc[battles["battle_id"].iloc[longest], "response_a"]) > widgets.TEXT_SHOWN
    )
    at.session_state["pair-battles"] = {"selection": {"rows": [longest], "columns": []}}
    rerun(at)
    vote = full.loc[battles["battle_id"].iloc[longest]]
    got = [c.value for c in at.code][-3:]  # st.code trims surrounding whitespace
    assert got == [vote[c].strip() for c in ("prompt", "response_a", "response_b")]

    # Picking another model updates the record and the URL; a stale opponent falls back.
    box = at.selectbox(key="_shared_model")
    other = [m for m in box.options if m != "GPT 4"][0]
    box.set_value(other)
    rerun(at)
    assert at.query_params["model"] == other
    shown = table_with(at, "opponent", "win_rate", "win_lower")
    pd.testing.assert_frame_equal(
        shown.reset_index(drop=True), slices.model_record(votes, other), check_dtype=False
    )


HOSTILE = "<img src=x onerror=alert(1)> **bold** [x](javascript:alert(1))"


def test_untrusted_names_stay_text_in_the_drill_down(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "hostile.duckdb"
    batch = pairwise_batch(12, models=(HOSTILE, "gpt-4o", "claude"), prompt='=HYPERLINK("http://x") {i}')
    load(db, "hostile", [batch])
    at = open_page(db, monkeypatch, dataset="hostile", model=HOSTILE, opponent="gpt-4o")
    assert at.query_params["model"] == HOSTILE
    record = table_with(at, "opponent", "win_rate", "win_lower")
    assert set(record["opponent"]) == {"gpt-4o", "claude"}
    battles = table_with(at, "prompt", "response_a", "response_b", "outcome")
    assert HOSTILE in set(battles["model_a"]) | set(battles["model_b"])  # shown as data
    assert battles["prompt"].str.startswith("=HYPERLINK").all()  # raw in the table, neutralised in CSV
    captions = [c.value for c in at.caption]
    named = [c for c in captions if "record against" in c or "votes between" in c]
    assert len(named) == 2 and all(widgets.md_escape(HOSTILE) in c for c in named)
    for element in [*at.markdown, *at.caption]:
        assert not element.proto.allow_html
