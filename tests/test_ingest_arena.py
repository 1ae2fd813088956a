"""Importers for the public Chatbot Arena / LMArena releases and the Kaggle 55k train.csv.

The fixtures in tests/fixtures/arena follow the published schemas field for field (HF dataset
cards, FastChat clean_battle_data.py, the Kaggle data description). Parquet variants are
written at test time from the JSON fixtures with DuckDB, as HF ships them.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from helpers import to_parquet

from pipelines.errors import InputError
from pipelines.ingest import detect, ingest
from pipelines.store import reader

FX = Path(__file__).parent / "fixtures" / "arena"
CONV_JSON = FX / "chatbot_arena_conversations.json"
CONV_JSONL = FX / "chatbot_arena_conversations.jsonl"
P100K = FX / "arena_human_preference_100k.json"
P140K = FX / "arena_human_preference_140k.jsonl"
CLEAN = FX / "clean_battle_20240814_public.json"
KAGGLE = FX / "train.csv"


# ------------------------------------------------------------------------------ helpers


def rows(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    with reader(db) as con:
        return con.execute(sql, params or []).fetchall()


def stored(db: Path) -> tuple[int, int, int]:
    """(datasets, battles, imports) in the store; zeros when no database was created."""
    if not db.exists():
        return (0, 0, 0)
    return rows(
        db,
        "SELECT (SELECT count(*) FROM datasets), (SELECT count(*) FROM battles), "
        "(SELECT count(*) FROM imports)",
    )[0]


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def conv_records() -> list[dict]:
    return json.loads(CONV_JSON.read_text())


def import_error(db: Path, path: Path, fmt: str = "auto", dataset: str = "bad") -> str:
    """The one-line message of the InputError that importing ``path`` raises."""
    with pytest.raises(InputError) as info:
        ingest([path], dataset, fmt=fmt, db=db)
    return str(info.value)


# ----------------------------------------------------------------- chatbot_arena_conversations


@pytest.mark.parametrize("container", ["json", "jsonl", "parquet"])
def test_conversations_every_container(db: Path, tmp_path: Path, container: str) -> None:
    path = {"json": CONV_JSON, "jsonl": CONV_JSONL}.get(container)
    if container == "parquet":
        path = to_parquet(CONV_JSON, tmp_path / "train-00000-of-00001-cced8514c7ed782a.parquet")
    assert detect(path).name == "arena-conversations"
    [report] = ingest([path], "arena33k", db=db)
    assert (report.format, report.rows_read, report.added_battles) == ("arena-conversations", 5, 5)
    assert report.added_prompts == 5 and report.added_responses == 10
    got = rows(
        db,
        "SELECT battle_id, source_id, model_a, model_b, winner, judge, judge_kind, language, "
        "anony, turns, tstamp FROM battles ORDER BY tstamp",
    )
    assert [r[4] for r in got] == ["model_b", "tie", "model_a", "tie_bothbad", "model_a"]
    assert [r[5] for r in got] == ["arena_user_973"] * 2 + ["arena_user_12"] * 2 + ["arena_user_4410"]
    assert {r[6] for r in got} == {"human"}
    assert [r[7] for r in got] == ["English"] * 4 + ["Spanish"]
    assert [r[8] for r in got] == [True, True, True, False, True]
    assert [r[9] for r in got] == [1, 2, 1, 1, 1]
    assert got[0][0] == got[0][1] == "58210e39b3fd4441a2bd4a518bb44c2d"  # question_id is the key
    assert got[0][10] == datetime(2023, 4, 24, 15, 53, 11, 132200)  # tstamp 1682351591.1322
    # two-turn vote: prompt and answers are the turns joined by a blank line
    prompt, resp_b = rows(
        db,
        "SELECT p.text, r.text FROM battles b JOIN prompts p USING (dataset, prompt_id) "
        "JOIN responses r ON r.dataset = b.dataset AND r.response_id = b.response_b "
        "WHERE b.turns = 2",
    )[0]
    assert prompt == "Why did my parent not invite me to their wedding?\n\nThanks"
    assert resp_b == "I'm sorry, I cannot answer that.\n\nNo problem."
    # no conv_metadata: the loader computes style from the answer text
    style = rows(
        db,
        "SELECT headers_b, lists_b, bold_b, refusal_a, refusal_b FROM battles "
        "WHERE source_id = '58210e39b3fd4441a2bd4a518bb44c2d'",
    )[0]
    assert style == (1, 3, 1, False, False)
    flagged = rows(
        db,
        "SELECT metadata->>'$.openai_flagged', metadata->>'$.toxic_chat_tag.\"t5-large\".flagged'"
        " FROM battles WHERE winner = 'tie_bothbad'",
    )[0]
    assert flagged == ("true", "true")


def test_reimport_adds_nothing_even_from_another_container(db: Path) -> None:
    ingest([CONV_JSON], "arena33k", db=db)
    [again] = ingest([CONV_JSON], "arena33k", db=db)
    assert again.already_imported and again.added_battles == 0
    [other] = ingest([CONV_JSONL], "arena33k", db=db)  # same votes, other file: keyed by id
    assert not other.already_imported
    assert (other.added_battles, other.added_prompts, other.duplicates) == (0, 0, 5)
    assert stored(db) == (1, 5, 2)


# -------------------------------------------------------------------------- 100k and 140k


@pytest.mark.parametrize("container", ["json", "parquet", "parquet-strings"])
def test_100k(db: Path, tmp_path: Path, container: str) -> None:
    path = P100K
    if container == "parquet":
        path = to_parquet(P100K, tmp_path / "arena-explorer-preference-100k.parquet")
    elif container == "parquet-strings":  # the HF card types these columns as strings
        path = to_parquet(
            P100K,
            tmp_path / "arena-explorer-preference-100k.parquet",
            "* REPLACE (CAST(to_json(conversation_a) AS VARCHAR) AS conversation_a, "
            "CAST(to_json(conversation_b) AS VARCHAR) AS conversation_b, "
            "CAST(to_json(conv_metadata) AS VARCHAR) AS conv_metadata)",
        )
    assert detect(path).name == "arena-100k"
    [report] = ingest([path], "a100k", db=db)
    assert (report.format, report.added_battles, report.added_prompts) == ("arena-100k", 3, 3)
    got = rows(
        db,
        "SELECT source_id, winner, judge, tokens_a, tokens_b, headers_a, headers_b, lists_a, "
        "lists_b, bold_a, bold_b, refusal_a, refusal_b, language, tstamp FROM battles "
        "ORDER BY tstamp",
    )
    assert [r[1] for r in got] == ["model_a", "tie_bothbad", "model_b"]
    assert [r[2] for r in got] == ["b2e1c0a9f8d7", "b2e1c0a9f8d7", "0c0ffee12345"]  # judge_hash
    # conv_metadata counts, summed over h1..h6 / ordered+unordered / ** + __
    assert got[0][3:11] == (410, 95, 1, 0, 2, 0, 1, 0)
    assert got[1][3:11] == (11, 230, 0, 12, 0, 7, 0, 3)
    # is_refusal false -> both false; true -> the per-answer heuristic decides the side
    assert got[0][11:13] == (False, False)
    assert got[1][11:13] == (True, False)
    assert {r[13] for r in got} == {"English"}
    assert got[0][14] == datetime(2024, 7, 2, 0, 0, 0, 123000)
    meta = rows(db, "SELECT metadata FROM battles WHERE winner = 'tie_bothbad'")[0][0]
    meta = json.loads(meta)
    assert meta["is_refusal"] is True and meta["dedup_tag"] == {"high_freq": True, "sampled": False}
    assert meta["category_tag"]["math_v0.1"] == {"math": False}


def test_140k_jsonl_and_parquet_folder(db: Path, tmp_path: Path) -> None:
    assert detect(P140K).name == "arena-140k"
    [report] = ingest([P140K], "a140k", db=db)
    assert (report.format, report.added_battles) == ("arena-140k", 3)
    got = rows(
        db,
        "SELECT battle_id, winner, judge, language, turns, tstamp, tokens_a, headers_a, lists_a, "
        "anony FROM battles ORDER BY tstamp",
    )
    assert [r[0] for r in got][0] == "c4b9710c-8d64-4bee-a0b0-94637ae4cc65"
    assert [r[1] for r in got] == ["model_a", "tie_bothbad", "tie"]  # 'both_bad' normalised
    assert got[0][2] == got[1][2] == "session:a333a685-37f9-474d-b703-f079d8329552"
    assert [r[3] for r in got] == ["en", "pl", "de"]
    assert [r[4] for r in got] == [1, 2, 1]
    assert got[0][5] == datetime(2025, 5, 29, 14, 48, 41, 602925)
    assert got[0][6:9] == (1854, 1, 2)
    assert got[0][9] is None  # the 140k release has no anony flag
    # content parts -> text; both turns of the two-turn vote joined by a blank line
    prompt = rows(
        db,
        "SELECT p.text FROM battles b JOIN prompts p USING (dataset, prompt_id) WHERE b.turns = 2",
    )[0][0]
    assert prompt == "Explain quicksort\n\nnow in Polish"

    # the HF layout: data/train-0000k-of-00007.parquet shards, timestamp as a real datetime
    folder = tmp_path / "arena-human-preference-140k" / "data"
    folder.mkdir(parents=True)
    records = [json.loads(line) for line in P140K.read_text().splitlines()]
    for k, part in enumerate((records[:2], records[2:])):
        src = write_jsonl(tmp_path / f"part{k}.jsonl", part)
        to_parquet(
            src,
            folder / f"train-0000{k}-of-00002.parquet",
            "* REPLACE (CAST(timestamp AS TIMESTAMP) AS timestamp)",
        )
    assert detect(folder).name == "arena-140k"
    assert detect(folder.parent).name == "arena-140k"  # the dataset repo root (data/ inside)
    [rep] = ingest([folder], "a140k-parquet", db=db)
    assert (rep.rows_read, rep.added_battles) == (3, 3)
    same = rows(
        db,
        "SELECT count(*) FROM battles a JOIN battles b USING (battle_id, winner, judge, tstamp) "
        "WHERE a.dataset = 'a140k' AND b.dataset = 'a140k-parquet'",
    )
    assert same == [(3,)]


def test_140k_parquet_shard_error_names_shard_and_row(db: Path, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    records = [json.loads(line) for line in P140K.read_text().splitlines()]
    records[2]["winner"] = "both_good"
    write_jsonl(tmp_path / "a.jsonl", records[:1])
    write_jsonl(tmp_path / "b.jsonl", records[1:])
    to_parquet(tmp_path / "a.jsonl", folder / "train-00000-of-00002.parquet")
    to_parquet(tmp_path / "b.jsonl", folder / "train-00001-of-00002.parquet")
    msg = import_error(db, folder)
    assert "train-00001-of-00002.parquet: record 2: field 'winner'" in msg
    assert "'both_good'" in msg
    assert stored(db) == (0, 0, 0)


# ------------------------------------------------------------------------------- clean_battle


@pytest.mark.parametrize("container", ["json", "jsonl", "parquet"])
def test_clean_battle(db: Path, tmp_path: Path, container: str) -> None:
    path = CLEAN
    if container == "jsonl":
        path = write_jsonl(tmp_path / "clean_battle_20240814.jsonl", json.loads(CLEAN.read_text()))
    elif container == "parquet":
        path = to_parquet(CLEAN, tmp_path / "clean_battle_20240814.parquet")
    assert detect(path).name == "clean-battle"
    [report] = ingest([path], "battles", db=db)
    assert (report.format, report.rows_read, report.added_battles) == ("clean-battle", 24, 24)
    assert report.added_prompts == 0 and report.added_responses == 0
    counts = dict(rows(db, "SELECT winner, count(*) FROM battles GROUP BY winner"))
    assert counts == {"model_a": 6, "model_b": 6, "tie": 6, "tie_bothbad": 6}
    assert rows(db, "SELECT count(DISTINCT judge), min(judge) FROM battles") == [(6, "arena_user_0")]
    assert dict(rows(db, "SELECT language, count(*) FROM battles GROUP BY 1")) == {
        "English": 18,
        "German": 6,
    }
    first = rows(
        db,
        "SELECT source_id, tstamp, turns, anony, tokens_a, tokens_b, headers_a, lists_a, bold_a,"
        " bold_b, refusal_a, metadata->>'$.dedup_tag.sampled' FROM battles ORDER BY tstamp",
    )
    assert first[0][0] is None  # simple mode has no question_id: the loader hashes the vote
    assert first[0][1] == datetime(2023, 11, 14, 22, 13, 20)
    assert first[1][1] == datetime(2023, 11, 14, 22, 14, 21, 500000)
    assert first[0][2:4] == (2, False)
    assert first[1][4:10] == (101, 199, 1, 2, 1, 1)
    assert first[0][10] is None and first[1][10] is False  # is_refusal true / false
    assert first[0][11] == "false" and first[1][11] == "true"


def test_clean_battle_reimport_adds_nothing(db: Path) -> None:
    ingest([CLEAN], "battles", db=db)
    [again] = ingest([CLEAN], "battles", db=db)
    assert again.already_imported and again.added_battles == 0
    assert stored(db) == (1, 24, 1)


# ------------------------------------------------------------------------------- Kaggle 55k


def test_kaggle_55k(db: Path) -> None:
    assert detect(KAGGLE).name == "arena-55k"
    [report] = ingest([KAGGLE], "k55", db=db)
    assert (report.format, report.rows_read, report.added_battles) == ("arena-55k", 4, 4)
    got = rows(
        db,
        "SELECT battle_id, winner, judge, judge_kind, turns, tstamp, language, response_a, "
        "headers_b, lists_b, bold_b FROM battles ORDER BY CAST(battle_id AS INTEGER)",
    )
    assert [r[0] for r in got] == ["30192", "53567", "65089", "96401"]
    assert [r[1] for r in got] == ["model_a", "model_b", "tie", "model_a"]
    assert {(r[2], r[3]) for r in got} == {("kaggle-55k:unknown", "human")}
    assert [r[4] for r in got] == [2, 1, 1, 1]
    assert got[0][5] is None and got[0][6] is None
    assert got[2][7] is None  # response_a is [null]
    assert got[0][8:11] == (1, 2, 1)
    prompt = rows(
        db,
        "SELECT p.text FROM battles b JOIN prompts p USING (dataset, prompt_id) WHERE b.turns = 2",
    )[0][0]
    assert prompt.endswith(
        "positions?\n\nOK, does pineapple belong on a pizza? Relax and give me fun answer."
    )
    [again] = ingest([KAGGLE], "k55", db=db)
    assert again.already_imported and stored(db)[1] == 4


def kaggle_with(tmp_path: Path, line3: str) -> Path:
    """The fixture with its third CSV line (second record) replaced by ``line3``."""
    lines = KAGGLE.read_text().splitlines(keepends=True)
    lines[2] = line3 + "\n"
    path = tmp_path / "train.csv"
    path.write_text("".join(lines))
    return path


def test_kaggle_two_winner_flags(db: Path, tmp_path: Path) -> None:
    path = kaggle_with(tmp_path, '53567,koala-13b,gpt-4-0613,"[""q""]","[""a""]","[""b""]",1,0,1')
    msg = import_error(db, path)
    assert f"{path}:3: field 'winner_tie'" in msg
    assert "exactly one of winner_model_a, winner_model_b, winner_tie must be 1" in msg
    assert stored(db) == (0, 0, 0)


def test_kaggle_bad_json_cell_and_no_flag(db: Path, tmp_path: Path) -> None:
    path = kaggle_with(tmp_path, '53567,koala-13b,gpt-4-0613,"[""q""","[""a""]","[""b""]",1,0,0')
    assert f"{path}:3: field 'prompt': not a JSON list" in import_error(db, path)
    path = kaggle_with(tmp_path, '53567,koala-13b,gpt-4-0613,"[""q""]","[""a""]","[""b""]",0,0,0')
    assert f"{path}:3: field 'winner_model_a'" in import_error(db, path)
    path = kaggle_with(tmp_path, '53567,koala-13b,gpt-4-0613,"[""q""]","[""a""]","[""b""]",1,0,x')
    assert f"{path}:3: field 'winner_tie': expected 0 or 1" in import_error(db, path)
    assert stored(db) == (0, 0, 0)


