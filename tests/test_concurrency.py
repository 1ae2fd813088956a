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
