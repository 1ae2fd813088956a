"""``arenatree audit`` end to end on the real bundled data (LLMFAO crowd + LLM judges, PandaLM's
annotators + LLM judges) and on a simulated arena imported by the real commands: the JSON
contract, the filters, determinism, and one-line errors on bad input. The audits' numbers are
checked against references in test_audit_*.py; here every finding is checked for consistency
(flags agree with q-values and alpha, intervals contain their estimates, evidence ids exist)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from helpers import run_cli

from pipelines import cli
from pipelines.audit.run import AUDITS


def audit_json(db: Path, *args: str) -> dict:
    out = run_cli("audit", *args, "--json", db=db)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def pandalm(bundled_db: Path) -> dict:
    return audit_json(bundled_db, "--dataset", "pandalm")


@pytest.fixture(scope="module")
def llmfao(bundled_db: Path) -> dict:
    return audit_json(bundled_db, "--dataset", "llmfao")


def test_cli_lists_every_audit() -> None:
    assert list(cli.AUDIT_KEYS) == list(AUDITS)


def check_consistent(doc: dict, db: Path) -> None:
    """Structural truths every audit document must satisfy."""
    assert [f["audit"] for f in doc["findings"]] == list(AUDITS)
    alpha = doc["params"]["alpha"]
    ids: set[str] = set()
    for f in doc["findings"]:
        assert f["title"] and f["summary"], f["audit"]
        h = f["headline"]
        if f["applicable"] and h.get("estimate") is not None and h.get("lower") is not None:
            assert h["lower"] - 1e-9 <= h["estimate"] <= h["upper"] + 1e-9, (f["audit"], h)
        for name, rows in f["tables"].items():
            for row in rows:
                if "flagged" in row and "q_value" in row and row["flagged"]:
                    assert row["q_value"] is not None and row["q_value"] <= alpha + 1e-12, (f["audit"], name)
                if row.get("flagged") and "votes" in row and "judge" in row:
                    assert row["votes"] >= doc["params"]["min_votes"], (f["audit"], row["judge"])
                ids.update(map(str, row.get("battle_ids") or []))
    with duckdb.connect(str(db), read_only=True) as con:
        known = {
            r[0]
            for r in con.execute(
                "SELECT battle_id FROM battles WHERE dataset = ?", [doc["dataset"]]
            ).fetchall()
        }
    assert ids and ids <= known  # evidence ids are real votes of this dataset


def test_pandalm_audit(pandalm: dict, bundled_db: Path) -> None:
    check_consistent(pandalm, bundled_db)
    assert pandalm["votes"] == 4970 and pandalm["voters"] == 5 and pandalm["tree_id"]
    agreement = next(f for f in pandalm["findings"] if f["audit"] == "judge_agreement")
    assert agreement["applicable"]  # three annotators and two LLM judges share items


def test_llmfao_audit(llmfao: dict, bundled_db: Path) -> None:
    check_consistent(llmfao, bundled_db)
    assert llmfao["votes"] == 13209 and llmfao["voters"] == 126
    voters = next(f for f in llmfao["findings"] if f["audit"] == "anomalous_voters")
    (table,) = [rows for rows in voters["tables"].values() if rows and "judge" in rows[0]][:1]
    assert {r["judge"] for r in table} >= {f"llmfao-worker-{i}" for i in (15, 41, 58)}


def test_filters_only_and_determinism(bundled_db: Path, llmfao: dict) -> None:
    humans = audit_json(bundled_db, "--dataset", "llmfao", "--judge-kind", "human", "--only", "position,ties")
    assert humans["votes"] == 8931 and humans["filters"]["judge_kind"] == "human"
    assert [f["audit"] for f in humans["findings"]] == ["position", "ties"]
    again = audit_json(bundled_db, "--dataset", "llmfao")
    strip = lambda d: [{k: v for k, v in f.items() if k != "seconds"} for f in d["findings"]]  # noqa: E731
    assert strip(again) == strip(llmfao)


def test_text_output(bundled_db: Path) -> None:
    out = run_cli("audit", "--dataset", "pandalm", "--only", "position,judge_agreement", db=bundled_db)
    assert out.returncode == 0, out.stderr
    assert "voter audit of pandalm: 4,970 votes" in out.stdout
    assert out.stdout.count("\n== ") == 2


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--dataset", "nope"), "no dataset 'nope'"),
        (("--dataset", "math"), "instances data"),
        (("--dataset", "pandalm", "--only", "position,bogus"), "unknown audit 'bogus'"),
        (("--dataset", "pandalm", "--alpha", "1.5"), "alpha"),
        (("--dataset", "pandalm", "--judge", "nobody"), "no votes with judge 'nobody'"),
    ],
)
def test_bad_input_is_one_line(bundled_db: Path, args: tuple[str, ...], needle: str) -> None:
    out = run_cli("audit", *args, db=bundled_db)
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr


@pytest.mark.slow
def test_simulated_arena_through_the_real_commands(tmp_path: Path) -> None:
    """simulate -> ingest -> audit (no tree): planted voters show up in the per-voter findings."""
    db = tmp_path / "sim.duckdb"
    sim = run_cli("simulate", "--out", str(tmp_path / "sim"), "--votes", "30000", "--models", "8",
                  "--voters", "150", "--seed", "4", db=db)  # fmt: skip
    assert sim.returncode == 0, sim.stderr
    ing = run_cli("ingest", str(tmp_path / "sim" / "conversations.parquet"), "--dataset", "sim", db=db)
    assert ing.returncode == 0, ing.stderr
    doc = audit_json(db, "--dataset", "sim")
    check_consistent(doc, db)
    assert doc["votes"] == 30000 and doc["tree_id"] is None
    truth = json.loads((tmp_path / "sim" / "truth.json").read_text())
    fans = {v["judge"] for v in truth["voters"] if v["type"] == "fan" and v["votes"] >= 100}
    concentrated = next(f for f in doc["findings"] if f["audit"] == "concentrated_voters")
    flagged = {r["judge"] for rows in concentrated["tables"].values() for r in rows if r.get("flagged")}
    assert fans and fans <= flagged
    inversions = next(f for f in doc["findings"] if f["audit"] == "inversions")
    assert not inversions["applicable"]  # no tree: said, not crashed


def _without_timing(doc: dict) -> list[dict]:
    return [{k: v for k, v in f.items() if k not in ("seconds", "dtypes")} for f in doc["findings"]]


def test_demo_stores_each_pairwise_audit(bundled_db: Path) -> None:
    """``arenatree demo`` stored the default audit of every pairwise dataset, and the stored copy
    is exactly what a fresh run computes (so the dashboard can show it without recomputing)."""
    from pipelines import store
    from pipelines.audit.run import run_audit
    from pipelines.audit.stored import find_audit

    with store.reader(bundled_db) as con:
        stored = dict(con.execute("SELECT dataset, run_id FROM audit_runs").fetchall())
        assert set(stored) == {"llmfao", "pandalm", "alpaca_eval"}
        found = find_audit(con, "pandalm")
        fresh = run_audit(con, "pandalm")
        assert find_audit(con, "pandalm", alpha=0.01) is None  # other parameters: not stored
    assert found is not None and found.run_id == stored["pandalm"]
    assert _without_timing(found.as_dict()) == _without_timing(fresh.as_dict())


def test_save_stores_once_and_reuses(bundled_db: Path, tmp_path: Path) -> None:
    import shutil

    db = tmp_path / "copy.duckdb"
    shutil.copyfile(bundled_db, db)
    first = run_cli(
        "audit", "--dataset", "pandalm", "--only", "ties", "--alpha", "0.1", "--save", "--json", db=db
    )
    second = run_cli(
        "audit", "--dataset", "pandalm", "--only", "ties", "--alpha", "0.1", "--save", "--json", db=db
    )
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert one["run_id"] and one["run_id"] == two["run_id"]
    assert _without_timing(one) == _without_timing(two)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM audit_runs WHERE run_id = ?", [one["run_id"]]).fetchall()
    assert rows == [(1,)]