def test_kaggle_same_model_and_header_only(db: Path, tmp_path: Path) -> None:
    path = kaggle_with(tmp_path, '53567,koala-13b,koala-13b,"[""q""]","[""a""]","[""b""]",1,0,0')
    msg = import_error(db, path)
    assert f"{path}:3: field 'model_b': model_a and model_b are the same model" in msg
    header = tmp_path / "header.csv"
    header.write_text(KAGGLE.read_text().splitlines()[0] + "\n")
    assert "no records" in import_error(db, header, fmt="arena-55k")
    assert stored(db) == (0, 0, 0)


# ---------------------------------------------------------------------------- bad arena input


def test_malformed_jsonl_line_in_the_middle(db: Path, tmp_path: Path) -> None:
    lines = CONV_JSONL.read_text().splitlines()
    lines[2] = lines[2][:-5]  # truncate the third record
    path = tmp_path / "chatbot_arena_conversations.jsonl"
    path.write_text("\n".join(lines) + "\n")
    msg = import_error(db, path, fmt="arena-conversations")
    assert msg.startswith(f"{path}:3: malformed JSON")
    assert stored(db) == (0, 0, 0)


def test_malformed_json_array_names_the_line(db: Path, tmp_path: Path) -> None:
    text = CLEAN.read_text().replace('"winner": "tie",', '"winner": "tie"', 1)
    path = tmp_path / "clean_battle_20240101.json"
    path.write_text(text)
    line = 1 + text[: text.index('"winner": "tie"')].count("\n") + 1  # the key after it
    msg = import_error(db, path, fmt="clean-battle")
    assert msg.startswith(f"{path}:{line}: malformed JSON")
    assert stored(db) == (0, 0, 0)


