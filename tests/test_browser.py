"""Browser test: a real ``streamlit run`` server driven by real Chromium through Playwright.

Chromium is required: when ``/usr/bin/chromium`` is missing the test fails (it is never
skipped), so a CI machine without a browser cannot pass silently.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from helpers import load, pairwise_batch, results_batch, topic_batch
from playwright.sync_api import Browser, Page, expect, sync_playwright

from dashboard.widgets import node_label
from pipelines import store
from pipelines.report.static import CHROMIUM_OFFLINE_FLAGS
from pipelines.tree import read as tree_read
from pipelines.tree.build import build_tree

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = list(CHROMIUM_OFFLINE_FLAGS)
EVIL_DATASET = "<img src=x onerror=alert(1)>"
STARTUP_TIMEOUT = 60.0

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    """Poll Streamlit's health endpoint until it answers 'ok'; fail with the server log."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"streamlit not healthy after {STARTUP_TIMEOUT:.0f} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("browser") / "arenatree.duckdb"
    load(db, "arena-votes", [pairwise_batch(30)])
    load(db, "math", [results_batch(7)])
    load(db, EVIL_DATASET, [pairwise_batch(2, path="evil.jsonl")])
    return db


@contextmanager
def streamlit_server(db: Path, log: Path) -> Iterator[str]:
    """``streamlit run dashboard/app.py`` on ``db`` and a free port, from the project root
    (so ``.streamlit/config.toml`` applies). Yields the URL; terminates (then kills) the
    server on exit."""
    port = free_port()
    env = dict(os.environ, ARENATREE_DB=str(db))
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "dashboard/app.py",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
    ]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def server(database: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard served on the module's database for the module's tests."""
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    with streamlit_server(database, log) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: browser tests need it (Debian: apt-get install chromium)"
        )
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@contextmanager
def watched_page(browser: Browser, **options: Any) -> Iterator[tuple[Page, list[str], list[str]]]:
    """A page in its own browser context (``options``: viewport, accept_downloads...) with the
    messages of script dialogs (untrusted text that ran as script) and the JavaScript errors it
    records; the context is closed afterwards."""
    context = browser.new_context(**options)
    page = context.new_page()
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield page, dialogs, errors
    finally:
        context.close()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    p = context.new_page()
    try:
        yield p
    finally:
        context.close()


def metric(page: Page, label: str):
    """The value element of the ``st.metric`` labelled ``label``."""
    box = page.get_by_test_id("stMetric").filter(has_text=label)
    return box.get_by_test_id("stMetricValue")


def test_overview_renders_in_chromium(server: str, page: Page) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto(server)

    expect(page.get_by_role("heading", name="arenatree")).to_be_visible(timeout=30_000)
    expect(metric(page, "Datasets")).to_have_text("3", timeout=30_000)
    expect(metric(page, "Battles")).to_have_text("32")
    expect(metric(page, "Per-instance results")).to_have_text("21")
    tables = page.get_by_test_id("stDataFrame")
    expect(tables).to_have_count(2)
    # The grid draws on a canvas; its accessible table carries the cell text.
    expect(tables.first).to_contain_text("arena-votes")
    expect(tables.first).to_contain_text("math")
    expect(tables.first).to_contain_text(EVIL_DATASET)  # shown as text ...
    assert page.locator("img[src='x']").count() == 0  # ... never as an element

    page.wait_for_timeout(1000)  # let the grids finish painting before the screenshot
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)
    assert dialogs == [], f"untrusted text ran as script: {dialogs}"
    assert errors == [], f"JavaScript errors on the page: {errors}"


def test_empty_state_in_chromium(tmp_path: Path, page: Page) -> None:
    """A server on a missing database tells a new user how to import."""
    with streamlit_server(tmp_path / "missing.duckdb", tmp_path / "server.log") as url:
        page.goto(url)
        alert = page.get_by_test_id("stAlert")
        expect(alert).to_contain_text("No database yet", timeout=30_000)
        expect(page.get_by_text("arenatree ingest PATH --dataset NAME")).to_be_visible()
        expect(page.get_by_text("make demo", exact=True)).to_be_visible()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "overview-empty.png"), full_page=True)


@pytest.fixture(scope="module")
def tree_database(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A database with dataset 'topics' (72 varied prompts, some hostile) and its built tree:
    ``db``, ``tree_id`` and ``nodes`` (the stored nodes frame)."""
    db = tmp_path_factory.mktemp("browser-tree") / "arenatree.duckdb"
    load(db, "topics", [topic_batch(72)])
    built = build_tree("topics", db=db, min_size=4)
    with store.reader(db) as con:
        nodes = tree_read.tree_nodes(con, built["tree_id"])
    return {"db": db, "tree_id": built["tree_id"], "nodes": nodes}


@pytest.fixture(scope="module")
def tree_server(tree_database: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("streamlit-tree") / "server.log"
    with streamlit_server(tree_database["db"], log) as url:
        yield url


def test_tree_page_in_chromium(tree_server: str, tree_database: dict, browser: Browser) -> None:
    """Open the tree page from the navigation, click a tile, search a node, share its URL."""
    nodes = tree_database["nodes"]
    with watched_page(browser, viewport={"width": 1600, "height": 1900}) as (page, dialogs, errors):
        page.goto(tree_server)
        page.get_by_test_id("stSidebarNav").get_by_text("Capability tree").click(timeout=30_000)
        expect(page.get_by_role("heading", name="Capability tree")).to_be_visible(timeout=30_000)
        expect(metric(page, "Nodes")).to_have_text(str(len(nodes)), timeout=30_000)
        tiles = page.locator(".js-plotly-plot g.slice")
        expect(tiles.first).to_be_visible(timeout=30_000)
        assert tiles.count() >= len(nodes[nodes["depth"] <= 3])  # the whole (small) tree is drawn
        title = page.locator(".st-key-node-panel h3")
        expect(title).to_have_text("All items")

        # Click the tile of a first-level leaf: the panel opens it and the URL names it.
        labels = [node_label(d) for d in nodes["description"]]
        unique = nodes.assign(label=labels).drop_duplicates("label", keep=False)
        leaf = unique[(unique["depth"] == 1) & (unique["n_children"] == 0)].iloc[0]
        label = leaf["label"]
        tiles.filter(has_text=label).first.click()
        expect(title).to_have_text(label, timeout=30_000)
        expect(page).to_have_url(re.compile(rf"node={leaf['node_id']}(&|$)"))

        # Search by prompt text and pick the first matching node.
        search = page.get_by_label("Find a capability")
        search.fill("limerick")
        search.press("Enter")
        picker = page.get_by_test_id("stSelectbox").filter(has_text="Matching nodes")
        picker.click(timeout=30_000)
        page.get_by_role("option").first.click()
        grids = page.get_by_test_id("stDataFrame")
        expect(grids.last).to_contain_text("<script>alert('xss')</script>", timeout=30_000)  # as text
        chosen = int(re.search(r"node=(\d+)", page.url).group(1))
        expect(title).to_have_text(node_label(nodes.loc[chosen, "description"]))
        panel = page.locator(".st-key-node-panel")
        expect(panel).to_contain_text(nodes.loc[chosen, "description"])
        with store.reader(tree_database["db"]) as con:
            example = tree_read.central_prompt(con, tree_database["tree_id"], chosen)
        expect(panel).to_contain_text(" ".join(example.split())[:60])  # hostile text, as text
        page.wait_for_timeout(1500)  # let grids and the treemap finish painting
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "tree.png"), full_page=True)

        # Hostile prompt text never became markup.
        assert (
            page.locator("img[src*='evil.example'], a[href*='evil.example'], script:text('xss')").count() == 0
        )
        assert dialogs == [], f"untrusted text ran as script: {dialogs}"
        assert errors == [], f"JavaScript errors on the page: {errors}"

        # The URL is the view: a fresh session opened with it shows the same node.
        shared = page.url
        other = page.context.new_page()
        other.goto(shared)
        expect(other.locator(".st-key-node-panel h3")).to_have_text(
            node_label(nodes.loc[chosen, "description"]), timeout=30_000
        )


