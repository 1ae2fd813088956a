"""Reading votes and per-instance results out of the store, with the dashboard's filters.

:class:`Filters` is the one description of "which votes" that every analysis shares (the
dashboard's filter bar, the CLI, stored results keyed by :meth:`Filters.key`).
:func:`battles_query` turns a dataset and filters into one parameterised SQL query, so
callers that aggregate in DuckDB (node scores) and callers that want rows
(:func:`load_battles`) select exactly the same votes.

**Prompt deduplication** (``dedup_prompts=True``) mirrors LMArena / FastChat
(``fastchat/serve/monitor/deduplication.py``): count the battles of each distinct prompt
(``prompt_id``, the content hash of the prompt text as imported) over the *whole dataset*,
take the cut-off ``c`` = the 99.99th percentile of those counts (linear interpolation, as
pandas ``quantile``), and keep at most ``max(1, floor(c))`` battles of every prompt. Which
battles survive is deterministic: those with the smallest ``sha256(battle_id)`` (ties broken by
``battle_id``). Battles without a prompt are never dropped. The cut-off and the ranks are taken
before the other filters, as FastChat tags battles before any analysis filters them, so the set
of deduplicated battles does not depend on the other filters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

import duckdb
import pandas as pd

from .errors import ArenatreeError
from .store import one, run

JUDGE_KINDS = ("human", "llm")
TIES = ("tie", "tie_bothbad")
DEDUP_PERCENTILE = 0.9999  # FastChat's default cut-off percentile of battles per prompt

# Columns of the battles table that load_battles can return (also its default, in this order).
BATTLE_COLUMNS: tuple[str, ...] = (
    "battle_id",
    "prompt_id",
    "model_a",
    "model_b",
    "winner",
    "judge",
    "judge_kind",
    "tstamp",
    "anony",
    "language",
    "turns",
    "tokens_a",
    "tokens_b",
    "headers_a",
    "headers_b",
    "lists_a",
    "lists_b",
    "bold_a",
    "bold_b",
    "refusal_a",
    "refusal_b",
    "leak_a",
    "leak_b",
    "source_id",
    "response_a",
    "response_b",
)
RESULT_COLUMNS: tuple[str, ...] = ("instance_id", "prompt_id", "model", "score")


def _as_date(value: date | str | None, name: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ArenatreeError(f"{name}={value!r}: expected a date like 2024-05-31") from None


@dataclass(frozen=True)
class Filters:
    """Which votes of a dataset an analysis uses. The default selects every vote.

    ``judge_kind``: 'human' or 'llm'. ``judge``: one judge (voter id / judge model), exact.
    ``language``: the battle's language, case-insensitive exact match (e.g. 'English').
    ``since`` / ``until``: inclusive UTC calendar days on ``tstamp`` (ISO strings are accepted);
    with either set, votes without a timestamp are left out. ``exclude_ties``: drop 'tie' and
    'tie_bothbad' votes. ``dedup_prompts``: LMArena-style prompt deduplication (module docstring).
    """

    judge_kind: str | None = None
    judge: str | None = None
    language: str | None = None
    since: date | None = None
    until: date | None = None
    exclude_ties: bool = False
    dedup_prompts: bool = False

    def __post_init__(self) -> None:
        if self.judge_kind is not None and self.judge_kind not in JUDGE_KINDS:
            raise ArenatreeError(f"judge_kind={self.judge_kind!r}: expected one of {', '.join(JUDGE_KINDS)}")
        for name in ("judge", "language"):
            value = getattr(self, name)
            if value is not None and not str(value).strip():
                object.__setattr__(self, name, None)
        object.__setattr__(self, "since", _as_date(self.since, "since"))
        object.__setattr__(self, "until", _as_date(self.until, "until"))
        if self.since and self.until and self.since > self.until:
            raise ArenatreeError(f"since={self.since} is after until={self.until}")
        object.__setattr__(self, "exclude_ties", bool(self.exclude_ties))
        object.__setattr__(self, "dedup_prompts", bool(self.dedup_prompts))

    def key(self) -> dict:
        """JSON-able dict of every field (dates as ISO strings), for keying stored results."""
        out = asdict(self)
        out["since"] = self.since.isoformat() if self.since else None
        out["until"] = self.until.isoformat() if self.until else None
        return out

    @classmethod
    def from_key(cls, key: dict | None) -> Filters:
        """The inverse of :meth:`key` (missing fields take their defaults)."""
        return cls(**(key or {}))

    def is_default(self) -> bool:
        """True when the filters select every vote."""
        return self == Filters()


NO_FILTERS = Filters()  # every vote (the default everywhere)


def dataset_kind(con: duckdb.DuckDBPyConnection, dataset: str) -> str:
    """The kind of ``dataset`` ('pairwise' | 'instances' | 'prompts'); ArenatreeError if unknown."""
    row = one(con, "SELECT kind FROM datasets WHERE dataset = ?", [dataset])
    if row is None:
        raise ArenatreeError(f"no dataset {dataset!r}; see 'arenatree datasets'")
    return row[0]


def _require_pairwise(con: duckdb.DuckDBPyConnection, dataset: str) -> None:
    kind = dataset_kind(con, dataset)
    if kind != "pairwise":
        raise ArenatreeError(f"dataset {dataset!r} holds {kind} data, not pairwise votes")


def _check_values(con: duckdb.DuckDBPyConnection, dataset: str, filters: Filters) -> None:
    """ArenatreeError when a judge or language filter names a value the dataset never has."""
    checks = (
        ("judge", "judge = ?", filters.judge),
        ("language", "lower(language) = lower(?)", filters.language),
    )
    for name, cond, value in checks:
        if value is None:
            continue
        if one(con, f"SELECT 1 FROM battles WHERE dataset = ? AND {cond} LIMIT 1", [dataset, value]):  # noqa: S608
            continue
        known = run(
            con,
            f"SELECT {name}, count(*) AS n FROM battles WHERE dataset = ? AND {name} IS NOT NULL "  # noqa: S608
            f"GROUP BY {name} ORDER BY n DESC, {name} LIMIT 5",
            [dataset],
        )
        hint = ", ".join(f"{v} ({n:,})" for v, n in known) or "none recorded"
        raise ArenatreeError(f"dataset {dataset!r} has no votes with {name} {value!r}; most common: {hint}")


def battles_query(
    dataset: str,
    filters: Filters = NO_FILTERS,
    columns: Sequence[str] = BATTLE_COLUMNS,
    ordered: bool = True,
) -> tuple[str, list]:
    """``(sql, params)`` selecting ``columns`` of the dataset's votes that pass ``filters``.

    Column names must come from :data:`BATTLE_COLUMNS` (they are spliced in as identifiers;
    every value is a parameter). With ``ordered``, rows come by tstamp (nulls last), then
    battle_id; without, in no particular order (for callers that aggregate).
    """
    bad = [c for c in columns if c not in BATTLE_COLUMNS]
    if bad or not columns:
        raise ArenatreeError(f"unknown battle column(s) {bad}; choose from {', '.join(BATTLE_COLUMNS)}")
    where, params = ["dataset = ?"], [dataset]
    if filters.judge_kind is not None:
        where.append("judge_kind = ?")
        params.append(filters.judge_kind)
    if filters.judge is not None:
        where.append("judge = ?")
        params.append(filters.judge)
    if filters.language is not None:
        where.append("lower(language) = lower(?)")
        params.append(filters.language)
    if filters.since is not None:
        where.append("tstamp >= ?")
        params.append(datetime.combine(filters.since, datetime.min.time()))
    if filters.until is not None:
        where.append("tstamp < ?")
        params.append(datetime.combine(filters.until + timedelta(days=1), datetime.min.time()))
    if filters.exclude_ties:
        where.append("winner NOT IN ('tie', 'tie_bothbad')")
    cols = ", ".join(columns)
    order = " ORDER BY tstamp NULLS LAST, battle_id" if ordered else ""
    if not filters.dedup_prompts:
        return f"SELECT {cols} FROM battles WHERE {' AND '.join(where)}{order}", params  # noqa: S608
    sql = f"""
        WITH base AS (SELECT * FROM battles WHERE dataset = ?),
        per_prompt AS (
            SELECT prompt_id, count(*) AS k FROM base WHERE prompt_id IS NOT NULL GROUP BY prompt_id
        ),
        cut AS (SELECT greatest(1, floor(quantile_cont(k, {DEDUP_PERCENTILE}))) AS keep FROM per_prompt),
        ranked AS (
            SELECT base.*, row_number() OVER (
                PARTITION BY prompt_id ORDER BY sha256(battle_id), battle_id) AS dedup_rank
            FROM base
        )
        SELECT {cols} FROM ranked
        WHERE (prompt_id IS NULL OR dedup_rank <= (SELECT keep FROM cut)) AND {" AND ".join(where)}{order}
    """  # noqa: S608 - identifiers from BATTLE_COLUMNS, values are parameters
    return sql, [dataset, *params]


def checked_battles_query(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    filters: Filters = NO_FILTERS,
    columns: Sequence[str] = BATTLE_COLUMNS,
    ordered: bool = True,
) -> tuple[str, list]:
    """:func:`battles_query` after checking that the dataset exists, is pairwise, and that a
    judge / language filter names a value the dataset has (ArenatreeError otherwise)."""
    _require_pairwise(con, dataset)
    _check_values(con, dataset, filters)
    return battles_query(dataset, filters, columns, ordered)


def load_battles(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    filters: Filters = NO_FILTERS,
    columns: Sequence[str] = BATTLE_COLUMNS,
) -> pd.DataFrame:
    """The votes of ``dataset`` that pass ``filters``, one row per vote, ``columns`` in order.

    Columns (see the ``battles`` table): battle_id, prompt_id, model_a, model_b, winner
    ('model_a' | 'model_b' | 'tie' | 'tie_bothbad'), judge, judge_kind, tstamp (naive UTC),
    anony, language, turns, tokens_a/b (answer tokens), headers_a/b, lists_a/b, bold_a/b
    (markdown element counts), refusal_a/b, leak_a/b (bools), source_id, response_a/b
    (response ids). Raises ArenatreeError for an unknown or non-pairwise dataset, a judge or
    language the dataset never has, or filters that leave no vote at all.
    """
    sql, params = checked_battles_query(con, dataset, filters, columns)
    df = con.execute(sql, params).df()
    if df.empty:
        raise ArenatreeError(f"no votes of dataset {dataset!r} pass the filters {filters.key()}")
    return df


def count_battles(con: duckdb.DuckDBPyConnection, dataset: str, filters: Filters = NO_FILTERS) -> int:
    """How many votes of ``dataset`` pass ``filters`` (same checks as :func:`load_battles`, but
    zero is a valid answer)."""
    sql, params = checked_battles_query(con, dataset, filters, ("battle_id",), ordered=False)
    return int(one(con, f"SELECT count(*) FROM ({sql})", params)[0])  # noqa: S608 - built above


def load_results(
    con: duckdb.DuckDBPyConnection, dataset: str, models: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per-instance results of ``dataset``: instance_id, prompt_id, model, score (in [0, 1];
    1 = correct for 0/1 data), ordered by model, instance_id; optionally only ``models``.

    Raises ArenatreeError for an unknown dataset, one without results, or a model it lacks.
    """
    kind = dataset_kind(con, dataset)
    if kind != "instances":
        raise ArenatreeError(f"dataset {dataset!r} holds {kind} data, not per-instance results")
    df = con.execute(
        "SELECT instance_id, prompt_id, model, score FROM results WHERE dataset = ? "
        "AND (? IS NULL OR list_contains(?, model)) ORDER BY model, instance_id",
        [dataset, None if models is None else list(models), None if models is None else list(models)],
    ).df()
    if models is not None:
        missing = sorted(set(models) - set(df["model"]))
        if missing:
            raise ArenatreeError(f"dataset {dataset!r} has no results for model(s) {missing}")
    if df.empty:
        raise ArenatreeError(f"dataset {dataset!r} has no results")
    return df
