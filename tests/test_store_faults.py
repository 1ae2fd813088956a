"""The store when the disk fills up: what is stored and what readers show agree at every step.

The main test runs the real ``arenatree ingest`` / ``arenatree datasets`` on a real, small tmpfs
(mounted here: the suite runs as root in this project's container) filled to a little less room
each time, so that every failure point of a write session is met for real: the session's first
commit, the import's commit, the checkpoint and the snapshot copy. Where ``mount`` is refused
(not root) the same checks run with the operating system's ENOSPC injected at each write step.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from pipelines import cli, store
from pipelines.errors import SnapshotError, StaleSnapshotError

NO_SPACE = os.strerror(errno.ENOSPC)  # 'No space left on device'
FS_SIZE = "16m"
STEP = 100_000  # bytes of free room added per step
VOTES = 5  # per import


@pytest.fixture()
def small_fs(tmp_path: Path):
    """A fresh 16 MB tmpfs mounted on a folder of ``tmp_path`` (None if mounting is refused)."""
    mnt = tmp_path / "small-fs"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FS_SIZE}", "tmpfs", str(mnt)], capture_output=True
    )
    if done.returncode != 0:
        yield None
        return
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def votes_file(folder: Path, k: int) -> Path:
    """A 'votes' JSONL file of ``VOTES`` new votes (distinct for every ``k``)."""
    path = folder / f"votes-{k}.jsonl"
    rows = [
        {"model_a": f"m{i % 3}", "model_b": f"m{i % 3 + 1}", "winner": "model_a", "judge": f"k{k}-u{i}"}
        for i in range(VOTES)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def arenatree(capsys, *args: str, db: Path) -> tuple[int, str, str]:
    """``arenatree --db DB ARGS`` through the real entry point: (status, stdout, stderr)."""
    status = cli.main(["--db", str(db), *args])
    out = capsys.readouterr()
    return status, out.out, out.err


def stored_battles(db: Path) -> int:
    """Battles in the main file itself (replaying its write-ahead log), opened read-only."""
    return stored_state(db)[0]


def stored_state(db: Path) -> tuple[int, int]:
    """(battles, write sessions counted) in the main file itself, opened read-only."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return int(con.execute("SELECT count(*) FROM battles").fetchall()[0][0]), store.write_seq(con)
    finally:
        con.close()


def seen_battles(capsys, db: Path) -> int | str:
    """What ``arenatree datasets`` shows: the battle count, or its one-line error."""
    status, out, err = arenatree(capsys, "datasets", "--json", db=db)
    if status == 0:
        return sum(d["battles"] for d in json.loads(out))
    assert status == 2 and err.count("\n") == 1 and err.startswith("arenatree: error: "), err
    return err


def free_bytes(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def fill(folder: Path, leave: int) -> Path:
    """Grow ``folder/filler`` until only ``leave`` bytes are free (or as close as blocks allow)."""
    filler = folder / "filler"
    filler.unlink(missing_ok=True)
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(free_bytes(folder) - leave, 0))
    return filler


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def check_agreement(capsys, db: Path, stored: int) -> int | str:
    """What readers see is what is stored, or a one-line refusal naming the stale read copy."""
    seen = seen_battles(capsys, db)
    if isinstance(seen, str):
        assert "read copy is older than the database" in seen and NO_SPACE in seen, seen
    else:
        assert seen == stored, f"readers show {seen} battles, the database holds {stored}"
    return seen


