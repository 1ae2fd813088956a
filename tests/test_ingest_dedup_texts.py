"""Texts are handled once per distinct value, with the results of the per-row definitions.

The arena reader dictionary-encodes prompt and answer texts (pandas Categoricals over the
distinct texts) and reads ``{content, role}`` message structs without going through JSON; the
loader hashes each distinct prompt and (prompt, model, answer) once and computes the style
features once per distinct answer. These tests check every such shortcut against a row-by-row
computation: the documented text rule in Python, ``text_hash`` per vote, the style SQL per
answer slot, and the store a plain (not dictionary-encoded) frame produces.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
from helpers import load, to_parquet

from pipelines import store
from pipelines.ingest import arena, ingest, read
from pipelines.ingest.load import TEXT_COLUMNS, _encode_texts, text_hash
from pipelines.simulate import simulate
from pipelines.style import FEATURE_COLUMNS, response_features_sql

TEXTS = [
    "Hello",
    "",
    "Line\u2028separator and \u2029 paragraph",
    "tab\tnew\nline",
    'quote " and \\ backslash',
    "emoji 🎉 ünïcödé",
    "# Head\n\n- item\n- **bold**\n1. first",
    "I'm sorry, but I cannot help with that.",
    "As ChatGPT by OpenAI I think",
    "```code\n# not a header\n```\n## real header",
    "control \x01 \x1f chars",
    "  spaced  ",
]
ROLES = ["user", "assistant", "assistant", "system", None, "User"]
DATA_TABLES = ("prompts", "prompt_sources", "responses", "battles", "datasets")


def conversation(rng: random.Random) -> list | None:
    """A conversation of every awkward shape: null, empty, the usual [user, assistant] pair,
    and longer ones with null messages, null contents, other and missing roles."""
    r = rng.random()
    if r < 0.05:
        return None
    if r < 0.1:
        return []
    if r < 0.5:
        return [
            {"role": "user", "content": rng.choice(TEXTS)},
            {"role": "assistant", "content": rng.choice(TEXTS)},
        ]
    out: list = []
    for _ in range(rng.randint(1, 5)):
        msg = {"role": rng.choice(ROLES), "content": rng.choice([*TEXTS, None])}
        out.append(None if rng.random() < 0.05 else msg)
    return out


def records(n: int = 300, seed: int = 1) -> list[dict]:
    """``n`` chatbot_arena_conversations votes over few distinct texts (so they repeat)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        conv_a = conversation(rng)
        conv_b = conversation(rng)
        out.append(
            {
                "question_id": f"q{i}",
                "model_a": rng.choice(["m1", "m2"]),
                "model_b": rng.choice(["m3", "m4"]),
                "winner": rng.choice(["model_a", "model_b", "tie", "tie (bothbad)"]),
                "judge": f"arena_user_{i % 7}",
                "conversation_a": conv_a,
                "conversation_b": conv_b,
                "turn": 1,
                "anony": True,
                "language": "English",
                "tstamp": 1_682_000_000.0 + i,
            }
        )
    return out


def votes(path: Path) -> list[dict]:
    """The records of a JSON Lines file (split at \\n only: texts hold U+2028)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def rule(conv: list | None, role: str) -> str | None:
    """The documented text of ``role`` in ``conv``: its messages' contents (null as '') joined
    by a blank line; None when there is none or the result is empty."""
    if conv is None:
        return None
    parts = [m["content"] or "" for m in conv if m is not None and m["role"] == role]
    return "\n\n".join(parts) or None


def write_jsonl(path: Path, recs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


def texts_of(df: pd.DataFrame, col: str) -> list:
    return [None if pd.isna(v) else v for v in df[col].astype(object)]


def store_rows(db: Path) -> dict[str, list]:
    """Every table's rows, sorted, without the per-import uuid and timestamps."""
    skip = {"battles": "EXCLUDE (import_id)", "imports": "EXCLUDE (import_id, imported_at)"}
    skip["datasets"] = "EXCLUDE (created_at)"
    out = {}
    with store.reader(db) as con:
        for t in ("prompts", "prompt_sources", "responses", "battles", "imports", "datasets"):
            rows = con.execute(f"SELECT * {skip.get(t, '')} FROM {t}").fetchall()  # noqa: S608
            out[t] = sorted(rows, key=repr)
    return out


# ------------------------------------------------------------------------------- the reader


