"""The fixed-baseline view (pipelines/baseline.py) against AlpacaEval's own code.

AlpacaEval (``alpaca-eval`` from PyPI, a test dependency) is the reference: its ``get_winrate``
for the head-to-head numbers and its ``get_length_controlled_winrate`` with the
``length_controlled_minimal`` GLM for the length-controlled rate. The files are written in
AlpacaEval's documented annotations format (``results/<model>/[<annotator>/]annotations.json``,
the baseline's own file included) with soft preferences, draws as 1.5 and 0, and a missing one.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from alpaca_eval import metrics as alpaca_metrics  # a dev dependency (pyproject 'dev')
from alpaca_eval.metrics import glm_winrate
from helpers import load, open_app_page, pairwise_batch, run_cli

from dashboard import widgets
from pipelines.baseline import fixed_baseline, head_to_head, length_controlled
from pipelines.ingest import ingest
from pipelines.store import reader

BASELINE = "ref-model"
STRENGTH = {"strong": 1.5, "long-winded": 0.2, "weak": -1.0}
LENGTH = {"strong": 600, "long-winded": 1500, "weak": 300, BASELINE: 500}  # mean characters
ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"
N = 60


def records(model: str, seed: int = 0) -> list[dict]:
    """AlpacaEval annotation records of ``model`` against the baseline over N instructions: soft
    preferences from a logistic in strength and length difference, a few exact draws (1.5 and 0)
    and, for 'weak', one missing preference. The baseline's own file is its answers twice, 1.5."""
    rng = np.random.default_rng([seed, sum(map(ord, model))])
    base_rng = np.random.default_rng(seed)
    base_len = base_rng.integers(LENGTH[BASELINE] // 2, LENGTH[BASELINE] * 3 // 2, N)
    out = []
    for i in range(N):
        base = f"Answer {i} by the baseline. " + "x" * int(base_len[i])
        if model == BASELINE:
            text, pref = base, 1.5
        else:
            length = int(rng.integers(LENGTH[model] // 2, LENGTH[model] * 3 // 2))
            text = f"Answer {i} by {model}. " + "y" * length
            z = STRENGTH[model] + 1.5 * (length - len(base)) / 500 + rng.normal(0, 0.5)
            pref = float(1 + 1 / (1 + math.exp(-z)))
            if i % 17 == 3:
                pref = 1.5
            elif i % 23 == 5:
                pref = 0
            elif model == "weak" and i == 7:
                pref = None
        out.append(
            {
                "instruction": f"Instruction {i}: explain topic number {i} in a few sentences.",
                "output_1": base,
                "generator_1": BASELINE,
                "dataset": "helpful_base" if i % 2 else "koala",
                "output_2": text,
                "generator_2": model,
                "annotator": ANNOTATOR,
                "preference": pref,
                "price_per_example": 0.01,
            }
        )
    return out


def write_results(root: Path, nested: bool) -> Path:
    """``root/results`` with one annotations file per model (the baseline's own too)."""
    for model in [*STRENGTH, BASELINE]:
        folder = root / "results" / model / (ANNOTATOR if nested else "")
        folder.mkdir(parents=True)
        (folder / "annotations.json").write_text(json.dumps(records(model), indent=1))
    return root / "results"


def reference(model: str, tmp_path: Path, monkeypatch) -> dict:
    """AlpacaEval's own numbers for ``model``'s file: get_winrate and the minimal LC GLM (its
    instruction-difficulty download replaced by a file of zeros, which the minimal GLM ignores)."""
    df = pd.DataFrame(records(model)).assign(index=range(N))
    gamed = tmp_path / "df_gamed.csv"
    pd.DataFrame({"model": "none", "index": range(N), "instruction_difficulty": 0.0}).to_csv(
        gamed, index=False
    )
    monkeypatch.setattr(glm_winrate, "hf_hub_download", lambda **_: str(gamed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glm_winrate.get_length_controlled_winrate(
            df, glm_name="length_controlled_minimal", save_weights_dir=None, is_warn_extreme_changes=False
        )


@pytest.fixture(scope="module")
def alpaca_db(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("alpaca")
    db = root / "arenatree.duckdb"
    results = write_results(root / "flat", nested=False)
    proc = run_cli("import", str(results), "--dataset", "alp", "--format", "alpaca-eval", db=db)
    return {"db": db, "results": results, "import": proc}


@pytest.mark.parametrize("seed", range(4))
def test_head_to_head_equals_alpaca_eval(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pref = 1 + rng.random(200)
    pref[rng.choice(200, 30, replace=False)] = rng.choice([0.0, 1.5, 1.0, 2.0, np.nan, 2.5], 30)
    mine = head_to_head(pref)
    ref = alpaca_metrics.get_winrate(pd.DataFrame({"preference": pref}))
    assert set(mine) == set(ref)
    for key, value in ref.items():
        assert mine[key] == pytest.approx(float(value), abs=1e-9), key


def test_length_controlled_equals_alpaca_eval_minimal(tmp_path: Path, monkeypatch) -> None:
    for model in STRENGTH:
        if model == "weak":
            continue  # its missing preference: see test_the_import_log_and_the_view_match_alpaca_eval
        df = pd.DataFrame(records(model))
        p = df["preference"].astype(float).replace({0.0: 1.5}).to_numpy() - 1
        mine = length_controlled(p, df["output_2"].str.len(), df["output_1"].str.len())
        assert mine == pytest.approx(
            reference(model, tmp_path, monkeypatch)["length_controlled_winrate"], abs=1e-6
        )
    # the long-winded model wins on length: control takes most of that away
    df = pd.DataFrame(records("long-winded"))
    p = df["preference"].astype(float).replace({0.0: 1.5}).to_numpy() - 1
    assert length_controlled(p, df["output_2"].str.len(), df["output_1"].str.len()) < p.mean() * 100 - 5
    assert length_controlled(p[:5], np.ones(5), np.ones(5) * 2) is None  # too few votes
    assert length_controlled(p, np.ones(N), np.ones(N)) is None  # no length difference to model


@pytest.mark.slow
def test_the_import_log_and_the_view_match_alpaca_eval(alpaca_db: dict, tmp_path: Path, monkeypatch) -> None:
    proc = alpaca_db["import"]
    assert proc.returncode == 0, proc.stderr
    log = proc.stdout + proc.stderr
    assert f"skipped {N + 1:,} rows ({N} self-comparison" in log and "1 missing preference" in log
    out = run_cli("leaderboard", "--dataset", "alp", "--vs", BASELINE, "--json", db=alpaca_db["db"])
    assert out.returncode == 0, out.stderr
    view = json.loads(out.stdout)
    table = {r["model"]: r for r in view["table"]}
    assert set(table) == {*STRENGTH, BASELINE}
    for model in STRENGTH:
        ref = reference(model, tmp_path, monkeypatch)
        for key in ("win_rate", "standard_error", "discrete_win_rate"):
            assert table[model][key] == pytest.approx(ref[key], abs=1e-6), (model, key)
        for key in ("n_wins", "n_wins_base", "n_draws", "n_total"):
            assert table[model][key] == int(ref[key]), (model, key)
        lc = table[model]["length_controlled_winrate"]
        # AlpacaEval scales the length difference by its SD over all records, the missing
        # preference's too; the store holds only the votes, hence a tolerance for 'weak'.
        tol = 1e-6 if model != "weak" else 1.0
        assert lc == pytest.approx(ref["length_controlled_winrate"], abs=tol), model
        lengths = [len(r["output_2"]) for r in records(model) if r["preference"] is not None]
        assert table[model]["avg_length"] == int(np.mean(lengths))
    assert table[BASELINE] | {"avg_length": None} == {
        "model": BASELINE,
        "win_rate": 50.0,
        "standard_error": 0.0,
        "n_wins": 0,
        "n_wins_base": 0,
        "n_draws": N,
        "n_total": N,
        "discrete_win_rate": 50.0,
        "length_controlled_winrate": 50.0,
        "avg_length": None,
    }
    assert view["n_votes"] == 3 * N - 1
    assert any("length_controlled_minimal" in note for note in view["notes"])
    text = run_cli("leaderboard", "--dataset", "alp", "--vs", BASELINE, db=alpaca_db["db"])
    assert text.returncode == 0, text.stderr
    strong = next(line for line in text.stdout.splitlines() if line.startswith("strong "))
    assert f"{table['strong']['win_rate']:.2f}" in strong and f"{table['strong']['n_total']}" in strong


def test_both_layouts_and_the_file_hint(tmp_path: Path) -> None:
    nested = write_results(tmp_path / "nested", nested=True)
    db = tmp_path / "n.duckdb"
    (report,) = ingest([nested.parent], "alp", db=db)  # the folder above results/ works too
    assert (report.rows_read, report.added_battles) == (4 * N, 3 * N - 1)
    assert report.skipped_reasons == {
        "self-comparison: the baseline against itself (AlpacaEval scores it 50% by construction)": N,
        "missing preference": 1,
    }
    with reader(db) as con:
        judges = con.execute("SELECT DISTINCT judge FROM battles").fetchall()
        assert judges == [(ANNOTATOR,)]
        assert fixed_baseline(con, "alp") == BASELINE
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "a" / "other.json").write_text("[]")
    proc = run_cli(
        "import", str(empty), "--dataset", "x", "--format", "alpaca-eval", db=tmp_path / "e.duckdb"
    )
    assert proc.returncode != 0
    assert "pass the annotations files themselves" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_a_baseline_on_either_side_and_a_dataset_without_one(tmp_path: Path, monkeypatch) -> None:
    """Generic votes: the baseline on side b half the time; preferences from the winners, turned
    so that 2 means 'the model won' (a hand count)."""
    batch = pairwise_batch(40)
    df = batch.battles
    df["model_a"] = np.where(np.arange(40) % 2 == 0, "base", ["m1", "m2"] * 20)
    df["model_b"] = np.where(np.arange(40) % 2 == 0, ["m1", "m2"] * 20, "base")
    winners = (["model_a", "model_b", "tie", "model_b"] * 10)[:40]
    df["winner"] = winners
    db = tmp_path / "g.duckdb"
    load(db, "g", [batch])
    with reader(db) as con:
        assert fixed_baseline(con, "g") == "base"
    out = json.loads(run_cli("leaderboard", "--dataset", "g", "--vs", "base", "--json", db=db).stdout)
    table = {r["model"]: r for r in out["table"]}
    for model in ("m1", "m2"):
        rows = [
            (a, b, w)
            for a, b, w in zip(df["model_a"], df["model_b"], winners, strict=True)
            if model in (a, b)
        ]
        wins = sum((w == "model_a") == (a == model) and w != "tie" for a, b, w in rows)
        draws = sum(w == "tie" for *_, w in rows)
        assert (table[model]["n_wins"], table[model]["n_draws"], table[model]["n_total"]) == (wins, draws, 20)
        assert table[model]["win_rate"] == pytest.approx((wins + draws / 2) / 20 * 100)
        assert table[model]["length_controlled_winrate"] is None or math.isfinite(
            table[model]["length_controlled_winrate"]
        )
    other = pairwise_batch(60, start=100)  # several models, none in every vote
    load(db, "mixed", [other])
    with reader(db) as con:
        assert fixed_baseline(con, "mixed") is None
    proc = run_cli("leaderboard", "--dataset", "mixed", "--vs", other.battles["model_a"].iloc[0], db=db)
    assert proc.returncode != 0 and "not a fixed baseline" in proc.stderr and "Traceback" not in proc.stderr
    for dataset, shown in (("g", True), ("mixed", False)):
        at = open_app_page(db, monkeypatch, "views/leaderboard.py", dataset=dataset)
        assert any("fixed baseline" in t.value for t in at.subheader) is shown, dataset


@pytest.mark.slow
def test_the_leaderboard_page_shows_alpaca_evals_numbers(alpaca_db: dict, monkeypatch) -> None:
    at = open_app_page(alpaca_db["db"], monkeypatch, "views/leaderboard.py", dataset="alp")
    tables = {df.proto.id: df.value for df in at.dataframe if df.value is not None}
    shown = next(t for t in tables.values() if "length_controlled_winrate" in t.columns).set_index("model")
    out = run_cli("leaderboard", "--dataset", "alp", "--vs", BASELINE, "--json", db=alpaca_db["db"])
    cli = pd.DataFrame(json.loads(out.stdout)["table"]).set_index("model")
    pd.testing.assert_frame_equal(shown.sort_index(), cli.sort_index(), check_dtype=False)
    assert [t.value for t in at.subheader if "fixed baseline" in t.value] == [
        f"Against the fixed baseline {widgets.md_escape(BASELINE)}"
    ]
    assert any("length_controlled_minimal" in t.value for t in at.text)


@pytest.mark.slow
def test_the_report_carries_the_baseline_table(alpaca_db: dict, tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = run_cli(
        "report",
        "--dataset",
        "alp",
        "--sections",
        "leaderboard",
        "--out",
        str(out),
        "--format",
        "csv",
        db=alpaca_db["db"],
    )
    assert proc.returncode == 0, proc.stderr
    csv = next(out.rglob("baseline*.csv"))
    table = pd.read_csv(csv).set_index("model")
    view = json.loads(
        run_cli("leaderboard", "--dataset", "alp", "--vs", BASELINE, "--json", db=alpaca_db["db"]).stdout
    )
    expected = pd.DataFrame(view["table"]).set_index("model")
    assert np.allclose(table.loc[expected.index, "win_rate"], expected["win_rate"], atol=1e-9)
    assert (table.loc[expected.index, "n_total"] == expected["n_total"]).all()
