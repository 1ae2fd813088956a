"""Static (SVG / PNG) export of Plotly figures for Markdown reports, through Kaleido.

Kaleido (>= 1.0) drives the system Chromium (found on PATH, or ``$BROWSER_PATH``) with the
plotly.js shipped in the ``plotly`` package. MathJax is turned off: Kaleido would otherwise load
it from a CDN, and our figures have no LaTeX. One browser renders every figure of a report.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import plotly.graph_objects as go

from ..errors import ArenatreeError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


# Chromium without network, background services or sandbox (containers run it as root): the
# flags every arenatree Chromium launch uses (PDF printing, the browser tests, the page bench).
CHROMIUM_OFFLINE_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
)


def find_chromium() -> str:
    """Path of a Chromium / Chrome executable; ArenatreeError (one line) when there is none."""
    import os

    explicit = os.environ.get("BROWSER_PATH")
    if explicit and Path(explicit).exists():
        return explicit
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise ArenatreeError(
        "static figures and PDF need Chromium: install it (e.g. 'apt-get install chromium') "
        "or set $BROWSER_PATH to a Chrome/Chromium executable"
    )


def write_images(figures: dict[Path, go.Figure], fmt: str = "svg") -> list[Path]:
    """Write each figure to its path as ``fmt`` ('svg' or 'png'); returns the paths written."""
    if not figures:
        return []
    import os

    try:
        import kaleido
    except ImportError as exc:
        raise ArenatreeError("static figures need the 'kaleido' package (pip install 'kaleido>=1')") from exc
    os.environ.setdefault("BROWSER_PATH", find_chromium())
    jobs = [
        {"fig": fig, "path": str(path), "opts": {"format": fmt, "width": fig.layout.width or 760}}
        for path, fig in figures.items()
    ]
    try:
        kaleido.write_fig_from_object_sync(jobs, kopts={"mathjax": False})
    except Exception as exc:  # noqa: BLE001 - a browser failure becomes one line
        raise ArenatreeError(
            f"could not render the figures with Chromium: {type(exc).__name__}: {exc}"
        ) from exc
    missing = [p for p in figures if not p.exists()]
    if missing:
        raise ArenatreeError(f"Chromium rendered no image for {missing[0].name}")
    return list(figures)
