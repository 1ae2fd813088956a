"""The arena simulator: its files import with the real importer, its truth matches what lands in
the store, its planted effects show up in the votes, and a plain Bradley-Terry fit recovers it.

One small arena (6,000 votes, default voter mix) is simulated and imported once per module;
a larger honest arena (60,000 votes, Parquet) checks rating recovery.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from pipelines.errors import ArenatreeError
from pipelines.ingest import ingest, read
from pipelines.ingest.load import text_hash
from pipelines.ratings import leaderboard
from pipelines.simulate import simulate
from pipelines.simulate.texts import FAMILIES, REFUSALS, VOCAB, build_responses
from pipelines.store import reader
from pipelines.style import IDENTITY_PATTERN, REFUSAL_PATTERN, response_features_sql

FEATURES = ("tokens", "headers", "lists", "bold", "refusal", "leak")


def query(db: Path, sql: str, params: list | None = None) -> pd.DataFrame:
    with reader(db) as con:
        return con.execute(sql, params or []).df()


def sql_features(texts: list[str]) -> pd.DataFrame:
    """The importer's own style SQL over ``texts``."""
    con = duckdb.connect()
    try:
        con.register("t", pd.DataFrame({"text": texts, "i": range(len(texts))}))
        cols = "tokens, headers, lists, bold, refusal, leak"
        sql = f"SELECT i, {response_features_sql('text')} FROM t ORDER BY i"
        df = con.execute(sql).df()
    finally:
        con.close()
    df.columns = ["i", *cols.split(", ")]
    return df


@pytest.fixture(scope="module")
def arena(tmp_path_factory, data_dir) -> dict:
    """A 6,000-vote arena (JSONL) imported into a fresh store, with its truth."""
    out = tmp_path_factory.mktemp("sim")
    calls: list[tuple[str, int, int]] = []
    summary = simulate(
        out / "arena",
        votes=6000,
        models=8,
        voters=150,
        seed=7,
        data_dir=data_dir,
        fmt="jsonl",
        progress=lambda *a: calls.append(a),
    )
    db = out / "store.duckdb"
    reports = ingest([summary["files"]["votes"]], "sim", db=db)
    truth = json.loads(Path(summary["files"]["truth"]).read_text(encoding="utf-8"))
    votes = pd.read_parquet(summary["files"]["vote_truth"])
    battles = query(db, "SELECT * FROM battles WHERE dataset = 'sim'")
    battles = battles.merge(votes, left_on="source_id", right_on="question_id", suffixes=("", "_truth"))
    return {
        "summary": summary,
        "db": db,
        "report": reports[0],
        "truth": truth,
        "battles": battles,
        "calls": calls,
        "out": out,
    }


# --------------------------------------------------------------------------- answer texts


def test_refusal_templates_and_vocabulary_match_the_importer_patterns():
    con = duckdb.connect()
    try:
        hits = [
            con.execute("SELECT regexp_matches(left(?, 300), ?)", [t, REFUSAL_PATTERN]).fetchone()[0]
            for t in REFUSALS
        ]
        leak = [
            con.execute(
                "SELECT regexp_matches(?, ?)", [f"I am {f.capitalize()} here", IDENTITY_PATTERN]
            ).fetchone()[0]
            for f in FAMILIES
        ]
        filler = con.execute("SELECT regexp_matches(?, ?)", [" ".join(VOCAB), IDENTITY_PATTERN]).fetchone()[0]
        filler_refusal = con.execute(
            "SELECT bool_or(regexp_matches(w || ' can''t help', ?)) FROM unnest(?) u(w)",
            [REFUSAL_PATTERN, list(VOCAB)],
        ).fetchone()[0]
    finally:
        con.close()
    assert all(hits), [t for t, h in zip(REFUSALS, hits, strict=True) if not h]
    assert all(leak)
    assert not filler and not filler_refusal