def test_texts_follow_the_rule_in_every_shape(tmp_path: Path) -> None:
    """Message structs (Parquet and JSONL, read natively), JSON text columns and message
    parts (read through JSON) all give the documented texts, row for row."""
    recs = records()
    jsonl = write_jsonl(tmp_path / "conv.jsonl", recs)
    files = {
        "jsonl": jsonl,
        "parquet": to_parquet(jsonl, tmp_path / "conv.parquet"),
        "json text": to_parquet(
            jsonl,
            tmp_path / "conv_text.parquet",
            "* REPLACE (CAST(to_json(conversation_a) AS VARCHAR) AS conversation_a, "
            "CAST(to_json(conversation_b) AS VARCHAR) AS conversation_b)",
        ),
    }
    want = {
        "prompt_text": [rule(r["conversation_a"], "user") for r in recs],
        "response_a": [rule(r["conversation_a"], "assistant") for r in recs],
        "response_b": [rule(r["conversation_b"], "assistant") for r in recs],
    }
    for name, path in files.items():
        df, _ = arena.read_frame(path, "x")
        assert all(isinstance(df[c].dtype, pd.CategoricalDtype) for c in TEXT_COLUMNS), name
        for col, expected in want.items():
            assert texts_of(df, col) == expected, (name, col)
        distinct = {t for col in want.values() for t in col if t is not None}
        assert set(df["response_a"].cat.categories) == distinct, name  # each text once


def test_message_parts_and_a_clashing_ordinality_column(tmp_path: Path) -> None:
    """140k-style content parts go through JSON; a file's own 'ordinality' column does not
    confuse the row matching of the texts."""
    recs = records(120, seed=2)
    parts = []
    for r in recs:
        p = dict(r, ordinality=7)
        for side in ("conversation_a", "conversation_b"):
            conv = r[side]
            p[side] = (
                None
                if conv is None
                else [
                    None
                    if m is None
                    else {
                        "role": m["role"],
                        "content": None if m["content"] is None else [{"type": "text", "text": m["content"]}],
                    }
                    for m in conv
                ]
            )
        parts.append(p)
    df, _ = arena.read_frame(write_jsonl(tmp_path / "parts.jsonl", parts), "x")
    assert texts_of(df, "response_b") == [rule(r["conversation_b"], "assistant") for r in recs]
    plain = write_jsonl(tmp_path / "plain.jsonl", [dict(r, ordinality=7) for r in recs])
    clash = to_parquet(plain, tmp_path / "clash.parquet")
    df, _ = arena.read_frame(clash, "x")
    assert texts_of(df, "prompt_text") == [rule(r["conversation_a"], "user") for r in recs]
    assert texts_of(df, "response_a") == [rule(r["conversation_a"], "assistant") for r in recs]


