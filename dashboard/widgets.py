"""Small shared pieces of the dashboard's UI (no data access beyond :mod:`dashboard.data`).

Untrusted text (dataset names, prompts, paths from import logs) is only ever shown through
``st.dataframe``, ``st.text`` or ``st.code``: never as HTML, and never as Markdown either
(Markdown links and images would fetch or open arbitrary URLs).
"""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dashboard import data

T = TypeVar("T", str, int)

ABOUT = (
    "arenatree turns arena-style evaluation votes (a prompt, two anonymous models, a "
    "winner) and per-instance benchmark results into **capability trees**, honest "
    "**leaderboards by capability** and **audits of the human votes** themselves."
)

_COUNT = st.column_config.NumberColumn
SUMMARY_COLUMN_CONFIG = {
    "dataset": st.column_config.TextColumn("Dataset"),
    "kind": st.column_config.TextColumn("Kind", help="pairwise votes, per-instance results, or prompts"),
    "format": st.column_config.TextColumn("Format", help="the adapter that imported it"),
    "prompts": _COUNT("Prompts", format="localized"),
    "battles": _COUNT("Battles", format="localized", help="pairwise votes"),
    "results": _COUNT("Results", format="localized", help="per-instance scores"),
    "responses": _COUNT("Responses", format="localized", help="stored model answers"),
    "models": _COUNT("Models", format="localized"),
    "judges": _COUNT("Judges", format="localized", help="distinct voters (human or LLM)"),
    "human_votes": _COUNT("Human votes", format="localized"),
    "llm_votes": _COUNT("LLM votes", format="localized"),
    "human_judges": _COUNT("Human judges", format="localized"),
    "llm_judges": _COUNT("LLM judges", format="localized"),
    "first_vote": st.column_config.DatetimeColumn("First vote", format="YYYY-MM-DD"),
    "last_vote": st.column_config.DatetimeColumn("Last vote", format="YYYY-MM-DD"),
    "imports": _COUNT("Imports", help="files imported into this dataset"),
    "last_import": st.column_config.DatetimeColumn("Last import (UTC)", format="YYYY-MM-DD HH:mm"),
}

# The dataset table's columns, most useful first (the rest scroll into view).
SUMMARY_COLUMN_ORDER = [
    "dataset",
    "kind",
    "battles",
    "prompts",
    "results",
    "responses",
    "models",
    "judges",
    "human_votes",
    "llm_votes",
    "first_vote",
    "last_vote",
    "format",
    "imports",
    "last_import",
    "human_judges",
    "llm_judges",
]

