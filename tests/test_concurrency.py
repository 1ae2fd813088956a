"""The store under real concurrency: separate OS processes writing and reading one database.

DuckDB locks a database file per process, so these tests only mean something with two real
processes: a writer subprocess publishes snapshots while this process reads them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest
from helpers import batch_sha, load, pairwise_batch, results_batch, table_contents

from pipelines import store
from pipelines.errors import InputError, StoreBusyError
from pipelines.ingest.load import load_batches

TESTS = Path(__file__).resolve().parent
BATCH = 7  # votes per batch
PER_IMPORT = 2  # batches per import (one transaction, one write session)
IMPORTS = 12


def spawn(script: str, *args: str) -> subprocess.Popen:
    """Run ``script`` in a fresh Python process that can import ``helpers`` and ``pipelines``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(TESTS.parent)]))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    """Wait for ``proc``; fail with its stderr unless it exited 0. Returns its stdout."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"subprocess timed out:\n{err}")
    assert proc.returncode == 0, f"subprocess failed ({proc.returncode}):\n{err}"
    return out


WRITER = """
    import sys
    from helpers import batch_sha, pairwise_batch
    from pipelines import store
    from pipelines.ingest.load import load_batches

    db, batch, per_import, imports = sys.argv[1], *map(int, sys.argv[2:5])
    for k in range(1, imports + 1):  # import 0 was made by the test before starting us
        parts = [
            pairwise_batch(batch, start=(k * per_import + j) * batch, path=f"part-{k}-{j}.jsonl")
            for j in range(per_import)
        ]
        with store.writer(db) as con:
            load_batches(con, "votes", [(b, batch_sha(b)) for b in parts])
        print(k, flush=True)
"""


def read_counts(db: Path) -> tuple[int, int, int]:
    """(battles, imports, sum of added_battles) in one read-only snapshot connection."""
    with store.reader(db) as con:
        row = store.one(
            con,
            "SELECT (SELECT count(*) FROM battles), (SELECT count(*) FROM imports), "
            "(SELECT coalesce(sum(added_battles), 0) FROM imports)",
        )
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


@pytest.mark.slow
def test_reader_never_sees_a_half_written_import(db: Path) -> None:
    size = BATCH * PER_IMPORT
    load(db, "votes", [pairwise_batch(BATCH, start=j * BATCH) for j in range(PER_IMPORT)])
    writer = spawn(WRITER, str(db), str(BATCH), str(PER_IMPORT), str(IMPORTS))

    seen: list[int] = []
    versions = set()
    reads = 0
    while writer.poll() is None:
        versions.add(store.snapshot_version(db))
        battles, imports, added = read_counts(db)  # must never raise
        reads += 1
        assert battles % size == 0, f"half-written import visible: {battles} battles"
        assert imports == PER_IMPORT * battles // size, (battles, imports)
        assert added == battles
        if not seen or seen[-1] != battles:
            assert not seen or battles > seen[-1], f"snapshot went back: {seen[-1]} -> {battles}"
            seen.append(battles)
    out = finish(writer)

    assert out.split() == [str(k) for k in range(1, IMPORTS + 1)]
    final = size * (IMPORTS + 1)
    assert read_counts(db) == (final, PER_IMPORT * (IMPORTS + 1), final)
    # The reads really overlapped the writes: several intermediate snapshots were seen.
    assert reads > IMPORTS, reads
    assert len([s for s in seen if size < s < final]) >= 2, seen
    assert len(versions) >= 3


HOLDER = """
    import sys, time
    from pipelines import store

    db, hold = sys.argv[1], float(sys.argv[2])
    with store.writer(db) as con:
        store.run(con, "INSERT INTO meta VALUES ('holder', 'was here')")
        print("locked", flush=True)
        time.sleep(hold)
    print("released", flush=True)
