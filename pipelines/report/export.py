"""Write a built report in one format, chosen explicitly or from the output file's extension."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

from ..errors import ArenatreeError
from .content import Report

FORMATS = ("html", "md", "pdf", "csv", "parquet")
_EXTENSIONS = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md", ".pdf": "pdf"}


def format_for(out: Path, fmt: str | None = None) -> str:
    """The format to write: ``fmt`` when given, else from ``out``'s extension (.html, .md, .pdf;
    for tables a folder or .zip needs ``fmt`` 'csv' / 'parquet', or a name like ``x.csv.zip``)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ArenatreeError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
        return fmt
    suffixes = [s.lower() for s in out.suffixes]
    if suffixes and suffixes[-1] in _EXTENSIONS:
        return _EXTENSIONS[suffixes[-1]]
    for name in ("csv", "parquet"):
        if f".{name}" in suffixes:
            return name
    raise ArenatreeError(
        f"{out}: cannot tell the format from the extension {out.suffix or '(none)'!r}; "
        "use .html, .md, .pdf, or --format csv|parquet (a folder or .zip)"
    )


def write_report(report: Report, out: Path, fmt: str | None = None) -> list[Path]:
    """Write ``report`` to ``out`` in ``fmt`` (default from the extension); returns the paths written.

    html: one self-contained file; md: the .md file plus ``<name>_files/`` with SVG figures;
    pdf: one PDF (Chromium); csv / parquet: every table in the folder ``out`` or the zip ``out``.
    """
    fmt = format_for(out, fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "html":
        from .html import render_html

        out.write_text(render_html(report), encoding="utf-8")
        return [out]
    if fmt == "md":
        from .markdown import write_markdown

        return write_markdown(report, out)
    if fmt == "pdf":
        from .pdf import write_pdf

        return write_pdf(report, out)
    from .tables import write_tables

    return write_tables(report, out, fmt)


def report_bytes(report: Report, fmt: str) -> bytes:
    """The report in ``fmt`` as bytes for a download: html / pdf as the file, md as a zip of the .md
    and its figures, csv / parquet as a zip of every table."""
    if fmt == "html":
        from .html import render_html

        return render_html(report).encode("utf-8")
    if fmt in ("csv", "parquet"):
        from .tables import table_files, zip_bytes

        return zip_bytes(table_files(report, fmt))
    with tempfile.TemporaryDirectory(prefix="arenatree-report-") as tmp:
        out = Path(tmp) / ("report.pdf" if fmt == "pdf" else "report.md")
        paths = write_report(report, out, fmt)
        if fmt == "pdf":
            return out.read_bytes()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for p in paths:
                z.write(p, p.relative_to(tmp).as_posix())
        return buf.getvalue()