@pytest.fixture(scope="module")
def arena_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard on the Leaderboard page tests' arena (votes, tree and node scores)."""
    from test_leaderboard_page import ARENA, build_arena

    from pipelines.scores import compute_node_scores

    db = tmp_path_factory.mktemp("browser-arena") / "arenatree.duckdb"
    compute_node_scores(db, ARENA, build_arena(db))
    log = tmp_path_factory.mktemp("streamlit-arena") / "server.log"
    with streamlit_server(db, log) as url:
        yield url


def test_leaderboard_and_weaknesses_pages_in_chromium(arena_server: str, browser: Browser) -> None:
    """Leaderboard: table, interval chart, style control; Weaknesses: profile and evidence."""
    with watched_page(browser, viewport={"width": 1600, "height": 1800}) as (page, dialogs, errors):
        page.goto(f"{arena_server}/?dataset=arena")
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Leaderboard").click(timeout=30_000)
        expect(page.get_by_role("heading", name="Leaderboard")).to_be_visible(timeout=30_000)
        expect(metric(page, "Votes")).to_have_text("864", timeout=30_000)
        grids = page.get_by_test_id("stDataFrame")
        expect(grids.first).to_contain_text("alpha", timeout=30_000)
        # The interval chart: four points with whiskers, and the two heatmaps.
        points = page.locator(".js-plotly-plot .scatterlayer .point")
        expect(points).to_have_count(4, timeout=30_000)
        expect(page.locator(".js-plotly-plot .heatmaplayer").first).to_be_attached()
        page.get_by_text("Style control", exact=True).click()
        expect(page).to_have_url(re.compile(r"style=1"), timeout=30_000)
        expect(page.get_by_role("heading", name="Style control")).to_be_visible(timeout=30_000)
        coefs = grids.filter(has_text="headers")
        expect(coefs).to_have_count(1, timeout=30_000)
        page.wait_for_timeout(1000)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "leaderboard.png"), full_page=True)

        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Weaknesses").click()
        expect(page.get_by_role("heading", name="Weaknesses", exact=False).first).to_be_visible(
            timeout=30_000
        )
        expect(page.get_by_role("heading", name=re.compile(r"Weaknesses \(\d+\)"))).to_be_visible(
            timeout=30_000
        )
        evidence = page.locator("[class*='st-key-evidence-']")
        expect(evidence).to_be_visible(timeout=30_000)
        expect(evidence.get_by_test_id("stDataFrame")).to_contain_text("lost", timeout=30_000)
        expect(page).to_have_url(re.compile(r"model=alpha"))
        page.get_by_role("tab", name="Opponent-adjusted").click()
        expect(
            page.get_by_role("heading", name=re.compile(r"Significantly weaker nodes \(\d+\)"))
        ).to_be_visible()
        page.wait_for_timeout(1000)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "weaknesses.png"), full_page=True)
        assert page.locator("script:text('xss'), img[src*='evil.example']").count() == 0
        assert dialogs == [], f"untrusted text ran as script: {dialogs}"
        assert errors == [], f"JavaScript errors on the page: {errors}"


