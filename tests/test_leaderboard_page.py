"""Page tests of the Leaderboard page: AppTest on a real DuckDB with synthetic votes of known shape.

The module builds one database: 'arena' (864 votes over 72 topic prompts, four models of known
strength, an LLM judge that favours the weakest model, two languages, 36 days of timestamps,
answers whose length and markdown differ by model) with its offline capability tree; 'math'
(per-instance results); 'prompts-only'; and 'hostile' (a model named like an HTML tag). Every
number on the page is checked against the pipeline functions on the same votes.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import TOPICS, load, metrics, open_app_page, pairwise_batch, rerun, results_batch, topic_prompts
from scipy import stats
from streamlit.testing.v1 import AppTest

from dashboard import widgets
from pipelines import ratings, store, style_control
from pipelines.battles import NO_FILTERS, Filters, load_battles
from pipelines.ingest.base import Batch
from pipelines.tree import read
from pipelines.tree.build import build_tree

PAGE = "views/leaderboard.py"
ARENA = "arena"
MODELS = ("alpha", "beta", "gamma", "delta")
STRENGTH = {"alpha": 2.5, "beta": 0.4, "gamma": -0.3, "delta": -1.0}
WEAK_TOPICS = ("sql", "evil")  # alpha is planted weak on these
HOSTILE_MODEL = "<img src=x onerror=alert(1)>"


def answer(model: str, k: int) -> str:
    """A response whose style grows with the model's rank (alpha longest, with headers, lists and
    bold) and varies from vote to vote, so style and model are not confounded."""
    level = 3 - MODELS.index(model)
    header = "# Answer\n\n" if (level + k) % 4 >= 2 else ""
    items = "".join(f"\n- point {j}" for j in range(level + k % 3))
    bold = " **key**" * ((level + k) % 3)
    return f"{header}Reply {k} by {model}." + " more words" * (5 + 10 * level + k % 11) + bold + items


def arena_frame(n_prompts: int = 72, repeats: int = 2, seed: int = 7) -> pd.DataFrame:
    """Votes: every pair of :data:`MODELS` on every topic prompt ``repeats`` times, both sides;
    outcomes drawn from Bradley–Terry with :data:`STRENGTH` (alpha much weaker on the
    :data:`WEAK_TOPICS`), 8% ties; every third vote by an LLM judge that favours delta."""
    rng = np.random.default_rng(seed)
    topics = list(TOPICS)
    pairs = [(a, b) for i, a in enumerate(MODELS) for b in MODELS[i + 1 :]]
    rows = []
    for i, text in enumerate(topic_prompts(n_prompts)):
        topic = topics[i % len(topics)]
        for r in range(repeats):
            for j, (a, b) in enumerate(pairs):
                a, b = (b, a) if (i + r + j) % 2 else (a, b)
                k = len(rows)
                llm = (i + r + j) % 3 == 0
                s = dict(STRENGTH, **({"alpha": -2.0} if topic in WEAK_TOPICS else {}))
                if llm:
                    s["delta"] = 3.5
                p = 1 / (1 + math.exp(-(s[a] - s[b])))
                u = rng.random()
                winner = "tie" if u < 0.08 else "model_a" if u < 0.08 + 0.92 * p else "model_b"
                rows.append(
                    {
                        "line": k + 1,
                        "battle_key": f"v{k}",
                        "source_id": f"q{i}",
                        "prompt_text": text,
                        "model_a": a,
                        "model_b": b,
                        "winner": winner,
                        "judge": "llm-judge" if llm else f"voter-{k % 5}",
                        "judge_kind": "llm" if llm else "human",
                        "tstamp": 1_700_000_000.0 + 3600.0 * k,
                        "anony": True,
                        "language": "German" if k % 4 == 1 else "English",
                        "turns": 1,
                        "response_a": answer(a, k),
                        "response_b": answer(b, k),
                    }
                )
    return pd.DataFrame(rows)


def arena_batch() -> Batch:
    df = arena_frame()
    return Batch(kind="pairwise", format="test", path=Path("arena.jsonl"), rows_read=len(df), battles=df)


def build_arena(db: Path) -> str:
    """Load the 'arena' dataset into ``db`` and build its tree; returns the tree id."""
    load(db, ARENA, [arena_batch()])
    return build_tree(ARENA, db=db, min_size=4)["tree_id"]


@pytest.fixture(scope="module")
def arena_db(tmp_path_factory: pytest.TempPathFactory) -> dict:
    db = tmp_path_factory.mktemp("leaderboard-page") / "arenatree.duckdb"
    tree_id = build_arena(db)
    load(db, "math", [results_batch(12)])
    prompts = pd.DataFrame({"line": [1, 2], "text": ["First question?", "Second question?"]})
    load(
        db,
        "prompts-only",
        [Batch(kind="prompts", format="test", path=Path("p.jsonl"), rows_read=2, prompts=prompts)],
    )
    load(db, "hostile", [pairwise_batch(12, models=(HOSTILE_MODEL, "gpt-4o", "claude"))])
    with store.reader(db) as con:
        nodes = read.tree_nodes(con, tree_id)
    return {"db": db, "tree_id": tree_id, "nodes": nodes}


def votes_of(db: Path, filters: Filters = NO_FILTERS, dataset: str = ARENA) -> pd.DataFrame:
    with store.reader(db) as con:
        return load_battles(con, dataset, filters)


def table_with(at: AppTest, *columns: str) -> pd.DataFrame:
    (df,) = [d.value for d in at.dataframe if set(columns) <= set(d.value.columns)]
    return df


def figures(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def sidebar_select(at: AppTest, label: str):
    (box,) = [s for s in at.sidebar.selectbox if s.label == label]
    return box


@pytest.mark.slow
def test_global_leaderboard_matches_the_ratings_pipeline(arena_db: dict, monkeypatch) -> None:
    at = open_page(arena_db["db"], monkeypatch, dataset=ARENA)
    votes = votes_of(arena_db["db"])
    expected = ratings.leaderboard(votes, rounds=100, seed=0, ci="auto")

    assert at.title[0].value == "Leaderboard"
    shown = metrics(at)
    assert shown["Votes"] == f"{len(votes):,}" == "864"
    assert shown["Models"] == "4" and shown["Prompts"] == "72"
    table = table_with(at, "rating", "rank_ub")
    assert table["model"].iloc[0] == expected["model"].iloc[0] == "alpha"  # the strongest by design
    assert table["model"].tolist() == expected["model"].tolist()
    np.testing.assert_allclose(table[["rating", "lower", "upper"]], expected[["rating", "lower", "upper"]])
    assert table["battles"].tolist() == expected["battles"].tolist()
    assert table["rank_ub"].tolist() == expected["rank_ub"].tolist()

    # The interval chart: one point per model, whiskers = the interval, best on top.
    chart = next(f for f in figures(at) if f["data"][0]["type"] == "scatter")["data"][0]
    assert chart["y"] == expected["model"].tolist()[::-1]
    np.testing.assert_allclose(chart["x"], expected["rating"].to_numpy()[::-1])
    np.testing.assert_allclose(chart["error_x"]["array"], (expected["upper"] - expected["rating"])[::-1])
    # Head-to-head heatmaps, in rating order: win rates (ties half) in the open tab; the battle
    # counts only once their (lazy) tab is opened.
    win_rate, counts = ratings.pair_matrices(votes)
    order = expected["model"].tolist()

    def heatmaps() -> list[dict]:
        return [f["data"][0] for f in figures(at) if f["data"][0]["type"] == "heatmap"]

    (rate,) = heatmaps()
    assert rate["y"] == order
    np.testing.assert_allclose(np.array(rate["z"], dtype=float), win_rate.loc[order, order], equal_nan=True)
    assert not at.get("progress")  # the progress bar is gone once the work is done
    at.session_state["head-to-head"] = "Battle count"  # open the other tab
    rerun(at)
    (count,) = heatmaps()
    assert count["y"] == order
    np.testing.assert_array_equal(np.array(count["z"]), counts.loc[order, order].to_numpy())
    assert counts.loc["alpha", "beta"] == 144  # 72 prompts x 2 repeats


@pytest.mark.slow
def test_filters_change_the_numbers_and_persist_across_pages(arena_db: dict, monkeypatch) -> None:
    at = open_page(arena_db["db"], monkeypatch, dataset=ARENA)
    sidebar_select(at, "Judge kind").select("llm")
    rerun(at)

    llm = votes_of(arena_db["db"], Filters(judge_kind="llm"))
    expected = ratings.leaderboard(llm, rounds=100, seed=0, ci="auto")
    assert metrics(at)["Votes"] == f"{len(llm):,}" == "288"
    table = table_with(at, "rating", "rank_ub")
    assert table["model"].iloc[0] == expected["model"].iloc[0] == "delta"  # the LLM judge's favourite
    np.testing.assert_allclose(table["rating"], expected["rating"])
    assert at.query_params["judge_kind"] == "llm"
    assert "judge_kind=llm" in " ".join(c.value for c in at.caption)

    # Language, ties and a date range stack on top.
    sidebar_select(at, "Language").select("German")
    at.checkbox(key="_shared_exclude_ties").check()
    rerun(at)
    german = votes_of(arena_db["db"], Filters(judge_kind="llm", language="German", exclude_ties=True))
    assert metrics(at)["Votes"] == f"{len(german):,}"
    assert (german["language"] == "German").all() and (german["winner"] != "tie").all()
    assert at.query_params["language"] == "German" and at.query_params["exclude_ties"] == "1"

    # The filters are the session's: another page shows (and the URL keeps) the same ones.
    at.switch_page("views/weaknesses.py")
    rerun(at)
    assert sidebar_select(at, "Judge kind").value == "llm"
    assert sidebar_select(at, "Language").value == "German"
    assert at.query_params["judge_kind"] == "llm"

    # A link opens the view it names: a fresh session with ?judge=... shows that judge's votes.
    fresh = open_page(arena_db["db"], monkeypatch, dataset=ARENA, judge="voter-1", since="2023-11-20")
    one_voter = votes_of(arena_db["db"], Filters(judge="voter-1", since="2023-11-20"))
    assert 0 < len(one_voter) < 864 // 5
    assert metrics(fresh)["Votes"] == f"{len(one_voter):,}"


def test_node_leaderboard_uses_only_the_nodes_votes(arena_db: dict, monkeypatch) -> None:
    nodes = arena_db["nodes"]
    node = int(nodes.loc[nodes["depth"] == 1].sort_values("size").iloc[-1]["node_id"])
    at = open_page(arena_db["db"], monkeypatch, dataset=ARENA, tree=arena_db["tree_id"], node=str(node))

    with store.reader(arena_db["db"]) as con:
        under = set(read.node_items(con, arena_db["tree_id"], node, limit=None)["prompt_id"])
    votes = votes_of(arena_db["db"])
    inside = votes[votes["prompt_id"].isin(under)]
    assert 0 < len(inside) < len(votes)
    assert metrics(at)["Votes"] == f"{len(inside):,}"
    assert metrics(at)["Prompts"] == str(len(under))
    expected = ratings.leaderboard(inside, rounds=100, seed=0, ci="auto")
    np.testing.assert_allclose(table_with(at, "rating", "rank_ub")["rating"], expected["rating"])
    (picker,) = [s for s in at.selectbox if s.label == "Capability (node)"]
    assert picker.value == node and at.query_params["node"] == str(node)

    picker.select(0)  # back to the global leaderboard
    rerun(at)
    assert metrics(at)["Votes"] == "864" and at.query_params["node"] == "0"


def test_style_control_toggle_shows_rank_change_and_coefficients(arena_db: dict, monkeypatch) -> None:
    at = open_page(arena_db["db"], monkeypatch, dataset=ARENA)
    assert not [d for d in at.dataframe if "coef" in d.value.columns]
    at.toggle(key="_shared_style").set_value(True)
    rerun(at)

    fit = style_control.style_control(votes_of(arena_db["db"]), rounds=100, seed=0, ci="auto")
    coefs = table_with(at, "feature", "coef")
    assert coefs["feature"].tolist() == ["tokens", "headers", "lists", "bold"]
    np.testing.assert_allclose(
        coefs[["coef", "lower", "upper"]], fit.coefficients[["coef", "lower", "upper"]]
    )
    styled = table_with(at, "rank_change")
    assert styled["model"].tolist() == fit.leaderboard["model"].tolist()
    assert styled["rank_change"].tolist() == fit.leaderboard["rank_change"].tolist()
    assert at.query_params["style"] == "1"
    assert any("864 votes that have them" in c.value for c in at.caption)


def test_rao_kupper_and_online_elo(arena_db: dict, monkeypatch) -> None:
    at = open_page(arena_db["db"], monkeypatch, dataset=ARENA, method="rao-kupper", rounds="50")
    votes = votes_of(arena_db["db"])
    expected = ratings.leaderboard(votes, rounds=50, seed=0, method="rao-kupper")
    np.testing.assert_allclose(table_with(at, "rating", "rank_ub")["rating"], expected["rating"])
    assert metrics(at)["Tie parameter θ"] == f"{expected.attrs['theta']:.2f}"
    # the page's 'Sandwich where valid' falls back to the bootstrap for Rao–Kupper, and says why
    assert any("not sandwich" in i.value and "Rao" in i.value for i in at.info)

    assert not [d for d in at.dataframe if "elo" in d.value.columns]  # computed only once opened
    at.session_state["online-elo"] = True  # open the expander
    rerun(at)
    elo = table_with(at, "elo")
    reference = ratings.online_elo(votes)
    assert elo["model"].tolist() == reference.index.tolist()
    np.testing.assert_allclose(elo["elo"], reference.to_numpy())


def test_per_instance_dataset_gets_an_accuracy_leaderboard(arena_db: dict, monkeypatch) -> None:
    at = open_page(arena_db["db"], monkeypatch, dataset="math")
    table = table_with(at, "score", "items")
    # results_batch: model j answers item i correctly when (i + j) is odd -> 6 of 12 each.
    assert sorted(table["model"]) == sorted(["gpt-4o", "claude-3.5-sonnet", "llama-3-70b"])
    assert (table["score"] == 0.5).all() and (table["items"] == 12).all()
    exact = stats.binomtest(6, 12).proportion_ci(0.95, method="exact")
    np.testing.assert_allclose(table["lower"], exact.low)
    np.testing.assert_allclose(table["upper"], exact.high)
    assert metrics(at)["Results"] == "36"
    assert not [s for s in at.sidebar.selectbox if s.label == "Judge kind"]  # no vote filters here

    at = open_page(arena_db["db"], monkeypatch, dataset="prompts-only")
    assert "prompts only" in at.info[0].value and not at.dataframe


def test_untrusted_model_names_are_escaped_and_csv_is_formula_safe(arena_db: dict, monkeypatch) -> None:
    at = open_page(arena_db["db"], monkeypatch, dataset="hostile")
    assert HOSTILE_MODEL in table_with(at, "rating", "rank_ub")["model"].tolist()  # shown as data
    spec = json.dumps(figures(at))
    assert "&lt;img src=x onerror=alert(1)&gt;" in spec and "<img" not in spec
    assert not at.get("html")
    for md in at.markdown:
        assert not md.proto.allow_html and "<img" not in md.value
    downloads = at.get("download_button")
    assert len(downloads) >= 2  # the leaderboard and the votes behind it

    raw = widgets.csv_bytes(
        pd.DataFrame({"prompt": ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "ok"]})
    )
    cells = [row[0] for row in csv.reader(io.StringIO(raw.decode()))][1:]
    assert cells == ['\'=HYPERLINK("http://x")', "'+1", "'-2", "'@SUM(A1)", "ok"]


def open_page(db: Path, monkeypatch: pytest.MonkeyPatch, **query: str) -> AppTest:
    return open_app_page(db, monkeypatch, PAGE, **query)


@pytest.mark.slow
def test_a_crowd_of_judges_lists_the_most_active_and_takes_any(tmp_path: Path, monkeypatch) -> None:
    """With more judges than the Judge filter lists, the most active ones are listed and any other
    judge's id still filters the votes (from a shared link, or typed in)."""
    from dashboard.widgets import JUDGE_OPTIONS

    crowd = [(f"crowd-{j:04d}", "human") for j in range(JUDGE_OPTIONS + 50)]
    busy = [("busy-voter", "human")] * 3  # busy-voter casts 3 of every len(judges) votes
    db = tmp_path / "crowd.duckdb"
    load(db, "crowd", [pairwise_batch(2 * len(crowd + busy), judges=crowd + busy)])
    at = open_page(db, monkeypatch, dataset="crowd")
    (picker,) = [s for s in at.sidebar.selectbox if s.label == "Judge"]
    assert len(picker.options) == JUDGE_OPTIONS + 1 and "busy-voter" in picker.options
    rare = crowd[-1][0]
    assert rare not in picker.options
    at = open_page(db, monkeypatch, dataset="crowd", judge=rare)
    (picker,) = [s for s in at.sidebar.selectbox if s.label == "Judge"]
    assert picker.value == rare and rare in picker.options
    assert metrics(at)["Votes"] == "2" and metrics(at)["Judges"] == "1"


