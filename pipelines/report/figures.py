"""The report's Plotly figures, built from its tables. Every label from the data is HTML-escaped,
because Plotly parses a subset of HTML in labels and hover text."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

GREEN, LIGHT = "#1f7a5c", "#7dbb9c"


def label(text: object, width: int = 60) -> str:
    """``text`` cut to ``width`` characters and escaped for Plotly labels."""
    return html.escape(str(text)[:width], quote=False)


def interval_figure(
    table: pd.DataFrame, value: str, lower: str, upper: str, name: str, title: str
) -> go.Figure:
    """Point-and-whisker chart, one row per ``name`` (best on top): ``value`` in [``lower``, ``upper``].

    ``table``: at least the four columns; rows with a missing ``value`` are dropped; at most 60 rows.
    """
    rows = table.dropna(subset=[value]).head(60).sort_values(value)
    fig = go.Figure(
        go.Scatter(
            x=rows[value].tolist(),
            y=[label(m) for m in rows[name]],
            mode="markers",
            marker={"color": GREEN, "size": 8},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": (rows[upper] - rows[value]).fillna(0).tolist(),
                "arrayminus": (rows[value] - rows[lower]).fillna(0).tolist(),
                "color": LIGHT,
            },
        )
    )
    fig.update_layout(
        height=max(260, 70 + 24 * len(rows)),
        width=760,
        margin={"t": 20, "l": 10, "r": 20, "b": 50},
        xaxis_title=label(title),
        yaxis={"type": "category", "automargin": True},
        template="plotly_white",
    )
    return fig


def bar_figure(table: pd.DataFrame, value: str, name: str, title: str) -> go.Figure:
    """Horizontal bars of ``value`` per ``name`` (at most 40 rows, in table order, first on top)."""
    rows = table.head(40).iloc[::-1]
    fig = go.Figure(
        go.Bar(
            x=rows[value].tolist(),
            y=[label(v) for v in rows[name]],
            orientation="h",
            marker_color=GREEN,
        )
    )
    fig.update_layout(
        height=max(260, 70 + 24 * len(rows)),
        width=760,
        margin={"t": 20, "l": 10, "r": 20, "b": 50},
        xaxis_title=label(title),
        yaxis={"type": "category", "automargin": True},
        template="plotly_white",
    )
    return fig


def finding_figure(tables: dict[str, pd.DataFrame], plot: dict) -> go.Figure | None:
    """A voter-audit finding's figure from its ``plot`` spec (see :class:`pipelines.audit.result.Finding`):
    interval and bar specs are drawn (other kinds, and specs whose columns are missing, give None)."""
    table = tables.get(plot.get("table", ""))
    kind, x, y = plot.get("kind"), plot.get("x"), plot.get("y")
    if table is None or table.empty or x not in table:
        return None
    name = y if y in table else plot.get("label") if plot.get("label") in table else None
    title = str(plot.get("title") or x)
    if name is None:
        return None
    if kind == "interval" and plot.get("lower") in table and plot.get("upper") in table:
        return interval_figure(table, x, plot["lower"], plot["upper"], name, title)
    if kind == "bar" and pd.api.types.is_numeric_dtype(table[x]):
        return bar_figure(table, x, name, title)
    return None