def test_synthesised_answers_have_exactly_the_features_returned():
    """Edge cases too: budgets too small for the planned Markdown, huge Markdown counts."""
    rng = np.random.default_rng(0)
    n = 400
    plan = {
        "tokens": np.concatenate([[1, 5, 6, 12, 40, 4000], rng.integers(1, 1500, n - 6)]),
        "headers": np.concatenate([[3, 0, 5, 2, 9, 4], rng.poisson(1.5, n - 6)]),
        "lists": np.concatenate([[4, 0, 1, 7, 30, 40], rng.poisson(4, n - 6)]),
        "bold": np.concatenate([[2, 1, 9, 3, 12, 30], rng.poisson(3, n - 6)]),
        "refusal": rng.uniform(size=n) < 0.15,
        "leak": rng.uniform(size=n) < 0.2,
        "refusal_template": rng.integers(0, len(REFUSALS), n),
        "refusal_words": rng.integers(0, 26, n),
        "start": rng.integers(0, 1 << 16, n),
    }
    fams = [FAMILIES[i % len(FAMILIES)] for i in range(n)]
    texts, feats = build_responses(plan, fams)
    got = sql_features(texts)
    for f in ("tokens", "headers", "lists", "bold"):
        np.testing.assert_array_equal(got[f].to_numpy(), feats[f], err_msg=f)
    np.testing.assert_array_equal(got["refusal"].to_numpy(), feats["refusal"])
    np.testing.assert_array_equal(got["leak"].to_numpy(), feats["identity_leak"])
    assert feats["refusal"].sum() > 30 and feats["identity_leak"].sum() > 30
    # the plan is honoured wherever it fits (long non-refusal answers keep their counts)
    roomy = ~plan["refusal"] & (plan["tokens"] > 600)
    np.testing.assert_array_equal(feats["headers"][roomy], plan["headers"][roomy])
    np.testing.assert_array_equal(feats["lists"][roomy], plan["lists"][roomy])


# ------------------------------------------------------------------------ import round trip


@pytest.mark.slow
def test_votes_import_with_the_arena_conversations_adapter(arena):
    rep = arena["report"]
    assert rep.format == "arena-conversations"
    assert rep.added_battles == 6000 and rep.rows_skipped == 0
    b = arena["battles"]
    assert len(b) == 6000  # every question id is a battles.source_id
    assert (b["winner"].replace({"tie_bothbad": "tie (bothbad)"}) == b["winner_truth"].astype(str)).all()
    assert (b["model_a"] == b["model_a_truth"].astype(str)).all()
    assert (b["judge"] == b["judge_truth"].astype(str)).all()
    assert b["anony"].all() and (b["turns"] == 1).all()
    counts = b["winner"].value_counts(normalize=True)
    assert 0.10 < counts["tie"] < 0.25 and 0.08 < counts["tie_bothbad"] < 0.25


@pytest.mark.slow
def test_truth_prompt_ids_are_the_imported_prompt_ids(arena):
    truth, db = arena["truth"], arena["db"]
    stored = set(query(db, "SELECT prompt_id FROM prompts WHERE dataset = 'sim'")["prompt_id"])
    used = {p["prompt_id"] for p in truth["prompts"] if p["votes"] > 0}
    assert used == stored
    pool = {p["prompt_id"] for p in truth["prompts"]}
    assert len(pool) >= 2000
    sources = {p["source"] for p in truth["prompts"]}
    assert {"arena-hard-v0.1", "arena-hard-v2.0", "alpaca_eval", "pandalm", "math"} <= sources
    # each battle's prompt is the truth's prompt for that vote
    b = arena["battles"]
    assert (b["prompt_id"] == b["prompt_id_truth"].astype(str)).all()
    # ids are text_hash of the prompt text exactly as imported
    texts = query(db, "SELECT prompt_id, text FROM prompts WHERE dataset = 'sim' LIMIT 200")
    assert all(text_hash(t) == p for p, t in zip(texts["prompt_id"], texts["text"], strict=True))


def test_group_prompt_and_question_ids_match_the_store(arena):
    truth, b = arena["truth"], arena["battles"]
    pool = {p["prompt_id"] for p in truth["prompts"]}
    sizes = {}
    for g in truth["groups"]:
        ids = set(g["prompt_ids"])
        assert ids <= pool and len(ids) == g["n_prompts"]
        in_group = b.loc[b["prompt_id"].isin(ids), "source_id"]
        assert set(in_group) == set(g["question_ids"]), g["name"]
        assert g["n_votes"] == len(g["question_ids"])
        sizes[g["name"]] = g["n_prompts"]
    assert {"coding", "math", "creative_writing", "translation", "python"} <= set(sizes)
    planted = truth["planted"]
    weak_models = {p["model"] for p in planted if p["kind"] == "weakness"}
    assert len(weak_models) == 4  # weak_share 0.5 of 8 models
    for p in planted:
        assert 50 <= sizes[p["group"]] <= 400
        if p["kind"] == "weakness":
            assert -400 <= p["points"] <= -150
    per_model = pd.Series([p["model"] for p in planted if p["kind"] == "weakness"]).value_counts()
    assert per_model.between(1, 3).all()