@pytest.mark.slow
def test_vote_drop_sentence_and_joint_node_rank_sets(arena_db: dict, monkeypatch) -> None:
    from pipelines.node_rank_sets import node_rank_sets
    from pipelines.vote_drop import leaderboard_drops

    at = open_page(arena_db["db"], monkeypatch, dataset=ARENA, tree=arena_db["tree_id"])
    votes = votes_of(arena_db["db"])
    first, top3 = leaderboard_drops(votes, 3)
    shown = " ".join(t.value for t in at.text)
    assert first.removed is not None and top3.removed is not None  # alpha leads, the rest is close
    assert f"#1 changes if {first.removed:,} of {len(votes):,} votes" in shown
    assert f"then {first.new_top[0]} leads instead of alpha" in shown
    assert f"The top 3 changes if {top3.removed:,} of" in shown
    # the models x nodes rank sets: computed only once their expander opens
    before = len(at.dataframe)
    at.session_state["node-rank-sets"] = True
    rerun(at)
    caption = " ".join(c.value for c in at.caption)
    assert "for every model in all" in caption and "no Bonferroni" in caption
    assert len(at.dataframe) == before + 1
    grids = [d.value for d in at.dataframe if list(d.value.columns[:1]) == ["model"]]
    (grid,) = [g for g in grids if len(g.columns) > 1 and all(str(c).startswith("#") for c in g.columns[1:])]
    with store.reader(arena_db["db"]) as con:
        from pipelines.slices import slice_cells, slice_of_prompt

        top = int(arena_db["nodes"].loc[arena_db["nodes"]["parent_id"].isna(), "node_id"].iloc[0])
        members = slice_of_prompt(con, arena_db["tree_id"], top)
    slice_of = pd.Series(members["slice"].to_numpy(), index=members["prompt_id"].to_numpy())
    kids = arena_db["nodes"].loc[arena_db["nodes"]["parent_id"] == top, "node_id"].tolist()
    want = node_rank_sets(slice_cells(votes, slice_of, kids), rounds=100)
    assert grid.shape[1] - 1 == want["node_id"].nunique()
    first_col = grid.columns[1]
    node_id = int(first_col.split()[0].lstrip("#"))
    row = want[(want["node_id"] == node_id) & (want["model"] == "alpha")].iloc[0]
    cell = grid.set_index("model").loc["alpha", first_col]
    assert cell == (str(row.set_low) if row.set_low == row.set_high else f"{row.set_low}–{row.set_high}")


