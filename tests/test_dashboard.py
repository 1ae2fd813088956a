"""Page tests: the dashboard run headless by Streamlit's AppTest against real DuckDB files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import load, open_app_page, pairwise_batch, results_batch
from streamlit.testing.v1 import AppTest

from pipelines import queries, store
from pipelines.ingest.base import Batch

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
EVIL = "<script>alert('xss')</script>"


def run_app(db: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """The dashboard's default page, run once against database ``db``."""
    monkeypatch.setenv("ARENATREE_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_overview_shows_datasets_and_counts(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load(db, "arena-votes", [pairwise_batch(8), pairwise_batch(4, start=8)])
    load(db, "math", [results_batch(5)])

    at = run_app(db, monkeypatch)

    assert at.title[0].value == "arenatree"
    assert metrics(at) == {
        "Datasets": "2",
        "Battles": "12",
        "Human votes": "12",
        "Prompts": "17",  # 12 vote prompts + 5 benchmark items
        "Per-instance results": "15",
    }
    datasets, import_log = (d.value for d in at.dataframe)
    rows = datasets.set_index("dataset")
    assert list(rows.index) == ["arena-votes", "math"]
    votes = rows.loc["arena-votes"]
    assert (votes["kind"], votes["battles"], votes["prompts"]) == ("pairwise", 12, 12)
    assert (votes["models"], votes["judges"], votes["human_votes"]) == (3, 2, 12)
    assert (votes["results"], votes["responses"], votes["imports"]) == (0, 24, 2)
    math = rows.loc["math"]
    assert (math["kind"], math["results"], math["models"], math["battles"]) == (
        "instances",
        15,
        3,
        0,
    )
    assert math["prompts"] == 5  # the items' text is stored once per item
    assert len(import_log) == 3
    assert sorted(import_log["added_battles"]) == [0, 4, 8]
    assert not at.info  # no empty-state hint once there is data


def test_overview_sees_a_newly_published_snapshot(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load(db, "arena-votes", [pairwise_batch(4)])
    at = run_app(db, monkeypatch)
    assert metrics(at)["Battles"] == "4"
    before = store.snapshot_version(db)

    load(db, "arena-votes", [pairwise_batch(6, start=4)])
    assert store.snapshot_version(db) != before
    at.run()
    assert metrics(at)["Battles"] == "10"


def test_empty_state_without_a_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "nothing-here.duckdb"
    at = run_app(db, monkeypatch)

    assert "No database yet" in at.info[0].value
    commands = [c.value for c in at.code]
    assert "arenatree ingest PATH --dataset NAME" in commands
    assert "make demo" in commands
    assert str(db) in [t.value for t in at.text]
    assert not at.dataframe and not at.metric
    assert not db.exists()  # looking must not create a database


def test_empty_state_with_an_empty_database(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with store.writer(db):
        pass
    at = run_app(db, monkeypatch)
    assert "no datasets yet" in at.info[0].value
    assert "arenatree ingest PATH --dataset NAME" in [c.value for c in at.code]


PAGES = ["views/overview.py", "views/leaderboard.py", "views/tree.py", "views/weaknesses.py",
         "views/compare.py", "views/audit.py", "views/reports.py"]  # fmt: skip


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("state", ["no database", "empty database"])
def test_every_page_guides_a_new_user(page: str, state: str, tmp_path: Path, monkeypatch) -> None:
    """Opened before anything is imported, every page says so and shows how to import (no
    traceback, no empty widgets), and looking never creates the database."""
    db = tmp_path / "arenatree.duckdb"
    if state == "empty database":
        with store.writer(db):
            pass
    at = open_app_page(db, monkeypatch, page)
    assert any(
        ("No database yet" if state == "no database" else "no datasets yet") in i.value for i in at.info
    )
    assert "arenatree ingest PATH --dataset NAME" in [c.value for c in at.code]
    assert not at.dataframe and not at.get("plotly_chart") and not at.error
    assert db.exists() == (state == "empty database")


def test_untrusted_text_is_never_rendered_as_html(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    evil_batch = pairwise_batch(3, prompt=EVIL + " {i}", path=f"{EVIL}.jsonl")
    load(db, EVIL, [evil_batch])

    at = run_app(db, monkeypatch)

    datasets, import_log = (d.value for d in at.dataframe)
    assert list(datasets["dataset"]) == [EVIL]  # shown, as plain data
    assert import_log["path"].str.contains("<script>").all()
    assert not at.get("html")  # no st.html anywhere
    for md in at.markdown:
        assert not md.proto.allow_html, md.value
        assert "<script>" not in md.value
    for element in (*at.caption, *at.title, *at.subheader):
        assert "<script>" not in element.value


def test_unreadable_database_shows_a_message_not_a_traceback(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with store.writer(db) as con:  # as if written by a newer arenatree
        store.run(con, "UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    monkeypatch.setenv("ARENATREE_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60).run()

    assert not at.exception
    assert "could not be read" in at.error[0].value
    assert "newer than this arenatree" in at.code[0].value


def test_summary_records_are_json_and_count_models_per_kind(db: Path) -> None:
    """The summary behind the Overview (and ``arenatree datasets --json``)."""
    prompts_only = Batch(
        kind="prompts",
        format="test",
        path=Path("answers.jsonl"),
        rows_read=3,
        responses=pd.DataFrame(
            {
                "line": [1, 2, 3],
                "prompt_text": ["Write a haiku.", "Write a haiku.", "Sort a list."],
                "model": ["m1", "m2", "m1"],
                "text": ["Autumn moon", "Old pond", "sorted(xs)"],
            }
        ),
        prompts=pd.DataFrame({"line": [1, 3], "text": ["Write a haiku.", "Sort a list."]}),
    )
    load(db, "answers", [prompts_only])
    load(db, "votes", [pairwise_batch(4, judges=(("gpt-4-judge", "llm"), ("alice", "human")))])
    load(db, "math", [results_batch(3, models=("a", "b"))])

    with store.reader(db) as con:
        records = queries.dataset_summary_records(con)
    assert json.loads(json.dumps(records)) == records
    by_name = {r["dataset"]: r for r in records}
    assert list(by_name) == ["answers", "math", "votes"]
    assert list(records[0]) == queries.SUMMARY_COLUMNS
    assert (by_name["answers"]["models"], by_name["answers"]["responses"]) == (2, 3)
    assert (by_name["math"]["models"], by_name["math"]["results"]) == (2, 6)
    votes = by_name["votes"]
    assert (votes["models"], votes["battles"], votes["judges"]) == (3, 4, 2)
    assert (votes["human_votes"], votes["llm_votes"]) == (2, 2)
    assert (votes["human_judges"], votes["llm_judges"]) == (1, 1)
    assert votes["first_vote"] == "2023-11-14T22:13:20"
    assert votes["last_vote"] == "2023-11-14T22:16:20"
    assert by_name["math"]["first_vote"] is None
    assert votes["last_import"] is not None and votes["imports"] == 1