def test_voter_audit_page_in_chromium(arena_server: str, browser: Browser) -> None:
    """Voter audit: every finding is listed; one opens (from the picker, and again from its shared
    link) with its plot; the LLM judge that favours one model is flagged, and a drill-down shows
    the votes behind a row with hostile prompts as inert text."""
    with watched_page(browser, viewport={"width": 1600, "height": 2400}) as (page, dialogs, errors):
        page.goto(f"{arena_server}/?dataset=arena")
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Voter audit").click(timeout=30_000)
        expect(page.get_by_role("heading", name="Voter audit")).to_be_visible(timeout=60_000)
        overview = page.get_by_test_id("stDataFrame").filter(has_text="Position bias").first
        expect(overview).to_contain_text("Voters concentrated on one model", timeout=60_000)
        # one finding at a time: open the fans finding from the picker; the URL keeps it
        page.get_by_test_id("stSelectbox").filter(has_text="Finding").first.click()
        page.get_by_role("option", name=re.compile(r"^Voters concentrated on one model")).click()
        heading = page.get_by_role("heading", name="Voters concentrated on one model")
        expect(heading).to_be_visible(timeout=60_000)
        expect(page).to_have_url(re.compile(r"finding=concentrated_voters"), timeout=30_000)
        page.reload()  # a shared link opens the same finding
        expect(heading).to_be_visible(timeout=60_000)
        expect(page.locator(".js-plotly-plot")).to_have_count(1, timeout=30_000)
        expect(page.get_by_test_id("stDataFrame").filter(has_text="llm-judge").first).to_be_attached()
        picker = page.get_by_test_id("stSelectbox").filter(has_text="Read the votes behind").first
        picker.scroll_into_view_if_needed()
        picker.click()
        page.get_by_role("option").nth(1).click()
        evidence = page.get_by_test_id("stDataFrame").filter(has_text="Response A (left)")
        expect(evidence.first).to_be_visible(timeout=30_000)
        page.wait_for_timeout(1000)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "voter-audit.png"), full_page=True)
        assert page.locator("script:text('xss'), img[src*='evil.example']").count() == 0
        assert dialogs == [], f"untrusted text ran as script: {dialogs}"
        assert errors == [], f"JavaScript errors on the page: {errors}"


