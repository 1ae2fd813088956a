"""Plotly figures shared by the dashboard and the reports: point-and-whisker intervals, and the
figure a voter-audit finding's ``plot`` spec asks for. Every label from the data is HTML-escaped,
because Plotly parses a subset of HTML in labels and hover text."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

GREEN, LIGHT = "#1f7a5c", "#7dbb9c"


def plotly_escape(text: str) -> str:
    """``text`` safe inside Plotly labels and hover text, which parse a subset of HTML
    (``<a href>``, ``<b>``, ``<br>``...): every tag shows as literal text."""
    return html.escape(text, quote=False)


def interval_figure(
    table: pd.DataFrame,
    value: str,
    lower: str,
    upper: str,
    *,
    label: str = "model",
    title: str = "Rating",
    count: str | None = None,
    height_per_row: int = 22,
) -> go.Figure:
    """A point-and-whisker chart: one row per ``label`` (best on top), ``value`` with its
    [``lower``, ``upper``] interval; ``count`` (e.g. battles) goes into the hover text. Rows
    without a ``value`` are left out; a missing bound draws no whisker on that side."""
    rows = table.dropna(subset=[value]).sort_values(value, ascending=True)
    names = [plotly_escape(str(m)) for m in rows[label]]
    counts = rows[count].tolist() if count else [None] * len(rows)
    hover = [
        f"<b>{n}</b><br>{plotly_escape(title)}: {v:.3g} [{lo:.3g}, {hi:.3g}]"
        + (f"<br>{count}: {c:,}" if c is not None else "")
        for n, v, lo, hi, c in zip(names, rows[value], rows[lower], rows[upper], counts, strict=True)
    ]
    fig = go.Figure(
        go.Scatter(
            x=rows[value].tolist(),
            y=names,
            mode="markers",
            marker={"color": GREEN, "size": 8},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": (rows[upper] - rows[value]).fillna(0).tolist(),
                "arrayminus": (rows[value] - rows[lower]).fillna(0).tolist(),
                "color": LIGHT,
                "thickness": 2,
            },
            hovertext=hover,
            hoverinfo="text",
        )
    )
    fig.update_layout(
        height=max(240, 60 + height_per_row * len(rows)),
        margin={"t": 10, "l": 0, "r": 10, "b": 40},
        xaxis_title=plotly_escape(title),
        yaxis={"type": "category", "automargin": True},
    )
    return fig


def bar_figure(table: pd.DataFrame, x: str, y: str, title: str, rows: int = 60) -> go.Figure:
    """Bars of the first ``rows`` rows of ``table``: horizontal (first row on top) when ``x`` is
    numeric and ``y`` is not, else vertical bars of ``y`` per ``x`` category. ``title`` names the
    value axis of horizontal bars."""
    shown = table.head(rows)
    horizontal = pd.api.types.is_numeric_dtype(shown[x]) and not pd.api.types.is_numeric_dtype(shown[y])
    if horizontal:
        shown = shown.iloc[::-1]
    cat, val = (y, x) if horizontal else (x, y)
    names = [plotly_escape(str(v)[:60]) for v in shown[cat]]
    fig = go.Figure(
        go.Bar(
            x=shown[val].tolist() if horizontal else names,
            y=names if horizontal else shown[val].tolist(),
            orientation="h" if horizontal else "v",
            marker_color=GREEN,
        )
    )
    fig.update_layout(
        height=max(300, 22 * len(shown) + 80) if horizontal else 340,
        margin={"t": 10, "b": 40},
        xaxis_title=plotly_escape(title if horizontal else x),
        yaxis_title=None if horizontal else plotly_escape(val),
    )
    axis = fig.update_yaxes if horizontal else fig.update_xaxes
    axis(type="category", automargin=True)
    return fig


def _is_column(table: pd.DataFrame, name: Any) -> bool:
    return isinstance(name, str) and name in table.columns


SCATTER_POINTS = 1000  # points a finding's scatter plot draws at most (the browser pays ~0.1 ms each)


def scatter_sample(table: pd.DataFrame, flag: str | None, limit: int = SCATTER_POINTS) -> pd.DataFrame:
    """At most ``limit`` rows of ``table`` for a scatter plot: every flagged row (``flag`` column)
    and an evenly spaced, deterministic selection of the others, in the table's order."""
    if len(table) <= limit:
        return table
    flagged = table[flag].astype(bool).to_numpy() if flag else np.zeros(len(table), dtype=bool)
    rest = np.flatnonzero(~flagged)
    room = max(limit - int(flagged.sum()), 0)
    keep = rest[np.linspace(0, len(rest) - 1, room).astype(int)] if room and len(rest) else rest[:0]
    return table.iloc[np.sort(np.concatenate([np.flatnonzero(flagged), keep]))]


