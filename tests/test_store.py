"""Schema versioning, forward migrations and the read snapshot."""

from __future__ import annotations

import duckdb
import pytest

from pipelines import store
from pipelines.errors import ArenatreeError


def tables(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def test_new_database_is_migrated_to_current_version(db):
    with store.writer(db) as con:
        assert store.schema_version(con) == store.SCHEMA_VERSION
        assert {"datasets", "imports", "prompts", "battles", "results", "responses"} <= tables(con)
    assert store.snapshot_path(db).exists()


def test_migrations_run_forward_from_an_older_file(db, monkeypatch):
    # a database made by a release that had only the first migration, then a newer release
    monkeypatch.setattr(store, "MIGRATIONS", store.MIGRATIONS[:1])
    monkeypatch.setattr(store, "SCHEMA_VERSION", 1)
    with store.writer(db) as con:
        store.run(con, "INSERT INTO datasets VALUES ('d', 'pairwise', 'x', now()::TIMESTAMP)")
    extra = "CREATE TABLE added_later (x INTEGER); INSERT INTO added_later VALUES (42);"
    monkeypatch.setattr(store, "MIGRATIONS", store.MIGRATIONS + [extra])
    monkeypatch.setattr(store, "SCHEMA_VERSION", 2)
    with store.reader(db) as con:  # a reader of an old file triggers the migration once
        assert store.schema_version(con) == 2
        assert con.execute("SELECT x FROM added_later").fetchall() == [(42,)]
        assert con.execute("SELECT dataset FROM datasets").fetchall() == [("d",)]


def test_a_newer_schema_is_refused(db):
    with store.writer(db) as con:
        store.run(con, "UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(ArenatreeError, match="newer than this arenatree"), store.writer(db):
        pass


def test_reader_without_database_says_how_to_import(db):
    with pytest.raises(ArenatreeError, match="arenatree ingest"), store.reader(db):
        pass


def test_reader_makes_a_missing_snapshot_and_never_opens_the_main_file(db):
    with store.writer(db) as con:
        store.run(con, "INSERT INTO datasets VALUES ('d', 'pairwise', 'x', now()::TIMESTAMP)")
    store.snapshot_path(db).unlink()
    with store.reader(db) as con:
        assert con.execute("SELECT count(*) FROM datasets").fetchall() == [(1,)]
    # while a foreign process-level connection holds the main file read-write, readers still work
    holder = duckdb.connect(str(db))
    try:
        with store.reader(db) as con:
            assert con.execute("SELECT count(*) FROM datasets").fetchall() == [(1,)]
    finally:
        holder.close()


def test_failed_transaction_leaves_nothing(db):
    with pytest.raises(RuntimeError), store.writer(db) as con, store.transaction(con):
        store.run(con, "INSERT INTO datasets VALUES ('d', 'pairwise', 'x', now()::TIMESTAMP)")
        raise RuntimeError("boom")
    with store.reader(db) as con:
        assert con.execute("SELECT count(*) FROM datasets").fetchall() == [(0,)]


def test_snapshot_version_changes_on_publish(db):
    assert store.snapshot_version(db) is None
    with store.writer(db):
        pass
    first = store.snapshot_version(db)
    with store.writer(db):
        pass
    assert store.snapshot_version(db) != first


def test_every_write_session_is_counted_in_the_file_and_its_snapshot(db):
    for expected in (1, 2, 3):
        with store.writer(db) as con:
            assert store.write_seq(con) == expected
        assert store.version_path(db).read_text().strip() == str(expected)
        with store.reader(db) as con:  # the snapshot carries the version it was copied at
            assert store.write_seq(con) == expected


def test_snapshot_version_changes_when_a_write_session_starts(db):
    """The dashboard keys its caches on it: a session that commits and dies before publishing
    must not leave the old key (and so the old cached pages) in place."""
    with store.writer(db):
        pass
    before = store.snapshot_version(db)
    with store.writer(db):
        assert store.snapshot_version(db) != before


def test_a_snapshot_without_its_version_is_repaired_once(db):
    # a database from before the sidecar existed: the first reader republishes and writes it
    with store.writer(db) as con:
        store.run(con, "INSERT INTO datasets VALUES ('d', 'pairwise', 'x', now()::TIMESTAMP)")
    store.version_path(db).unlink()
    with store.reader(db) as con:
        assert con.execute("SELECT count(*) FROM datasets").fetchall() == [(1,)]
    assert store.version_path(db).exists()
    published = store.snapshot_version(db)
    with store.reader(db):
        pass
    assert store.snapshot_version(db) == published  # current now: no second copy
