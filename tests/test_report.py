"""Report export (pipelines.report, ``arenatree report``): content equals the pipelines' numbers,
every format is written and opens, and untrusted text stays inert in each of them.

One module database: 'arena' (the Leaderboard page tests' arena with its tree: four models of
known strength, style that differs by model) and 'hostile' (a model named like a spreadsheet
formula, prompts carrying a <script> tag, a voter who always picks the left answer so the voter
audit flags rows and shows example votes), plus one real-data report on the bundled database.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import shlex
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from helpers import battles_frame, load, run_cli
from test_leaderboard_page import build_arena

from pipelines import store
from pipelines.ingest.base import Batch
from pipelines.leaderboards import build_leaderboard
from pipelines.report import ReportRequest, build_report, format_for, write_report
from pipelines.report.content import PAGE_ROWS, Report, Section
from pipelines.report.export import report_bytes
from pipelines.report.html import render_html
from pipelines.report.markdown import md_escape, render_markdown, write_markdown
from pipelines.report.pdf import write_pdf
from pipelines.report.tables import csv_bytes, table_files
from pipelines.tree.build import build_tree

EVIL_PROMPT = "<script>alert(1)</script>"
FORMULA_MODEL = "=cmd|'/c calc'!A1"
HOSTILE_MODELS = (FORMULA_MODEL, "gpt-4o", "claude")


def hostile_batch(n: int = 240) -> Batch:
    df = battles_frame(n, models=HOSTILE_MODELS, judges=(("lefty", "human"), ("voter-2", "human")))
    topics = ["sorting a list in Python", "baking bread", "a poem about rain", "the SQL join"]
    df["prompt_text"] = [f"{EVIL_PROMPT} Question {i % 24} about {topics[i % 4]}." for i in range(n)]
    df.loc[df["judge"] == "lefty", "winner"] = "model_a"  # a position-biased voter: flagged
    return Batch(kind="pairwise", format="test", path=Path("hostile.jsonl"), rows_read=n, battles=df)


def build_report_db(db: Path) -> dict:
    """'arena' and 'hostile' datasets, each with an offline tree; returns their tree ids."""
    arena_tree = build_arena(db)
    load(db, "hostile", [hostile_batch()])
    hostile_tree = build_tree("hostile", db=db, min_size=3)["tree_id"]
    return {"db": db, "arena": arena_tree, "hostile": hostile_tree}


@pytest.fixture(scope="module")
def report_db(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return build_report_db(tmp_path_factory.mktemp("report") / "arenatree.duckdb")


@pytest.fixture(scope="module")
def hostile_report(report_db):
    with store.reader(report_db["db"]) as con:
        return build_report(con, ReportRequest("hostile", rounds=20))


@pytest.fixture(scope="module")
def arena_report(report_db):
    with store.reader(report_db["db"]) as con:
        return build_report(con, ReportRequest("arena", rounds=30, seed=3))


@pytest.mark.slow
def test_numbers_equal_the_leaderboard_pipeline(report_db, arena_report):
    tables = arena_report.tables()
    with store.reader(report_db["db"]) as con:
        plain = build_leaderboard(con, "arena", rounds=30, seed=3).table
        styled = build_leaderboard(con, "arena", style=True, rounds=30, seed=3)
    cols = ["rank_ub", "model", "rating", "lower", "upper", "battles"]
    spread = ["rank_low", "rank_high", "p_top"]  # the rank range and P(#1)
    pd.testing.assert_frame_equal(tables["leaderboard"][cols + spread], plain[cols + spread])
    pd.testing.assert_frame_equal(tables["style_leaderboard"][cols], styled.table[cols])
    pd.testing.assert_frame_equal(tables["style_coefficients"], styled.coefficients)
    assert list(tables["weaknesses_1"]["model"].unique()) == [plain["model"].iloc[0]]  # default: top 2
    assert list(tables["weaknesses_2"]["model"].unique()) in ([], [plain["model"].iloc[1]])
    params = dict(zip(tables["parameters"]["parameter"], tables["parameters"]["value"], strict=True))
    assert (
        params["bootstrap_rounds"] == "30"
        and params["seed"] == "3"
        and params["tree_id"] == report_db["arena"]
    )
    assert params["audit_source"] == "computed for this report"
    assert [s.key for s in arena_report.sections] == list(ReportRequest("arena").sections)


def test_node_scope_restricts_and_says_so(report_db):
    with store.reader(report_db["db"]) as con:
        nodes = con.execute(
            "SELECT node_id, path FROM nodes WHERE tree_id = ? AND depth = 1 ORDER BY size DESC",
            [report_db["arena"]],
        ).fetchall()
        node, path = nodes[0]
        req = ReportRequest("arena", sections=("leaderboard", "tree", "weaknesses"), node=node, rounds=20)
        rep = build_report(con, req)
        expected = build_leaderboard(con, "arena", node=node, rounds=20).table
        inside = {
            r[0]
            for r in con.execute(
                "SELECT node_id FROM nodes WHERE tree_id = ? AND (path = ? OR starts_with(path, ? || '.'))",
                [report_db["arena"], path, path],
            ).fetchall()
        }
    tables = rep.tables()
    assert tables["leaderboard"]["battles"].tolist() == expected["battles"].tolist()
    assert tables["leaderboard"]["rating"].tolist() == expected["rating"].tolist()
    texts = " ".join(b.text for s in rep.sections for b in s.blocks)
    assert f"node {node} (" in texts and f"node {node} (" in rep.subtitle
    for name in ("weaknesses_1", "weaknesses_2"):
        assert set(tables[name]["node_id"]) <= inside
    assert set(tables["tree_nodes"]["node_id"]) <= inside - {node}


def test_html_is_self_contained_and_inert(hostile_report, tmp_path):
    page = render_html(hostile_report)
    assert EVIL_PROMPT not in page and "alert(1)" in page  # the prompt is there, escaped
    assert html.escape(EVIL_PROMPT) in page
    assert html.escape(FORMULA_MODEL) in page
    assert not re.search(r"<(script|link|img|iframe)[^>]*(src|href)\s*=\s*[\"']?(https?:)?//", page, re.I)
    assert page.count("plotly.js v") == 1  # the library's banner: inlined exactly once
    assert page.count('class="plotly-graph-div"') == len(hostile_report.figures()) >= 2
    assert all(f'href="#sec-{s.key}"' in page for s in hostile_report.sections)  # table of contents
    out = tmp_path / "r.html"
    assert write_report(hostile_report, out) == [out] and out.read_text(encoding="utf-8") == page


def test_audit_evidence_with_prompt_text(hostile_report):
    tables = hostile_report.tables()
    examples = [t for name, t in tables.items() if name.endswith("_examples")]
    assert examples, "the left-clicking voter should be flagged with example votes"
    assert examples[0]["prompt"].str.startswith(EVIL_PROMPT).all()
    assert any("lefty" in set(t.get("judge", pd.Series(dtype=str))) for t in tables.values())


def test_audit_scatter_plots_reach_the_report(hostile_report):
    """The report draws every kind of finding plot the dashboard draws (same code), including the
    per-voter scatter where the left-clicking voter is the flagged point."""
    flagged = [
        trace
        for name, fig in hostile_report.figures().items()
        if name.startswith("audit_")
        for trace in fig.data
        if trace.type == "scatter" and trace.name == "flagged"
    ]
    assert any("lefty" in list(t.hovertext) for t in flagged)


def test_pages_cut_long_tables_but_never_a_leaderboard():
    """A page shows the first PAGE_ROWS rows of a long table and says so; a leaderboard shows
    every model; the CSV export always holds every row."""
    long = pd.DataFrame({"model": [f"m{i:03d}" for i in range(PAGE_ROWS + 20)], "rating": 1.0})
    s = Section("x", "X")
    s.table("voters", long)
    s.table("leaderboard", long, rows=None)
    rep = Report("t", "scope", [s], {}, "2026-01-01")
    page = render_html(rep)
    cut = f"First {PAGE_ROWS} of {len(long):,} rows"
    assert page.count(cut) == 1 and page.count(f"<td>m{len(long) - 1:03d}</td>") == 1
    markdown = render_markdown(rep, folder="f", fmt="svg")
    assert markdown.count(cut) == 1 and markdown.count(f"| m{len(long) - 1:03d} |") == 1
    assert all(
        len(list(csv.reader(io.StringIO(b.decode())))) == len(long) + 1
        for b in table_files(rep, "csv").values()
    )


def test_csv_and_parquet_every_table_neutralised(hostile_report, tmp_path):
    files = table_files(hostile_report, "csv")
    assert set(files) == {f"{n}.csv" for n in hostile_report.tables()}
    board = list(csv.DictReader(io.StringIO(files["leaderboard.csv"].decode())))
    assert "'" + FORMULA_MODEL in [r["model"] for r in board]
    for content in files.values():
        for row in csv.reader(io.StringIO(content.decode())):
            for cell in row:
                if cell[:1] in ("=", "+", "-", "@"):
                    float(cell)  # only numbers may start like a formula
    assert csv_bytes(pd.DataFrame({"=x": ["@SUM(A1)", "+1", "ok"]})).decode().splitlines() == [
        "'=x", "'@SUM(A1)", "'+1", "ok"
    ]  # fmt: skip
    out = tmp_path / "tables.parquet.zip"
    assert format_for(out) == "parquet"
    write_report(hostile_report, out)
    with zipfile.ZipFile(out) as z:
        assert set(z.namelist()) == {f"{n}.parquet" for n in hostile_report.tables()}
        back = pd.read_parquet(io.BytesIO(z.read("leaderboard.parquet")))
    assert back["model"].tolist() == hostile_report.tables()["leaderboard"]["model"].tolist()
    folder = tmp_path / "csv"
    written = write_report(hostile_report, folder, "csv")
    assert sorted(p.name for p in written) == sorted(files) and all(p.exists() for p in written)


@pytest.mark.slow
def test_markdown_escaped_with_figures_on_disk(hostile_report, tmp_path):
    out = tmp_path / "report.md"
    paths = write_markdown(hostile_report, out)
    text = out.read_text(encoding="utf-8")
    assert EVIL_PROMPT not in text and "&lt;script&gt;alert\\(1\\)&lt;/script&gt;" in text
    prose = re.sub(r"\n```.*?\n```", "", text, flags=re.S)  # the fenced reproduce command is inert
    assert FORMULA_MODEL not in prose and md_escape(FORMULA_MODEL) in prose  # its pipe cannot split a cell
    assert shlex.quote(f"{FORMULA_MODEL},claude") in text  # the command is shell-quoted
    assert md_escape("# [x](y) `z` <b>") == r"\# \[x\]\(y\) \`z\` &lt;b&gt;"
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(figures) == len(hostile_report.figures()) >= 2
    for ref in figures:
        image = out.parent / ref
        assert image.exists() and image.read_bytes().lstrip().startswith(b"<svg")
    assert set(paths) == {out, *(out.parent / r for r in figures)}


@pytest.mark.slow
def test_pdf_opens_and_holds_the_figures(report_db, tmp_path):
    pypdf = pytest.importorskip("pypdf")
    with store.reader(report_db["db"]) as con:
        rep = build_report(con, ReportRequest("hostile", sections=("leaderboard",), rounds=20))
    with_fig, without = tmp_path / "with.pdf", tmp_path / "without.pdf"
    write_pdf(rep, with_fig)
    rep.sections[0].blocks = [b for b in rep.sections[0].blocks if b.kind != "figure"]
    write_pdf(rep, without)
    for path in (with_fig, without):
        assert path.read_bytes().startswith(b"%PDF-")
    reader = pypdf.PdfReader(with_fig)
    assert len(reader.pages) >= 1
    text = "".join(p.extract_text() for p in reader.pages)
    plain = "".join(p.extract_text() for p in pypdf.PdfReader(without).pages)
    # each model is named in the table, and once more as a tick label of the drawn figure
    assert text.count("claude") == plain.count("claude") + 1
    assert "rating" in text.replace(plain, "") or text.count("rating") > plain.count("rating")


@pytest.mark.slow
def test_download_bytes_for_every_format(hostile_report):
    with zipfile.ZipFile(io.BytesIO(report_bytes(hostile_report, "md"))) as z:
        names = z.namelist()
    assert "report.md" in names and sum(n.endswith(".svg") for n in names) == len(hostile_report.figures())
    assert report_bytes(hostile_report, "html").startswith(b"<!DOCTYPE html>")


@pytest.mark.slow
def test_cli_writes_and_refuses_bad_input(report_db, tmp_path):
    db = report_db["db"]
    bad = run_cli("report", "--dataset", "arena", "--out", str(tmp_path / "x.docx"), db=db)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "x.docx" in bad.stderr
    missing = run_cli("report", "--dataset", "nope", "--out", str(tmp_path / "x.html"), db=db)
    assert missing.returncode == 2 and missing.stderr.strip().splitlines() == [
        "arenatree: error: no dataset 'nope'; see 'arenatree datasets'"
    ]
    section = run_cli("report", "--dataset", "arena", "--out", "x.html", "--sections", "nah", db=db)
    assert section.returncode == 2 and "unknown section 'nah'" in section.stderr
    alpha = run_cli("report", "--dataset", "arena", "--out", str(tmp_path / "a.html"), "--alpha", "2", db=db)
    assert alpha.returncode == 2 and alpha.stderr.strip().splitlines() == [
        "arenatree: error: need 0 < alpha < 1 and 0 < level < 1 (got 2.0, 0.95)"
    ]  # refused before any section is computed, and nothing written
    assert not (tmp_path / "a.html").exists()
    out = tmp_path / "board.html"
    ok = run_cli(
        "report", "--dataset", "hostile", "--out", str(out), "--sections", "leaderboard,methods",
        "--bootstrap", "20", "--judge-kind", "human", "--json", db=db,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["format"] == "html" and doc["files"] == [str(out)] and out.exists()
    assert doc["params"]["filters"]["judge_kind"] == "human"
    assert doc["params"]["sections"] == ["leaderboard", "methods"]
    assert "--judge-kind human" in out.read_text(encoding="utf-8")  # the command that reproduces it


def test_real_data_report(bundled_db, tmp_path):
    with store.reader(bundled_db) as con:
        rep = build_report(con, ReportRequest("llmfao"))
        board = build_leaderboard(con, "llmfao").table
    tables = rep.tables()
    assert tables["leaderboard"]["rating"].tolist() == board["rating"].tolist()
    assert rep.params["audit_source"].startswith("stored audit")  # `arenatree demo` stored it
    assert tables["imports"]["sha256"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert any(name.startswith("audit_") for name in tables)
    out = tmp_path / "llmfao.html"
    write_report(rep, out)
    assert out.stat().st_size > 3_000_000  # plotly.js inline plus the report


def test_vote_drop_and_joint_node_rank_sets_are_reported(report_db, arena_report):
    from pipelines.vote_drop import drop_sentence, leaderboard_drops

    with store.reader(report_db["db"]) as con:
        from pipelines.battles import load_battles

        votes = load_battles(con, "arena")
    texts = [b.text for s in arena_report.sections for b in s.blocks]
    for drop in leaderboard_drops(votes, 3):
        assert f"Vote-drop robustness: {drop_sentence(drop)}" in texts
    sets = arena_report.tables()["tree_rank_sets"]
    listed = set(arena_report.tables()["tree_nodes"]["node_id"])
    assert set(sets["node_id"]) <= listed and len(set(sets["node_id"])) >= 2
    assert (sets["set_low"] <= sets["node_set_low"]).all() and (
        sets["node_set_high"] <= sets["set_high"]
    ).all()
    assert any("no Bonferroni" in t and "set_low..set_high = the joint set" in t for t in texts)