def test_interval_choice_and_reweighting(arena_db: dict, monkeypatch) -> None:
    """Sandwich where valid by default (LMArena's CLT interval), the bootstrap on request, and
    LMArena's inverse-frequency reweighting: the table is the ratings module's for each choice,
    the URL keeps the choice and the caption names the method."""
    at = open_page(arena_db["db"], monkeypatch, dataset=ARENA)
    votes = votes_of(arena_db["db"])
    assert any("sandwich (CLT) intervals" in c.value for c in at.caption)
    at.radio(key="_shared_ci").set_value("bootstrap")
    rerun(at)
    want = ratings.leaderboard(votes, rounds=100, seed=0, ci="bootstrap")
    got = table_with(at, "rating", "rank_ub").set_index("model").loc[want["model"]]
    np.testing.assert_allclose(got[["lower", "upper"]], want[["lower", "upper"]])
    assert at.query_params["ci"] == "bootstrap"
    assert any("multinomial bootstrap rounds" in c.value for c in at.caption)
    at.radio(key="_shared_ci").set_value("auto")
    at.toggle(key="_shared_reweight").set_value(True)
    rerun(at)
    want = ratings.leaderboard(votes, rounds=100, seed=0, ci="sandwich", reweight=True)
    got = table_with(at, "rating", "rank_ub").set_index("model").loc[want["model"]]
    np.testing.assert_allclose(got[["rating", "lower", "upper"]], want[["rating", "lower", "upper"]])
    assert any("inverse-frequency reweighted" in c.value for c in at.caption)