def finding_figure(tables: dict[str, pd.DataFrame], plot: dict) -> go.Figure | None:
    """The Plotly figure a finding's ``plot`` spec asks for, or None when the spec or its columns
    are missing. Spec: ``table`` (name in ``tables``), ``kind`` interval | bar | scatter |
    heatmap, value columns ``x`` / ``y`` (``z`` for heatmaps), ``lower`` / ``upper`` (interval),
    ``color`` (a flag column colours flagged rows red; another column is added to the row
    label), ``label`` (a column naming each row, else the axis title), ``log_x``. Every label
    from the data is escaped."""
    table = tables.get(plot.get("table", ""))
    kind = plot.get("kind")
    x, y = plot.get("x"), plot.get("y")
    if table is None or table.empty or kind is None or not _is_column(table, x):
        return None
    label = plot.get("label")
    title = str(plot.get("title") or (label if label and not _is_column(table, label) else x))
    if kind == "interval" and _is_column(table, plot.get("lower")) and _is_column(table, plot.get("upper")):
        name_col = y if _is_column(table, y) else label if _is_column(table, label) else None
        if name_col is None:
            return None
        rows = table.dropna(subset=[x]).head(60)
        names = rows[name_col].astype(str).str.slice(0, 60)
        color = plot.get("color")
        if _is_column(rows, color) and rows[color].dtype != bool:
            names = names + " · " + rows[color].astype(str)
        shown = rows.assign(_label=names.to_numpy())
        return interval_figure(shown, x, plot["lower"], plot["upper"], label="_label", title=title)
    if kind == "bar" and _is_column(table, y):
        return bar_figure(table, x, y, title)
    if kind == "scatter" and _is_column(table, y):
        color = plot.get("color")
        total = len(table)
        table = scatter_sample(table, color if _is_column(table, color) else None)
        rows_flag = (
            table[color].astype(bool) if _is_column(table, color) else pd.Series(False, index=table.index)
        )
        names = table[label].astype(str) if _is_column(table, label) else pd.Series("", index=table.index)
        fig = go.Figure()
        for on, name, col in ((False, "not flagged", "#9aa5a0"), (True, "flagged", "#c0392b")):
            part = (rows_flag == on).to_numpy()
            if not part.any():
                continue
            fig.add_trace(
                go.Scatter(
                    x=table.loc[part, x].tolist(),
                    y=table.loc[part, y].tolist(),
                    mode="markers",
                    name=name,
                    marker={"color": col, "size": 6, "opacity": 0.7},
                    hovertext=[plotly_escape(t) for t in names[part]],
                    hoverinfo="text+x+y",
                )
            )
        fig.update_layout(
            height=360,
            margin={"t": 10, "b": 40},
            xaxis_title=plotly_escape(x),
            yaxis_title=plotly_escape(y),
            xaxis_type="log" if plot.get("log_x") else "linear",
        )
        if len(table) < total:
            fig.update_layout(
                title={
                    "text": f"{len(table):,} of {total:,} rows shown (every flagged one)",
                    "font": {"size": 12},
                },
                margin={"t": 30, "b": 40},
            )
        return fig
    if kind == "heatmap" and _is_column(table, y) and _is_column(table, plot.get("z")):
        grid = table.pivot_table(index=y, columns=x, values=plot["z"], aggfunc="mean")
        fig = go.Figure(
            go.Heatmap(
                z=grid.to_numpy(),
                x=[plotly_escape(str(c)) for c in grid.columns],
                y=[plotly_escape(str(i)) for i in grid.index],
                colorscale="RdBu",
                zmid=plot.get("zmid"),
            )
        )
        fig.update_layout(height=max(300, 24 * len(grid) + 80), margin={"t": 10})
        return fig
    return None


def printable(fig: go.Figure, width: int = 760) -> go.Figure:
    """``fig`` laid out for a static page (report, PDF): a fixed ``width`` in pixels, white
    template, room for axis titles. Changes ``fig`` in place and returns it."""
    return fig.update_layout(width=width, template="plotly_white", margin={"l": 10, "r": 20, "b": 50})
