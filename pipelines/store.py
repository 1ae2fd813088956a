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
  ``snapshot_version`` changes whenever a session starts or a new snapshot is published, which
  is what the dashboard keys its caches on.

**Staleness.** A writer can die (``kill -9``) after committing but before its copy, or the copy
can fail (disk full). So every write session first increments ``meta.write_seq`` inside the
main file (its own committed transaction) and then writes that number to the sidecar
``<db>.version`` (temporary file + rename). The snapshot is a byte copy of the main file, so
it carries the ``write_seq`` it was copied at and cannot claim a version it does not hold; the
sidecar says, without opening the main file (which a live writer may hold), which version the
newest session made. A reader compares the two (one tiny file read, one query on the snapshot):
if they differ and the writer lock is free, the writer that made the difference is gone (the
kernel drops an ``fcntl`` lock with its process), so the reader re-publishes under the lock; if
the lock is held, a live writer will publish when it ends and the reader reads the current
snapshot without waiting. A refresh that fails (disk still full) is an error, not stale data.

The price is one file copy per write session (about 1 s per GB), paid by the writer.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb

from .errors import ArenatreeError, SnapshotError, StaleSnapshotError, StoreBusyError, StoreWriteError

DEFAULT_DB = Path("data") / "arenatree.duckdb"
READER_WAIT = 10.0  # seconds a reader waits for a writer when it must (re)make the snapshot
STALE_WAIT = 0.0  # seconds a reader waits to repair a stale snapshot (a busy lock means a live writer)
SEQ_KEY = "write_seq"  # meta key counting write sessions; the snapshot carries the value it was copied at

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
    # v5: imported trees (pipelines.tree.imported) keep how each child differs from its siblings
    """
    ALTER TABLE nodes ADD COLUMN distinguishing VARCHAR;  -- EvalTree's per-child 'distinguishing' text
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
    """Copy the (closed, checkpointed) database to its read snapshot, atomically.

    Call it under the writer lock only. The copy goes to a temporary file renamed over the old
    snapshot; the temporary file is removed whatever happens, as are any a killed publisher
    left. Raises :class:`SnapshotError` (with the OS's reason) when the copy fails, leaving the
    previous snapshot in place.
    """
    src = Path(path)
    dst = snapshot_path(src)
    _remove_temp_files(dst)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except OSError as exc:
        with suppress(OSError):
            tmp.unlink()
        raise SnapshotError(src, _reason(exc)) from None
    return dst


def version_path(path: str | os.PathLike) -> Path:
    """The sidecar ``<db>.version``: the ``write_seq`` of the newest write session, as text."""
    p = Path(path)
    return p.with_name(p.name + ".version")


def write_seq(con: duckdb.DuckDBPyConnection) -> int:
    """The database's write-session counter (``meta.write_seq``; 0 when never set)."""
    row = one(con, "SELECT value FROM meta WHERE key = ?", [SEQ_KEY])
    return int(row[0]) if row else 0


def _bump_write_seq(con: duckdb.DuckDBPyConnection) -> int:
    """Increment ``meta.write_seq`` in its own transaction; returns the new value."""
    with transaction(con):
        seq = write_seq(con) + 1
        run(con, "INSERT OR REPLACE INTO meta VALUES (?, ?)", [SEQ_KEY, str(seq)])
    return seq


def _read_version(path: Path) -> int | None:
    """The sidecar's ``write_seq`` (None when it is missing or unreadable)."""
    try:
        return int(version_path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def _write_version(path: Path, seq: int) -> None:
    """Write the sidecar atomically (temporary file, then rename); OSError on failure."""
    dst = version_path(path)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(f"{seq}\n")
        os.replace(tmp, dst)
    except OSError:
        with suppress(OSError):
            tmp.unlink()
        raise


def _remove_temp_files(dst: Path) -> None:
    """Remove temporary copies of ``dst`` that killed publishers left (under the writer lock)."""
    for leftover in dst.parent.glob(f".{dst.name}.*.tmp"):
        with suppress(OSError):
            leftover.unlink()


# What the OS says for the failures a full, read-only or broken disk causes.
OS_REASONS = frozenset(
    os.strerror(e) for e in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO, errno.EACCES)
)


def _reason(exc: BaseException) -> str:
    """A one-line reason for a failed file operation, e.g. 'No space left on device' (DuckDB's
    'Could not write file "...": No space left on device' shortened to the OS's words)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    tail = text.rsplit(": ", 1)[-1]
    return tail if tail in OS_REASONS else text


def _is_disk_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the disk refusing a write (not a bug, a bad query or a broken file)."""
    if isinstance(exc, OSError):
        return True
    return isinstance(exc, duckdb.Error) and (
        "could not write" in str(exc).lower() or _reason(exc) in OS_REASONS
    )


def _connect(p: Path) -> duckdb.DuckDBPyConnection:
    """The main file read-write, migrated (StoreBusyError if another process has it open)."""
    try:
        con = duckdb.connect(str(p))
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise StoreBusyError(f"{p}: cannot open the database for writing ({exc})") from None
    try:
        # Let DuckDB spill big imports to disk instead of growing past the budget.
        run(con, f"SET memory_limit = '{_memory_limit()}'")
        migrate(con)
    except BaseException:
        con.close()
        raise
    return con


def _close_and_publish(p: Path, con: duckdb.DuckDBPyConnection) -> None:
    """Checkpoint and close ``con``, then publish the snapshot (SnapshotError if it cannot be)."""
    failure = None
    try:
        run(con, "CHECKPOINT")
    except duckdb.Error as exc:  # e.g. disk full: the commits stay in the write-ahead log
        failure = _reason(exc)
    con.close()
    if wal_path(p).exists():  # the file alone lacks committed changes: copying it would lie
        raise SnapshotError(p, failure or "the write-ahead log could not be merged into the file")
    publish(p)


def wal_path(path: str | os.PathLike) -> Path:
    """DuckDB's write-ahead log of database ``path`` (exists while changes are not checkpointed)."""
    p = Path(path)
    return p.with_name(p.name + ".wal")


@contextmanager
def writer(
    path: str | os.PathLike | None = None, *, timeout: float = 600.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write session on the database; publishes the read snapshot when it ends.

    Waits up to ``timeout`` seconds for another writer to finish. The schema is migrated
    on open, then ``meta.write_seq`` is incremented (committed) and written to the sidecar
    ``<db>.version`` before the caller writes anything: a session killed after its commits but
    before its snapshot leaves the sidecar ahead of the snapshot, which readers repair. Wrap
    each logical write in :func:`transaction`.

    Raises :class:`SnapshotError` when everything committed is stored but the snapshot could
    not be refreshed (disk full); the next reader or writer repairs it. When the session itself
    failed, its own error is raised instead (a disk refusing a write as
    :class:`StoreWriteError`: the open transaction rolled back, earlier commits are kept) and
    a snapshot that could not be refreshed is left for the next reader.
    """
    p = db_path(path)
    with _file_lock(p, timeout):
        try:
            con = _connect(p)
        except (OSError, duckdb.Error) as exc:
            if not _is_disk_error(exc):
                raise
            raise StoreWriteError(p, _reason(exc), "nothing was written") from None
        try:
            _write_version(p, _bump_write_seq(con))
            yield con
        except BaseException as exc:
            # Publish even when the session failed: whatever it committed before the failure
            # is in the file, and readers should see it (an open transaction rolls back here).
            with suppress(ArenatreeError):
                _close_and_publish(p, con)
            if _is_disk_error(exc):
                raise StoreWriteError(p, _reason(exc)) from None
            raise
        _close_and_publish(p, con)


def _repair(p: Path) -> None:
    """Bring the snapshot up to the main file, under the writer lock the caller holds.

    Opening the file replays a killed writer's write-ahead log; no write session is counted.
    The sidecar is rewritten first, from the file, so it always names the file's version.
    """
    con = _connect(p)
    try:
        _write_version(p, write_seq(con))
    except BaseException:
        con.close()
        raise
    _close_and_publish(p, con)


def _is_current(con: duckdb.DuckDBPyConnection, p: Path) -> bool:
    """Whether the snapshot open on ``con`` was copied from the newest write session's file."""
    return write_seq(con) == _read_version(p)


def _snapshot_is_current(p: Path) -> bool:
    """:func:`_is_current` for the snapshot on disk now (opens it briefly, read-only)."""
    con = duckdb.connect(str(snapshot_path(p)), read_only=True)
    try:
        return schema_version(con) == SCHEMA_VERSION and _is_current(con, p)
    finally:
        con.close()


def refresh(path: str | os.PathLike | None = None, *, wait: float = STALE_WAIT) -> bool:
    """Re-publish the snapshot if it is older than the database and no writer is at work.

    Returns True when the snapshot is current afterwards, False when a writer (or a foreign
    process holding the file) kept the lock for ``wait`` seconds: a writer at work publishes
    when its session ends. Raises :class:`StaleSnapshotError` when the copy fails (disk full).
    """
    p = db_path(path)
    try:
        with _file_lock(p, wait):
            if snapshot_path(p).exists() and _snapshot_is_current(p):
                return True
            try:
                _repair(p)
            except SnapshotError as exc:
                raise StaleSnapshotError(p, exc.reason) from None
            except (OSError, duckdb.Error) as exc:
                if not _is_disk_error(exc):
                    raise
                raise StaleSnapshotError(p, _reason(exc)) from None
    except StoreBusyError:
        return False
    return True


def snapshot_version(path: str | os.PathLike | None = None) -> tuple[int, int, int] | None:
    """An id that changes whenever a new snapshot is published or a write session starts
    (None if there is no snapshot): (inode, mtime in ns, sidecar ``write_seq`` or -1)."""
    p = db_path(path)
    try:
        st = snapshot_path(p).stat()
    except FileNotFoundError:
        return None
    seq = _read_version(p)
    return (st.st_ino, st.st_mtime_ns, -1 if seq is None else seq)


@contextmanager
def reader(path: str | os.PathLike | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-only connection to the read snapshot.

    Never opens the main file while a writer may hold it, and never waits for a writer at work:
    the snapshot is checked against the sidecar ``<db>.version`` (one small file read plus one
    query on the snapshot). A stale snapshot (its writer was killed after committing, or its
    copy failed) is re-published first if the writer lock is free; if a writer holds it, this
    reads the current snapshot, which that writer replaces when it ends. If the database exists
    but has no snapshot yet, the snapshot is made first, waiting up to ``READER_WAIT`` seconds.

    Raises :class:`ArenatreeError` when there is no database at all,
    :class:`StaleSnapshotError` when a stale snapshot could not be refreshed (disk full: the
    reader refuses to show an older state than is stored).
    """
    p = db_path(path)
    snap = snapshot_path(p)
    if not snap.exists():
        if not p.exists():
            raise ArenatreeError(f"{p}: no database yet; import data with 'arenatree ingest'")
        _must_refresh(p, "before its first read copy existed")
    con = duckdb.connect(str(snap), read_only=True)
    try:
        if schema_version(con) != SCHEMA_VERSION:  # an older arenatree's snapshot: migrate, republish
            con.close()
            _must_refresh(p, "while its schema needed migrating")
            con = duckdb.connect(str(snap), read_only=True)
        elif not _is_current(con, p) and refresh(p):
            con.close()
            con = duckdb.connect(str(snap), read_only=True)
        yield con
    finally:
        con.close()


def _must_refresh(p: Path, when: str) -> None:
    """:func:`refresh`, waiting up to ``READER_WAIT`` s; StoreBusyError if a writer stays busy."""
    if not refresh(p, wait=READER_WAIT):
        raise StoreBusyError(
            f"{p}: a writer kept the database busy for {READER_WAIT:.0f} s {when}; "
            "try again when it has finished"
        )
