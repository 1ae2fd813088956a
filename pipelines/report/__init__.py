"""Analyst reports: one dataset's findings gathered as plain data (:mod:`.content`) and written as
self-contained HTML (:mod:`.html`), Markdown with figure files (:mod:`.markdown`), PDF through
Chromium (:mod:`.pdf`) or every table as CSV / Parquet (:mod:`.tables`); :mod:`.export` picks the
writer from the format or the file's extension."""

from .content import SECTIONS, Block, Report, ReportRequest, Section, build_report
from .export import FORMATS, format_for, write_report

__all__ = [
    "FORMATS",
    "SECTIONS",
    "Block",
    "Report",
    "ReportRequest",
    "Section",
    "build_report",
    "format_for",
    "write_report",
]
