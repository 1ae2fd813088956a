"""Loading votes and results: every filter against a pandas recomputation, LMArena-style prompt
dedup against FastChat's rule, and clear errors."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
from helpers import load, results_batch, topic_batch, topic_prompts

from pipelines import store
from pipelines.battles import (
    BATTLE_COLUMNS,
    DEDUP_PERCENTILE,
    NO_FILTERS,
    Filters,
    count_battles,
    load_battles,
    load_results,
)
from pipelines.errors import ArenatreeError
from pipelines.ingest.base import Batch

MODELS5 = np.array(["alpha", "bravo", "charlie", "delta", "echo"])
JUDGES = [("h1", "human"), ("h2", "human"), ("h3", "human"), ("gpt-4-judge", "llm")]
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def random_votes(
    n: int, seed: int = 0, *, start: int = 0, repeat_every: int = 10, path: str = "votes.jsonl"
) -> Batch:
    """``n`` votes over topic prompts with random models (5), winners (ties of both kinds),
    judges (3 human, 1 llm), languages (English / German / none) and timestamps spread over 30
    days. Every ``repeat_every``-th vote reuses one prompt text, so one prompt is very frequent.
    Vote keys and prompt texts are numbered from ``start`` so a second batch adds new prompts."""
    rng = np.random.default_rng(seed)
    batch = topic_batch(n + start)
    df = batch.battles.iloc[start:].reset_index(drop=True).copy()
    df["line"] = np.arange(1, n + 1)
    a = rng.integers(0, len(MODELS5), n)
    b = (a + rng.integers(1, len(MODELS5), n)) % len(MODELS5)
    df["model_a"], df["model_b"] = MODELS5[a], MODELS5[b]
    df["winner"] = rng.choice(["model_a", "model_b", "tie", "tie_bothbad"], n, p=[0.4, 0.35, 0.15, 0.1])
    j = rng.integers(0, len(JUDGES), n)
    df["judge"] = [JUDGES[k][0] for k in j]
    df["judge_kind"] = [JUDGES[k][1] for k in j]
    df["language"] = rng.choice(np.array(["English", "German", None], dtype=object), n, p=[0.6, 0.3, 0.1])
    df["tstamp"] = T0 + rng.integers(0, 30 * 86400, n).astype(float)
    df.loc[(df.index + start) % repeat_every == 0, "prompt_text"] = (
        topic_prompts(1)[0] + " (the frequent one)"
    )
    batch.battles = df
    batch.rows_read = n
    batch.path = batch.path.with_name(path)
    return batch


@pytest.fixture(scope="module")
def votes_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("battles") / "arenatree.duckdb"
    load(db, "votes", [random_votes(400, seed=3)])
    load(db, "acc", [results_batch(12)])
    nulls = random_votes(6, seed=4, start=400, path="noprompt.jsonl")
    nulls.battles["prompt_text"] = None  # like a clean_battle file: no prompt text
    load(db, "votes", [nulls])
    return db


@pytest.fixture(scope="module")
def raw(votes_db) -> pd.DataFrame:
    """Every vote of 'votes', straight from the table (the reference for the filters)."""
    with store.reader(votes_db) as con:
        return con.execute("SELECT * FROM battles WHERE dataset = 'votes'").df()


def ids(df: pd.DataFrame) -> set[str]:
    return set(df["battle_id"])


def test_default_returns_every_vote_in_time_order_with_the_documented_columns(votes_db, raw):
    with store.reader(votes_db) as con:
        df = load_battles(con, "votes")
        assert count_battles(con, "votes") == len(raw) == 406
    assert list(df.columns) == list(BATTLE_COLUMNS)
    assert ids(df) == ids(raw) and len(df) == len(raw)
    assert df["tstamp"].is_monotonic_increasing
    with store.reader(votes_db) as con:
        few = load_battles(con, "votes", columns=["model_a", "winner"])
    assert list(few.columns) == ["model_a", "winner"] and len(few) == 406


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (Filters(judge_kind="human"), lambda r: r["judge_kind"] == "human"),
        (Filters(judge_kind="llm"), lambda r: r["judge_kind"] == "llm"),
        (Filters(judge="h2"), lambda r: r["judge"] == "h2"),
        (Filters(language="german"), lambda r: r["language"] == "German"),  # case-insensitive
        (Filters(exclude_ties=True), lambda r: r["winner"].isin(["model_a", "model_b"])),
        (
            Filters(since=date(2023, 11, 20)),
            lambda r: r["tstamp"] >= pd.Timestamp("2023-11-20"),
        ),
        (
            Filters(until="2023-11-20"),  # inclusive: the whole of that day
            lambda r: r["tstamp"] < pd.Timestamp("2023-11-21"),
        ),
        (
            Filters(since="2023-11-18", until="2023-11-18"),
            lambda r: (
                (r["tstamp"] >= pd.Timestamp("2023-11-18")) & (r["tstamp"] < pd.Timestamp("2023-11-19"))
            ),
        ),
        (
            Filters(judge_kind="human", language="English", exclude_ties=True),
            lambda r: (
                (r["judge_kind"] == "human")
                & (r["language"] == "English")
                & ~r["winner"].str.startswith("tie")
            ),
        ),
    ],
)
def test_each_filter_selects_what_it_says(votes_db, raw, filters, expected):
    want = raw[expected(raw)]
    assert 0 < len(want) < len(raw)
    with store.reader(votes_db) as con:
        got = load_battles(con, "votes", filters)
        assert count_battles(con, "votes", filters) == len(want)
    assert ids(got) == ids(want) and len(got) == len(want)


def test_dates_cut_at_utc_midnight_exactly(tmp_path):
    db = tmp_path / "x.duckdb"
    batch = random_votes(4, seed=1)
    edge = (pd.Timestamp("2024-03-10") - pd.Timestamp("1970-01-01")).total_seconds()
    batch.battles["tstamp"] = [edge - 1, edge, edge + 86400 - 1, edge + 86400]
    load(db, "d", [batch])
    with store.reader(db) as con:
        day = load_battles(con, "d", Filters(since="2024-03-10", until="2024-03-10"))
    assert sorted(day["tstamp"].astype(str)) == ["2024-03-10 00:00:00", "2024-03-10 23:59:59"]


def dedup_reference(raw: pd.DataFrame) -> set[str]:
    """FastChat's deduplication.py rule, recomputed in pandas: prompts with more battles than
    the 99.99th percentile of battles per prompt keep int(cut-off) of them (here: the smallest
    sha256(battle_id)); votes without a prompt stay."""
    counts = raw["prompt_id"].value_counts()
    cutoff = counts.quantile(DEDUP_PERCENTILE)
    keep = max(1, int(cutoff))
    hashed = raw.assign(h=raw["battle_id"].map(lambda s: hashlib.sha256(s.encode()).hexdigest()))
    kept = []
    for pid, group in hashed.groupby("prompt_id", dropna=False):
        if pd.isna(pid) or counts[pid] <= cutoff:
            kept.extend(group["battle_id"])
        else:
            kept.extend(group.sort_values(["h", "battle_id"])["battle_id"].head(keep))
    return set(kept) | set(raw.loc[raw["prompt_id"].isna(), "battle_id"])


def test_dedup_keeps_at_most_the_percentile_count_per_prompt(votes_db, raw):
    counts = raw["prompt_id"].value_counts()
    assert counts.max() == 40 and counts.quantile(DEDUP_PERCENTILE) < 40  # one very frequent prompt
    with store.reader(votes_db) as con:
        got = load_battles(con, "votes", Filters(dedup_prompts=True))
    assert ids(got) == dedup_reference(raw)
    cap = max(1, math.floor(counts.quantile(DEDUP_PERCENTILE)))
    assert got["prompt_id"].value_counts().max() == cap < 40
    assert got["prompt_id"].isna().sum() == raw["prompt_id"].isna().sum() == 6  # never dropped
    assert len(raw) - len(got) == 40 - cap  # only the frequent prompt lost votes


def test_dedup_is_taken_before_the_other_filters(votes_db, raw):
    deduped = dedup_reference(raw)
    with store.reader(votes_db) as con:
        got = load_battles(con, "votes", Filters(dedup_prompts=True, judge_kind="human"))
    assert ids(got) == deduped & set(raw.loc[raw["judge_kind"] == "human", "battle_id"])


def test_dedup_with_no_frequent_prompt_keeps_everything(tmp_path):
    db = tmp_path / "x.duckdb"
    load(db, "d", [random_votes(30, seed=2, repeat_every=10**6)])  # every prompt once
    with store.reader(db) as con:
        assert len(load_battles(con, "d", Filters(dedup_prompts=True))) == 30


def test_filters_key_is_json_and_round_trips():
    f = Filters(
        judge_kind="human", language="English", since=date(2024, 1, 2), until="2024-02-03", dedup_prompts=True
    )
    key = f.key()
    assert json.loads(json.dumps(key)) == key
    assert key["since"] == "2024-01-02" and key["until"] == "2024-02-03" and key["exclude_ties"] is False
    assert Filters.from_key(key) == f and Filters.from_key(None) == NO_FILTERS
    assert Filters(judge="  ").judge is None and NO_FILTERS.is_default() and not f.is_default()
    assert hash(f) == hash(Filters.from_key(key))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Filters(judge_kind="robot"), "judge_kind='robot': expected one of human, llm"),
        (lambda: Filters(since="2024-02-01", until="2024-01-01"), "is after until"),
        (lambda: Filters(since="last tuesday"), "expected a date like"),
    ],
)
def test_bad_filter_values_are_refused(make, message):
    with pytest.raises(ArenatreeError, match=message):
        make()


@pytest.mark.parametrize(
    ("dataset", "filters", "message"),
    [
        ("nope", NO_FILTERS, "no dataset 'nope'"),
        ("acc", NO_FILTERS, "holds instances data, not pairwise votes"),
        ("votes", Filters(judge="h9"), r"no votes with judge 'h9'; most common: h\d \(\d+\)"),
        ("votes", Filters(language="Klingon"), "no votes with language 'Klingon'; most common: English"),
        ("votes", Filters(since="2030-01-01"), "no votes of dataset 'votes' pass the filters"),
        ("votes", Filters(judge="gpt-4-judge", judge_kind="human"), "pass the filters"),
    ],
)
def test_unknown_dataset_or_filters_that_match_nothing_say_so(votes_db, dataset, filters, message):
    with store.reader(votes_db) as con, pytest.raises(ArenatreeError, match=message):
        load_battles(con, dataset, filters)


def test_unknown_columns_are_refused_not_spliced(votes_db):
    with store.reader(votes_db) as con, pytest.raises(ArenatreeError, match="unknown battle column"):
        load_battles(con, "votes", columns=["model_a", "1; DROP TABLE battles"])


def test_hostile_filter_values_are_parameters(votes_db):
    with store.reader(votes_db) as con, pytest.raises(ArenatreeError, match="no votes with judge"):
        load_battles(con, "votes", Filters(judge="x' OR '1'='1"))


def test_load_results_reads_per_instance_scores(votes_db):
    with store.reader(votes_db) as con:
        df = load_results(con, "acc")
        two = load_results(con, "acc", models=["gpt-4o", "llama-3-70b"])
        with pytest.raises(ArenatreeError, match="no results for model"):
            load_results(con, "acc", models=["gpt-4o", "ghost"])
        with pytest.raises(ArenatreeError, match="holds pairwise data"):
            load_results(con, "votes")
    assert list(df.columns) == ["instance_id", "prompt_id", "model", "score"]
    assert len(df) == 36 and set(df["score"]) == {0.0, 1.0} and df["prompt_id"].notna().all()
    ref = results_batch(12).results  # the score of item i for model j is (i + j) % 2
    merged = df.merge(ref.astype({"instance_id": str}), on=["instance_id", "model"], suffixes=("", "_ref"))
    assert len(merged) == 36 and (merged["score"] == merged["score_ref"]).all()
    assert sorted(two["model"].unique()) == ["gpt-4o", "llama-3-70b"] and len(two) == 24