def test_jsonl_line_numbers_follow_the_strip_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Non-blank line numbers equal ``[n for n, line in enumerate(file, 1) if line.strip()]``,
    also when lines straddle the read chunks."""
    rng = random.Random(5)
    pieces = [
        b"{}",
        b"  ",
        b"\t",
        b"\r",
        b"",
        b' {"a": 1} ',
        b"\x0b",
        b"\x0c",
        b"\x1c",
        b"x",
        b"\xe2\x80\xa8",
    ]
    path = tmp_path / "lines.jsonl"
    for _ in range(400):
        lines = [
            b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 3))) for _ in range(rng.randint(0, 8))
        ]
        data = b"\n".join(lines) + (b"\n" if rng.random() < 0.5 else b"")
        path.write_bytes(data)
        with open(path, "rb") as fh:
            want = [n for n, raw in enumerate(fh, start=1) if raw.strip()]
        monkeypatch.setattr(arena, "LINES_CHUNK", rng.randint(1, 6))
        assert arena._jsonl_lines(path).tolist() == want, data


# ------------------------------------------------------------------------------- the loader


def test_encode_texts_round_trips_mixed_columns() -> None:
    """Categoricals with different categories, object and Arrow string columns, nulls and
    empty strings all decode back to their values through one table of distinct texts."""
    values = [["a", None, "b", "", "a"], ["b", "c", None, "a", "c"], [None, "", "d", "d", "a"]]
    df = pd.DataFrame(
        {
            "prompt_text": pd.Categorical(values[0], categories=["zz", "b", "", "a"]),
            "response_a": pd.Series(values[1], dtype=object),
            "response_b": pd.Series(values[2], dtype=pd.ArrowDtype(pa.string())),
        }
    )
    codes, texts = _encode_texts(df)
    assert texts.is_unique
    for code, want in zip(codes, values, strict=True):
        assert [None if c < 0 else texts[c] for c in code] == want


@pytest.mark.slow
def test_dictionary_encoded_and_plain_frames_store_the_same(tmp_path: Path) -> None:
    """The reader's Categorical frame, the same frame with plain string columns (the path of
    the other adapters) and a mix give identical tables."""
    batch = read(to_parquet(write_jsonl(tmp_path / "v.jsonl", records()), tmp_path / "v.parquet"))
    assert isinstance(batch.battles["response_a"].dtype, pd.CategoricalDtype)
    plain = read(tmp_path / "v.parquet")
    for col in TEXT_COLUMNS:
        plain.battles[col] = plain.battles[col].astype(object).where(plain.battles[col].notna(), None)
    mixed = read(tmp_path / "v.parquet")
    mixed.battles["response_b"] = pd.Categorical(texts_of(mixed.battles, "response_b"))
    results = []
    for i, b in enumerate((batch, plain, mixed)):
        db = tmp_path / f"s{i}.duckdb"
        load(db, "d", [b])
        results.append(store_rows(db))
    for table in DATA_TABLES:
        assert results[0][table] == results[1][table] == results[2][table], table
    assert len(results[0]["responses"]) > 0


@pytest.fixture(scope="module")
def small_arena(tmp_path_factory, data_dir) -> dict:
    """A 1,500-vote simulated arena (JSONL; prompts and answers repeat) and its store."""
    out = tmp_path_factory.mktemp("dedup")
    summary = simulate(  # short prompts only: a small pool, so prompts and answers repeat
        out / "arena",
        votes=1500,
        models=5,
        voters=40,
        seed=11,
        data_dir=data_dir,
        fmt="jsonl",
        max_prompt_chars=60,
        math_prompts=20,
    )
    db = out / "store.duckdb"
    ingest([summary["files"]["votes"]], "sim", db=db)
    return {"votes": Path(summary["files"]["votes"]), "db": db, "out": out}


@pytest.mark.slow
def test_import_equals_the_row_by_row_computation(small_arena: dict) -> None:
    """Every vote's prompt id, response ids and style features equal the per-row definitions:
    text_hash of its own texts and the style SQL over each answer slot separately."""
    recs = votes(small_arena["votes"])
    slots = []  # one row per (vote, side): no deduplication anywhere
    for r in recs:
        prompt = rule(r["conversation_a"], "user")
        pid = text_hash(prompt)
        for side, conv, model in (
            ("a", r["conversation_a"], r["model_a"]),
            ("b", r["conversation_b"], r["model_b"]),
        ):
            text = rule(conv, "assistant")
            rid = text_hash("\x1f".join([pid, model, text]))
            slots.append(
                {
                    "battle_id": r["question_id"],
                    "side": side,
                    "pid": pid,
                    "model": model,
                    "rid": rid,
                    "text": text,
                }
            )
    per_row = pd.DataFrame(slots)
    con = duckdb.connect()
    try:
        con.register("s", per_row)
        feats = con.execute(f"SELECT {response_features_sql('text', named=True)} FROM s").df()
    finally:
        con.close()
    per_row = pd.concat([per_row, feats], axis=1)
    assert per_row["rid"].nunique() < 0.8 * len(per_row)  # answers really repeat here

    with store.reader(small_arena["db"]) as con:
        battles = con.execute(
            "SELECT battle_id, prompt_id, response_a, response_b, tokens_a, tokens_b, headers_a, headers_b, "
            "lists_a, lists_b, bold_a, bold_b, refusal_a, refusal_b, leak_a, leak_b FROM battles"
        ).df()
        responses = con.execute("SELECT * EXCLUDE (dataset) FROM responses").df()
        prompts = con.execute("SELECT prompt_id, text FROM prompts").df()
    assert len(battles) == len(recs)
    got = battles.set_index("battle_id")
    for side in ("a", "b"):
        want = per_row[per_row["side"] == side].set_index("battle_id").loc[got.index]
        assert (got["prompt_id"] == want["pid"]).all()
        assert (got[f"response_{side}"] == want["rid"]).all()
        for feat, col in zip(
            FEATURE_COLUMNS, ("tokens", "headers", "lists", "bold", "refusal", "leak"), strict=True
        ):
            assert (got[f"{col}_{side}"].astype(object) == want[feat].astype(object)).all(), (side, feat)
    want_resp = per_row.drop_duplicates("rid").set_index("rid").sort_index()
    got_resp = responses.set_index("response_id").sort_index()
    assert got_resp.index.tolist() == want_resp.index.tolist()
    assert (got_resp["prompt_id"] == want_resp["pid"]).all()
    assert (got_resp["model"] == want_resp["model"]).all()
    assert (got_resp["text"] == want_resp["text"]).all()
    for feat in FEATURE_COLUMNS:
        assert (got_resp[feat].astype(object) == want_resp[feat].astype(object)).all(), feat
    want_prompts = {text_hash(t): t for t in (rule(r["conversation_a"], "user") for r in recs)}
    assert dict(zip(prompts["prompt_id"], prompts["text"], strict=True)) == want_prompts


@pytest.mark.slow
def test_every_container_of_the_arena_stores_the_same(small_arena: dict, tmp_path: Path) -> None:
    """The simulated votes as JSONL (above), Parquet and a JSON array: identical tables apart
    from the file path and hash of each import."""
    recs = votes(small_arena["votes"])
    parquet = to_parquet(small_arena["votes"], tmp_path / "votes.parquet")
    array = tmp_path / "votes.json"
    array.write_text(json.dumps(recs), encoding="utf-8")
    want = store_rows(small_arena["db"])
    for path in (parquet, array):
        db = tmp_path / f"{path.suffix[1:]}.duckdb"
        ingest([path], "sim", db=db)
        got = store_rows(db)
        for table in DATA_TABLES:
            assert got[table] == want[table], (path.name, table)