def test_reports_page_downloads_every_format_in_chromium(arena_server: str, browser: Browser) -> None:
    """Reports: build the arena's report, download each format through the browser and open it."""
    import io
    import zipfile

    from pypdf import PdfReader

    viewport = {"width": 1600, "height": 1400}
    with watched_page(browser, viewport=viewport, accept_downloads=True) as (page, dialogs, errors):
        page.goto(f"{arena_server}/?dataset=arena")
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Reports").click(timeout=30_000)
        expect(page.get_by_role("heading", name="Reports")).to_be_visible(timeout=30_000)
        page.get_by_role("button", name="Build report").click()
        expect(page.get_by_text("Report ready", exact=False)).to_be_visible(timeout=180_000)
        got: dict[str, bytes] = {}
        for label in ("HTML", "Markdown (zip)", "PDF", "CSV tables (zip)", "Parquet tables (zip)"):
            with page.expect_download(timeout=180_000) as download:
                page.get_by_role("button", name=label, exact=True).click()
            got[label] = Path(download.value.path()).read_bytes()
        html = got["HTML"].decode()
        assert "<script>alert" not in html and "&lt;script&gt;" in html  # the evil prompts, escaped
        assert "Plotly.newPlot" in html and 'src="http' not in html
        with zipfile.ZipFile(io.BytesIO(got["Markdown (zip)"])) as md:
            names = md.namelist()
            assert any(n.endswith(".md") for n in names) and any(n.endswith(".svg") for n in names)
        pdf = PdfReader(io.BytesIO(got["PDF"]))
        assert got["PDF"].startswith(b"%PDF") and len(pdf.pages) >= 1
        assert "alpha" in "".join(p.extract_text() for p in pdf.pages)
        for label, ext in (("CSV tables (zip)", ".csv"), ("Parquet tables (zip)", ".parquet")):
            with zipfile.ZipFile(io.BytesIO(got[label])) as z:
                assert z.namelist() and all(n.endswith(ext) for n in z.namelist())
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "reports.png"), full_page=True)
        assert dialogs == []


def test_filters_and_models_carry_across_pages_in_chromium(arena_server: str, browser: Browser) -> None:
    """A filter chosen once (here from a shared link) holds on every page; the Weaknesses page
    compares two models."""
    from test_leaderboard_page import arena_frame

    humans = int((arena_frame()["judge_kind"] == "human").sum())
    with watched_page(browser, viewport={"width": 1600, "height": 1600}) as (page, dialogs, errors):
        page.goto(f"{arena_server}/leaderboard?dataset=arena&judge_kind=human")
        expect(page.get_by_role("heading", name="Leaderboard")).to_be_visible(timeout=30_000)
        expect(metric(page, "Votes")).to_have_text(f"{humans:,}", timeout=30_000)
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Weaknesses").click()
        # The human-only filter came along: its node scores are not stored yet, so compute them.
        page.get_by_role("button", name="Compute scores").click(timeout=60_000)
        expect(page.get_by_role("heading", name=re.compile(r"Weaknesses \(\d+\)"))).to_be_visible(
            timeout=180_000
        )
        expect(page).to_have_url(re.compile(r"judge_kind=human"), timeout=30_000)
        page.get_by_role("tab", name="Compare two models").click()
        picker = page.get_by_test_id("stSelectbox").filter(has_text="Compare with").first
        expect(picker).to_be_visible(timeout=30_000)
        picker.click()
        page.get_by_role("option").nth(1).click()
        page.wait_for_timeout(1500)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Voter audit").click()
        expect(page.get_by_role("heading", name="Voter audit")).to_be_visible(timeout=60_000)
        expect(page.get_by_text(f"{humans:,} votes by", exact=False)).to_be_visible(timeout=60_000)
        assert errors == [], f"JavaScript errors on the page: {errors}"
