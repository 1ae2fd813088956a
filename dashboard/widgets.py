"""Small shared pieces of the dashboard's UI (no data access beyond :mod:`dashboard.data`).

Untrusted text (dataset names, prompts, paths from import logs) is only ever shown through
``st.dataframe``, ``st.text`` or ``st.code``: never as HTML, and never as Markdown either
(Markdown links and images would fetch or open arbitrary URLs).
"""

from __future__ import annotations

import streamlit as st

from dashboard import data

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
