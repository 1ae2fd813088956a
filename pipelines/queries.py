"""Read-side queries: what the dashboard and ``arenatree datasets`` show about the store.

Every function takes an open connection (usually :func:`pipelines.store.reader`) and returns
a fully consumed :class:`pandas.DataFrame` or plain Python values, so callers never hold an
unfinished DuckDB result. No function here writes.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import duckdb
import pandas as pd

# Columns of :func:`dataset_summary`, in order. Counts are integers (0 when absent);
# first_vote / last_vote are the earliest / latest battle timestamps (NaT without battles);
# last_import is when the newest import of the dataset landed (naive UTC).
SUMMARY_COLUMNS = [
    "dataset",
    "kind",
    "format",
    "prompts",
    "battles",
    "results",
    "responses",
    "models",
    "judges",
    "human_votes",
    "llm_votes",
    "human_judges",
    "llm_judges",
    "first_vote",
    "last_vote",
    "imports",
    "last_import",
]
_COUNT_COLUMNS = [
    c
    for c in SUMMARY_COLUMNS
    if c not in ("dataset", "kind", "format", "first_vote", "last_vote", "last_import")
]

_SUMMARY_SQL = """
WITH
b AS (
    SELECT dataset,
           count(*) AS battles,
           count(DISTINCT judge) AS judges,
           count(*) FILTER (WHERE judge_kind = 'human') AS human_votes,
           count(*) FILTER (WHERE judge_kind = 'llm') AS llm_votes,
           count(DISTINCT judge) FILTER (WHERE judge_kind = 'human') AS human_judges,
           count(DISTINCT judge) FILTER (WHERE judge_kind = 'llm') AS llm_judges,
           min(tstamp) AS first_vote,
           max(tstamp) AS last_vote
    FROM battles GROUP BY dataset
),
bm AS (
    SELECT dataset, count(DISTINCT model) AS models
    FROM (SELECT dataset, model_a AS model FROM battles
          UNION ALL SELECT dataset, model_b FROM battles)
    GROUP BY dataset
),
p AS (SELECT dataset, count(*) AS prompts FROM prompts GROUP BY dataset),
r AS (
    SELECT dataset, count(*) AS results, count(DISTINCT model) AS models
    FROM results GROUP BY dataset
),
x AS (
    SELECT dataset, count(*) AS responses, count(DISTINCT model) AS models
    FROM responses GROUP BY dataset
),
i AS (
    SELECT dataset, count(*) AS imports, max(imported_at) AS last_import
    FROM imports GROUP BY dataset
)
SELECT d.dataset, d.kind, d.format,
       coalesce(p.prompts, 0) AS prompts,
       coalesce(b.battles, 0) AS battles,
       coalesce(r.results, 0) AS results,
       coalesce(x.responses, 0) AS responses,
       coalesce(CASE d.kind
                    WHEN 'pairwise' THEN bm.models
                    WHEN 'instances' THEN r.models
                    ELSE x.models
                END, 0) AS models,
       coalesce(b.judges, 0) AS judges,
       coalesce(b.human_votes, 0) AS human_votes,
       coalesce(b.llm_votes, 0) AS llm_votes,
       coalesce(b.human_judges, 0) AS human_judges,
       coalesce(b.llm_judges, 0) AS llm_judges,
       b.first_vote, b.last_vote,
       coalesce(i.imports, 0) AS imports,
       i.last_import
FROM datasets d
LEFT JOIN b USING (dataset)
LEFT JOIN bm USING (dataset)
LEFT JOIN p USING (dataset)
LEFT JOIN r USING (dataset)
LEFT JOIN x USING (dataset)
LEFT JOIN i USING (dataset)
ORDER BY d.dataset
"""

# Columns of :func:`imports`, newest first.
IMPORT_COLUMNS = [
    "imported_at",
    "dataset",
    "path",
    "format",
    "rows_read",
    "rows_skipped",
    "added_prompts",
    "added_battles",
    "added_results",
    "added_responses",
    "duplicates",
    "sha256",
    "origin",
    "license",
    "tool_version",
    "import_id",
]


def dataset_summary(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per dataset with its counts, in :data:`SUMMARY_COLUMNS` order.

    ``models`` counts distinct ``model_a`` ∪ ``model_b`` for pairwise datasets, distinct
    result models for 'instances' datasets and distinct response models for 'prompts'
    datasets. An empty store gives an empty frame with the same columns.
    """
    df = con.execute(_SUMMARY_SQL).df()
    for c in _COUNT_COLUMNS:
        df[c] = df[c].astype("int64")
    return df[SUMMARY_COLUMNS]


def summary_totals(summary: pd.DataFrame) -> dict[str, int]:
    """Store-wide totals of a :func:`dataset_summary` frame (models and judges are summed
    per dataset, so a model present in two datasets counts twice)."""
    totals = {"datasets": len(summary)}
    for c in ("battles", "prompts", "results", "responses", "models", "human_votes", "llm_votes"):
        totals[c] = int(summary[c].sum()) if len(summary) else 0
    return totals


def imports(con: duckdb.DuckDBPyConnection, dataset: str | None = None) -> pd.DataFrame:
    """The import log (one row per imported path), newest first, optionally for one dataset."""
    cols = ", ".join(IMPORT_COLUMNS)
    sql = f"SELECT {cols} FROM imports"  # noqa: S608 - column names are constants
    params: list[Any] = []
    if dataset is not None:
        sql += " WHERE dataset = ?"
        params.append(dataset)
    sql += " ORDER BY imported_at DESC, path"
    return con.execute(sql, params).df()


def _jsonable(value: Any) -> Any:
    """A JSON-serialisable version of one dataframe cell (timestamps as ISO 8601 strings)."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """``df`` as a list of JSON-serialisable dicts (NaN/NaT -> None, times as ISO strings)."""
    return [{k: _jsonable(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


def dataset_summary_records(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """:func:`dataset_summary` as JSON-able dicts (what ``arenatree datasets --json`` prints)."""
    return records(dataset_summary(con))
