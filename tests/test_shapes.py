"""The shape matrix: every analysis on every valid dataset shape answers, or says in one line why
it does not apply. Never an internal error, never a traceback.

One database holds every shape of tests/shapes.py (with its tree where the shape has prompts to
cluster); each shape then goes through the command line as a user types it (in-process
``pipelines.cli.main``: an internal error is exit status 1) and through every dashboard page
(AppTest: an exception box fails the test).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import MODELS, load, open_app_page
from shapes import PAIRWISE, SHAPES

from pipelines.cli import main

PAGES = (
    "views/overview.py",
    "views/leaderboard.py",
    "views/tree.py",
    "views/weaknesses.py",
    "views/compare.py",
    "views/audit.py",
    "views/reports.py",
)


@pytest.fixture(scope="module")
def shapes_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("shapes") / "arenatree.duckdb"
    for name, make in SHAPES.items():
        load(db, name, [make()])
        main(["--db", str(db), "tree", "build", "--dataset", name, "--min-size", "3"])  # one vote: says why
    return db


def commands(name: str, out: Path) -> list[list[str]]:
    """Every analysis a user can ask of dataset ``name`` (outputs under ``out``)."""
    views = ([], ["--sweep"], ["--pruned"], ["--strengths"], ["--tau", "0.5"])
    model = MODELS[0] if name != "disconnected" else "m1"
    runs = [["leaderboard"], ["leaderboard", "--bootstrap", "10"], ["leaderboard", "--node", "1"]]
    runs += [["weaknesses", "--model", model, *v] for v in views]
    other = "m3" if name == "disconnected" else MODELS[1]  # m1 and m3 never meet
    runs += [["compare", "--model-a", model, "--model-b", other, *v] for v in ([], ["--all", "--json"])]
    runs += [["compare", "--model-a", model, "--model-b", other, "--all", "--csv", str(out / f"{name}.csv")]]
    runs += [["report", "--out", str(out / f"{name}.html")], ["report", "--out", str(out / f"{name}-csv")]]
    runs += [["report", "--out", str(out / f"{name}-pq"), "--format", "parquet"]]
    if name in PAIRWISE:
        runs += [
            ["leaderboard", "--method", "rao-kupper"],
            ["leaderboard", "--style-control"],
            ["leaderboard", "--exclude-ties"],
            ["leaderboard", "--dedup-prompts", "--judge-kind", "human"],
            ["weaknesses", "--model", model, "--adjusted"],
            ["audit"],
            ["audit", "--json"],
        ]
    if name in ("no-ties", "no-texts", "scores-all-1"):  # the Chromium-rendered formats, on a few
        runs += [["report", "--out", str(out / f"{name}.md")], ["report", "--out", str(out / f"{name}.pdf")]]
    return [[*run[:1], "--dataset", name, *run[1:]] for run in runs]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SHAPES))
def test_every_command_answers_or_says_why(shapes_db: Path, name: str, tmp_path: Path, capsys) -> None:
    failures = []
    for argv in commands(name, tmp_path):
        code = main(["--db", str(shapes_db), *argv])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("arenatree:")]
        if code not in (0, 2) or "Traceback" in err or (code == 2 and len(lines) != 1):
            failures.append((argv, code, err[-500:]))
    assert not failures, failures


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SHAPES))
def test_every_page_renders_the_shape(shapes_db: Path, name: str, monkeypatch) -> None:
    for page in PAGES:  # open_app_page fails on any exception box
        at = open_app_page(shapes_db, monkeypatch, page, dataset=name)
        assert at.title, page
