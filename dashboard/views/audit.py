"""Voter audit: is the crowd biased, and where? Every audit's headline and flagged count in one
table; one finding at a time (kept in the URL) with its plot, its tables of voters or nodes, and
the votes behind any row. One finding at a time keeps the page to one chart: at a million votes
the browser's drawing, not the server, was what made the page slow."""

from __future__ import annotations

from functools import partial

import streamlit as st

from dashboard import data, widgets

FINDING = "finding"  # session / URL key of the finding shown


st.title("Voter audit")

summary, all_trees = widgets.load_or_stop(data.dataset_summary, data.trees)
pairwise = summary.loc[summary["kind"] == "pairwise", "dataset"].tolist()
if not pairwise:
    st.info("The voter audit needs pairwise votes; none of the datasets has any.", icon=":material/info:")
    st.stop()
dataset = widgets.sidebar_dataset(summary["dataset"].tolist(), default=pairwise[0])
if dataset not in pairwise:
    st.info(
        f"This dataset holds {data.dataset_kind(summary, dataset)} data: there are no votes to audit. "
        "Pick a dataset of pairwise votes in the sidebar.",
        icon=":material/info:",
    )
    st.stop()
trees = all_trees[all_trees["dataset"] == dataset].set_index("tree_id")
tree_id = widgets.sidebar_tree(trees) if not trees.empty else None
filters = widgets.sidebar_filters(data.filter_options(dataset))

with st.expander("Audit settings", icon=":material/tune:"), st.container(horizontal=True):
    alpha, min_votes = widgets.audit_settings()
if tree_id is None:
    st.caption("Per-node findings need the dataset's capability tree.")
    st.page_link(
        "views/tree.py", label="Build it on the Capability tree page", icon=":material/account_tree:"
    )

bar = st.empty()
try:
    result = data.audit(
        dataset,
        filters,
        tree_id,
        alpha=alpha,
        min_votes=int(min_votes),
        on_progress=widgets.progress_callback(bar.progress(0.0, text="Auditing the votes…")),
    )
except data.READ_ERRORS as exc:
    bar.empty()
    st.error(str(exc), icon=":material/error:")
    st.stop()
bar.empty()

active = widgets.active_filters(filters)
st.caption(
    f"{result.votes:,} votes by {result.voters:,} judges on {result.models} models"
    + (f" · filters: {active}" if active else "")
    + f" · computed in {result.seconds.get('total', 0):.1f} s"
    + (f" · stored run {result.run_id}" if result.run_id else "")
)

# --- every finding in one table; one finding's details at a time -----------------------------------
sections = [f for f in result.findings if f.applicable]
skipped = [f for f in result.findings if not f.applicable]
if not sections:
    st.info("None of the audits applies to these votes.", icon=":material/info:")
    for f in skipped:
        st.text(f"{f.title}: {f.summary}")
    st.stop()
by_key = {f.audit: f for f in sections}
flagged = [f.audit for f in sections if f.flagged]
st.dataframe(
    widgets.findings_overview(result.findings),
    hide_index=True,
    column_config=widgets.FINDINGS_COLUMN_CONFIG,
    key="findings",
    on_select=partial(
        widgets.row_picked, "findings", FINDING, [f.audit if f.applicable else None for f in result.findings]
    ),
    selection_mode="single-row",
)
key = widgets.shared_widget(
    st.selectbox,
    "Finding",
    FINDING,
    default=(flagged or list(by_key))[0],
    valid=by_key.__contains__,
    options=list(by_key),
    format_func=lambda k: f"{by_key[k].title} ({by_key[k].flagged:,} flagged)",
    width=520,
    help="Every applicable audit; the first with flagged rows opens first. Pick a row above to open it too.",
)
f = by_key[key]
st.subheader(widgets.md_escape(f.title), anchor=f.audit, divider="gray")
st.text(f.summary)
left, right = st.columns([3, 2])
with left:
    fig = data.finding_figure(f, lambda f: widgets.finding_figure(f.tables, f.plot))
    if fig is not None:
        st.plotly_chart(fig, key=f"fig-{f.audit}", config={"displaylogo": False})
with right:
    widgets.headline_metric(f.headline)
    with st.popover("Method and parameters", icon=":material/info:"):
        st.json(f.params)
names = list(f.tables)
if names:
    # One table at a time (a choice, not tabs: tabs would send every table to the browser).
    name = names[0]
    if len(names) > 1:
        name = (
            st.segmented_control(
                "Table",
                names,
                default=names[0],
                format_func={n: f"{n.replace('_', ' ')} ({len(t):,})" for n, t in f.tables.items()}.get,
                key=f"table-{f.audit}",
                label_visibility="collapsed",
            )
            or names[0]
        )
    table = f.tables[name]
    if table.empty:
        st.caption("Nothing here.")
    else:
        picked = widgets.finding_table(table, key=f"tbl-{f.audit}-{name}")
        widgets.download_csv(
            table.drop(columns=[c for c in ("battle_ids",) if c in table]),
            f"audit-{widgets.slug(dataset)}-{f.audit}-{name}.csv",
            key=f"csv-{f.audit}-{name}",
        )
        if picked is not None:
            widgets.audit_evidence(dataset, picked, key=f"{f.audit}-{name}")
        elif "battle_ids" in table:
            st.caption("Choose a row above to read the votes behind it.")
