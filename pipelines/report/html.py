"""A report as ONE self-contained HTML file: inline CSS, plotly.js inlined once, every piece of
text escaped with :func:`html.escape`, a table of contents. It opens offline."""

from __future__ import annotations

import html

import pandas as pd
import plotly.io as pio

from .content import Block, Report

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #1d2521;
       max-width: 1040px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }
h1 { color: #1f7a5c; margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #1f7a5c; padding-bottom: 0.2em;
       margin-top: 2em; page-break-before: auto; } h3 { margin-top: 1.5em; }
.subtitle, .caption, .note { color: #55615b; } .note { font-style: italic; }
nav { background: #eef6f1; padding: 0.6em 1.2em; border-radius: 6px; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0 1.2em; max-width: 100%; }
th, td { border: 1px solid #ccd6d0; padding: 3px 6px; text-align: left; vertical-align: top;
         max-width: 420px; overflow-wrap: anywhere; }
th { background: #eef6f1; } pre { background: #f4f6f5; padding: 0.6em; white-space: pre-wrap; }
.figure { page-break-inside: avoid; margin: 0.5em 0 1em; }
"""


def esc(text: object) -> str:
    """``text`` escaped for HTML text and attributes."""
    return html.escape(str(text), quote=True)


def _number(x: float) -> str:
    return "" if x != x else f"{x:.4g}"  # noqa: PLR0124 - NaN check


def table_html(df: pd.DataFrame, max_rows: int | None = None) -> str:
    """``df`` (its first ``max_rows`` rows; None: all) as an HTML table; pandas escapes every
    cell and header."""
    shown = df if max_rows is None else df.head(max_rows)
    out = shown.to_html(index=False, escape=True, na_rep="", float_format=_number, border=0)
    if max_rows is not None and len(df) > max_rows:
        out += f'<p class="caption">First {max_rows} of {len(df):,} rows (the CSV export holds all).</p>'
    return out


def _block(block: Block, first_figure: list[bool]) -> str:
    if block.kind == "heading":
        return f"<h3>{esc(block.text)}</h3>"
    if block.kind == "note":
        return f'<p class="note">{esc(block.text)}</p>'
    if block.kind == "code":
        return f"<pre>{esc(block.text)}</pre>"
    if block.kind == "table":
        caption = f'<p class="caption">{esc(block.text)}</p>' if block.text else ""
        return caption + table_html(block.table, block.rows)
    if block.kind == "figure":
        div = pio.to_html(
            block.figure,
            full_html=False,
            include_plotlyjs=first_figure[0],  # True once: the whole plotly.js inline
            include_mathjax=False,
            config={"displaylogo": False, "responsive": True},
            div_id=f"fig-{esc(block.name)}",
        )
        first_figure[0] = False
        caption = f'<p class="caption">{esc(block.text)}</p>' if block.text else ""
        return f'<div class="figure">{div}{caption}</div>'
    return f"<p>{esc(block.text)}</p>"


def render_html(report: Report) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    first_figure = [True]
    toc = "".join(f'<li><a href="#sec-{esc(s.key)}">{esc(s.title)}</a></li>' for s in report.sections)
    body = []
    for s in report.sections:
        body.append(f'<section id="sec-{esc(s.key)}"><h2>{esc(s.title)}</h2>')
        body.extend(_block(b, first_figure) for b in s.blocks)
        body.append("</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(report.title)}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<h1>{esc(report.title)}</h1>"
        f'<p class="subtitle">{esc(report.subtitle)}. Generated {esc(report.created_at)} by arenatree '
        f"{esc(report.params.get('tool_version', ''))}.</p>"
        f"<nav><strong>Contents</strong><ol>{toc}</ol></nav>" + "\n".join(body) + "</body></html>\n"
    )
