"""Small shared pieces of the dashboard's UI (no data access beyond :mod:`dashboard.data`).

Untrusted text (dataset names, prompts, paths from import logs) is only ever shown through
``st.dataframe``, ``st.text`` or ``st.code``: never as HTML, and never as Markdown either
(Markdown links and images would fetch or open arbitrary URLs).
"""

from __future__ import annotations

import functools
import json
import re
import textwrap
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, TypeVar

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dashboard import data
from pipelines.audit.result import headline_text
from pipelines.errors import ArenatreeError
from pipelines.figures import finding_figure, interval_figure, plotly_escape  # noqa: F401 (used by the views)
from pipelines.report.tables import csv_bytes  # the one formula-safe CSV writer (reports use it too)
from pipelines.text import parse_count  # noqa: F401 (the one parser of counts in URLs; views use it)

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
        asked = parse_count(raw)
        node = asked if asked in ids and url_tree == tree_id else root
        select_node(tree_id, node)
    st.query_params[NODE] = str(node)
    return node


def node_clicked(tree_id: str, key: str) -> None:
    """``on_select`` callback of a treemap drawn by :func:`tree_figure` under ``key``: choose the
    clicked tile's node (Streamlit reports a treemap click as ``selection.points[0]["id"]``)."""
    event = st.session_state.get(key)
    points = event["selection"].get("points", []) if event else []
    clicked = parse_count(points[0].get("id", "")) if points else None
    if clicked is not None:
        select_node(tree_id, clicked)


def node_row_picked(tree_id: str, key: str, ids: Sequence[int]) -> None:
    """``on_select`` callback of a single-row table of nodes under ``key`` whose rows are ``ids``."""
    event = st.session_state.get(key)
    rows = event["selection"].get("rows", []) if event else []
    if rows:
        select_node(tree_id, ids[rows[0]])


def row_picked(table_key: str, state_key: str, values: Sequence[Any]) -> None:
    """``on_select`` callback of a single-row table whose rows are ``values``: the picked row's
    value becomes the shared choice ``state_key`` (rows whose value is None cannot be picked)."""
    event = st.session_state.get(table_key)
    rows = event["selection"].get("rows", []) if event else []
    if rows and values[rows[0]] is not None:
        st.session_state[state_key] = values[rows[0]]


def node_picked(tree_id: str, key: str) -> None:
    """``on_change`` callback of a selectbox of node ids under ``key``."""
    if st.session_state.get(key) is not None:
        select_node(tree_id, st.session_state[key])


# --- capability trees ---------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$])")

LABEL_CHARS = 80  # a node's name is cut here (LLM descriptions can run long) ...
BREADCRUMB_CHARS = 40  # ... and shorter in the path bar
EXAMPLE_CHARS = 400  # the node panel's example prompt is cut here

# Colour by item count: from near-white to the theme's green.
SIZE_SCALE = [[0.0, "#eef6f1"], [0.5, "#7dbb9c"], [1.0, "#1f7a5c"]]


def md_escape(text: str) -> str:
    """``text`` with every Markdown special character backslash-escaped: for widget labels
    (buttons, tabs), which Streamlit renders as Markdown, when they carry data."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def node_label(description: str, is_root: bool = False, chars: int = LABEL_CHARS) -> str:
    """A node's name as pages show it: its capability (its description, cut to ``chars``); the
    root is "All items"."""
    if is_root:
        return "All items"
    text = " ".join(str(description).split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def node_labels(nodes: pd.DataFrame) -> pd.Series:
    """:func:`node_label` of every row of a nodes frame, indexed by node_id."""
    labels = [
        node_label(d, pd.isna(p)) for d, p in zip(nodes["description"], nodes["parent_id"], strict=True)
    ]
    return pd.Series(labels, index=nodes["node_id"].to_numpy(), name="label")


def _wrap(text: str, width: int = 70) -> str:
    """Escaped ``text`` with Plotly line breaks every ~``width`` characters (for hover boxes)."""
    return "<br>".join(plotly_escape(line) for line in textwrap.wrap(text, width) or [""])


def visible_nodes(nodes: pd.DataFrame, opens_at: int, max_depth: int) -> pd.DataFrame:
    """The rows of ``nodes`` a treemap opened at node ``opens_at`` needs: its descendants down to
    ``max_depth`` levels below it (what is drawn), its ancestors (the path bar) and their children
    (what a click on the path bar shows until the page reruns on that node). Plotly lays out every
    node it is sent, drawn or not: a 1,255-node tree costs the browser ~0.4 s more than the ~100
    nodes in view (and ~280 kB instead of ~25 kB)."""
    ids = nodes["node_id"].astype(int).to_numpy()
    parent_of = dict(zip(ids, nodes["parent_id"], strict=True))
    children: dict[int, list[int]] = {}
    for i, p in parent_of.items():
        if not pd.isna(p):
            children.setdefault(int(p), []).append(int(i))
    keep = {opens_at}
    up = parent_of[opens_at]
    while not pd.isna(up):
        keep.add(int(up))
        keep.update(children[int(up)])
        up = parent_of[int(up)]
    frontier = [opens_at]
    for _ in range(max_depth):
        frontier = [c for f in frontier for c in children.get(f, [])]
        keep.update(frontier)
    return nodes[nodes["node_id"].astype(int).isin(keep).to_numpy()].reset_index(drop=True)


def tree_figure(
    nodes: pd.DataFrame,
    color: pd.Series | None = None,
    color_label: str = "Items",
    *,
    colorscale: str | list = SIZE_SCALE,
    color_range: tuple[float, float] | None = None,
    color_text: pd.Series | None = None,
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
        color_range: fixed (min, max) of the colour scale (e.g. (0, 1) for rates); None fits the data.
        color_text: hover text per node, indexed by node_id, shown after the colour value (e.g. the
            interval and the battles behind a score); escaped here.
        selected: the chosen node: outlined, and the view opens at its parent (the node among
            its siblings, its children inside it).
        max_depth: levels shown at once below the opened node (deeper ones by clicking).
        height: pixels.

    Every tile's id is its node id as a string: what a click reports back
    (``st.plotly_chart(on_select=...)`` puts it in ``selection.points[0]["id"]``).
    Untrusted text (descriptions) is escaped: Plotly would otherwise render tags in it.
    """
    all_ids = nodes["node_id"].astype(int)
    root = int(all_ids[nodes["parent_id"].isna()].iloc[0])
    root_size = max(int(nodes["size"].max()), 1)
    chosen = selected if selected is not None and selected in set(all_ids) and selected != root else None
    # Open at the chosen node's parent: the node among its siblings, its children inside it.
    opens_at = root if chosen is None else int(nodes.loc[all_ids == chosen, "parent_id"].iloc[0])
    level = str(opens_at) if opens_at != root else None
    if color is None:  # the colour scale spans every node, shown or not
        inner = nodes.loc[nodes["depth"] > 0, "size"].astype(float)
        cmax = float(inner.max()) if len(inner) else float(root_size)
        cmin = float(inner.min()) if len(inner) else 0.0
    else:
        cmin, cmax = color_range if color_range is not None else (None, None)
    nodes = visible_nodes(nodes, opens_at, max_depth)
    ids = nodes["node_id"].astype(int)
    parent = nodes["parent_id"]
    values = nodes["size"].to_numpy()
    if color is None:
        shade = nodes["size"].astype(float).reset_index(drop=True)
    else:
        shade = color.reindex(ids.to_numpy()).astype(float).reset_index(drop=True)
    extra = color_text.reindex(ids.to_numpy()).fillna("") if color_text is not None else None
    labels = node_labels(nodes).map(plotly_escape)
    customdata = [
        [_wrap(d), int(dep), f"{s / root_size:.1%}", ""]
        for d, dep, s in zip(nodes["description"], nodes["depth"], values, strict=True)
    ]
    if extra is not None:
        for row, text in zip(customdata, extra, strict=True):
            row[3] = plotly_escape(str(text))
    line_width = [3.5 if i == chosen else 1.0 for i in ids]
    line_color = ["#d9480f" if i == chosen else "#ffffff" for i in ids]
    hover = (
        "<b>%{label}</b><br>%{customdata[0]}<br><br>"
        "Items: %{value:,} (%{customdata[2]} of all)<br>Depth: %{customdata[1]}"
    )
    if color is not None:
        hover += f"<br>{plotly_escape(color_label)}: %{{color:.3g}} %{{customdata[3]}}"
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
    "label": st.column_config.TextColumn(
        "Capability", help="the capability the node's prompts test", width="large"
    ),
    "size": _COUNT("Items", format="localized"),
    "share": st.column_config.ProgressColumn(
        "Share", help="of the parent's items", format="percent", min_value=0.0, max_value=1.0
    ),
    "distinguishing": st.column_config.TextColumn(
        "Distinguishing", help="how the node differs from its siblings (from an imported EvalTree tree)"
    ),
}