def test_imported_style_features_are_the_planted_ones(arena):
    b, truth = arena["battles"], arena["truth"]
    for side in ("a", "b"):
        for f in FEATURES:
            col = f"identity_leak_{side}" if f == "leak" else f"{f}_{side}_truth"
            assert (b[f"{f}_{side}"].astype(int) == b[col].astype(int)).all(), (f, side)
    # per-model means of the imported answers follow the planned per-model style
    resp = query(
        arena["db"],
        "SELECT model, tokens, headers, lists, bold, refusal, identity_leak AS leak "
        "FROM responses WHERE dataset = 'sim'",
    )
    means = resp.groupby("model").mean(numeric_only=True)
    plan = pd.DataFrame(
        {m["name"]: {**m["style"], "refusal_rate": m["refusal_rate"]} for m in truth["models"]}
    ).T
    plan = plan.loc[means.index]
    assert spearmanr(means["tokens"], plan["mean_tokens"]).statistic > 0.9
    for f in ("headers", "lists", "bold"):
        assert spearmanr(means[f], plan[f]).statistic > 0.8, f
    assert np.corrcoef(means["refusal"].astype(float), plan["refusal_rate"])[0, 1] > 0.8
    assert resp["refusal"].sum() > 50 and resp["leak"].sum() > 10


# ------------------------------------------------------------------------------ planted bias


def _decisive(b: pd.DataFrame) -> pd.DataFrame:
    return b[b["winner"].isin(["model_a", "model_b"])]


def test_every_voter_bias_shows_up_in_the_imported_votes(arena):
    b = arena["battles"].copy()
    types = {v["judge"]: v["type"] for v in arena["truth"]["voters"]}
    b["type"] = b["judge"].map(types)
    assert (b["type"] == b["voter_type"].astype(str)).all()
    d = _decisive(b)
    left = (d["winner"] == "model_a").groupby(d["type"]).mean()
    assert left["position"] > 0.65 and abs(left["unbiased"] - 0.5) < 0.05

    longer = d[d["tokens_a"] != d["tokens_b"]]
    longer_wins = (
        ((longer["tokens_a"] > longer["tokens_b"]) == (longer["winner"] == "model_a"))
        .groupby(longer["type"])
        .mean()
    )
    assert longer_wins["length"] > longer_wins["unbiased"] + 0.1

    one = d[d["refusal_a"] != d["refusal_b"]]
    refuser_wins = (
        (one["refusal_a"] == (one["winner"] == "model_a")).groupby(one["type"]).agg(["mean", "size"])
    )
    assert refuser_wins.loc["refusal_averse", "size"] >= 20
    assert refuser_wins.loc["refusal_averse", "mean"] < refuser_wins.loc["unbiased", "mean"] - 0.1

    strength = {m["name"]: m["strength"] for m in arena["truth"]["models"]}
    gap = d["model_a"].map(strength) - d["model_b"].map(strength)
    stronger = ((gap > 0) == (d["winner"] == "model_a"))[gap.abs() > 100].groupby(d["type"]).mean()
    assert abs(stronger["random"] - 0.5) < 0.1 and stronger["unbiased"] > 0.7

    fans = {v["judge"]: v["params"]["model"] for v in arena["truth"]["voters"] if v["type"] == "fan"}
    f = b[b["judge"].isin(fans)]
    fav = f["judge"].map(fans)
    present = f[(f["model_a"] == fav) | (f["model_b"] == fav)]
    won = np.where(present["model_a"] == present["judge"].map(fans), "model_a", "model_b")
    assert len(present) >= 20 and (present["winner"] == won).all()


def test_truth_lists_voters_with_their_planted_parameters(arena):
    voters = arena["truth"]["voters"]
    assert len(voters) == 150
    counts = pd.Series([v["type"] for v in voters]).value_counts()
    mix = arena["truth"]["voter_mix"]
    for t, share in mix.items():
        assert abs(counts.get(t, 0) - share * 150) <= 1, t
    keys = {
        "unbiased": set(),
        "position": {"position_logit"},
        "length": {"length_coef"},
        "refusal_averse": {"refusal_penalty"},
        "random": {"p_model_a", "p_model_b", "p_tie", "p_tie_bothbad"},
        "fan": {"model", "loyalty"},
    }
    for v in voters:
        assert set(v["params"]) == keys[v["type"]]
    assert sum(v["votes"] for v in voters) == 6000
    observed = pd.Series({v["judge"]: v["votes"] for v in voters})
    stored = arena["battles"]["judge"].value_counts()
    assert (observed[observed > 0].sort_index() == stored.sort_index()).all()


# --------------------------------------------------------------------------------- recovery


