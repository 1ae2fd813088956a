"""Dashboard benchmark in real Chromium: how long each page takes to render, and the server's memory.

Starts ``streamlit run dashboard/app.py`` on a database (default: the 1M-vote simulated arena that
``bench/bench_audit.py --keep /tmp/bench_audit`` builds, dataset ``sim``) and drives Debian's
Chromium with Playwright. For each page it loads the page once (the first load computes and fills
the caches) and then ``--repeats`` more times, each a full page load (the browser starts the
Streamlit app again); then it moves ``--repeats`` times through every page from the sidebar menu,
as a user does once the app is open. A load ends when the page's script run has finished (the app
root's ``data-test-script-state``) with the page's heading shown and every Plotly chart drawn.
Prints per page the first load and the median / max of the later ones, both ways (target: under
2 s after the first load) and, at the end, the server process tree's peak resident memory (target: under 2 GB;
sampled with psutil every 100 ms). As a peer measured in the same run it times a bare Chromium load
of Streamlit's health endpoint. No assertions.

Usage: ``python bench/bench_pages.py [--db PATH] [--dataset sim] [--repeats 3] [--pages a,b]``
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
from playwright.sync_api import sync_playwright

from pipelines.report.static import CHROMIUM_OFFLINE_FLAGS

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = list(CHROMIUM_OFFLINE_FLAGS)
# url path -> (heading that shows the page is there, its link in the sidebar menu); the
# overview is the app's default page, at the root url
PAGES = {
    "": ("arenatree", "Overview"),
    "leaderboard": ("Leaderboard", "Leaderboard"),
    "tree": ("Capability tree", "Capability tree"),
    "weaknesses": ("Weaknesses", "Weaknesses"),
    "audit": ("Voter audit", "Voter audit"),
    "reports": ("Reports", "Reports"),
}
# true once every Plotly chart of the page has drawn its SVG (charts render after the script ends)
SETTLED = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
    .every(c => c.querySelector('.main-svg'))"""
# records the app root's script-state changes, so a click-started run is seen starting and ending
WATCH_RUNS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    window.__runs = [];
    new MutationObserver(() => window.__runs.push(app.getAttribute('data-test-script-state')))
        .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""
RUN_ENDED = """() => { const r = window.__runs || []; const i = r.indexOf('running');
    return i >= 0 && r.slice(i).includes('notRunning'); }"""
TARGET_SECONDS = 2.0
TARGET_MB = 2048


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PeakRSS(threading.Thread):
    """Samples the resident memory of a process and its children every 100 ms; ``peak_mb``."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak_mb = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in procs) / 2**20
                self.peak_mb = max(self.peak_mb, rss)
            except psutil.Error:
                pass
            time.sleep(0.1)


def load(page, url: str, heading: str, timeout: float = 600.0) -> float:
    """Seconds from navigating to ``url`` (a full page load: the browser fetches and starts the
    Streamlit app again) until Streamlit's script run has finished (the app root's
    ``data-test-script-state`` goes from 'initial' through 'running' to 'notRunning') with
    ``heading`` on the page and every Plotly chart drawn."""
    start = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(
        '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout * 1000
    )
    page.get_by_role("heading", name=heading).first.wait_for(timeout=timeout * 1000)
    page.wait_for_function(SETTLED, timeout=timeout * 1000)
    return time.perf_counter() - start


def navigate(page, link: str, heading: str, timeout: float = 600.0) -> float:
    """Seconds from clicking ``link`` in the sidebar menu (the app stays loaded, as when a user
    moves between pages) until that page's script run has finished with ``heading`` shown and
    every Plotly chart drawn."""
    page.evaluate(WATCH_RUNS)
    start = time.perf_counter()
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=link, exact=True).click()
    page.wait_for_function(RUN_ENDED, timeout=timeout * 1000)
    page.get_by_role("heading", name=heading).first.wait_for(timeout=timeout * 1000)
    page.wait_for_function(SETTLED, timeout=timeout * 1000)
    return time.perf_counter() - start


def fmt(times: list[float]) -> str:
    """'median / max s (meets|MISSES)' of ``times`` against the target."""
    verdict = "meets" if max(times) < TARGET_SECONDS else "MISSES"
    return f"{statistics.median(times):.2f} / {max(times):.2f} s {verdict}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="/tmp/bench_audit/arenatree.duckdb")
    ap.add_argument("--dataset", default="sim")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pages", default=",".join(PAGES), help="url paths; the overview is ''")
    args = ap.parse_args()
    if not Path(args.db).exists():
        raise SystemExit(
            f"{args.db}: no database; run python bench/bench_audit.py --keep /tmp/bench_audit first"
        )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, ARENATREE_DB=str(args.db))
    cmd = [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true",
           "--server.fileWatcherType", "none"]  # fmt: skip
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rss = PeakRSS(server.pid)
    rss.start()
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                time.sleep(0.2)
        rows: dict[str, dict] = {}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
            t0 = time.perf_counter()
            page.goto(f"{url}/_stcore/health")
            peer = time.perf_counter() - t0
            names = args.pages.split(",")
            for name in names:  # full page loads: the first fills the caches
                heading = PAGES[name][0]
                times = [load(page, f"{url}/{name}?dataset={args.dataset}", heading)]
                times += [
                    load(page, f"{url}/{name}?dataset={args.dataset}", heading) for _ in range(args.repeats)
                ]
                rows[name] = {"first": times[0], "reload": times[1:] or times}
                print(
                    f"  {name or 'overview':<12} first {times[0]:7.2f} s, reload {fmt(rows[name]['reload'])}",
                    flush=True,
                )
            load(page, f"{url}/{names[0]}?dataset={args.dataset}", PAGES[names[0]][0])
            for _ in range(args.repeats):  # moving between pages in the loaded app, menu order
                for name in names[1:] + names[:1]:
                    heading, link = PAGES[name]
                    rows[name].setdefault("menu", []).append(navigate(page, link, heading))
            browser.close()
    finally:
        rss.stop.set()
        server.terminate()
        server.wait(timeout=30)
    print(
        f"\npages of {args.dataset!r} in {args.db}: seconds until the page's script has run and "
        f"every chart is drawn; median / max of {args.repeats} (target: under {TARGET_SECONDS:.0f} s)"
    )
    print(f"  {'page':<12} {'first load':>10}   {'full reload':<22} {'from the menu':<22}")
    for name, r in rows.items():
        print(f"  {name or 'overview':<12} {r['first']:9.2f}s   {fmt(r['reload']):<22} {fmt(r['menu']):<22}")
    verdict = "meets" if rss.peak_mb < TARGET_MB else "MISSES"
    print(f"  server peak resident memory {rss.peak_mb:,.0f} MB ({verdict} the {TARGET_MB:,} MB target)")
    print(f"  peer: Chromium loading the server's health endpoint {peer:.3f} s")


if __name__ == "__main__":
    main()
