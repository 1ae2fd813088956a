"""Reports: export what the dashboard shows as one file — HTML, Markdown, PDF, or every table as
CSV / Parquet — scoped to the chosen dataset, tree node and vote filters (``arenatree report``)."""

from __future__ import annotations

import functools

import streamlit as st

from dashboard import data, widgets
from pipelines.errors import ArenatreeError
from pipelines.report import SECTIONS
from pipelines.report.static import find_chromium

# format -> (button label, file extension, MIME type). Each file is rendered when its button is
# clicked (then kept with the report), so reruns of the page never carry megabytes of files.
DOWNLOADS = {
    "html": ("HTML", "html", "text/html"),
    "md": ("Markdown (zip)", "md.zip", "application/zip"),
    "pdf": ("PDF", "pdf", "application/pdf"),
    "csv": ("CSV tables (zip)", "csv.zip", "application/zip"),
    "parquet": ("Parquet tables (zip)", "parquet.zip", "application/zip"),
}

st.title("Reports")

summary, all_trees = widgets.load_or_stop(data.dataset_summary, data.trees)
dataset = widgets.sidebar_dataset(summary["dataset"].tolist())
kind = data.dataset_kind(summary, dataset)
if kind == "prompts":
    st.info("This dataset holds prompts only: no votes or results to report on.", icon=":material/info:")
    st.stop()
trees = all_trees[all_trees["dataset"] == dataset].set_index("tree_id")
tree_id, node = None, data.ROOT
if trees.empty:
    st.caption("No capability tree for this dataset yet: the report covers the whole dataset.")
else:
    tree_id = widgets.sidebar_tree(trees)
    nodes = data.tree_nodes(tree_id)
    node = widgets.current_node(tree_id, nodes["node_id"])
    widgets.node_picker(nodes, tree_id, node, label="Scope (node)")
filters = widgets.sidebar_filters(data.filter_options(dataset)) if kind == "pairwise" else {}
alpha, min_votes = widgets.audit_settings_chosen()  # as set on the Voter audit page

sections = st.multiselect(
    "Sections",
    list(SECTIONS),
    default=list(SECTIONS),
    format_func=SECTIONS.get,
    key="report-sections",
)
models = st.multiselect(
    "Weakness profiles of",
    data.report_models(dataset),
    key=f"report-models-{dataset}",
    placeholder="the top 2 models",
    help="Empty: the two best models of the leaderboard.",
)
scope = "the whole dataset" if node == data.ROOT else f"node {node} of tree {tree_id}"
active = widgets.active_filters(filters)
st.caption(
    f"Scope: {scope} (leaderboards, tree overview and weaknesses)"
    + (f"; vote filters: {active}" if active else "; no vote filters")
    + ". The voter audit always covers every vote that passes the filters"
    + (
        f" (α = {alpha}, voters with at least {min_votes} votes; set on the Voter audit page)."
        if kind == "pairwise"
        else "."
    )
)
if not sections:
    st.info("Choose at least one section.", icon=":material/info:")
    st.stop()

key = data.report_key(
    dataset,
    filters,
    tree_id,
    node,
    tuple(models),
    tuple(s for s in SECTIONS if s in sections),
    alpha,
    min_votes,
)
report = data.cached_report(key)
if report is None:
    if not st.button("Build report", type="primary", icon=":material/description:", key="report-build"):
        st.stop()
    bar = st.progress(0.0, text="Building the report…")
    try:
        report = data.report(key, on_progress=widgets.progress_callback(bar))
    except data.READ_ERRORS as exc:
        bar.empty()
        st.error("The report could not be built.", icon=":material/error:")
        st.code(str(exc), language=None, wrap_lines=True)
        st.stop()
    bar.empty()

tables, figures = report.tables(), report.figures()
st.success(
    f"Report ready: {len(report.sections)} sections, {len(tables)} tables, {len(figures)} figures.",
    icon=":material/check_circle:",
)
try:
    find_chromium()
    chromium = None
except ArenatreeError as exc:
    chromium = str(exc)
name = f"arenatree-{widgets.slug(dataset)}" + ("" if node == data.ROOT else f"-node-{node}")


with st.container(horizontal=True):
    for fmt, (label, ext, mime) in DOWNLOADS.items():
        st.download_button(
            label,
            functools.partial(data.report_file, key, fmt),  # rendered when clicked
            file_name=f"{name}.{ext}",
            mime=mime,
            icon=":material/download:",
            key=f"report-download-{fmt}",
            on_click="ignore",
            disabled=fmt in ("md", "pdf") and chromium is not None,
        )
if chromium is not None:
    st.caption(f"Markdown figures and PDF: {chromium}")
st.caption("Markdown and PDF are rendered when clicked (a few seconds: Chromium draws the figures).")

with st.expander("Parameters (to reproduce the numbers)", icon=":material/tune:"):
    st.json(report.params)
with st.expander(f"Tables ({len(tables)})", icon=":material/table:"):
    st.dataframe({"table": list(tables), "rows": [len(t) for t in tables.values()]}, hide_index=True)