IMPORT_COLUMN_CONFIG = {
    "imported_at": st.column_config.DatetimeColumn("Imported (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "dataset": st.column_config.TextColumn("Dataset"),
    "path": st.column_config.TextColumn("Path"),
    "format": st.column_config.TextColumn("Format"),
    "rows_read": _COUNT("Rows read", format="localized"),
    "rows_skipped": _COUNT("Skipped", format="localized", help="rows the adapter left out"),
    "added_prompts": _COUNT("+ Prompts", format="localized"),
    "added_battles": _COUNT("+ Battles", format="localized"),
    "added_results": _COUNT("+ Results", format="localized"),
    "added_responses": _COUNT("+ Responses", format="localized"),
    "duplicates": _COUNT("Duplicates", format="localized", help="rows already in the store"),
    "sha256": st.column_config.TextColumn("sha256", width="small"),
    "origin": st.column_config.TextColumn("Origin"),
    "license": st.column_config.TextColumn("License"),
    "tool_version": st.column_config.TextColumn("arenatree"),
    "import_id": st.column_config.TextColumn("Import id", width="small"),
}


def sidebar_database_info() -> None:
    """The database in use and when its read snapshot was published, in the sidebar."""
    with st.sidebar:
        st.caption("Database")
        st.text(str(data.db_path()))
        published = data.snapshot_time()
        if published is not None:
            st.caption(f"Snapshot published {published:%Y-%m-%d %H:%M:%S}")
        else:
            st.caption("No database yet")


def empty_state(has_database: bool) -> None:
    """What a new user sees before anything is imported: how to import."""
    if has_database:
        st.info("The database has no datasets yet. Import one:", icon=":material/inbox:")
    else:
        st.info("No database yet. Import your first dataset:", icon=":material/inbox:")
    st.code("arenatree ingest PATH --dataset NAME", language="bash")
    st.markdown(
        "`PATH` is a file or folder of arena votes (Chatbot Arena, LMArena / Kaggle "
        "arena-human-preference, FastChat `clean_battle`, AlpacaEval, generic CSV / JSONL / "
        "Parquet) or per-instance results. Or load the bundled real data and build "
        "everything in one go:"
    )
    st.code("make demo", language="bash")
    st.caption("The dashboard reads this database (set $ARENATREE_DB to use another):")
    st.text(str(data.db_path()))


def read_error(exc: Exception) -> None:
    """The database could not be read: say so, with the reason as plain text."""
    st.error("The database could not be read.", icon=":material/error:")
    st.code(str(exc), language=None, wrap_lines=True)


# --- choices shared across pages and in the URL -------------------------------------------------

DATASET = "dataset"  # session-state key (and URL query parameter) of the chosen dataset
TREE = "tree"  # ... of the chosen tree
NODE = "node"  # session-state key of the chosen node: {"tree": tree_id, "node": node_id}
_URL_TREE = "_url_tree"  # the ?tree= the session was opened with (node ids in the URL refer to it)


def load_or_stop(*loaders: Callable[[], Any]) -> list[Any]:
    """Call each cached loader; on a read error, or when there is no data yet, show the
    matching message and stop the page. The first loader must be ``data.dataset_summary``."""
    try:
        results = [load() for load in loaders]
    except data.READ_ERRORS as exc:
        read_error(exc)
        st.stop()
    summary = results[0]
    if summary is None or summary.empty:
        empty_state(has_database=summary is not None)
        st.stop()
    return results


def _remember(state_key: str, widget_key: str) -> None:
    st.session_state[state_key] = st.session_state[widget_key]


def shared_choice(
    label: str,
    options: Sequence[T],
    state_key: str,
    *,
    default: T | None = None,
    format_func: Callable[[T], str] = str,
    where: DeltaGenerator | None = None,
    **selectbox_kwargs: Any,
) -> T | None:
    """A selectbox whose choice lives in ``st.session_state[state_key]`` (so it survives page
    switches: every page that shows the same ``state_key`` shares it) and in the URL as query
    parameter ``state_key`` (so a view can be shared by link).

    The choice is, in order: the session's, the URL's (only in a fresh session: a link opens a
    view, it does not override later choices), ``default``, the first option; a stale value (no
    longer among ``options``) falls through to the next. Option values must be strings
    or ints (they round-trip through the URL). Returns None only when there are no options.
    """
    options = list(options)
    if not options:
        return None
    chosen = st.session_state.get(state_key)
    if chosen not in options:
        by_text = {str(o): o for o in options}
        fresh = state_key not in st.session_state
        if fresh and state_key == TREE and TREE in st.query_params:
            st.session_state[_URL_TREE] = st.query_params[TREE]
        from_url = by_text.get(st.query_params.get(state_key, "")) if fresh else None
        chosen = from_url if from_url is not None else default if default in options else options[0]
        st.session_state[state_key] = chosen
    widget_key = f"_choice_{state_key}"
    st.session_state[widget_key] = chosen
    (where or st).selectbox(
        label,
        options,
        key=widget_key,
        format_func=format_func,
        on_change=_remember,
        args=(state_key, widget_key),
        **selectbox_kwargs,
    )
    st.query_params[state_key] = str(chosen)
    return chosen


def sidebar_dataset(names: Sequence[str], default: str | None = None) -> str | None:
    """The dataset every dataset-scoped page shows, chosen in the sidebar and shared by all pages
    (``st.session_state["dataset"]``, ``?dataset=`` in the URL). None when there are none."""
    return shared_choice("Dataset", names, DATASET, default=default, where=st.sidebar)


def select_node(tree_id: str, node_id: int) -> None:
    """Make ``node_id`` of ``tree_id`` the chosen node (a callback for clicks and pickers)."""
    st.session_state[NODE] = {"tree": tree_id, "node": int(node_id)}


def current_node(tree_id: str, node_ids: Sequence[int], root: int = 0) -> int:
    """The chosen node of ``tree_id``: the session's, else (in a fresh session) the URL's
    ``?node=`` when the URL's ``?tree=`` was this tree or absent, else ``root``. Mirrored into
    the URL."""
    ids = {int(i) for i in node_ids}
    state = st.session_state.get(NODE)
    if state and state["tree"] == tree_id and state["node"] in ids:
        node = state["node"]
    else:
        raw = st.query_params.get(NODE, "") if state is None else ""
        url_tree = st.session_state.get(_URL_TREE, tree_id)
        node = int(raw) if raw.isdigit() and int(raw) in ids and url_tree == tree_id else root
        select_node(tree_id, node)
    st.query_params[NODE] = str(node)
    return node


def node_clicked(tree_id: str, key: str) -> None:
    """``on_select`` callback of a treemap drawn by :func:`tree_figure` under ``key``: choose the
    clicked tile's node (Streamlit reports a treemap click as ``selection.points[0]["id"]``)."""
    event = st.session_state.get(key)
    points = event["selection"].get("points", []) if event else []
    if points and str(points[0].get("id", "")).isdigit():
        select_node(tree_id, int(points[0]["id"]))


def node_row_picked(tree_id: str, key: str, ids: Sequence[int]) -> None:
    """``on_select`` callback of a single-row table of nodes under ``key`` whose rows are ``ids``."""
    event = st.session_state.get(key)
    rows = event["selection"].get("rows", []) if event else []
    if rows:
        select_node(tree_id, ids[rows[0]])


def node_picked(tree_id: str, key: str) -> None:
    """``on_change`` callback of a selectbox of node ids under ``key``."""
    if st.session_state.get(key) is not None:
        select_node(tree_id, st.session_state[key])


# --- capability trees ---------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$])")

# Colour by item count: from near-white to the theme's green.
SIZE_SCALE = [[0.0, "#eef6f1"], [0.5, "#7dbb9c"], [1.0, "#1f7a5c"]]


def md_escape(text: str) -> str:
    """``text`` with every Markdown special character backslash-escaped: for widget labels
    (buttons, tabs), which Streamlit renders as Markdown, when they carry data."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def plotly_escape(text: str) -> str:
    """``text`` safe inside Plotly labels and hover text, which parse a subset of HTML
    (``<a href>``, ``<b>``, ``<br>``...): every tag shows as literal text."""
    return html.escape(text, quote=False)


def node_label(keywords: Sequence[str], description: str, is_root: bool = False, words: int = 3) -> str:
    """A short name for a node: its first keywords (or the start of its description)."""
    if is_root:
        return "All items"
    if len(keywords):
        return ", ".join(keywords[:words])
    return description if len(description) <= 40 else description[:39] + "…"


def node_labels(nodes: pd.DataFrame) -> pd.Series:
    """:func:`node_label` of every row of a nodes frame, indexed by node_id."""
    labels = [
        node_label(list(k), d, pd.isna(p))
        for k, d, p in zip(nodes["keywords"], nodes["description"], nodes["parent_id"], strict=True)
    ]
    return pd.Series(labels, index=nodes["node_id"].to_numpy(), name="label")


def _wrap(text: str, width: int = 70) -> str:
    """Escaped ``text`` with Plotly line breaks every ~``width`` characters (for hover boxes)."""
    return "<br>".join(plotly_escape(line) for line in textwrap.wrap(text, width) or [""])


def tree_figure(
    nodes: pd.DataFrame,
    color: pd.Series | None = None,
    color_label: str = "Items",
    *,
    colorscale: str | list = SIZE_SCALE,
    selected: int | None = None,
    max_depth: int = 3,
    height: int = 560,
) -> go.Figure:
    """A treemap of a capability tree: one tile per node, area = items under it.

    Args:
        nodes: one row per node (node_id, parent_id, depth, size, description, keywords), as
            :func:`dashboard.data.tree_nodes` returns.
        color: a value per node, indexed by node_id (e.g. a model's score per node); None colours
            by item count. Nodes missing from it get no colour value (Plotly's default fill).
        color_label: the colour bar's title (e.g. "Items", "Win rate").
        colorscale: a Plotly colour scale name or list.
        selected: the chosen node: outlined, and the view opens at its parent (the node among
            its siblings, its children inside it).
        max_depth: levels shown at once below the opened node (deeper ones by clicking).
        height: pixels.

    Every tile's id is its node id as a string: what a click reports back
    (``st.plotly_chart(on_select=...)`` puts it in ``selection.points[0]["id"]``).
    Untrusted text (descriptions) is escaped: Plotly would otherwise render tags in it.
    """
    ids = nodes["node_id"].astype(int)
    parent = nodes["parent_id"]
    values = nodes["size"].to_numpy()
    if color is None:
        shade = nodes["size"].astype(float)
        inner = shade[nodes["depth"] > 0]
        cmax = float(inner.max()) if len(inner) else float(shade.max())
        cmin = float(inner.min()) if len(inner) else 0.0
    else:
        shade = color.reindex(ids.to_numpy()).astype(float).reset_index(drop=True)
        cmin = cmax = None
    root_size = max(int(values.max()), 1)
    labels = node_labels(nodes).map(plotly_escape)
    customdata = [
        [_wrap(d), int(dep), f"{s / root_size:.1%}"]
        for d, dep, s in zip(nodes["description"], nodes["depth"], values, strict=True)
    ]
    root = int(ids[parent.isna()].iloc[0])
    chosen = selected if selected is not None and selected in set(ids) and selected != root else None
    # Open at the chosen node's parent: the node among its siblings, its children inside it.
    level = None
    if chosen is not None:
        opens_at = int(nodes.loc[ids == chosen, "parent_id"].iloc[0])
        level = str(opens_at) if opens_at != root else None
    line_width = [3.5 if i == chosen else 1.0 for i in ids]
    line_color = ["#d9480f" if i == chosen else "#ffffff" for i in ids]
    hover = (
        "<b>%{label}</b><br>%{customdata[0]}<br><br>"
        "Items: %{value:,} (%{customdata[2]} of all)<br>Depth: %{customdata[1]}"
    )
    if color is not None:
        hover += f"<br>{plotly_escape(color_label)}: %{{color:.3g}}"
    trace = go.Treemap(
        ids=ids.astype(str).tolist(),
        labels=labels.tolist(),
        parents=["" if pd.isna(p) else str(int(p)) for p in parent],
        values=values.tolist(),  # plain lists: readable JSON, no typed-array encoding
        branchvalues="total",
        level=level,
        maxdepth=max_depth + 1,
        customdata=customdata,
        hovertemplate=hover + "<extra></extra>",
        texttemplate="<b>%{label}</b><br>%{value:,} items",
        textposition="top left",
        marker={
            "colors": [None if pd.isna(v) else float(v) for v in shade],
            "colorscale": colorscale,
            "cmin": cmin,
            "cmax": cmax,
            "showscale": True,
            "colorbar": {"title": {"text": plotly_escape(color_label)}, "thickness": 12},
            "line": {"width": line_width, "color": line_color},
            "pad": {"t": 24, "l": 4, "r": 4, "b": 4},
        },
        pathbar={"visible": True, "thickness": 24},
        root={"color": "#f3f6f4"},
        tiling={"pad": 3},
        sort=True,
    )
    fig = go.Figure(trace)
    fig.update_layout(
        height=height,
        margin={"t": 30, "l": 0, "r": 0, "b": 0},
        hoverlabel={"align": "left"},
        uirevision="tree",
    )
    return fig


CHILD_COLUMN_CONFIG = {
    "node_id": st.column_config.NumberColumn("Node", width="small"),
    "label": st.column_config.TextColumn("Capability", help="the node's distinctive keywords"),
    "size": _COUNT("Items", format="localized"),
    "share": st.column_config.ProgressColumn(
        "Share", help="of the parent's items", format="percent", min_value=0.0, max_value=1.0
    ),
    "description": st.column_config.TextColumn("Description", width="large"),
}

ITEM_COLUMN_CONFIG = {
    "source_ids": st.column_config.TextColumn("Source id", help="the id the item had in its file"),
    "text": st.column_config.TextColumn("Prompt", width="large"),
    "leaf_id": st.column_config.NumberColumn("Leaf", help="the leaf node holding the item", width="small"),
    "capability": st.column_config.TextColumn("Capability", help="what the item was embedded by"),
}


def search_result_label(node: pd.Series, hits: int) -> str:
    """How a search result reads in a picker: node, name, size and matching prompts."""
    name = node_label(list(node["keywords"]), node["description"], pd.isna(node["parent_id"]))
    found = f" · {hits:,} matching prompt{'s' if hits != 1 else ''}" if hits else ""
    return f"#{node['node_id']} {name} — {node['size']:,} items, depth {node['depth']}{found}"


def node_panel(nodes: pd.DataFrame, node_id: int, tree_id: str) -> None:
    """The chosen node: a clickable path from the root, its description, keywords and shape."""
    path = data.ancestors(nodes, node_id)
    row = path.iloc[-1]
    root_size = max(int(path.iloc[0]["size"]), 1)
    label = node_label(list(row["keywords"]), row["description"], pd.isna(row["parent_id"]))
    st.subheader(md_escape(label), anchor=False)
    st.caption(f"Node {node_id} · depth {row['depth']} · path {row['path']}")
    with st.container(horizontal=True, gap="xxsmall", key="breadcrumb"):
        for _, step in path.iterrows():
            is_root = pd.isna(step["parent_id"])
            st.button(
                md_escape(node_label(list(step["keywords"]), step["description"], is_root)),
                key=f"crumb-{tree_id}-{step['node_id']}",
                on_click=select_node,
                args=(tree_id, int(step["node_id"])),
                type="primary" if step["node_id"] == node_id else "tertiary",
                icon=":material/home:" if is_root else ":material/chevron_right:",
                help=f"Node {step['node_id']} · depth {step['depth']} · {step['size']:,} items",
            )
    with st.container(horizontal=True):
        st.metric("Items", f"{row['size']:,}")
        st.metric("Share of all", f"{row['size'] / root_size:.1%}")
        st.metric("Sub-capabilities", f"{row['n_children']:,}")
        silhouette = row["silhouette"]
        st.metric(
            "Split silhouette",
            "—" if pd.isna(silhouette) else f"{silhouette:.2f}",
            help="cosine silhouette of the split made at this node (leaves are not split)",
        )
    st.caption("Description")
    st.text(row["description"])
    st.caption("Keywords")
    st.text(", ".join(row["keywords"]) or "—")


def progress_callback(bar: DeltaGenerator) -> Callable[[str, float], None]:
    """An ``on_progress(stage, fraction)`` for a pipeline that moves an ``st.progress`` bar."""

    def update(stage: str, fraction: float) -> None:
        bar.progress(min(max(fraction, 0.0), 1.0), text=f"{md_escape(stage)} — {fraction:.0%}")

    return update
