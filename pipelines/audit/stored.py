"""Stored voter audits: computed once, kept in ``audit_runs`` keyed by everything that shaped them.

A run's id is the sha256 of (dataset, tree, 'audit', parameters, the dataset's import ids), as
for node scores (:func:`pipelines.scores.run_id_for`): a new import or another parameter gives
another id, so a stored audit is never stale. ``arenatree demo`` stores the default audit of
every pairwise dataset, and the dashboard reads it instead of recomputing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from .. import __version__
from ..battles import NO_FILTERS, Filters
from ..scores import import_ids, run_id_for
from ..store import one, run, transaction, writer
from .run import AUDITS, Audit, ProgressFn, default_tree, run_audit

AUDIT_VERSION = 1  # bump whenever a change to an audit changes its numbers, so stored runs are redone


def audit_params(
    filters: Filters = NO_FILTERS,
    *,
    alpha: float = 0.05,
    fdr: bool = True,
    min_votes: int = 20,
    seed: int = 0,
    rounds: int = 100,
    level: float = 0.95,
    only: Sequence[str] | None = None,
) -> dict:
    """Every parameter that shapes an audit's numbers, JSON-able (what ``audit_runs.params`` holds)."""
    return {
        "audit_version": AUDIT_VERSION,
        "filters": filters.key(),
        "alpha": float(alpha),
        "fdr": bool(fdr),
        "min_votes": int(min_votes),
        "seed": int(seed),
        "rounds": int(rounds),
        "level": float(level),
        "audits": list(only) if only else list(AUDITS),
    }


def _has_table(con: duckdb.DuckDBPyConnection) -> bool:
    return one(con, "SELECT 1 FROM information_schema.tables WHERE table_name = 'audit_runs'") is not None


def audit_run_id(con: duckdb.DuckDBPyConnection, dataset: str, tree_id: str | None, params: dict) -> str:
    """The id a run of these parameters on the dataset's current imports has (stored or not)."""
    return run_id_for(dataset, tree_id, "audit", params, import_ids(con, dataset))


def find_audit(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    *,
    filters: Filters = NO_FILTERS,
    tree_id: str | None = None,
    use_tree: bool = True,
    **params,
) -> Audit | None:
    """The stored audit of ``dataset`` under these parameters (those of :func:`audit_params`; the
    tree as :func:`pipelines.audit.run.run_audit` picks it), or None when none is stored."""
    if not _has_table(con):
        return None
    tree = default_tree(con, dataset, tree_id) if use_tree else None
    run_id = audit_run_id(con, dataset, tree, audit_params(filters, **params))
    row = one(con, "SELECT result FROM audit_runs WHERE run_id = ?", [run_id])
    return None if row is None else Audit.from_dict(json.loads(row[0]))


def store_audit(con: duckdb.DuckDBPyConnection, audit: Audit, params: dict) -> str:
    """Write one ``audit_runs`` row (one transaction; replaces a stored run with the same id)."""
    imports = import_ids(con, audit.dataset)
    run_id = run_id_for(audit.dataset, audit.tree_id, "audit", params, imports)
    audit.run_id = run_id
    row = {
        "run_id": run_id,
        "dataset": audit.dataset,
        "tree_id": audit.tree_id,
        "params": json.dumps(params, sort_keys=True),
        "import_ids": json.dumps(imports),
        "votes": audit.votes,
        "voters": audit.voters,
        "created_at": datetime.now(UTC).replace(tzinfo=None),
        "seconds": float(audit.seconds.get("total", 0.0)),
        "tool_version": __version__,
        "result": json.dumps(audit.as_dict(), allow_nan=False, default=str),
    }
    marks = ", ".join("?" * len(row))
    with transaction(con):
        run(con, "DELETE FROM audit_runs WHERE run_id = ?", [run_id])
        run(con, f"INSERT INTO audit_runs ({', '.join(row)}) VALUES ({marks})", list(row.values()))  # noqa: S608
    return run_id


def compute_audit(
    db: str | Path | None,
    dataset: str,
    *,
    filters: Filters = NO_FILTERS,
    tree_id: str | None = None,
    use_tree: bool = True,
    progress: ProgressFn | None = None,
    **params,
) -> tuple[str, Audit]:
    """The audit of ``dataset`` under these parameters, computed and stored in a write session
    unless already stored (then it is read back: a rerun is instant). Returns (run_id, audit)."""
    with writer(db) as con:
        tree = default_tree(con, dataset, tree_id) if use_tree else None
        full = audit_params(filters, **params)
        run_id = audit_run_id(con, dataset, tree, full)
        row = one(con, "SELECT result FROM audit_runs WHERE run_id = ?", [run_id])
        if row is not None:
            return run_id, Audit.from_dict(json.loads(row[0]))
        t0 = time.perf_counter()
        audit = run_audit(
            con, dataset, filters=filters, tree_id=tree, use_tree=use_tree, progress=progress, **params
        )
        audit.seconds["total"] = time.perf_counter() - t0
        return store_audit(con, audit, full), audit
