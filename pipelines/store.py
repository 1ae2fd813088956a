"""The DuckDB store: schema, forward migrations, write sessions and the read snapshot.

Concurrency design (DuckDB locks a database file per process; while one process holds it
read-write no other process can open it, not even read-only):

* **Writers** (imports, builds) take an exclusive ``fcntl`` lock on ``<db>.lock`` for the whole
  session, so a second writer waits politely instead of failing on DuckDB's lock. Inside, each
  logical write is one DuckDB transaction. When the session ends the database is checkpointed
  and closed, and a **read snapshot** ``<db>.read`` is published: the file is copied to a
  temporary name and renamed over the old snapshot with ``os.replace`` (atomic on POSIX).
* **Readers** (the dashboard, ``datasets``) open only the snapshot, read-only, with short-lived
  connections. Any number of reader processes can do so at once, and a writer never blocks
  them: a reader that has the old snapshot open keeps reading the old inode until it reconnects.
  ``snapshot_version`` changes whenever a new snapshot is published, which is what the
  dashboard keys its caches on.

The price is one file copy per write session (about 1 s per GB), paid by the writer.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb

from .errors import ArenatreeError, StoreBusyError

DEFAULT_DB = Path("data") / "arenatree.duckdb"
READER_WAIT = 10.0  # seconds a reader waits for a writer when it must (re)make the snapshot

# Each entry migrates the schema from version i to i + 1. Never edit a released entry:
# append a new one. Version 0 is an empty file.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR);
    CREATE TABLE datasets (
        dataset VARCHAR PRIMARY KEY,
        kind VARCHAR NOT NULL,              -- 'pairwise' | 'instances' | 'prompts'
        format VARCHAR NOT NULL,            -- adapter that created it
        created_at TIMESTAMP NOT NULL
    );
    CREATE TABLE imports (
        import_id VARCHAR PRIMARY KEY,      -- uuid
        dataset VARCHAR NOT NULL,
        path VARCHAR NOT NULL,              -- as given on the command line, resolved
        sha256 VARCHAR NOT NULL,            -- of the file, or of the sorted member files of a folder
        format VARCHAR NOT NULL,
        origin VARCHAR,                     -- public URL where known
        license VARCHAR,
        rows_read BIGINT NOT NULL,
        rows_skipped BIGINT NOT NULL,
        skipped JSON,                       -- [{line, field, reason}] first 100
        added_prompts BIGINT NOT NULL,
        added_battles BIGINT NOT NULL,
        added_results BIGINT NOT NULL,
        added_responses BIGINT NOT NULL,
        duplicates BIGINT NOT NULL,         -- rows already in the store (re-import)
        tool_version VARCHAR NOT NULL,
        imported_at TIMESTAMP NOT NULL
    );
    CREATE TABLE prompts (
        dataset VARCHAR NOT NULL,
        prompt_id VARCHAR NOT NULL,         -- first 16 hex of sha256(text): content hash
        text VARCHAR NOT NULL,
        language VARCHAR,
        turns INTEGER,
        metadata JSON,                      -- source labels (category, cluster, type, level, ...)
        PRIMARY KEY (dataset, prompt_id)
    );
    CREATE TABLE prompt_sources (          -- the source's own ids for each prompt
        dataset VARCHAR NOT NULL,
        prompt_id VARCHAR NOT NULL,
        source_id VARCHAR NOT NULL,
        PRIMARY KEY (dataset, prompt_id, source_id)
    );
    CREATE TABLE responses (
        dataset VARCHAR NOT NULL,
        response_id VARCHAR NOT NULL,       -- sha256(prompt_id, model, text)[:16]
        prompt_id VARCHAR,
        model VARCHAR NOT NULL,
        text VARCHAR NOT NULL,
        tokens INTEGER, headers INTEGER, lists INTEGER, bold INTEGER,
        refusal BOOLEAN, identity_leak BOOLEAN,
        PRIMARY KEY (dataset, response_id)
    );
    CREATE TABLE battles (
        dataset VARCHAR NOT NULL,
        battle_id VARCHAR NOT NULL,         -- the source's vote id, or a hash of the vote's identity
        source_id VARCHAR,                  -- question_id / id / idx / row as in the source
        prompt_id VARCHAR,
        model_a VARCHAR NOT NULL,
        model_b VARCHAR NOT NULL,
        winner VARCHAR NOT NULL CHECK (winner IN ('model_a', 'model_b', 'tie', 'tie_bothbad')),
        judge VARCHAR NOT NULL,
        judge_kind VARCHAR NOT NULL CHECK (judge_kind IN ('human', 'llm')),
        tstamp TIMESTAMP,
        anony BOOLEAN,
        language VARCHAR,
        turns INTEGER,
        response_a VARCHAR, response_b VARCHAR,   -- response_id
        tokens_a INTEGER, tokens_b INTEGER,
        headers_a INTEGER, headers_b INTEGER,
        lists_a INTEGER, lists_b INTEGER,
        bold_a INTEGER, bold_b INTEGER,
        refusal_a BOOLEAN, refusal_b BOOLEAN,
        leak_a BOOLEAN, leak_b BOOLEAN,
        metadata JSON,
        import_id VARCHAR NOT NULL,
        PRIMARY KEY (dataset, battle_id),
        CHECK (model_a <> model_b)
    );
    CREATE TABLE results (
        dataset VARCHAR NOT NULL,
        instance_id VARCHAR NOT NULL,       -- the source's item id (e.g. MATH idx)
        prompt_id VARCHAR,
        model VARCHAR NOT NULL,
        score DOUBLE NOT NULL CHECK (score BETWEEN 0 AND 1),
        import_id VARCHAR NOT NULL,
        PRIMARY KEY (dataset, instance_id, model)
    );
    CREATE TABLE embeddings (
        text_hash VARCHAR NOT NULL, model VARCHAR NOT NULL, vector FLOAT[] NOT NULL,
        PRIMARY KEY (text_hash, model)
    );
    CREATE TABLE annotations (
        text_hash VARCHAR NOT NULL, annotator VARCHAR NOT NULL, capability VARCHAR NOT NULL,
        PRIMARY KEY (text_hash, annotator)
    );
    """,
    # v2: capability trees
    """
    CREATE TABLE trees (
        tree_id VARCHAR PRIMARY KEY,        -- dataset + hash of the parameters and the item set
        dataset VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        annotator VARCHAR NOT NULL,         -- backend names, as in the caches
        embedder VARCHAR NOT NULL,
        describer VARCHAR NOT NULL,
        params JSON NOT NULL,               -- every parameter that shaped the tree
        n_items INTEGER NOT NULL,
        n_nodes INTEGER NOT NULL,
        n_leaves INTEGER NOT NULL,
        max_depth INTEGER NOT NULL,
        seconds DOUBLE NOT NULL,            -- wall time of the build
        tool_version VARCHAR NOT NULL
    );
    CREATE TABLE nodes (
        tree_id VARCHAR NOT NULL,
        node_id INTEGER NOT NULL,           -- depth-first preorder, root 0
        parent_id INTEGER,                  -- NULL for the root
        depth INTEGER NOT NULL,
        path VARCHAR NOT NULL,              -- dotted child indices, root '0'; subtree = path prefix
        size INTEGER NOT NULL,              -- items under the node
        n_children INTEGER NOT NULL,
        silhouette DOUBLE,                  -- of the split made at the node (NULL for leaves)
        description VARCHAR NOT NULL,
        keywords VARCHAR[] NOT NULL,
        central_prompt_id VARCHAR,          -- the item closest to the node's centroid
        centroid FLOAT[] NOT NULL,          -- unit vector, for routing new prompts
        PRIMARY KEY (tree_id, node_id)
    );
    CREATE TABLE node_members (             -- leaf membership; ancestors by path prefix
        tree_id VARCHAR NOT NULL,
        node_id INTEGER NOT NULL,
        prompt_id VARCHAR NOT NULL,
        capability VARCHAR NOT NULL,        -- the annotation the item was embedded by
        PRIMARY KEY (tree_id, prompt_id)
    );
    """,
    # v3: node scores (pipelines.scores), keyed by everything that produced them
    """
    CREATE TABLE score_runs (
        run_id VARCHAR PRIMARY KEY,         -- sha256 of (dataset, tree_id, kind, params, import_ids)[:16]
        dataset VARCHAR NOT NULL,
        tree_id VARCHAR,                    -- NULL: a whole-dataset run (one node, node_id 0)
        kind VARCHAR NOT NULL,              -- 'pairwise' | 'instances'
        params JSON NOT NULL,               -- filters, rounds, seed, level, method constants
        import_ids JSON NOT NULL,           -- sorted import ids of the dataset the run saw
        info JSON NOT NULL,                 -- what the run found: interval method, fits, stage seconds
        n_nodes INTEGER NOT NULL,
        n_models INTEGER NOT NULL,
        n_rows BIGINT NOT NULL,             -- votes or results used (all of them count at the root)
        created_at TIMESTAMP NOT NULL,
        seconds DOUBLE NOT NULL,            -- wall time of the computation
        tool_version VARCHAR NOT NULL
    );
    CREATE TABLE node_scores (              -- one row per (node, model) with data in the node
        run_id VARCHAR NOT NULL,
        node_id INTEGER NOT NULL,
        model VARCHAR NOT NULL,
        n BIGINT NOT NULL,                  -- battles played in the node / results in the node
        wins DOUBLE NOT NULL,               -- wins + ties / 2 / sum of scores (correct answers)
        ties DOUBLE,                        -- ties of either kind (pairwise only)
        score DOUBLE NOT NULL,              -- wins / n: win rate or accuracy
        lower DOUBLE,                       -- interval on score (NULL when n < 5)
        upper DOUBLE,
        rating DOUBLE,                      -- the node's own Bradley-Terry fit (NULL when not fitted)
        rating_lower DOUBLE,
        rating_upper DOUBLE,
        rank_ub INTEGER,
        PRIMARY KEY (run_id, node_id, model)
    );
    """,
    # v4: voter audits (pipelines.audit), keyed by everything that produced them
    """
    CREATE TABLE audit_runs (
        run_id VARCHAR PRIMARY KEY,         -- sha256 of (dataset, tree_id, 'audit', params, import_ids)[:16]
        dataset VARCHAR NOT NULL,
        tree_id VARCHAR,                    -- NULL: no per-node findings
        params JSON NOT NULL,               -- filters, alpha, fdr, min_votes, seed, rounds, level, audits
        import_ids JSON NOT NULL,           -- sorted import ids of the dataset the run saw
        votes BIGINT NOT NULL,
        voters BIGINT NOT NULL,
        created_at TIMESTAMP NOT NULL,
        seconds DOUBLE NOT NULL,            -- wall time of the computation
        tool_version VARCHAR NOT NULL,
        result JSON NOT NULL                -- the audit as ``arenatree audit --json`` prints it
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def db_path(path: str | os.PathLike | None = None) -> Path:
    """The database file: ``path``, else ``$ARENATREE_DB``, else ``data/arenatree.duckdb``."""
    return Path(path or os.environ.get("ARENATREE_DB") or DEFAULT_DB)


def snapshot_path(path: str | os.PathLike) -> Path:
    """Where the read snapshot of database ``path`` lives."""
    p = Path(path)
    return p.with_name(p.name + ".read")


def run(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    """Execute ``sql`` and consume its result (DuckDB 2 refuses new work on a connection whose
    last result is unfinished). Returns all rows."""
    return con.execute(sql, params or []).fetchall()


def one(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> tuple | None:
    """The first row of ``sql`` (None if there is none), with the result fully consumed."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version stored in ``con`` (0 for an empty database)."""
    has_meta = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'"
    ).fetchall()[0][0]
    if not has_meta:
        return 0
    row = one(con, "SELECT value FROM meta WHERE key = 'schema_version'")
    return int(row[0]) if row else 0


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring ``con`` forward to ``SCHEMA_VERSION``, one transaction per step. Returns the version."""
    version = schema_version(con)
    if version > SCHEMA_VERSION:
        raise ArenatreeError(
            f"database schema version {version} is newer than this arenatree "
            f"({SCHEMA_VERSION}); upgrade arenatree"
        )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        with transaction(con):
            run(con, MIGRATIONS[target - 1])
            run(con, "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(target)])
    return SCHEMA_VERSION


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """``BEGIN`` ... ``COMMIT``; any exception rolls everything back and propagates."""
    run(con, "BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        run(con, "ROLLBACK")
        raise
    run(con, "COMMIT")


@contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    with open(lock, "a+") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreBusyError(
                        f"{path}: another arenatree process kept the database busy "
                        f"for {timeout:.0f} s; try again when it has finished"
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _memory_limit() -> str:
    """DuckDB memory budget for write sessions: ``$ARENATREE_MEMORY_LIMIT`` or 1GB."""
    value = os.environ.get("ARENATREE_MEMORY_LIMIT", "1GB").strip()
    if not value.replace(".", "").replace(" ", "").isalnum():
        raise ArenatreeError(f"ARENATREE_MEMORY_LIMIT={value!r}: expected a size like 1GB or 512MB")
    return value


def publish(path: str | os.PathLike) -> Path:
    """Copy the (closed, checkpointed) database to its read snapshot, atomically."""
    src = Path(path)
    dst = snapshot_path(src)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return dst


@contextmanager
def writer(
    path: str | os.PathLike | None = None, *, timeout: float = 600.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write session on the database; publishes the read snapshot when it ends.

    Waits up to ``timeout`` seconds for another writer to finish. The schema is migrated
    on open. Wrap each logical write in :func:`transaction`.
    """
    p = db_path(path)
    with _file_lock(p, timeout):
        try:
            con = duckdb.connect(str(p))
        except duckdb.IOException as exc:
            raise StoreBusyError(f"{p}: cannot open the database for writing ({exc})") from None
        try:
            # Let DuckDB spill big imports to disk instead of growing past the budget.
            run(con, f"SET memory_limit = '{_memory_limit()}'")
            migrate(con)
            yield con
        finally:
            # Publish even when the session failed: whatever it committed before the failure
            # is in the file, and readers should see it (an open transaction rolls back here).
            with suppress(duckdb.Error):
                run(con, "CHECKPOINT")
            con.close()
            publish(p)


def snapshot_version(path: str | os.PathLike | None = None) -> tuple[int, int] | None:
    """An id that changes whenever a new snapshot is published (None if there is none)."""
    snap = snapshot_path(db_path(path))
    try:
        st = snap.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)


@contextmanager
def reader(path: str | os.PathLike | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-only connection to the read snapshot.

    Never blocks on, or blocks, a writer. If the database exists but has no snapshot yet
    (made by an older arenatree), the snapshot is made first, under the writer lock.
    Raises :class:`ArenatreeError` when there is no database at all.
    """
    p = db_path(path)
    snap = snapshot_path(p)
    if not snap.exists():
        if not p.exists():
            raise ArenatreeError(f"{p}: no database yet; import data with 'arenatree ingest'")
        with writer(p, timeout=READER_WAIT):
            pass
    con = duckdb.connect(str(snap), read_only=True)
    try:
        if schema_version(con) != SCHEMA_VERSION:
            con.close()
            with writer(p, timeout=READER_WAIT):  # migrate the main file forward, republish
                pass
            con = duckdb.connect(str(snap), read_only=True)
        yield con
    finally:
        con.close()