AGREEMENT_COLUMN_CONFIG = {
    "depth": st.column_config.NumberColumn("Depth", width="small"),
    "nodes_a": _COUNT("Nodes here", help="this tree's nodes at the depth", format="localized"),
    "nodes_b": _COUNT("Nodes there", help="the other tree's nodes at the depth", format="localized"),
    "nmi": st.column_config.NumberColumn(
        "NMI", help="normalised mutual information of the two item partitions (1 = identical)", format="%.3f"
    ),
}


def is_imported(row: pd.Series) -> bool:
    """Whether a ``trees`` row is a tree imported from a file (not built here)."""
    return str(row["describer"]).startswith("imported:")


def tree_label(row: pd.Series) -> str:
    """A tree's name in the tree selector: when it was made, its size, and for an imported tree
    that it was imported and under which name."""
    label = f"{row['created_at']:%Y-%m-%d %H:%M} · {row['n_nodes']:,} nodes"
    if is_imported(row):
        name = json.loads(row["params"]).get("name", "")
        label = f"imported {name} · {label}"
    return label


ITEM_COLUMN_CONFIG = {
    "source_ids": st.column_config.TextColumn("Source id", help="the id the item had in its file"),
    "text": st.column_config.TextColumn("Prompt", width="large"),
    "leaf_id": st.column_config.NumberColumn("Leaf", help="the leaf node holding the item", width="small"),
    "capability": st.column_config.TextColumn("Capability", help="what the item was embedded by"),
}


def search_result_label(node: pd.Series, hits: int) -> str:
    """How a search result reads in a picker: node, name, size and matching prompts."""
    name = node_label(node["description"], pd.isna(node["parent_id"]))
    found = f" · {hits:,} matching prompt{'s' if hits != 1 else ''}" if hits else ""
    return f"#{node['node_id']} {name} — {node['size']:,} items, depth {node['depth']}{found}"


