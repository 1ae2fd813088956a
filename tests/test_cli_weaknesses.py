"""``arenatree weaknesses`` and ``arenatree simulate`` as a user runs them, on the real bundled data:
every reported weakness is checked against the raw results / votes behind it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import run_cli
from scipy.stats import beta

from pipelines import store

MODEL = "Llama-3-8B-Instruct"


def cli_json(*args: str, db: Path) -> dict:
    out = run_cli(*args, "--json", db=db)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def node_items(con, tree_id: str, node_id: int) -> list[str]:
    """Source ids of the items under a node, straight from the tables (path prefix)."""
    path = con.execute(
        "SELECT path FROM nodes WHERE tree_id = ? AND node_id = ?", [tree_id, node_id]
    ).fetchone()[0]
    rows = con.execute(
        """
        SELECT DISTINCT s.source_id FROM node_members m
        JOIN nodes n ON n.tree_id = m.tree_id AND n.node_id = m.node_id
        JOIN prompt_sources s ON s.dataset = 'math' AND s.prompt_id = m.prompt_id
        WHERE m.tree_id = ? AND (n.path = ? OR n.path LIKE ? || '.%')
        """,
        [tree_id, path, path],
    ).fetchall()
    return sorted(r[0] for r in rows)


def test_evaltree_weaknesses_match_the_raw_results(bundled_db):
    got = cli_json("weaknesses", "--dataset", "math", "--model", MODEL, db=bundled_db)
    assert got["view"] == "evaltree" and got["tau"] == pytest.approx(got["score"])
    assert got["weaknesses"], "a 30%-accuracy model has nodes wholly below its own average"
    with store.reader(bundled_db) as con:
        results = con.execute(
            "SELECT instance_id, score FROM results WHERE dataset = 'math' AND model = ?", [MODEL]
        ).df()
        assert got["score"] == pytest.approx(results["score"].mean())
        by_id = results.set_index("instance_id")["score"]
        paths = dict(
            con.execute("SELECT node_id, path FROM nodes WHERE tree_id = ?", [got["tree_id"]]).fetchall()
        )
        for w in got["weaknesses"]:
            items = node_items(con, got["tree_id"], w["node_id"])
            assert sorted(w["source_ids"]) == items and w["size"] == len(items)
            k, n = int(by_id.loc[items].sum()), len(items)
            assert w["score"] == pytest.approx(k / n)
            assert w["upper"] == pytest.approx(beta.ppf(0.975, k + 1, n - k)) and w["upper"] < got["tau"]
    extracted = [paths[w["node_id"]] for w in got["weaknesses"]]
    for p in extracted:  # never a node and one of its descendants
        assert not any(q != p and q.startswith(p + ".") for q in extracted)


def test_sweep_profiles_agree_with_single_tau_runs(bundled_db):
    sweep = cli_json("weaknesses", "--dataset", "math", "--model", MODEL, "--sweep", db=bundled_db)[
        "profiles"
    ]
    assert len(sweep) > 3
    assert len({tuple(p["node_ids"]) for p in sweep}) == len(sweep), "profiles are distinct"
    for p in (sweep[1], sweep[len(sweep) // 2], sweep[-1]):
        hi = p["tau_high"]
        tau = (p["tau_low"] + hi) / 2 if hi is not None and hi != float("inf") else p["tau_low"] + 0.01
        at = cli_json("weaknesses", "--dataset", "math", "--model", MODEL, "--tau", str(tau), db=bundled_db)
        assert sorted(w["node_id"] for w in at["weaknesses"]) == sorted(p["node_ids"])


def test_pruned_and_adjusted_views(bundled_db):
    pruned = cli_json("weaknesses", "--dataset", "math", "--model", MODEL, "--pruned", db=bundled_db)
    assert pruned["weaknesses"] and all(w["score"] < pruned["score"] for w in pruned["weaknesses"])
    adj = cli_json(
        "weaknesses", "--dataset", "alpaca_eval", "--model", "text_davinci_003", "--adjusted", db=bundled_db
    )
    assert adj["fdr"] is True and adj["alpha"] == 0.05
    for w in adj["weaknesses"]:
        assert w["p_adj"] <= 0.05 and w["p"] <= w["p_adj"] and w["offset"] < 0 and w["offset_upper"] < 0
    raw = cli_json(
        "weaknesses",
        "--dataset",
        "alpaca_eval",
        "--model",
        "text_davinci_003",
        "--adjusted",
        "--no-fdr",
        db=bundled_db,
    )
    assert len(raw["weaknesses"]) >= len(adj["weaknesses"])  # BH only ever removes findings


def test_text_output_names_the_items(bundled_db):
    out = run_cli("weaknesses", "--dataset", "math", "--model", MODEL, "--strengths", db=bundled_db)
    assert out.returncode == 0, out.stderr
    assert "weaknesses (" in out.stdout and "strengths (" in out.stdout and "items:" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "math", "--model", "nobody"], "nobody"),
        (["--dataset", "math", "--model", MODEL, "--adjusted"], "pairwise"),
        (["--dataset", "nope", "--model", MODEL], "nope"),
        (["--dataset", "math", "--model", MODEL, "--judge-kind", "human"], "per-instance"),
    ],
)
def test_bad_requests_fail_with_one_line(bundled_db, args, message):
    out = run_cli("weaknesses", *args, db=bundled_db)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


@pytest.mark.slow
def test_simulate_then_ingest_round_trip(tmp_path):
    out_dir = tmp_path / "sim"
    summary = cli_json(
        "simulate",
        "--out",
        str(out_dir),
        "--votes",
        "3000",
        "--models",
        "6",
        "--voters",
        "50",
        "--seed",
        "5",
        db=tmp_path / "unused.duckdb",
    )
    assert summary["votes"] == 3000 and summary["models"] == 6
    truth = json.loads((out_dir / "truth.json").read_text())
    db = tmp_path / "sim.duckdb"
    ing = run_cli("ingest", summary["files"]["votes"], "--dataset", "sim", db=db)
    assert ing.returncode == 0, ing.stderr
    with store.reader(db) as con:
        votes = con.execute("SELECT model_a, judge FROM battles WHERE dataset = 'sim'").df()
    assert len(votes) == 3000
    assert set(votes["model_a"]) <= {m["name"] for m in truth["models"]}
    assert set(votes["judge"]) <= {v["judge"] for v in truth["voters"]}
    bad = run_cli("simulate", "--out", str(tmp_path / "x"), "--voter-mix", "unbiased", db=db)
    assert bad.returncode == 2 and "--voter-mix" in bad.stderr and not (tmp_path / "x").exists()
    assert isinstance(pd.DataFrame(truth["models"]), pd.DataFrame)
