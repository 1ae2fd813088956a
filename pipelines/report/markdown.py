"""A report as Markdown: text and tables escaped, figures as SVG (or PNG) files in ``<name>_files/``
beside the .md file (rendered by :mod:`.static`)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from .content import Block, Report

_SPECIAL = re.compile(r"([\\`*_{}\[\]()#|!~])")
_LINE_START = re.compile(r"^(\s*)([-+=>]|\d+[.)])", re.MULTILINE)


def md_escape(text: object) -> str:
    """``text`` inert in Markdown: HTML's ``& < >`` as entities (so no tag or autolink survives),
    every Markdown special character backslash-escaped (emphasis, code, links, headings, table
    pipes), and list / quote / heading markers at a line start escaped."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _SPECIAL.sub(r"\\\1", s)
    return _LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), s)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.4g}"  # noqa: PLR0124 - NaN check
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, list | tuple):
        value = "; ".join(map(str, value))
    return md_escape(" ".join(str(value).split()))  # one line per cell


def table_markdown(df: pd.DataFrame, max_rows: int | None = None) -> str:
    """``df`` (its first ``max_rows`` rows; None: all) as a GitHub-flavoured Markdown table,
    every cell escaped."""
    head = "| " + " | ".join(_cell(str(c)) for c in df.columns) + " |"
    rule = "|" + "---|" * len(df.columns)
    shown = df if max_rows is None else df.head(max_rows)
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    more = (
        [f"\n_First {max_rows} of {len(df):,} rows (the CSV export holds all)._"]
        if max_rows is not None and len(df) > max_rows
        else []
    )
    return "\n".join([head, rule, *rows, *more])


def _block(block: Block, folder: str, fmt: str) -> str:
    if block.kind == "heading":
        return f"### {md_escape(block.text)}"
    if block.kind == "note":
        return f"_{md_escape(block.text)}_"
    if block.kind == "code":
        longest = max((len(run) for run in re.findall(r"`+", block.text)), default=0)
        fence = "`" * max(3, longest + 1)  # no run of backticks in the text can close it
        return f"{fence}\n{block.text}\n{fence}"
    if block.kind == "table":
        caption = f"{md_escape(block.text)}\n\n" if block.text else ""
        return caption + table_markdown(block.table, block.rows)
    if block.kind == "figure":
        alt = md_escape(block.text or block.name)
        return f"![{alt}]({quote(folder)}/{quote(block.name)}.{fmt})"
    return md_escape(block.text)


def render_markdown(report: Report, folder: str, fmt: str = "svg") -> str:
    """The report as Markdown text; figures are referenced as ``folder/<figure name>.<fmt>``."""
    parts = [f"# {md_escape(report.title)}", ""]
    parts.append(
        f"{md_escape(report.subtitle)}. Generated {report.created_at} by arenatree "  # both ours, not data
        f"{report.params.get('tool_version', '')}."
    )
    parts += ["", "## Contents", ""]
    parts += [f"{i}. [{md_escape(s.title)}](#{s.key})" for i, s in enumerate(report.sections, 1)]
    for s in report.sections:
        parts += ["", f'<a id="{s.key}"></a>', "", f"## {md_escape(s.title)}", ""]
        for b in s.blocks:
            parts += [_block(b, folder, fmt), ""]
    return "\n".join(parts)


def write_markdown(report: Report, out: Path, fmt: str = "svg") -> list[Path]:
    """Write ``out`` (.md) and its figures into ``<out stem>_files/``; returns every path written."""
    from .static import write_images

    folder = out.parent / f"{out.stem}_files"
    figs = {folder / f"{name}.{fmt}": fig for name, fig in report.figures().items()}
    if figs:
        folder.mkdir(parents=True, exist_ok=True)
        write_images(figs, fmt)
    out.write_text(render_markdown(report, folder.name, fmt), encoding="utf-8")
    return [out, *figs]