def test_blank_lines_keep_jsonl_line_numbers(db: Path, tmp_path: Path) -> None:
    records = conv_records()
    records[3]["winner"] = "model_c"
    path = tmp_path / "chatbot_arena_conversations.jsonl"
    path.write_text("\n\n".join(json.dumps(r) for r in records) + "\n")
    msg = import_error(db, path)
    assert msg.startswith(f"{path}:7: field 'winner': unknown winner label 'model_c'")
    assert stored(db) == (0, 0, 0)


def test_unknown_winner_in_json_array(db: Path, tmp_path: Path) -> None:
    records = conv_records()
    records[1]["winner"] = "tie (bothgood)"
    path = tmp_path / "chatbot_arena_conversations.json"
    path.write_text(json.dumps(records))
    msg = import_error(db, path)
    assert msg.startswith(f"{path}: record 2: field 'winner': unknown winner label 'tie (bothgood)'")
    assert stored(db) == (0, 0, 0)


def test_same_model_on_both_sides(db: Path, tmp_path: Path) -> None:
    records = json.loads(CLEAN.read_text())
    records[4]["model_b"] = records[4]["model_a"]
    path = write_jsonl(tmp_path / "clean_battle_20240102.jsonl", records)
    msg = import_error(db, path)
    assert msg.startswith(f"{path}:5: field 'model_b': model_a and model_b are the same model")
    assert stored(db) == (0, 0, 0)