@pytest.mark.slow
def test_plain_bradley_terry_recovers_an_honest_arena(tmp_path, data_dir):
    s = simulate(
        tmp_path,
        votes=60_000,
        models=10,
        voters=300,
        seed=11,
        data_dir=data_dir,
        fmt="parquet",
        voter_mix={"unbiased": 1.0},
        vote_truth=False,
    )
    con = duckdb.connect()
    try:
        df = con.execute(
            "SELECT model_a, model_b, replace(winner, 'tie (bothbad)', 'tie_bothbad') AS winner, "
            "conversation_a[1].content AS prompt FROM read_parquet(?)",
            [s["files"]["votes"]],
        ).df()
    finally:
        con.close()
    truth = json.loads(Path(s["files"]["truth"]).read_text(encoding="utf-8"))
    board = leaderboard(df, rounds=10).set_index("model")
    models = pd.DataFrame(truth["models"]).set_index("name").loc[board.index]
    assert spearmanr(board["rating"], models["strength"]).statistic > 0.9
    # the truth's expected ratings are what the fit converges to
    assert (board["rating"] - models["expected_rating"]).abs().max() < 30
    assert all(v["type"] == "unbiased" for v in truth["voters"])
    # planted weaknesses: the model scores far worse on its group's prompts than elsewhere
    df["pid"] = [text_hash(t) for t in df["prompt"]]
    groups = {g["name"]: set(g["prompt_ids"]) for g in truth["groups"]}
    score_a = df["winner"].map({"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie_bothbad": 0.5})
    strong = [p for p in truth["planted"] if p["points"] <= -250]
    assert strong
    for p in strong:
        inside = df["pid"].isin(groups[p["group"]])
        score = pd.concat([score_a[df["model_a"] == p["model"]], 1 - score_a[df["model_b"] == p["model"]]])
        where = pd.concat([inside[df["model_a"] == p["model"]], inside[df["model_b"] == p["model"]]])
        assert where.sum() >= 50
        assert score[where].mean() < score[~where].mean() - 0.15, p


# ------------------------------------------------------------------------------ determinism


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def small(tmp_path_factory, data_dir) -> Path:
    """Small arenas (1,500 votes): seed 3 twice as JSONL and as Parquet, once as a JSON array
    with moderation fields, and seed 4 as JSONL."""
    root = tmp_path_factory.mktemp("small")
    kw = {"votes": 1500, "models": 6, "voters": 40, "data_dir": data_dir}
    for name, seed, fmt in [
        ("jsonl-1", 3, "jsonl"),
        ("jsonl-2", 3, "jsonl"),
        ("jsonl-other", 4, "jsonl"),
        ("parquet-1", 3, "parquet"),
        ("parquet-2", 3, "parquet"),
        ("json", 3, "json"),
    ]:
        simulate(root / name, seed=seed, fmt=fmt, moderation=fmt == "json", **kw)
    return root


def test_same_seed_gives_byte_identical_files(small):
    for fmt in ("jsonl", "parquet"):
        one, two = _digests(small / f"{fmt}-1"), _digests(small / f"{fmt}-2")
        assert len(one) == 3 and one == two, fmt
    one, other = _digests(small / "jsonl-1"), _digests(small / "jsonl-other")
    assert all(one[k] != other[k] for k in one)


@pytest.mark.slow
def test_parquet_and_json_array_carry_the_same_votes_as_jsonl(small):
    ref = read(small / "jsonl-1" / "conversations.jsonl").battles
    cols = ["source_id", "prompt_text", "model_a", "model_b", "winner", "judge", "tstamp", "language"]
    cols += ["response_a", "response_b", "anony", "turns"]
    for path in (small / "parquet-1" / "conversations.parquet", small / "json" / "conversations.json"):
        batch = read(path)  # auto-detected
        assert batch.format == "arena-conversations"
        pd.testing.assert_frame_equal(
            batch.battles[cols].astype(object).reset_index(drop=True),
            ref[cols].astype(object).reset_index(drop=True),
        )
    meta = read(small / "json" / "conversations.json").battles["metadata"].dropna()
    assert len(meta) == 1500 and all(json.loads(m)["openai_flagged"] is False for m in meta)


def test_progress_reports_every_stage_to_completion(arena):
    calls = arena["calls"]
    stages = [c[0] for c in calls]
    assert stages[0] == "prompts" and stages[-1] == "truth"
    for stage in ("prompts", "answers", "votes", "truth"):
        done = [c for c in calls if c[0] == stage]
        assert done and done[-1][1] == done[-1][2], stage
    votes = [c[1] for c in calls if c[0] == "votes"]
    assert votes == sorted(votes) and votes[-1] == 6000


def test_bad_parameters_raise_one_line_errors(tmp_path, data_dir):
    with pytest.raises(ArenatreeError, match="unknown voter type"):
        simulate(tmp_path, votes=10, data_dir=data_dir, voter_mix={"trolls": 1.0})
    with pytest.raises(ArenatreeError, match="format"):
        simulate(tmp_path, votes=10, data_dir=data_dir, fmt="csv")
    with pytest.raises(ArenatreeError, match="models >= 2"):
        simulate(tmp_path, votes=10, models=1, data_dir=data_dir)
    with pytest.raises(ArenatreeError, match="usable prompts"):
        simulate(tmp_path, votes=10, data_dir=tmp_path)