@pytest.mark.slow
def test_disk_full_at_every_step_readers_agree_with_the_store(small_fs, tmp_path, capsys, monkeypatch):
    if small_fs is None:  # not root: the OS's ENOSPC injected at each write step instead
        test_enospc_at_each_write_step_is_reported_and_repaired(tmp_path, capsys, monkeypatch)
        return
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    db = small_fs / "arenatree.duckdb"
    assert arenatree(capsys, "ingest", str(votes_file(inputs, 0)), "--dataset", "d", db=db)[0] == 0
    stored, seq = VOTES, 1
    outcomes: list[str] = []
    refusals = 0
    # page by page first (the session's first commit, then the import's, fail), then coarser
    leaves = [*range(0, 8 * 4096, 4096), *range(STEP, 60 * STEP, STEP)]
    for k, leave in enumerate(leaves, start=1):
        filler = fill(small_fs, leave=leave)
        status, _, err = arenatree(capsys, "ingest", str(votes_file(inputs, k)), "--dataset", "d", db=db)
        if status == 0:
            outcome = "ok"
        else:  # one line, no traceback, the OS's reason
            assert status == 2 and err.count("\n") == 1 and err.startswith("arenatree: error: "), err
            assert NO_SPACE in err, err
            if "nothing of the import" not in err:
                outcome = "stored, copy failed"
                assert "the import into 'd' is stored (5 battles added)" in err, err
                assert "arenatree datasets" in err, err  # what to do
            else:
                outcome = "not stored"
                assert "nothing of the import into 'd' is stored" in err, err
        before = stored
        stored, seq_now = stored_state(db)
        if outcome == "not stored" and seq_now > seq:
            outcome = "session started, import not stored"  # the import's own commit failed
        if outcome == "stored, copy failed" and store.wal_path(db).exists():
            outcome = "stored, checkpoint failed"  # the commit is in the write-ahead log only
        seq = seq_now
        outcomes.append(outcome)
        assert stored == before + (0 if "not stored" in outcome else VOTES), (outcome, before, stored)
        assert store.snapshot_path(db).exists()
        assert temp_files(small_fs) == [], f"step {k} left {temp_files(small_fs)}"
        refusals += isinstance(check_agreement(capsys, db, stored), str)
        assert temp_files(small_fs) == [], f"the reader's repair at step {k} left {temp_files(small_fs)}"
        if outcome == "ok":
            break
    # the sweep met every kind of failure, and readers refused to show stale state meanwhile
    expected = {
        "not stored",
        "session started, import not stored",
        "stored, checkpoint failed",
        "stored, copy failed",
        "ok",
    }
    assert expected <= set(outcomes), outcomes
    assert refusals >= 1, outcomes
    # with room again, the next reader shows everything stored
    filler.unlink()
    assert (
        seen_battles(capsys, db)
        == stored
        == VOTES * (1 + len([o for o in outcomes if "not stored" not in o]))
    )
    assert temp_files(small_fs) == []