"""


@pytest.mark.slow
def test_second_writer_waits_for_the_first(db: Path) -> None:
    load(db, "votes", [pairwise_batch(BATCH)])
    holder = spawn(HOLDER, str(db), "3")
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"

    # While a writer holds the database, readers still read the last snapshot ...
    assert read_counts(db)[0] == BATCH
    # ... a writer that will not wait long enough gets a clear StoreBusyError ...
    with pytest.raises(StoreBusyError, match="busy"), store.writer(db, timeout=0.5):
        pass
    # ... and a patient writer waits its turn, then writes.
    start = time.monotonic()
    with store.writer(db, timeout=60) as con:
        waited = time.monotonic() - start
        assert store.one(con, "SELECT value FROM meta WHERE key = 'holder'") == ("was here",)
        b = pairwise_batch(BATCH, start=BATCH)
        load_batches(con, "votes", [(b, batch_sha(b))])
    assert "released" in finish(holder)
    assert waited > 1.0, waited
    assert read_counts(db)[0] == 2 * BATCH


def conflicting_vote() -> object:
    """A batch whose second vote re-uses a stored id with another winner (fails late, after
    its prompts and responses were already inserted in the transaction)."""
    b = pairwise_batch(2, start=100, path="conflict.jsonl")
    b.battles.loc[1, "battle_key"] = "vote-0"
    b.battles.loc[1, "winner"] = "model_b"  # vote-0 is stored with 'model_a'
    return b


def bad_label() -> object:
    b = pairwise_batch(3, start=200, path="bad-label.jsonl")
    b.battles.loc[2, "winner"] = "left"
    return b


@pytest.mark.parametrize("make_bad", [bad_label, conflicting_vote], ids=["label", "conflict"])
def test_failed_batch_leaves_the_database_exactly_as_before(db: Path, make_bad) -> None:
    load(db, "votes", [pairwise_batch(10)])
    load(db, "math", [results_batch(4)])
    with store.reader(db) as con:
        before = table_contents(con)

    good = [pairwise_batch(5, start=50, path="good-1.jsonl"), pairwise_batch(5, start=60)]
    bad = make_bad()
    with pytest.raises(InputError) as info, store.writer(db) as con:
        load_batches(con, "votes", [(b, batch_sha(b)) for b in (*good, bad)])
    assert str(bad.path) in str(info.value)

    # the session republishes the snapshot even on failure, but it holds exactly what it held
    with store.reader(db) as con:
        assert table_contents(con) == before
    con = duckdb.connect(str(db), read_only=True)  # the main file too, not just the snapshot
    try:
        assert table_contents(con) == before
    finally:
        con.close()


KILLED = """
    import os, shutil, signal, sys, time
    from pathlib import Path
    from helpers import batch_sha, pairwise_batch
    from pipelines import store
    from pipelines.ingest.load import load_batches

    db, when, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])

    def die(*args):
        if when == "mid-copy":
            Path(args[1]).write_bytes(b"half a copy")  # the temporary file, partly written
        os.kill(os.getpid(), signal.SIGKILL)

    if when == "before-copy":
        store.publish = die  # committed and checkpointed, never copied
    if when == "mid-copy":
        shutil.copyfile = die
    b = pairwise_batch(7, start=700, path="late.jsonl")
    with store.writer(db) as con:
        load_batches(con, "votes", [(b, batch_sha(b))])
        print("committed", flush=True)
        while not go.exists():  # alive, holding the lock, until the test has read
            time.sleep(0.05)
        if when == "after-commit":
            os.kill(os.getpid(), signal.SIGKILL)  # committed to the write-ahead log only
"""


@pytest.mark.slow
@pytest.mark.parametrize("when", ["after-commit", "before-copy", "mid-copy"])
def test_a_writer_killed_after_its_commit_is_repaired_by_the_next_reader(db: Path, when: str) -> None:
    load(db, "votes", [pairwise_batch(BATCH)])
    go = db.with_name("go")
    proc = spawn(KILLED, str(db), when, str(go))
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "committed"

    # while the writer lives, readers read the last snapshot at once (never wait for it) ...
    start = time.monotonic()
    assert read_counts(db)[0] == BATCH
    assert time.monotonic() - start < 2.0
    go.touch()
    proc.communicate(timeout=60)
    assert proc.returncode == -9, proc.returncode

    # ... and after kill -9 the first reader sees what the dead writer committed
    assert read_counts(db) == (2 * BATCH, 2, 2 * BATCH)
    assert not list(db.parent.glob(".*.tmp")), list(db.parent.glob(".*.tmp"))
    assert store.snapshot_version(db) is not None
    with store.reader(db) as con:  # and it stays repaired: no second repair is needed
        assert store.write_seq(con) == int(store.version_path(db).read_text())


FOREIGN = """
    import sys, time
    import duckdb
    from pathlib import Path

    con = duckdb.connect(sys.argv[1])  # read-write, without arenatree's lock
    print("open", flush=True)
    while not Path(sys.argv[2]).exists():
        time.sleep(0.05)
    con.close()
"""


def test_a_stale_snapshot_is_read_as_is_while_another_process_holds_the_main_file(db: Path) -> None:
    load(db, "votes", [pairwise_batch(BATCH)])
    store.version_path(db).write_text("999\n")  # stale, as while a writer is at work
    go = db.with_name("go")
    holder = spawn(FOREIGN, str(db), str(go))
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "open"
    try:
        start = time.monotonic()
        assert read_counts(db)[0] == BATCH  # neither fails nor waits: the current snapshot
        assert time.monotonic() - start < 2.0
    finally:
        go.touch()
        finish(holder)
    assert read_counts(db)[0] == BATCH  # the file is free again: repaired
    with store.reader(db) as con:
        assert store.write_seq(con) == int(store.version_path(db).read_text())