def test_conflicting_duplicate_question_id(db: Path, tmp_path: Path) -> None:
    records = conv_records()
    records.append(dict(records[0], winner="model_a"))  # same question_id, other winner
    path = write_jsonl(tmp_path / "chatbot_arena_conversations.jsonl", records)
    msg = import_error(db, path)
    assert msg.startswith(f"{path}:6: field 'winner': battle id '58210e39b3fd4441a2bd4a518bb44c2d'")
    assert "conflicting duplicate votes" in msg
    assert stored(db) == (0, 0, 0)
    # the same vote twice is not a conflict: it is stored once
    path = write_jsonl(tmp_path / "twice.jsonl", [*conv_records(), conv_records()[0]])
    [report] = ingest([path], "dup", fmt="arena-conversations", db=db)
    assert (report.added_battles, report.duplicates) == (5, 1)


def test_conflict_with_the_store(db: Path, tmp_path: Path) -> None:
    ingest([CONV_JSON], "arena33k", db=db)
    records = conv_records()
    records[2]["winner"] = "model_b"
    path = write_jsonl(tmp_path / "chatbot_arena_conversations.jsonl", records)
    msg = import_error(db, path, dataset="arena33k")
    assert f"{path}:3: field 'winner'" in msg and "already stored with winner 'model_a'" in msg
    assert stored(db) == (1, 5, 1)


