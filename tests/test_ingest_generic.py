"""Generic votes / scores tables and bad input, on small files written in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from pipelines.errors import ArenatreeError, InputError
from pipelines.ingest import detect, ingest
from pipelines.store import reader, run


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(path: Path, records: list[dict]) -> Path:
    return write(path, "".join(json.dumps(r) + "\n" for r in records))


def q(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    with reader(db) as con:
        return run(con, sql, params)


MAPPED_CSV = (
    "left_model,right_model,result,voter,question,session\n"
    "alpha,beta,A,u1,What is 2+2?,s1\n"
    "alpha,beta,B,u2,What is 2+2?,s2\n"
    "beta,gamma,draw,u1,Name a colour.,s3\n"
    "gamma,alpha,tie_bothbad,u3,Name a colour.,s4\n"
)
MAPPING = {
    "model_a": "left_model",
    "model_b": "right_model",
    "winner": "result",
    "judge": "voter",
    "prompt": "question",
    "winner_labels": "A=model_a,B=model_b,draw=tie",
}


def test_votes_with_mapping_and_labels(tmp_path: Path, db: Path) -> None:
    f = write(tmp_path / "votes.csv", MAPPED_CSV)
    (rep,) = ingest([f], "v", fmt="votes", options=MAPPING, db=db)
    assert (rep.rows_read, rep.added_battles, rep.added_prompts) == (4, 4, 2)
    rows = q(
        db,
        "SELECT model_a, model_b, winner, judge, judge_kind, metadata->>'session' "
        "FROM battles ORDER BY metadata->>'session'",
    )
    assert rows == [
        ("alpha", "beta", "model_a", "u1", "human", "s1"),
        ("alpha", "beta", "model_b", "u2", "human", "s2"),
        ("beta", "gamma", "tie", "u1", "human", "s3"),
        ("gamma", "alpha", "tie_bothbad", "u3", "human", "s4"),
    ]
    texts = {t for (t,) in q(db, "SELECT p.text FROM battles JOIN prompts p USING (prompt_id)")}
    assert texts == {"What is 2+2?", "Name a colour."}


def test_votes_judge_kind_option(tmp_path: Path, db: Path) -> None:
    f = write(tmp_path / "v.csv", "model_a,model_b,winner\nx,y,model_a\n")
    ingest([f], "v", options={"judge_kind": "llm", "default_judge": "gpt-4o"}, db=db)
    assert q(db, "SELECT judge, judge_kind FROM battles") == [("gpt-4o", "llm")]
    with pytest.raises(ArenatreeError, match="judge_kind"):
        ingest([f], "w", options={"judge_kind": "robot"}, db=db)


def test_unknown_label_names_its_line(tmp_path: Path, db: Path) -> None:
    f = write(tmp_path / "votes.csv", MAPPED_CSV + "alpha,gamma,C,u9,Q?,s5\n")
    with pytest.raises(InputError) as err:
        ingest([f], "v", fmt="votes", options=MAPPING, db=db)
    assert (err.value.line, err.value.field) == (6, "winner")
    assert "'C'" in str(err.value) and str(f) in str(err.value)
    assert not db.exists()  # rejected before any write session: not even an empty file


def test_unknown_option_is_refused(tmp_path: Path, db: Path) -> None:
    f = write(tmp_path / "votes.csv", MAPPED_CSV)
    with pytest.raises(ArenatreeError, match="modl_a"):
        ingest([f], "v", fmt="votes", options={**MAPPING, "modl_a": "left_model"}, db=db)


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_missing_required_column(tmp_path: Path, db: Path, suffix: str) -> None:
    if suffix == "csv":
        f = write(tmp_path / "v.csv", "model_a,model_b\nx,y\n")
    else:
        f = jsonl(tmp_path / "v.jsonl", [{"model_a": "x", "model_b": "y"}])
    with pytest.raises(InputError) as err:
        ingest([f], "v", fmt="votes", db=db)
    assert (err.value.path, err.value.line, err.value.field) == (str(f), 1, "winner")
    assert f"{f}:1: field 'winner'" in str(err.value)


def test_missing_mapped_column_names_source_and_target(tmp_path: Path, db: Path) -> None:
    f = write(tmp_path / "v.csv", "left_model,right_model,outcome\nx,y,A\n")
    with pytest.raises(InputError) as err:
        ingest([f], "v", fmt="votes", options=MAPPING, db=db)
    assert (err.value.line, err.value.field) == (1, "result")
    assert "mapped to winner" in str(err.value)


def test_detection_only_for_canonical_columns(tmp_path: Path) -> None:
    votes = write(tmp_path / "a.csv", "model_a,model_b,winner,judge\nx,y,tie,u\n")
    scores = jsonl(tmp_path / "s.jsonl", [{"instance_id": 1, "model": "m", "score": 1}])
    mapped = write(tmp_path / "b.csv", MAPPED_CSV)
    assert detect(votes).name == "votes"
    assert detect(scores).name == "scores"
    with pytest.raises(InputError, match="cannot tell the format"):
        detect(mapped)


def test_generic_does_not_claim_arena_formats(tmp_path: Path) -> None:
    from pipelines.ingest.generic import detect_scores, detect_votes

    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    arena = jsonl(
        tmp_path / "conversations.jsonl",
        [
            {
                "question_id": "q1",
                "model_a": "x",
                "model_b": "y",
                "winner": "model_a",
                "judge": "arena_user_1",
                "conversation_a": conv,
                "conversation_b": conv,
                "turn": 1,
                "anony": True,
                "language": "English",
                "tstamp": 1.0,
            }
        ],
    )
    battles = write(
        tmp_path / "clean_battle.json",
        json.dumps(
            [
                {
                    "question_id": "q",
                    "model_a": "x",
                    "model_b": "y",
                    "winner": "tie",
                    "judge": "j",
                    "turn": 1,
                    "anony": True,
                    "language": "English",
                    "tstamp": 1.0,
                    "conv_metadata": {"sum_user_tokens": 3},
                }
            ]
        ),
    )
    kaggle = write(
        tmp_path / "train.csv",
        "id,model_a,model_b,prompt,response_a,response_b,winner_model_a,winner_model_b,"
        'winner_tie\n1,x,y,"[""hi""]","[""a""]","[""b""]",1,0,0\n',
    )
    for f in (arena, battles, kaggle):
        assert not detect_votes(f) and not detect_scores(f), f.name


def test_big_and_hostile_prompts_stored_verbatim(tmp_path: Path, db: Path) -> None:
    big = "x" * (2 * 1024 * 1024 - 7) + '\n"end"'
    hostile = [
        '<script>alert("x")</script>',
        '=HYPERLINK("http://evil.example","click")',
        "+cmd|' /C calc'!A0",
    ]
    texts = [big, *hostile]
    f = tmp_path / "v.csv"
    with f.open("w", newline="", encoding="utf-8") as fh:
        import csv

        w = csv.writer(fh)
        w.writerow(["model_a", "model_b", "winner", "prompt"])
        for t in texts:
            w.writerow(["m1", "m2", "model_a", t])
    g = jsonl(
        tmp_path / "v.jsonl",
        [{"model_a": "m2", "model_b": "m3", "winner": "tie", "prompt": t} for t in texts],
    )
    (r1, r2) = ingest([f, g], "v", db=db)
    assert (r1.format, r2.format, r1.added_battles, r2.added_battles) == ("votes", "votes", 4, 4)
    stored = q(db, "SELECT text FROM prompts ORDER BY length(text) DESC")
    assert [t for (t,) in stored] == [big, *sorted(hostile, key=len, reverse=True)]
    assert q(db, "SELECT count(DISTINCT prompt_id) FROM battles") == [(4,)]


def test_non_utf8_bytes_name_their_line(tmp_path: Path, db: Path) -> None:
    f = tmp_path / "v.csv"
    f.write_bytes(b"model_a,model_b,winner\nx,y,tie\nx,\xff\xfey,tie\n")
    with pytest.raises(InputError) as err:
        ingest([f], "v", fmt="votes", db=db)
    assert err.value.line == 3 and "UTF-8" in str(err.value)


def test_binary_garbage_is_refused_with_a_line(tmp_path: Path, db: Path) -> None:
    f = tmp_path / "v.jsonl"
    f.write_bytes(b'{"model_a": "x"}\n\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR')
    with pytest.raises(InputError) as err:
        ingest([f], "v", fmt="votes", db=db)
    assert err.value.line == 4 and "binary" in str(err.value)  # NUL is on line 4


def test_empty_file(tmp_path: Path, db: Path) -> None:
    for name in ("empty.csv", "blank.jsonl"):
        f = write(tmp_path / name, "" if name.endswith("csv") else "\n  \n")
        with pytest.raises(InputError, match="empty file"):
            ingest([f], "v", fmt="votes", db=db)


def test_malformed_jsonl_line_imports_nothing(tmp_path: Path, db: Path) -> None:
    good = jsonl(tmp_path / "good.jsonl", [{"model_a": "x", "model_b": "y", "winner": "tie"}])
    ingest([good], "v", db=db)
    other = jsonl(tmp_path / "other.jsonl", [{"model_a": "p", "model_b": "q", "winner": "tie"}])
    bad = write(
        tmp_path / "bad.jsonl",
        '{"model_a": "x", "model_b": "z", "winner": "tie"}\n'
        '{"model_a": "x", "model_b": "z", "winner": "model_a"}\n'
        '{"model_a": "x", "model_b": "z", "winner": \n'
        '{"model_a": "x", "model_b": "z", "winner": "model_b"}\n',
    )
    with pytest.raises(InputError) as err:
        ingest([other, bad], "v", db=db)
    assert (err.value.path, err.value.line) == (str(bad), 3)
    assert q(db, "SELECT model_a, model_b FROM battles") == [("x", "y")]
    assert q(db, "SELECT count(*) FROM imports") == [(1,)]


def test_repeated_votes_without_ids_stay_separate_and_reimport_is_idempotent(
    tmp_path: Path, db: Path
) -> None:
    body = "model_a,model_b,winner\nx,y,model_a\nx,y,model_a\nx,y,model_b\n"
    (rep,) = ingest([write(tmp_path / "a.csv", body)], "v", db=db)
    assert rep.added_battles == 3
    (again,) = ingest([write(tmp_path / "copy.csv", body + "\n")], "v", db=db)
    assert (again.already_imported, again.added_battles, again.duplicates) == (False, 0, 3)
    assert q(db, "SELECT winner, count(*) FROM battles GROUP BY 1 ORDER BY 1") == [
        ("model_a", 2),
        ("model_b", 1),
    ]


def test_timestamps_and_flags(tmp_path: Path, db: Path) -> None:
    f = write(
        tmp_path / "v.csv",
        "model_a,model_b,winner,tstamp,anony,turns,id\n"
        "x,y,tie,2024-05-01T12:00:00Z,true,2,v1\n"
        "x,y,model_a,1714564800.5,0,1,v2\n",
    )
    ingest([f], "v", options={"battle_key": "id"}, db=db)
    rows = q(db, "SELECT battle_id, epoch(tstamp), anony, turns FROM battles ORDER BY 1")
    assert rows == [("v1", 1714564800.0, True, 2), ("v2", 1714564800.5, False, 1)]
    bad = write(tmp_path / "w.csv", "model_a,model_b,winner,tstamp\nx,y,tie,yesterday\n")
    with pytest.raises(InputError) as err:
        ingest([bad], "w", db=db)
    assert (err.value.line, err.value.field) == (2, "tstamp")


def test_parquet_votes_and_scores(tmp_path: Path, db: Path) -> None:
    votes, scores = tmp_path / "v.parquet", tmp_path / "s.parquet"
    con = duckdb.connect()
    try:
        rel = con.sql(
            "SELECT * FROM (VALUES ('x', 'y', 'model_b', 'hello'), ('y', 'z', 'tie', 'bye')) "
            "t(model_a, model_b, winner, prompt)"
        )
        rel.write_parquet(str(votes))
        rel = con.sql("SELECT * FROM (VALUES (1, 'm', 1.0), (2, 'm', 0.25)) t(instance_id, model, score)")
        rel.write_parquet(str(scores))
    finally:
        con.close()
    assert detect(votes).name == "votes" and detect(scores).name == "scores"
    ingest([votes], "pv", db=db)
    ingest([scores], "ps", db=db)
    assert q(db, "SELECT model_a, winner FROM battles ORDER BY 1") == [
        ("x", "model_b"),
        ("y", "tie"),
    ]
    assert q(db, "SELECT instance_id, score FROM results ORDER BY 1") == [("1", 1.0), ("2", 0.25)]


def test_scores_with_mapping_and_prompts(tmp_path: Path, db: Path) -> None:
    f = write(
        tmp_path / "s.csv",
        "item,system,correct,question\nq1,m1,1,What is 1+1?\nq1,m2,0,What is 1+1?\nq2,m1,0.5,Why?\n",
    )
    opts = {"instance_id": "item", "model": "system", "score": "correct", "prompt": "question"}
    (rep,) = ingest([f], "s", fmt="scores", options=opts, db=db)
    assert (rep.kind, rep.added_results, rep.added_prompts) == ("instances", 3, 2)
    rows = q(
        db,
        "SELECT r.instance_id, r.model, r.score, p.text FROM results r "
        "JOIN prompts p USING (dataset, prompt_id) ORDER BY 1, 2",
    )
    assert rows == [
        ("q1", "m1", 1.0, "What is 1+1?"),
        ("q1", "m2", 0.0, "What is 1+1?"),
        ("q2", "m1", 0.5, "Why?"),
    ]


@pytest.mark.parametrize("value", ["1.5", "-0.1", "abc"])
def test_scores_outside_unit_interval(tmp_path: Path, db: Path, value: str) -> None:
    f = write(tmp_path / "s.csv", f"instance_id,model,score\n1,m,1\n2,m,{value}\n")
    with pytest.raises(InputError) as err:
        ingest([f], "s", db=db)
    assert (err.value.path, err.value.line, err.value.field) == (str(f), 3, "score")
    assert not db.exists()


# --- items + eval_results layout (math-results) ---------------------------------------------


def math_layout(root: Path, results: dict[str, object], n_items: int = 3) -> Path:
    root.mkdir()
    items = [
        {"problem": f"Compute {i}+{i}.", "level": f"Level {i + 1}", "type": "Algebra", "idx": i}
        for i in range(n_items)
    ]
    jsonl(root / "items.jsonl", items)
    for model, values in results.items():
        (root / "eval_results" / model).mkdir(parents=True)
        write(root / "eval_results" / model / "results.json", json.dumps(values, indent=2))
    return root


def test_math_layout_small(tmp_path: Path, db: Path) -> None:
    root = math_layout(tmp_path / "m", {"a": [1, 0, 1], "b": [0, 0, 1]})
    assert detect(root).name == "math-results"
    (rep,) = ingest([root], "m", db=db)
    assert (rep.added_prompts, rep.added_results) == (3, 6)
    assert q(
        db,
        "SELECT r.model, r.instance_id, r.score, p.metadata->>'level' FROM results r "
        "JOIN prompts p USING (dataset, prompt_id) WHERE instance_id = '2' ORDER BY 1",
    ) == [("a", "2", 1.0, "Level 3"), ("b", "2", 1.0, "Level 3")]


def test_math_results_of_wrong_length(tmp_path: Path, db: Path) -> None:
    root = math_layout(tmp_path / "m", {"a": [1, 0, 1], "b": [0, 1]})
    with pytest.raises(InputError) as err:
        ingest([root], "m", db=db)
    msg = str(err.value)
    assert err.value.path.endswith("eval_results/b/results.json")
    assert "2 results" in msg and "3 items" in msg


@pytest.mark.parametrize("bad", [2, "1", None, -1])
def test_math_results_bad_value(tmp_path: Path, db: Path, bad: object) -> None:
    root = math_layout(tmp_path / "m", {"a": [1, bad, 0]})
    with pytest.raises(InputError) as err:
        ingest([root], "m", db=db)
    assert err.value.path.endswith("eval_results/a/results.json")
    assert (err.value.line, err.value.field) == (2, "score")
    assert "position 2" in str(err.value)
    assert not db.exists()


# --- arena-hard / alpaca-eval layouts on small files ----------------------------------------


def test_arena_hard_older_fastchat_layout(tmp_path: Path, db: Path) -> None:
    root = tmp_path / "v0.1"
    (root / "model_answer").mkdir(parents=True)
    jsonl(
        root / "question.jsonl",
        [
            {"question_id": "q1", "category": "c", "turns": [{"content": "Hi?"}]},
            {"question_id": "q2", "category": "c", "turns": ["One.", "Two."]},
        ],
    )
    answers = [
        {"question_id": "q1", "model_id": "m", "choices": [{"turns": [{"content": "Hello."}]}]},
        {"uid": "q2", "model": "m", "messages": [{"role": "assistant", "content": "A"}]},
        {"uid": "q9", "model": "m", "messages": [{"role": "assistant", "content": "?"}]},
        {"uid": "q1", "model": "n", "messages": [{"role": "assistant", "content": {"answer": ""}}]},
    ]
    jsonl(root / "model_answer" / "m.jsonl", answers)
    assert detect(root).name == "arena-hard"
    (rep,) = ingest([root], "ah", db=db)
    assert (rep.added_prompts, rep.added_responses, rep.rows_skipped) == (2, 2, 2)
    assert [s["field"] for s in rep.skipped_examples] == ["uid", "messages"]
    assert q(db, "SELECT text, turns, metadata->>'version' FROM prompts ORDER BY 1") == [
        ("Hi?", 1, "v0.1"),
        ("One.\n\nTwo.", 2, "v0.1"),
    ]
    assert q(db, "SELECT r.text FROM responses r ORDER BY 1") == [("A",), ("Hello.",)]


def test_alpaca_eval_string_preferences_and_annotator_filter(tmp_path: Path, db: Path) -> None:
    folder = tmp_path / "results" / "m2" / "judge_x"
    folder.mkdir(parents=True)
    base = {"generator_1": "m1", "generator_2": "m2", "dataset": "koala", "annotator": "judge_x"}
    recs = [
        {**base, "instruction": f"Q{i}", "output_1": "a", "output_2": "b", "preference": p}
        for i, p in enumerate(["2.0", "1", 1.5, 0, None, "n/a"])
    ]
    write(folder / "annotations.json", json.dumps(recs))
    with pytest.raises(InputError, match="annotator 'other'"):
        ingest([tmp_path / "results"], "a", options={"annotator": "other"}, db=db)
    (rep,) = ingest([tmp_path], "a", options={"annotator": "judge_x"}, db=db)
    assert (rep.format, rep.added_battles, rep.rows_skipped) == ("alpaca-eval", 4, 2)
    assert [(s["line"], s["field"]) for s in rep.skipped_examples] == [
        (5, "preference"),
        (6, "preference"),
    ]
    assert q(db, "SELECT winner, metadata->>'preference' FROM battles ORDER BY 2") == [
        ("tie", "0"),
        ("model_a", "1"),
        ("tie", "1.5"),
        ("model_b", "2.0"),
    ]