def test_copy_failure_after_commit_is_repaired_once_space_is_free(small_fs, tmp_path, capsys, monkeypatch):
    """The issue's case exactly: the import commits, the copy runs out of space; retried reads
    refuse (no temp file each time); the first read after space is freed shows the import."""
    if small_fs is None:
        test_enospc_at_each_write_step_is_reported_and_repaired(tmp_path, capsys, monkeypatch)
        return
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    db = small_fs / "arenatree.duckdb"
    assert arenatree(capsys, "ingest", str(votes_file(inputs, 0)), "--dataset", "d", db=db)[0] == 0
    size = db.stat().st_size
    fill(small_fs, leave=size // 2)  # room for the commit and the checkpoint, not for a copy
    status, _, err = arenatree(capsys, "ingest", str(votes_file(inputs, 1)), "--dataset", "d", db=db)
    assert status == 2 and "the import into 'd' is stored" in err and NO_SPACE in err, err
    assert stored_battles(db) == 2 * VOTES
    for _ in range(3):  # every retry fails cleanly and leaves no temporary file
        seen = seen_battles(capsys, db)
        assert isinstance(seen, str) and "read copy is older" in seen, seen
        assert temp_files(small_fs) == []
    (small_fs / "filler").unlink()
    assert seen_battles(capsys, db) == 2 * VOTES


def enospc(path: object) -> OSError:
    return OSError(errno.ENOSPC, NO_SPACE, str(path))


@pytest.mark.slow
def test_enospc_at_each_write_step_is_reported_and_repaired(tmp_path, capsys, monkeypatch):
    """Each file operation of publishing (the copy, the rename, the sidecar) fails with the OS's
    ENOSPC in turn: the import is reported stored, no temp file stays, readers refuse while the
    fault lasts and show the import once it is gone."""
    inputs = tmp_path / "inputs"
    inputs.mkdir(exist_ok=True)
    db = tmp_path / "faults" / "arenatree.duckdb"
    db.parent.mkdir()
    assert arenatree(capsys, "ingest", str(votes_file(inputs, 0)), "--dataset", "d", db=db)[0] == 0
    real_copy, real_replace, real_write = shutil.copyfile, os.replace, Path.write_text

    def copy_half_then_fail(src, dst, *a, **kw):
        Path(dst).write_bytes(Path(src).read_bytes()[:1000])  # a partial temp file, as on a real disk
        raise enospc(dst)

    def replace_fails(src, dst):
        if str(dst).endswith(".read"):
            raise enospc(dst)
        return real_replace(src, dst)

    def sidecar_fails(self, *a, **kw):
        if ".version." in self.name:
            raise enospc(self)
        return real_write(self, *a, **kw)

    faults = {
        "copy": (shutil, "copyfile", copy_half_then_fail),
        "rename": (os, "replace", replace_fails),
    }
    stored = VOTES
    for k, (step, (module, name, fake)) in enumerate(faults.items(), start=1):
        monkeypatch.setattr(module, name, fake)
        status, _, err = arenatree(capsys, "ingest", str(votes_file(inputs, k)), "--dataset", "d", db=db)
        assert status == 2 and err.count("\n") == 1, (step, err)
        assert "the import into 'd' is stored" in err and NO_SPACE in err, (step, err)
        stored += VOTES
        assert stored_battles(db) == stored, step
        assert temp_files(db.parent) == [], (step, temp_files(db.parent))
        assert isinstance(check_agreement(capsys, db, stored), str), step  # the fault lasts: refused
        assert temp_files(db.parent) == [], step
        monkeypatch.setattr(module, name, {"copyfile": real_copy, "replace": real_replace}[name])
        assert check_agreement(capsys, db, stored) == stored, step  # fault gone: the reader repairs
    # the sidecar cannot be written when a session starts: nothing of the import is stored
    monkeypatch.setattr(Path, "write_text", sidecar_fails)
    status, _, err = arenatree(capsys, "ingest", str(votes_file(inputs, 9)), "--dataset", "d", db=db)
    monkeypatch.setattr(Path, "write_text", real_write)
    assert status == 2 and "nothing of the import into 'd' is stored" in err and NO_SPACE in err, err
    assert stored_battles(db) == stored
    assert temp_files(db.parent) == []
    assert check_agreement(capsys, db, stored) == stored


def test_publish_failure_is_a_snapshot_error_and_removes_its_temp_file(db, monkeypatch):
    with store.writer(db):
        pass

    def fail(src, dst, *a, **kw):
        Path(dst).write_bytes(b"partial")
        raise enospc(dst)

    monkeypatch.setattr(shutil, "copyfile", fail)
    with pytest.raises(SnapshotError, match=NO_SPACE):
        store.publish(db)
    assert temp_files(db.parent) == []
    # a temp file a killed publisher left is removed by the next publish
    (db.parent / f".{store.snapshot_path(db).name}.99999.tmp").write_bytes(b"left by kill -9")
    monkeypatch.undo()
    store.publish(db)
    assert temp_files(db.parent) == []


def test_a_stale_snapshot_that_cannot_be_refreshed_is_refused_not_shown(db, monkeypatch):
    with store.writer(db) as con:
        store.run(con, "INSERT INTO datasets VALUES ('old', 'pairwise', 'x', now()::TIMESTAMP)")
    monkeypatch.setattr(shutil, "copyfile", lambda src, dst, *a, **kw: (_ for _ in ()).throw(enospc(dst)))
    with pytest.raises(SnapshotError), store.writer(db) as con:
        store.run(con, "INSERT INTO datasets VALUES ('new', 'pairwise', 'x', now()::TIMESTAMP)")
    with pytest.raises(StaleSnapshotError, match="read copy is older"), store.reader(db):
        pass
    monkeypatch.undo()
    with store.reader(db) as con:
        assert sorted(r[0] for r in store.run(con, "SELECT dataset FROM datasets")) == ["new", "old"]