@pytest.mark.parametrize("content", ["", "\n  \n", "[]", "[ ]\n"])
def test_empty_file(db: Path, tmp_path: Path, content: str) -> None:
    path = tmp_path / "clean_battle_20240103.json"
    path.write_text(content)
    msg = import_error(db, path, fmt="clean-battle")
    assert msg.startswith(str(path)) and ("empty file" in msg or "no records" in msg)
    assert stored(db) == (0, 0, 0)


def test_bad_field_types_name_the_record(db: Path, tmp_path: Path) -> None:
    records = json.loads(CLEAN.read_text())
    records[6]["tstamp"] = "yesterday"
    path = tmp_path / "clean_battle_20240104.json"
    path.write_text(json.dumps(records))
    msg = import_error(db, path)
    assert msg == f"{path}: record 7: field 'tstamp': value is not a number or a date-time"
    for r in records:
        del r["model_b"]
    path.write_text(json.dumps(records))
    msg = import_error(db, path, fmt="clean-battle")
    assert msg.startswith(f"{path}: record 1: field 'model_b': missing required field")
    assert stored(db) == (0, 0, 0)


@pytest.mark.slow
def test_late_type_change_is_still_read(db: Path, tmp_path: Path) -> None:
    """A value whose type differs from DuckDB's sample is read after a full-file inference."""
    records = json.loads(CLEAN.read_text()) * 1000
    for i, r in enumerate(records):
        r["tstamp"] = 1_700_000_000 + i  # ints everywhere: DuckDB samples BIGINT
    records[-1]["tstamp"] = "1700030000.5"  # a string at the end
    path = write_jsonl(tmp_path / "clean_battle_20240105.jsonl", records)
    [report] = ingest([path], "late", db=db)
    assert report.rows_read == 24_000
    assert rows(db, "SELECT max(tstamp) FROM battles") == [(datetime(2023, 11, 15, 6, 33, 20, 500000),)]