def node_panel(nodes: pd.DataFrame, node_id: int, tree_id: str) -> None:
    """The chosen node: a clickable path from the root, its description, keywords and shape."""
    path = data.ancestors(nodes, node_id)
    row = path.iloc[-1]
    root_size = max(int(path.iloc[0]["size"]), 1)
    label = node_label(row["description"], pd.isna(row["parent_id"]))
    st.subheader(md_escape(label), anchor=False)
    st.caption(f"Node {node_id} · depth {row['depth']} · path {row['path']}")
    with st.container(horizontal=True, gap="xxsmall", key="breadcrumb"):
        for _, step in path.iterrows():
            is_root = pd.isna(step["parent_id"])
            st.button(
                md_escape(node_label(step["description"], is_root, chars=BREADCRUMB_CHARS)),
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
    st.caption("Capability")
    st.text(row["description"])
    example = data.central_prompt(tree_id, node_id)
    if example:
        st.caption("Most typical prompt (closest to the node's centre)")
        st.text(example if len(example) <= EXAMPLE_CHARS else example[: EXAMPLE_CHARS - 1] + "…")
    st.caption("Distinctive phrases")
    st.text(" · ".join(row["keywords"]) or "—")


def progress_callback(bar: DeltaGenerator) -> Callable[[str, float], None]:
    """An ``on_progress(stage, fraction)`` for a pipeline that moves an ``st.progress`` bar."""

    def update(stage: str, fraction: float) -> None:
        bar.progress(min(max(fraction, 0.0), 1.0), text=f"{md_escape(stage)} — {fraction:.0%}")

    return update


def sidebar_tree(trees: pd.DataFrame) -> str | None:
    """The tree of the chosen dataset, chosen in the sidebar and shared by all pages
    (``?tree=``); ``trees`` is the dataset's rows of :func:`dashboard.data.trees` indexed by
    tree_id, newest first. None when the dataset has no tree."""
    return shared_choice(
        "Tree",
        trees.index.tolist(),
        TREE,
        format_func=lambda t: tree_label(trees.loc[t]),
        where=st.sidebar,
        help="Trees built for this dataset, newest first",
    )


def node_option_label(nodes: pd.DataFrame) -> Callable[[int], str]:
    """A ``format_func`` for selectboxes of node ids: id, name, size and depth (searchable by typing)."""
    labels = {
        int(i): f"Global — all {size:,} items"
        if pd.isna(parent)
        else f"#{i} {name} — {size:,} items, depth {depth}"
        for i, parent, size, depth, name in zip(
            nodes["node_id"],
            nodes["parent_id"],
            nodes["size"],
            nodes["depth"],
            node_labels(nodes),
            strict=True,
        )
    }
    return lambda node_id: labels[int(node_id)]


def node_picker(nodes: pd.DataFrame, tree_id: str, node: int, label: str = "Capability (node)") -> None:
    """A searchable selectbox of every node of the tree (root first) that chooses the shared node."""
    key = f"node-picker-{tree_id}-{node}"
    options = nodes["node_id"].astype(int).tolist()
    st.selectbox(
        label,
        options,
        index=options.index(node),
        format_func=node_option_label(nodes),
        key=key,
        on_change=node_picked,
        args=(tree_id, key),
        help="Global = the whole dataset (the tree's root). Type to search the nodes' keywords.",
    )


# --- battle filters shared across pages and in the URL -------------------------------------------

# Session-state key = URL query parameter of each battle filter (see :func:`sidebar_filters`).
FILTER_KEYS = ("judge_kind", "judge", "language", "since", "until", "exclude_ties", "dedup")
ALL = "all"
JUDGE_KINDS = {ALL: "Human and LLM", "human": "Human", "llm": "LLM"}


def parse_flag(raw: str) -> bool | None:
    """A URL flag ('1' / '0', 'true' / 'false') as a bool; None when it is neither."""
    return {"1": True, "true": True, "0": False, "false": False}.get(raw.lower())


def _parse_date(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


def _shared_value(
    state_key: str, parse: Callable[[str], Any], default: Any, valid: Callable[[Any], bool]
) -> Any:
    """The session's value of a shared setting, else (fresh session) the URL's, else ``default``."""
    value = st.session_state.get(state_key)
    if state_key in st.session_state and valid(value):
        return value
    raw = st.query_params.get(state_key) if state_key not in st.session_state else None
    parsed = parse(raw) if raw is not None else None
    value = parsed if parsed is not None and valid(parsed) else default
    st.session_state[state_key] = value
    return value


def _mirror(state_key: str, value: Any, default: Any) -> None:
    """Keep ``?state_key=`` in the URL only while the setting differs from its default."""
    if value == default:
        if state_key in st.query_params:
            del st.query_params[state_key]
        return
    if isinstance(value, date):
        st.query_params[state_key] = value.isoformat()
    else:
        st.query_params[state_key] = str(int(value) if isinstance(value, bool) else value)


def shared_widget(
    widget: Callable[..., Any],
    label: str,
    state_key: str,
    *,
    default: Any,
    parse: Callable[[str], Any] = str,
    valid: Callable[[Any], bool] = lambda v: True,
    always_in_url: bool = False,
    **widget_kwargs: Any,
) -> Any:
    """Any input widget (``st.radio``, ``st.checkbox``, ``st.date_input``...) whose value is shared
    like :func:`shared_choice`: kept in ``st.session_state[state_key]`` across pages and in the URL
    as ``?state_key=`` while it differs from ``default`` (or always, with ``always_in_url``: for a
    default that depends on the data). ``parse`` reads the URL's text back; values that fail
    ``valid`` fall back to ``default``. Returns the value."""
    value = _shared_value(state_key, parse, default, valid)
    widget_key = f"_shared_{state_key}"
    st.session_state[widget_key] = value
    widget(label, key=widget_key, on_change=_remember, args=(state_key, widget_key), **widget_kwargs)
    _mirror(state_key, value, None if always_in_url else default)
    return value


def _choice_filter(
    label: str, state_key: str, options: Sequence[str], fmt: Callable[[str], str] = str
) -> str:
    options = [ALL, *options]
    return shared_widget(
        st.selectbox,
        label,
        state_key,
        default=ALL,
        valid=options.__contains__,
        options=options,
        format_func=fmt,
    )


JUDGE_OPTIONS = 200  # judges the Judge filter lists (most votes first); any other can be typed in


def _judge_filter(judges: Sequence[str]) -> str:
    """The Judge filter: ``judges`` (most votes first). A crowd of 20,000 voters would put 20,000
    options (~320 kB) into every page; it lists the :data:`JUDGE_OPTIONS` most active ones
    (alphabetically) and takes any other judge's id typed in."""
    known = set(judges)

    def valid(v: Any) -> bool:
        return v == ALL or v in known

    listed = sorted(judges[:JUDGE_OPTIONS])
    chosen = _shared_value("judge", str, ALL, valid)
    if chosen != ALL and chosen not in listed:
        listed.insert(0, chosen)
    more = len(judges) > JUDGE_OPTIONS
    return shared_widget(
        st.selectbox,
        "Judge",
        "judge",
        default=ALL,
        valid=valid,
        options=[ALL, *listed],
        format_func=lambda j: "All judges" if j == ALL else j,
        accept_new_options=more,
        help=f"The {JUDGE_OPTIONS} judges with the most votes are listed; type any other judge's id."
        if more
        else None,
    )


def _date_filter(label: str, state_key: str, default: date, first: date, last: date) -> date:
    def valid(v: Any) -> bool:
        return isinstance(v, date) and first <= v <= last

    return shared_widget(
        st.date_input,
        label,
        state_key,
        default=default,
        parse=_parse_date,
        valid=valid,
        min_value=first,
        max_value=last,
    )


def is_flag(value: Any) -> bool:
    """True for a bool (the ``valid`` check of flag settings)."""
    return isinstance(value, bool)


def _flag_filter(label: str, state_key: str, help: str) -> bool:
    return shared_widget(
        st.checkbox, label, state_key, default=False, parse=parse_flag, valid=is_flag, help=help
    )


def sidebar_filters(options: dict[str, Any]) -> dict[str, Any]:
    """Battle filters in the sidebar, shared by every page that shows votes and kept in the URL.

    ``options`` is what the dataset offers (:func:`dashboard.data.filter_options`): judge_kinds,
    judges (name -> kind), languages, first / last vote date (None without timestamps). Returns
    the chosen filters as keyword arguments of :class:`pipelines.battles.Filters`: judge_kind,
    judge, language (None = all), since, until (dates or None), exclude_ties, dedup_prompts.
    """
    with st.sidebar.expander("Vote filters", icon=":material/filter_alt:", expanded=False):
        kinds = [k for k in ("human", "llm") if k in options["judge_kinds"]]
        kind = (
            _choice_filter("Judge kind", "judge_kind", kinds, lambda k: JUDGE_KINDS[k])
            if len(kinds) > 1
            else ALL
        )
        judge = _judge_filter([j for j, k in options["judges"].items() if kind in (ALL, k)])
        language = ALL
        if options["languages"]:
            language = _choice_filter(
                "Language", "language", options["languages"], lambda x: "All languages" if x == ALL else x
            )
        since = until = None
        first, last = options["first"], options["last"]
        if first is not None and last is not None:
            since = _date_filter("From", "since", first, first, last)
            until = _date_filter("Until", "until", last, first, last)
            since = None if since == first else since
            until = None if until == last else until
        exclude_ties = _flag_filter("Exclude ties", "exclude_ties", "drop tie and both-bad votes")
        dedup = _flag_filter("One vote per prompt and pair", "dedup", "deduplicate repeated prompts")
    return {
        "judge_kind": None if kind == ALL else kind,
        "judge": None if judge == ALL else judge,
        "language": None if language == ALL else language,
        "since": since,
        "until": until,
        "exclude_ties": exclude_ties,
        "dedup_prompts": dedup,
    }


def active_filters(filters: dict[str, Any]) -> str:
    """A one-line summary of the filters that are set ('' when none), for captions and exports."""
    parts = [f"{k}={v}" for k, v in filters.items() if v not in (None, False)]
    return ", ".join(parts)


# --- tables, charts and exports -------------------------------------------------------------------


def download_csv(df: pd.DataFrame, name: str, label: str = "CSV", key: str | None = None) -> None:
    """A download button for ``df`` as a (formula-safe) CSV file called ``name``. The CSV is written
    only when the button is clicked, so a rerun never pays for it (a million votes take ~8 s)."""
    st.download_button(
        label,
        functools.partial(csv_bytes, df),
        file_name=name,
        mime="text/csv",
        icon=":material/download:",
        key=key or f"csv-{name}",
        on_click="ignore",
    )


def slug(text: str) -> str:
    """``text`` reduced to a safe file-name part."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "data"


def matrix_figure(
    matrix: pd.DataFrame,
    *,
    title: str,
    colorscale: str | list = "RdBu",
    zmid: float | None = None,
    fmt: str = ".2f",
    counts: pd.DataFrame | None = None,
) -> go.Figure:
    """A heatmap of a model-by-model matrix (row model vs column model), labels escaped;
    ``counts`` (same shape) goes into the hover text as the battles behind each cell."""
    rows = [plotly_escape(str(m)) for m in matrix.index]
    cols = [plotly_escape(str(m)) for m in matrix.columns]
    z = matrix.to_numpy(dtype=float)
    custom = (
        counts.reindex(index=matrix.index, columns=matrix.columns).fillna(0).to_numpy()
        if counts is not None
        else None
    )
    hover = "<b>%{y}</b> vs <b>%{x}</b><br>" + plotly_escape(title) + ": %{z:" + fmt + "}"
    if custom is not None:
        hover += "<br>battles: %{customdata:,}"
    fig = go.Figure(
        go.Heatmap(
            z=[[None if pd.isna(v) else float(v) for v in row] for row in z],
            x=cols,
            y=rows,
            customdata=custom.tolist() if custom is not None else None,
            colorscale=colorscale,
            zmid=zmid,
            texttemplate="%{z:" + fmt + "}" if len(rows) <= 16 else None,
            hovertemplate=hover + "<extra></extra>",
            colorbar={"title": {"text": plotly_escape(title)}, "thickness": 12},
        )
    )
    side = max(320, 80 + 28 * len(rows))
    fig.update_layout(
        height=side,
        margin={"t": 10, "l": 0, "r": 0, "b": 0},
        xaxis={"type": "category", "side": "top", "tickangle": -45, "automargin": True},
        yaxis={"type": "category", "autorange": "reversed", "automargin": True},
    )
    return fig


_RATING = st.column_config.NumberColumn
LEADERBOARD_COLUMN_CONFIG = {
    "rank_ub": _COUNT(
        "Rank (UB)", help="1 + models whose lower bound is above this model's upper bound", width="small"
    ),
    "model": st.column_config.TextColumn("Model"),
    "rating": _RATING("Rating", format="%.1f", help="maximum-likelihood rating, Elo-like points"),
    "lower": _RATING("Lower", format="%.1f", help="95% interval, lower end (sandwich or bootstrap)"),
    "upper": _RATING("Upper", format="%.1f", help="95% interval, upper end (sandwich or bootstrap)"),
    "battles": _COUNT("Battles", format="localized", help="votes the model took part in"),
    "rank_change": _COUNT("Rank change", help="rank (UB) without style control minus with it: + = moves up"),
    "elo": _RATING("Online Elo", format="%.1f", help="sequential Elo over the votes in time order (K=4)"),
}
ACCURACY_COLUMN_CONFIG = {
    "rank_ub": LEADERBOARD_COLUMN_CONFIG["rank_ub"],
    "model": st.column_config.TextColumn("Model"),
    "score": _RATING("Accuracy", format="percent", help="mean item score"),
    "lower": _RATING(
        "Lower", format="percent", help="95% Clopper–Pearson interval (Wilson for non-0/1 scores)"
    ),
    "upper": _RATING("Upper", format="percent"),
    "items": _COUNT("Items", format="localized", help="items with a result for the model"),
}
COEFFICIENT_COLUMN_CONFIG = {
    "feature": st.column_config.TextColumn("Style feature"),
    "coef": _RATING("Coefficient", format="%.3f", help="log-odds per unit of the normalised difference"),
    "lower": _RATING("Lower", format="%.3f"),
    "upper": _RATING("Upper", format="%.3f"),
}


class Stages:
    """An ``st.progress`` bar over a fixed list of named stages: ``step(name)`` before each,
    ``done()`` removes the bar. Cached stages pass in a blink; uncached ones show what runs."""

    def __init__(self, total: int, text: str = "Starting…") -> None:
        self._bar = st.progress(0.0, text=text)
        self._total = max(total, 1)
        self._done = 0

    def step(self, text: str) -> None:
        self._done += 1
        self._bar.progress(min(self._done / self._total, 1.0), text=text)

    def done(self) -> None:
        self._bar.empty()


# --- node scores ----------------------------------------------------------------------------------

MODEL = "model"  # session-state key (and URL query parameter) of the chosen model


def model_choice(models: Sequence[str]) -> str:
    """The chosen model among ``models`` (best first; the first is the default), shared by every
    page (``MODEL``) and always in the URL, since the default depends on the data."""
    return shared_widget(
        st.selectbox,
        "Model",
        MODEL,
        default=models[0],
        valid=list(models).__contains__,
        always_in_url=True,
        options=list(models),
        width=360,
    )


def score_names(kind: str) -> dict[str, str]:
    """How a node score reads for a dataset of ``kind``: score (Win rate / Accuracy) and n
    (Battles / Results)."""
    if kind == "pairwise":
        return {"score": "Win rate", "n": "Battles"}
    return {"score": "Accuracy", "n": "Results"}


def node_score_column_config(kind: str) -> dict[str, Any]:
    """Column config of a node-scores table (one row per model, or per node) of a ``kind`` dataset."""
    names = score_names(kind)
    return {
        "model": st.column_config.TextColumn("Model"),
        "n": _COUNT(names["n"], format="localized", help="the votes / results behind the score"),
        "score": _RATING(
            names["score"], format="percent", help="ties count half" if kind == "pairwise" else None
        ),
        "lower": _RATING("Lower", format="percent", help="95% interval (none below 5)"),
        "upper": _RATING("Upper", format="percent"),
        "rating": _RATING("Node rating", format="%.1f", help="Bradley–Terry fit on the node's votes alone"),
        "rating_lower": _RATING("Rating lower", format="%.1f"),
        "rating_upper": _RATING("Rating upper", format="%.1f"),
        "rank_ub": LEADERBOARD_COLUMN_CONFIG["rank_ub"],
        "rank": _COUNT("Rank (UB)", help="rank inside the node (upper bound)"),
    }


def score_text(row: pd.Series, kind: str) -> str:
    """A node score with its interval and evidence as plain text, e.g. '[52%, 61%] · 120 battles'."""
    n_name = score_names(kind)["n"].lower()
    interval = "" if pd.isna(row["lower"]) else f"[{row['lower']:.0%}, {row['upper']:.0%}] · "
    return f"{interval}{int(row['n']):,} {n_name}"


def offer_node_scores(
    dataset: str, tree_id: str, filters: dict[str, Any], kind: str, *, required: bool = True
) -> None:
    """Say that node scores for this tree (and filters) are not computed yet and offer a button
    that computes them here, with a progress bar, then reruns the page. ``required=False`` (the
    scores are an extra, e.g. for colouring) says it in a caption instead of an info box."""
    filtered = kind == "pairwise" and any(v not in (None, False) for v in filters.values())
    message = (
        f"Model scores for this tree{' and these vote filters' if filtered else ''} are not computed yet."
    )
    with st.container(horizontal=True, vertical_alignment="center"):
        if required:
            st.info(message, icon=":material/calculate:")
        else:
            st.caption(message + " Compute them to colour the tree by a model's score.")
        clicked = st.button(
            "Compute scores",
            type="primary" if required else "secondary",
            icon=":material/calculate:",
            key=f"compute-{tree_id}",
            help="Win rates / accuracy with intervals and a Bradley–Terry fit in every node "
            "(sandwich intervals, as LMArena's)",
        )
    if clicked:
        bar = st.progress(0.0, text="Starting…")
        try:
            data.compute_node_scores(dataset, tree_id, filters, on_progress=progress_callback(bar))
        except ArenatreeError as exc:
            st.error("The scores could not be computed.", icon=":material/error:")
            st.code(str(exc), language=None, wrap_lines=True)
            return
        st.rerun()


def score_colours(ranked: pd.DataFrame, kind: str, model: str, measure: str) -> tuple[dict[str, Any], str]:
    """Treemap colouring by ``model``'s node score (``measure='score'``) or rank inside each node
    (``'rank'``), from node scores with a ``rank`` column (:func:`dashboard.data.with_rank`).
    Returns the colour keyword arguments of :func:`tree_figure` and a legend sentence."""
    names = score_names(kind)
    mine = ranked[ranked["model"] == model].set_index("node_id")
    text = mine.apply(score_text, axis=1, kind=kind) if len(mine) else None
    if measure == "score":
        colour = {"color": mine["score"], "color_label": names["score"], "colorscale": "RdYlGn"}
        colour["color_range"] = (0.0, 1.0)
        legend = f"colour = {names['score'].lower()} of {model} (red 0%, green 100%)"
    else:
        worst = float(ranked["rank"].max()) if ranked["rank"].notna().any() else 2.0
        colour = {"color": mine["rank"], "color_label": "Rank (UB)", "colorscale": "RdYlGn_r"}
        colour["color_range"] = (1.0, max(worst, 2.0))
        legend = f"colour = rank (upper bound) of {model} inside each node (green = 1)"
    return {**colour, "color_text": text}, legend + "; grey tiles have no score for it"


# --- weakness profiles ------------------------------------------------------------------------------

SWEEP_COLUMN_CONFIG = {
    "tau_low": _RATING("τ from", format="%.3f", help="the profile holds for τ above this ..."),
    "tau_high": _RATING("τ to", format="%.3f", help="... up to this τ"),
    "nodes": _COUNT("Nodes"),
    "items": _COUNT("Items", format="localized", help="items under the profile's nodes"),
    "node_ids": st.column_config.ListColumn("Node ids"),
    "members": st.column_config.TextColumn("Nodes", width="large"),
}
ADJUSTED_COLUMN_CONFIG = {
    "node_id": st.column_config.NumberColumn("Node", width="small"),
    "label": st.column_config.TextColumn("Capability"),
    "size": _COUNT("Items", format="localized"),
    "battles": _COUNT("Battles", format="localized", help="the model's votes in the node"),
    "observed": _RATING("Wins", format="%.1f", help="wins in the node, ties half"),
    "expected": _RATING("Expected", format="%.1f", help="wins its global rating predicts there"),
    "offset": _RATING("Offset", format="%+.0f", help="rating points inside the node vs globally"),
    "offset_lower": _RATING("Offset lower", format="%+.0f", help="95% interval"),
    "offset_upper": _RATING("Offset upper", format="%+.0f"),
    "z": _RATING("z", format="%.2f"),
    "p": _RATING("p", format="%.2g", help="one-sided: weaker in the node"),
    "p_adj": _RATING("p (BH)", format="%.2g", help="Benjamini–Hochberg adjusted over the tested nodes"),
    "description": st.column_config.TextColumn("Description", width="large"),
}


def model_summary(profile_nodes: pd.DataFrame, kind: str) -> None:
    """Metrics of a model's overall (root) score, its interval and evidence."""
    names = score_names(kind)
    root = profile_nodes[profile_nodes["parent_id"].isna()].iloc[0]
    scored = int(profile_nodes["lower"].notna().sum())
    with st.container(horizontal=True):
        st.metric(
            f"Overall {names['score'].lower()}", "—" if pd.isna(root["score"]) else f"{root['score']:.1%}"
        )
        interval = "—" if pd.isna(root["lower"]) else f"{root['lower']:.1%} – {root['upper']:.1%}"
        st.metric("95% interval", interval)
        st.metric(names["n"], f"{int(root['n']):,}")
        st.metric("Nodes with an interval", f"{scored:,} of {len(profile_nodes):,}")


def profile_table(profile: pd.DataFrame, kind: str, key: str, selectable: bool = True) -> int | None:
    """A weakness / strength profile (rows of :func:`pipelines.weaknesses.extract`) as a table;
    returns the node chosen for evidence (the selected row, else the first; None when empty)."""
    if profile.empty:
        st.caption("None at this τ.")
        return None
    shown = profile.assign(label=node_labels(profile).to_numpy())
    config = {**node_score_column_config(kind), **CHILD_COLUMN_CONFIG}
    event = st.dataframe(
        shown,
        hide_index=True,
        column_order=["node_id", "label", "size", "n", "score", "lower", "upper", "description"],
        column_config=config,
        key=key,
        on_select="rerun" if selectable else "ignore",
        selection_mode="single-row",
    )
    rows = event["selection"]["rows"] if selectable and event else []
    return int(shown["node_id"].iloc[rows[0] if rows else 0])


def evidence(
    dataset: str, filters: dict[str, Any], tree_id: str, node: int, model: str, kind: str, limit: int
) -> None:
    """The votes (arenas: the opponent and the outcome, losses first) or results (wrong answers
    first) of ``model`` behind its score in ``node``, with the prompts as plain text."""
    nodes = data.tree_nodes(tree_id)
    row = nodes[nodes["node_id"] == node].iloc[0]
    with st.container(border=True, key=f"evidence-{node}"):
        st.caption(f"Evidence for node {node} · {row['size']:,} items")
        st.text(row["description"])
        if kind == "pairwise":
            votes = data.evidence_votes(dataset, filters, tree_id, node, model, limit)
            st.caption(f"{len(votes):,} of {model}'s votes here (up to {limit}), losses first.")
            st.dataframe(votes, hide_index=True, column_config=EVIDENCE_COLUMN_CONFIG, key=f"votes-{node}")
            download_csv(votes, f"evidence-node{node}-{slug(model)}.csv", "Evidence CSV")
        else:
            results = data.evidence_results(dataset, tree_id, node, model, limit)
            st.caption(f"{len(results):,} of {model}'s results here (up to {limit}), wrong answers first.")
            st.dataframe(
                results, hide_index=True, column_config=EVIDENCE_COLUMN_CONFIG, key=f"results-{node}"
            )
            download_csv(results, f"evidence-node{node}-{slug(model)}.csv", "Evidence CSV")


EVIDENCE_COLUMN_CONFIG = {
    "prompt": st.column_config.TextColumn("Prompt", width="large"),
    "opponent": st.column_config.TextColumn("Opponent"),
    "outcome": st.column_config.TextColumn("Outcome", help="from the chosen model's side"),
    "side": st.column_config.TextColumn("Side", help="A = shown first (left)", width="small"),
    "judge": st.column_config.TextColumn("Judge"),
    "battle_id": st.column_config.TextColumn("Vote id"),
    "score": _RATING("Score", format="%.2f", help="1 = correct"),
    "instance_id": st.column_config.TextColumn("Item id"),
}


def adjusted_table(tested: pd.DataFrame, key: str) -> None:
    """Rows of :func:`dashboard.data.opponent_adjusted` (any subset) as a table."""
    if tested.empty:
        st.caption("None at this level.")
        return
    shown = tested.assign(label=node_labels(tested).to_numpy())
    st.dataframe(
        shown,
        hide_index=True,
        column_order=list(ADJUSTED_COLUMN_CONFIG),
        column_config=ADJUSTED_COLUMN_CONFIG,
        key=key,
    )


# --- voter audit ----------------------------------------------------------------------------------

AUDIT_ROWS = 200  # rows of a finding's table shown (the CSV has them all)
AUDIT_EVIDENCE = 20  # votes shown in a drill-down


def _fmt_number(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, int | float) and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and x != x)


def has_estimate(headline: dict) -> bool:
    """True when a finding's headline has a number to show (not None / NaN)."""
    return bool(headline) and not _missing(headline.get("estimate"))


AUDIT_ALPHAS = [0.01, 0.05, 0.1]  # false-discovery rates offered (the audit's default: 0.05)
AUDIT_MIN_VOTES = (5, 1000, 20)  # fewest votes to flag a voter: min, max, default


def _alpha_setting(raw: str) -> float | None:
    try:
        return float(raw)
    except ValueError:
        return None


def _valid_min_votes(v: Any) -> bool:
    return isinstance(v, int) and AUDIT_MIN_VOTES[0] <= v <= AUDIT_MIN_VOTES[1]


def audit_settings() -> tuple[float, int]:
    """The voter audit's settings as widgets, shared like the filters (session and URL: ``?alpha=``,
    ``?min_votes=``): the false-discovery rate and the fewest votes a flagged voter needs."""
    alpha = shared_widget(
        st.selectbox,
        "False-discovery rate (α)",
        "alpha",
        default=AUDIT_ALPHAS[1],
        parse=_alpha_setting,
        valid=AUDIT_ALPHAS.__contains__,
        options=AUDIT_ALPHAS,
        help="Flags are Benjamini–Hochberg discoveries at this level across voters (or nodes).",
    )
    low, high, default = AUDIT_MIN_VOTES
    min_votes = shared_widget(
        st.number_input,
        "Fewest votes to flag a voter",
        "min_votes",
        default=default,
        parse=parse_count,
        valid=_valid_min_votes,
        min_value=low,
        max_value=high,
        step=5,
        width=220,
    )
    return alpha, int(min_votes)


def audit_settings_chosen() -> tuple[float, int]:
    """The voter audit's settings as chosen on the Voter audit page (or in the URL), without
    showing widgets: for pages that run the audit too (Reports)."""
    alpha = _shared_value("alpha", _alpha_setting, AUDIT_ALPHAS[1], AUDIT_ALPHAS.__contains__)
    min_votes = _shared_value("min_votes", parse_count, AUDIT_MIN_VOTES[2], _valid_min_votes)
    _mirror("alpha", alpha, AUDIT_ALPHAS[1])
    _mirror("min_votes", min_votes, AUDIT_MIN_VOTES[2])
    return alpha, int(min_votes)


FINDINGS_COLUMN_CONFIG = {
    "title": st.column_config.TextColumn("Audit", width="medium"),
    "headline": st.column_config.TextColumn(
        "Headline", help="the estimate with its interval, p-value and n", width="large"
    ),
    "flagged": st.column_config.NumberColumn(
        "Flagged",
        help="rows flagged across the finding's tables (voters, nodes, pairs...)",
        format="%d",
        width="small",
    ),
}


def findings_overview(findings: Sequence[Any]) -> pd.DataFrame:
    """One row per finding of an audit run (:class:`pipelines.audit.result.Finding`), in run
    order: title, headline in one line (or why the audit does not apply), flagged rows."""
    return pd.DataFrame(
        {
            "title": [f.title for f in findings],
            "headline": [
                headline_text(f.headline) if f.applicable else f"not applicable: {f.summary}"
                for f in findings
            ],
            "flagged": [f.flagged if f.applicable else None for f in findings],
        }
    ).astype({"flagged": "Int64"})


def headline_metric(headline: dict) -> None:
    """A finding's headline as an ``st.metric``: estimate (with unit), interval and p-value below.
    A unit that is a share ('share of ...') shows as a percentage (the unit goes into the help)."""
    missing = _missing
    if not has_estimate(headline):
        return
    unit = str(headline.get("unit") or "")
    share = unit.startswith("share")

    def fmt(x: Any) -> str:
        return f"{100 * x:.1f}%" if share and isinstance(x, int | float) else _fmt_number(x)

    parts = []
    if not missing(headline.get("lower")) and not missing(headline.get("upper")):
        parts.append(f"interval [{fmt(headline['lower'])}, {fmt(headline['upper'])}]")
    if not missing(headline.get("p_value")):
        parts.append(f"p = {headline['p_value']:.2g}")
    if headline.get("n") is not None:
        parts.append(f"n = {_fmt_number(headline['n'])}")
    suffix = "" if share or not unit else f" {unit}"
    st.metric(
        md_escape(str(headline.get("label", "Estimate"))),
        f"{fmt(headline['estimate'])}{suffix}",
        border=True,
        help=md_escape(unit) if unit and share else None,
    )
    if parts:
        st.caption(" · ".join(parts))


def finding_column_config(table: pd.DataFrame) -> dict[str, Any]:
    """Column settings of a finding's table: flags as checkboxes; p-, q- and e-values (which run
    down to 1e-50) in scientific notation, not as a row of zeros."""
    config: dict[str, Any] = {"flagged": st.column_config.CheckboxColumn("flagged")}
    for column in table.columns:
        name = str(column)
        if name in ("p", "q") or name.endswith(("p_value", "q_value")):
            config[name] = st.column_config.NumberColumn(name, format="%.2e")
    return config


def finding_table(table: pd.DataFrame, key: str) -> pd.DataFrame | None:
    """A finding's table (flagged rows first, without the evidence-id column) and, when its rows
    carry example votes, a picker of the row whose votes to read. Returns that row as a one-row
    frame (with its ``battle_ids``), or None."""
    if "flagged" in table:
        table = table.sort_values("flagged", ascending=False, kind="stable")
    shown = table.head(AUDIT_ROWS).reset_index(drop=True)
    visible = shown.drop(columns=[c for c in ("battle_ids",) if c in shown])
    st.dataframe(visible, hide_index=True, key=key, column_config=finding_column_config(visible))
    if "battle_ids" not in shown:
        return None
    has = [i for i, ids in enumerate(shown["battle_ids"]) if ids is not None and len(ids)]
    if not has:
        return None
    picked = st.selectbox(
        "Read the votes behind",
        [None, *has],
        format_func=lambda i: "— choose a row —" if i is None else row_label(shown.iloc[i]),
        key=f"{key}-pick",
    )
    return None if picked is None else shown.iloc[[picked]]


def row_label(row: pd.Series) -> str:
    """A short plain-text name for a finding's row: what it is about (judge, node, model, pair)."""
    parts = []
    for col in ("judge", "judge_a", "judge_b", "node_id", "description", "model", "favourite", "pair"):
        if col in row and not pd.isna(row[col]):
            text = str(row[col])
            parts.append(f"node {text}" if col == "node_id" else text[:60])
    return " · ".join(parts) or f"row {row.name}"


AUDIT_EVIDENCE_COLUMNS = {
    "prompt": st.column_config.TextColumn("Prompt", width="large"),
    "response_a": st.column_config.TextColumn("Response A (left)", width="large"),
    "response_b": st.column_config.TextColumn("Response B (right)", width="large"),
    "winner": st.column_config.TextColumn("Vote"),
    "judge": st.column_config.TextColumn("Judge"),
    "battle_id": st.column_config.TextColumn("Vote id"),
}


def audit_evidence(dataset: str, row: pd.DataFrame, key: str) -> None:
    """The votes behind one selected row of a finding (its ``battle_ids``), prompt and both answers
    as plain text in a table."""
    ids = row["battle_ids"].iloc[0] if "battle_ids" in row else None
    if ids is None or not len(ids):
        st.caption("No example votes are recorded for this row.")
        return
    votes = data.audit_evidence(dataset, list(ids)[:AUDIT_EVIDENCE])
    what = ", ".join(f"{c} {row[c].iloc[0]}" for c in ("judge", "node_id", "model") if c in row)
    st.caption(
        f"{len(votes):,} votes behind this row ({md_escape(what)}), most telling first. "
        "Select a vote to read it in full."
    )
    vote_table(votes, key=f"{key}-evidence", column_config=AUDIT_EVIDENCE_COLUMNS)
    download_csv(votes, f"audit-evidence-{slug(key)}.csv", "Evidence CSV", key=f"{key}-evidence-csv")


TEXT_SHOWN = 300  # characters of a prompt or answer a vote table cell holds (the rest: select the row)
VOTE_TEXT = ("prompt", "response_a", "response_b")


def clip_text(
    votes: pd.DataFrame, columns: Sequence[str] = VOTE_TEXT, limit: int = TEXT_SHOWN
) -> pd.DataFrame:
    """``votes`` with each text of ``columns`` cut to ``limit`` characters (an ellipsis marks a cut):
    a table of long answers would otherwise send every character to the browser."""
    cut = {}
    for c in columns:
        if c in votes:
            text = votes[c].astype("string")
            cut[c] = text.where(text.str.len() <= limit, text.str.slice(0, limit - 1) + "…")
    return votes.assign(**cut)


def vote_table(votes: pd.DataFrame, key: str, **dataframe_kwargs: Any) -> None:
    """Votes (prompt and both answers, texts cut to :data:`TEXT_SHOWN` characters) in a table; the
    selected row's vote is shown in full below it, as plain text."""
    picked = st.dataframe(
        clip_text(votes),
        hide_index=True,
        key=key,
        on_select="rerun",
        selection_mode="single-row",
        **dataframe_kwargs,
    )
    rows = picked["selection"]["rows"]
    if not rows:
        return
    vote = votes.iloc[rows[0]]
    st.text(  # plain text: ids and model names come from the data
        f"Vote {vote.get('battle_id', '')} · judge {vote.get('judge', '—')} · {vote.get('model_a', 'A')} "
        f"(left) vs {vote.get('model_b', 'B')} (right) · vote: {vote.get('winner', '—')}"
    )
    st.text("Prompt")
    st.code(str(vote.get("prompt", "")), language=None, wrap_lines=True)
    left, right = st.columns(2)
    for side, column, label in (
        (left, "response_a", "Response A (left)"),
        (right, "response_b", "Response B (right)"),
    ):
        with side:
            st.text(label)
            st.code(str(vote.get(column, "")), language=None, wrap_lines=True)


# --- leaderboard hub ------------------------------------------------------------------------------

BASELINE_COLUMN_CONFIG = {
    "model": st.column_config.TextColumn("Model"),
    "win_rate": _COUNT("Win rate %", help="mean preference for the model (AlpacaEval)", format="%.2f"),
    "standard_error": _COUNT("SE", help="standard error of the win rate (percentage points)", format="%.2f"),
    "length_controlled_winrate": _COUNT(
        "LC win rate %", help="AlpacaEval's length-controlled (minimal GLM) win rate", format="%.1f"
    ),
    "discrete_win_rate": _COUNT("Discrete %", help="preferences rounded to wins", format="%.2f"),
    "n_wins": _COUNT("Wins", width="small"),
    "n_wins_base": _COUNT("Baseline wins", width="small"),
    "n_draws": _COUNT("Draws", width="small"),
    "n_total": _COUNT("Votes", width="small"),
    "avg_length": _COUNT("Avg length", help="mean characters of the model's answers", width="small"),
}

HUB_COLUMN_CONFIG = {
    **LEADERBOARD_COLUMN_CONFIG,
    "rank": _COUNT("Rank", help="position by rating (1 = best)", width="small"),
    "rank_low": _COUNT("Rank from", help="2.5% of the model's rank over the rounds", width="small"),
    "rank_high": _COUNT("Rank to", help="97.5% of the model's rank over the rounds", width="small"),
    "rank_range": st.column_config.TextColumn(
        "Rank range",
        help="95% range of the model's rank over the bootstrap rounds or sandwich draws (2.5% to 97.5%)",
    ),
    "group": _COUNT(
        "Group", help="models that meet, directly or through others; compare within a group only"
    ),
    "p_top": _RATING(
        "P(#1)",
        format="percent",
        help="share of rounds (bootstrap or sandwich draws) where the model rates highest",
    ),
    "rank_before": _COUNT(
        "Rank as voted", help="position without slice weighting, same votes", width="small"
    ),
    "rank_change": _COUNT("Rank change", help="rank as voted minus weighted rank: + = moves up"),
}
RECORD_COLUMN_CONFIG = {
    "opponent": st.column_config.TextColumn("Opponent"),
    "battles": _COUNT("Battles", format="localized"),
    "wins": _COUNT("Wins", format="localized"),
    "losses": _COUNT("Losses", format="localized"),
    "ties": _COUNT("Ties", format="localized"),
    "win_rate": _RATING("Win rate", format="percent", help="wins plus half the ties, per battle"),
    "win_lower": _RATING("Lower", format="percent", help="95% Wilson interval"),
    "win_upper": _RATING("Upper", format="percent"),
}
PAIR_BATTLE_COLUMNS = {
    **AUDIT_EVIDENCE_COLUMNS,
    "model_a": st.column_config.TextColumn("Model A (left)"),
    "model_b": st.column_config.TextColumn("Model B (right)"),
    "outcome": st.column_config.TextColumn("Outcome", help="for the chosen model"),
}
_MOVED = {1: "background-color: rgba(31, 122, 92, 0.18)", -1: "background-color: rgba(200, 60, 40, 0.18)"}


def rank_change_style(table: pd.DataFrame) -> Any:
    """``table`` as a pandas Styler whose rows are tinted where ``rank_change`` is non-zero: green
    for a model that moves up, red for one that moves down (the data is unchanged)."""

    def tint(row: pd.Series) -> list[str]:
        change = row.get("rank_change")
        colour = "" if pd.isna(change) or change == 0 else _MOVED[1 if change > 0 else -1]
        return [colour] * len(row)

    return table.style.apply(tint, axis=1)


def with_rank_range(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` plus ``rank_range`` (rank_low / rank_high) and, when the table has them,
    ``rank_set`` (set_low / set_high, the joint sets) as one text cell each ('3', '1–6') for
    display (the numeric columns stay, for sorting and CSV)."""

    def span(lo: str, hi: str) -> pd.Series:
        low, high = table[lo].astype(int).astype(str), table[hi].astype(int).astype(str)
        return low.where(low == high, low + "–" + high)

    out = table.assign(rank_range=span("rank_low", "rank_high"))
    return out.assign(rank_set=span("set_low", "set_high")) if "set_low" in table else out
