"""Page tests of the Voter audit page (AppTest on real DuckDB files): the sections are the
audit's findings as :func:`pipelines.audit.run.run_audit` computes them, the drill-down shows the
votes behind a row, hostile prompt text stays inert, and non-vote datasets get a clear message."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from helpers import EVIL, load, open_app_page, pairwise_batch, rerun

from pipelines import store
from pipelines.audit.result import headline_text
from pipelines.audit.run import run_audit
from pipelines.tree.read import resolve_tree

PAGE = "views/audit.py"


@pytest.fixture(scope="module")
def pandalm_audit(bundled_db: Path):
    with store.reader(bundled_db) as con:
        return run_audit(con, "pandalm", tree_id=resolve_tree(con, "pandalm"))


def findings_table(at):
    (table,) = [d.value for d in at.dataframe if {"title", "headline", "flagged"} <= set(d.value.columns)]
    return table


def test_every_finding_listed_and_each_opens(bundled_db: Path, pandalm_audit, monkeypatch) -> None:
    """The overview table lists every audit in run order with its headline and flagged count
    (or why it does not apply); the page opens on the first finding with flagged rows, and the
    picker opens each applicable finding with its own title, summary and figure."""
    at = open_app_page(bundled_db, monkeypatch, PAGE, dataset="pandalm")
    table = findings_table(at)
    assert table["title"].tolist() == [f.title for f in pandalm_audit.findings]
    for row, f in zip(table.itertuples(), pandalm_audit.findings, strict=True):
        if f.applicable:
            assert row.headline == headline_text(f.headline) and row.flagged == f.flagged
        else:
            assert row.headline.startswith("not applicable") and pd.isna(row.flagged)
    first = next(f for f in pandalm_audit.findings if f.applicable and f.flagged)
    assert [h.value.replace("\\", "") for h in at.subheader] == [first.title]  # shown Markdown-escaped
    caption = " ".join(c.value for c in at.caption)
    assert f"{pandalm_audit.votes:,} votes by {pandalm_audit.voters:,} judges" in caption
    for f in pandalm_audit.findings:
        if not f.applicable:
            continue
        (picker,) = [s for s in at.selectbox if s.label == "Finding"]
        picker.set_value(f.audit)
        rerun(at)
        assert [h.value.replace("\\", "") for h in at.subheader] == [f.title]
        assert f.summary in [t.value for t in at.text], f.audit
        assert at.query_params.get("finding") in (None, [f.audit], f.audit)


def read_votes_behind(at, findings) -> list:
    """Open findings in turn until one shows a 'Read the votes behind' picker; its pickers."""
    for f in findings:
        if not f.applicable:
            continue
        (picker,) = [s for s in at.selectbox if s.label == "Finding"]
        picker.set_value(f.audit)
        rerun(at)
        pickers = [s for s in at.selectbox if s.label == "Read the votes behind"]
        if pickers:
            return pickers
    return []


def test_drill_down_shows_the_votes(bundled_db: Path, pandalm_audit, monkeypatch) -> None:
    at = open_app_page(bundled_db, monkeypatch, PAGE, dataset="pandalm")
    pickers = read_votes_behind(at, pandalm_audit.findings)
    assert pickers
    pickers[0].select_index(1)  # option 0 is "choose a row"
    rerun(at)
    (votes,) = [
        d.value for d in at.dataframe if {"prompt", "response_a", "response_b"} <= set(d.value.columns)
    ]
    assert len(votes) > 0 and votes["prompt"].str.len().gt(0).all()
    ids = set(votes["battle_id"])
    all_ids = {
        i
        for f in pandalm_audit.findings
        for t in f.tables.values()
        if "battle_ids" in t
        for row in t["battle_ids"]
        for i in (row or [])
    }
    assert ids <= all_ids


@pytest.mark.slow
def test_hostile_prompts_stay_inert(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "hostile.duckdb"
    judges = tuple((f"voter-{j}", "human") for j in range(4))
    load(
        db, "hostile", [pairwise_batch(240, prompt=EVIL + " [click](http://evil.example/{i})", judges=judges)]
    )
    at = open_app_page(db, monkeypatch, PAGE, dataset="hostile")
    with store.reader(db) as con:
        pickers = read_votes_behind(at, run_audit(con, "hostile").findings)
    assert pickers
    pickers[0].select_index(1)
    rerun(at)
    markdown = (
        [m.value for m in at.markdown] + [c.value for c in at.caption] + [h.value for h in at.subheader]
    )
    assert not any("<script>" in m or "evil.example" in m for m in markdown)
    shown = [d.value for d in at.dataframe if "prompt" in d.value.columns]
    assert shown and shown[0]["prompt"].str.contains("<script>", regex=False).all()


def test_non_vote_dataset_says_so(bundled_db: Path, monkeypatch) -> None:
    at = open_app_page(bundled_db, monkeypatch, PAGE, dataset="math")
    assert any("no votes to audit" in i.value for i in at.info)
    assert not at.subheader


def test_every_finding_has_a_figure(pandalm_audit) -> None:
    from pipelines.figures import finding_figure

    for f in pandalm_audit.findings:
        if f.applicable:
            fig = finding_figure(f.tables, f.plot)
            assert fig is not None and len(fig.data) >= 1, f.audit


def test_scatter_keeps_every_flagged_voter_within_the_point_budget() -> None:
    import numpy as np
    import pandas as pd

    from pipelines.figures import SCATTER_POINTS, finding_figure, scatter_sample

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"judge": [f"u{i}" for i in range(20_000)], "votes": rng.integers(1, 500, 20_000)})
    table["p"] = rng.random(20_000)
    table["flagged"] = table["p"] < 0.01
    shown = scatter_sample(table, "flagged")
    assert len(shown) == SCATTER_POINTS and shown["flagged"].sum() == table["flagged"].sum()
    assert shown.equals(scatter_sample(table, "flagged"))  # deterministic
    fig = finding_figure({"voters": table}, {"table": "voters", "kind": "scatter", "x": "votes", "y": "p",
                                             "color": "flagged", "label": "judge"})  # fmt: skip
    assert sum(len(trace.x) for trace in fig.data) == SCATTER_POINTS
    assert "of 20,000 rows shown" in fig.layout.title.text


def test_settings_come_from_a_shared_link(bundled_db: Path, monkeypatch) -> None:
    """α and the fewest votes to flag a voter are read from the URL (and kept there): the page's
    flags are run_audit's with those settings."""
    at = open_app_page(bundled_db, monkeypatch, PAGE, dataset="pandalm", alpha="0.01", min_votes="1000")
    with store.reader(bundled_db) as con:
        tree_id = resolve_tree(con, "pandalm")
        strict = run_audit(con, "pandalm", tree_id=tree_id, alpha=0.01, min_votes=1000)
        default = run_audit(con, "pandalm", tree_id=tree_id)
    table = findings_table(at)
    expected = [f.flagged if f.applicable else None for f in strict.findings]
    assert [None if pd.isna(v) else int(v) for v in table["flagged"]] == expected
    assert expected != [f.flagged if f.applicable else None for f in default.findings]
    assert (
        at.selectbox(key="_shared_alpha").value == 0.01
        and at.number_input(key="_shared_min_votes").value == 1000
    )
    assert at.query_params["alpha"] == "0.01" and at.query_params["min_votes"] == "1000"