# ------------------------------------------------------------------------------ detection


def test_detection_does_not_claim_other_formats(tmp_path: Path) -> None:
    from pipelines.ingest import arena, kaggle

    ours = [*arena.ADAPTERS, *kaggle.ADAPTERS]

    def claimed(path: Path) -> list[str]:
        return [a.name for a in ours if a.detect(path)]

    # every fixture is claimed by exactly one of our adapters
    for path in (CONV_JSON, CONV_JSONL, P100K, P140K, CLEAN, KAGGLE):
        assert len(claimed(path)) == 1, path
    generic_csv = tmp_path / "votes.csv"
    generic_csv.write_text("model_a,model_b,winner,judge\na,b,model_a,j\n")
    mt_bench = write_jsonl(  # MT-bench human judgments: no tstamp, judge may be a list
        tmp_path / "human.jsonl",
        [
            {
                "question_id": 81,
                "model_a": "alpaca-13b",
                "model_b": "gpt-3.5-turbo",
                "winner": "model_b",
                "judge": "author_2",
                "conversation_a": [],
                "conversation_b": [],
                "turn": 1,
            }
        ],
    )
    arena_hard = write_jsonl(
        tmp_path / "gpt-4-0314.jsonl",
        [{"question_id": "q1", "model": "m", "judge": "gpt-4", "games": []}],
    )
    kaggle_test = tmp_path / "test.csv"
    kaggle_test.write_text('id,prompt,response_a,response_b\n1,"[""q""]","[]","[]"\n')
    plain = write_jsonl(tmp_path / "votes.jsonl", [{"model_a": "a", "model_b": "b", "winner": "tie"}])
    for path in (generic_csv, mt_bench, arena_hard, kaggle_test, plain, tmp_path):
        assert claimed(path) == [], path
