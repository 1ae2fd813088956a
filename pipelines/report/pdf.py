"""A report as PDF: the self-contained HTML printed by headless Chromium (its own print to PDF),
after Plotly has drawn every figure (a virtual-time budget lets the page's scripts finish)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from ..errors import ArenatreeError
from .content import Report
from .html import render_html
from .static import CHROMIUM_OFFLINE_FLAGS, find_chromium

CHROMIUM_FLAGS = (
    "--headless",
    *CHROMIUM_OFFLINE_FLAGS,
    "--no-pdf-header-footer",
    "--run-all-compositor-stages-before-draw",
    "--virtual-time-budget=15000",
)
TIMEOUT_S = 180


def html_to_pdf(html_file: Path, out: Path, chromium: str | None = None) -> Path:
    """Print ``html_file`` to the PDF ``out`` with headless Chromium; ArenatreeError (one line) when
    Chromium is missing, fails or writes nothing."""
    exe = chromium or find_chromium()
    with tempfile.TemporaryDirectory(prefix="arenatree-pdf-") as profile:
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--print-to-pdf={out.resolve()}"]
        cmd.append(html_file.resolve().as_uri())
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ArenatreeError(f"Chromium did not finish printing the PDF within {TIMEOUT_S} s") from exc
    if not out.exists() or out.stat().st_size == 0 or out.read_bytes()[:5] != b"%PDF-":
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ArenatreeError(f"Chromium wrote no PDF (exit {done.returncode}): {last}")
    return out


def write_pdf(report: Report, out: Path) -> list[Path]:
    """Write the report as the PDF ``out``; returns [out]."""
    with tempfile.TemporaryDirectory(prefix="arenatree-report-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(render_html(report), encoding="utf-8")
        html_to_pdf(page, out)
    return [out]
