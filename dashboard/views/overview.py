"""Overview: the datasets in the store, their counts, and the import log."""

from __future__ import annotations

import streamlit as st

from dashboard import data, widgets

st.title("arenatree")
st.markdown(widgets.ABOUT)

summary, import_log = widgets.load_or_stop(data.dataset_summary, data.imports)

totals = data.totals(summary)
with st.container(horizontal=True):
    st.metric("Datasets", f"{totals['datasets']:,}", border=True)
    st.metric("Battles", f"{totals['battles']:,}", border=True)
    st.metric("Human votes", f"{totals['human_votes']:,}", border=True)
    st.metric("Prompts", f"{totals['prompts']:,}", border=True)
    st.metric("Per-instance results", f"{totals['results']:,}", border=True)

st.subheader("Datasets")
st.dataframe(
    summary,
    hide_index=True,
    column_order=widgets.SUMMARY_COLUMN_ORDER,
    column_config=widgets.SUMMARY_COLUMN_CONFIG,
    placeholder="—",
)

st.subheader("Import log")
st.caption("Every imported file, newest first: what it added and what was skipped.")
st.dataframe(import_log, hide_index=True, column_config=widgets.IMPORT_COLUMN_CONFIG, placeholder="—")
