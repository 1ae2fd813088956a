"""Page tests of the Reports page (AppTest on the report tests' database): build a report for the
sidebar's dataset, scope and filters, and offer it in every format; untrusted text stays inert in
the files the download buttons serve."""

from __future__ import annotations

import html
import io
import zipfile

import pytest
from helpers import open_app_page
from test_report import EVIL_PROMPT, FORMULA_MODEL, build_report_db

from dashboard import data
from pipelines import store
from pipelines.leaderboards import build_leaderboard
from pipelines.report import SECTIONS

PAGE = "views/reports.py"
NO_FILTERS = {
    "judge_kind": None,
    "judge": None,
    "language": None,
    "since": None,
    "until": None,
    "exclude_ties": False,
    "dedup_prompts": False,
}


@pytest.fixture(scope="module")
def page_db(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return build_report_db(tmp_path_factory.mktemp("reports-page") / "arenatree.duckdb")


def downloads(at) -> list[str]:
    return [e.proto.label for e in at.get("download_button")]


@pytest.mark.slow
def test_build_and_download_every_format(page_db, monkeypatch):
    at = open_app_page(page_db["db"], monkeypatch, PAGE, dataset="hostile")
    assert downloads(at) == []  # nothing is built before the button is pressed
    at.button(key="report-build").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert downloads(at) == ["HTML", "Markdown (zip)", "PDF", "CSV tables (zip)", "Parquet tables (zip)"]
    key = data.report_key("hostile", NO_FILTERS, page_db["hostile"], data.ROOT, (), tuple(SECTIONS))
    report = data.cached_report(key)
    assert report is not None and [s.key for s in report.sections] == list(SECTIONS)
    assert f"{len(report.tables())} tables" in at.success[0].value
    with store.reader(page_db["db"]) as con:
        expected = build_leaderboard(con, "hostile").table
    assert report.tables()["leaderboard"]["rating"].tolist() == expected["rating"].tolist()
    page = data.report_file(key, "html").decode()
    assert EVIL_PROMPT not in page and html.escape(EVIL_PROMPT) in page
    with zipfile.ZipFile(io.BytesIO(data.report_file(key, "csv"))) as z:
        assert ("'" + FORMULA_MODEL).encode() in z.read("leaderboard.csv")
    at.run()  # a rerun with the same choices serves the built report at once
    assert not at.exception and len(downloads(at)) == 5
    assert "report-build" not in [b.key for b in at.button]


def test_scope_sections_and_filters_shape_the_report(page_db, monkeypatch):
    with store.reader(page_db["db"]) as con:
        node = con.execute(
            "SELECT node_id FROM nodes WHERE tree_id = ? AND depth = 1 ORDER BY size DESC LIMIT 1",
            [page_db["arena"]],
        ).fetchall()[0][0]
    at = open_app_page(
        page_db["db"],
        monkeypatch,
        PAGE,
        dataset="arena",
        tree=page_db["arena"],
        node=str(node),
        judge_kind="human",
    )
    assert any(f"Scope: node {node} of tree" in c.value for c in at.caption)
    at.multiselect(key="report-sections").set_value(["leaderboard", "methods"]).run()
    at.button(key="report-build").click().run()
    assert not at.exception, [e.value for e in at.exception]
    filters = dict(NO_FILTERS, judge_kind="human")
    key = data.report_key("arena", filters, page_db["arena"], node, (), ("leaderboard", "methods"))
    report = data.cached_report(key)
    assert report is not None and [s.key for s in report.sections] == ["leaderboard", "methods"]
    assert report.params["node"] == node and report.params["filters"]["judge_kind"] == "human"
    with store.reader(page_db["db"]) as con:
        from pipelines.battles import Filters

        expected = build_leaderboard(con, "arena", node=node, filters=Filters(judge_kind="human")).table
    assert report.tables()["leaderboard"]["battles"].tolist() == expected["battles"].tolist()


@pytest.mark.slow
def test_the_voter_audit_settings_carry_into_the_report(page_db, monkeypatch):
    """α and the fewest votes to flag a voter, as set on the Voter audit page (here: in the URL),
    are the report's audit settings: its audit flags what run_audit flags with them."""
    from pipelines.audit.run import run_audit

    at = open_app_page(page_db["db"], monkeypatch, PAGE, dataset="hostile", alpha="0.01", min_votes="1000")
    assert any("α = 0.01, voters with at least 1000 votes" in c.value for c in at.caption)
    at.multiselect(key="report-sections").set_value(["audit", "methods"]).run()
    at.button(key="report-build").click().run()
    assert not at.exception, [e.value for e in at.exception]
    key = data.report_key(
        "hostile", NO_FILTERS, page_db["hostile"], data.ROOT, (), ("audit", "methods"), 0.01, 1000
    )
    report = data.cached_report(key)
    assert (
        report is not None
        and report.params["audit_alpha"] == 0.01
        and report.params["audit_min_votes"] == 1000
    )
    with store.reader(page_db["db"]) as con:
        strict = run_audit(con, "hostile", tree_id=page_db["hostile"], alpha=0.01, min_votes=1000)
        default = run_audit(con, "hostile", tree_id=page_db["hostile"])
    assert sum(f.flagged for f in strict.findings) < sum(f.flagged for f in default.findings)
    texts = {b.text for s in report.sections for b in s.blocks if b.kind == "text"}
    assert {f.summary for f in strict.findings} <= texts  # the strict audit's findings, word for word
    assert not {f.summary for f in default.findings} <= texts
    code = [b.text for s in report.sections for b in s.blocks if b.kind == "code"]
    assert any("--alpha 0.01 --min-votes 1000" in c for c in code)  # the command reproduces them
