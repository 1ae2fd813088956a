"""Cached data access for the dashboard pages.

Pages call the functions here and never open DuckDB themselves. Every query goes through
:func:`pipelines.store.reader` (the read-only snapshot, so a running import never blocks the
dashboard) and is cached with ``st.cache_data`` keyed on the database path and
:func:`pipelines.store.snapshot_version`: when a writer publishes a new snapshot the key
changes and the next rerun reads fresh data, while unchanged data is served from the cache.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import streamlit as st

from pipelines import queries, store
from pipelines.errors import ArenatreeError

Version = tuple[int, int]

# What reading the store can raise that a page should show as a message, not a traceback:
# a schema newer than this arenatree, a writer holding a pre-snapshot database too long,
# an unreadable file.
READ_ERRORS: tuple[type[Exception], ...] = (ArenatreeError, duckdb.Error)


def db_path() -> Path:
    """The database the dashboard shows: ``$ARENATREE_DB`` or ``data/arenatree.duckdb``."""
    return store.db_path()


def snapshot_version() -> Version | None:
    """The current read snapshot's version, or None when there is no database at all.

    A database made before snapshots existed gets its snapshot published here once.
    """
    db = db_path()
    version = store.snapshot_version(db)
    if version is None and db.exists():
        with store.reader(db):  # publishes the first snapshot
            pass
        version = store.snapshot_version(db)
    return version


def snapshot_time() -> datetime | None:
    """When the current read snapshot was published (local time), None without one."""
    try:
        mtime = store.snapshot_path(db_path()).stat().st_mtime
    except FileNotFoundError:
        return None
    return datetime.fromtimestamp(mtime)


@st.cache_data(show_spinner=False, max_entries=16)
def _dataset_summary(db: str, version: Version) -> pd.DataFrame:
    with store.reader(db) as con:
        return queries.dataset_summary(con)


@st.cache_data(show_spinner=False, max_entries=16)
def _imports(db: str, version: Version) -> pd.DataFrame:
    with store.reader(db) as con:
        return queries.imports(con)


def dataset_summary() -> pd.DataFrame | None:
    """One row per dataset with its counts (see :func:`pipelines.queries.dataset_summary`),
    or None when there is no database yet."""
    version = snapshot_version()
    if version is None:
        return None
    return _dataset_summary(str(db_path()), version)


def imports() -> pd.DataFrame | None:
    """The import log, newest first, or None when there is no database yet."""
    version = snapshot_version()
    if version is None:
        return None
    return _imports(str(db_path()), version)


def totals(summary: pd.DataFrame) -> dict[str, int]:
    """Store-wide totals for the metrics row (see :func:`pipelines.queries.summary_totals`)."""
    return queries.summary_totals(summary)
