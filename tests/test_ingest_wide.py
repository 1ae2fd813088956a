"""Generic tables without pandas: wide per-instance scores (``--wide``), constants (``--set``),
unknown winner labels, True/False score cells; on small RouteLLM- and Auto-J-style files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import pytest
from helpers import run_cli, table_contents

from pipelines import store
from pipelines.errors import ArenatreeError, InputError, plain
from pipelines.ingest import ingest
from pipelines.ingest.cells import BAD, EMPTY, cell_score
from pipelines.ingest.generic import unknown_label_message
from pipelines.store import reader, run

GPT4, MISTRAL = "gpt-4-1106-preview", "mistral-7b-instruct-v0.2"
# RouteLLM's MMLU files: prompt, then one True/False column per model (an empty cell: no result)
ROUTELLM_ROWS = [
    ("Which gas do plants absorb?\nA. O2\nB. CO2", "True", "True"),
    ("What is 7 * 8?\nA. 54\nB. 56", "True", "False"),
    ("Capital of Australia?\nA. Sydney\nB. Canberra", "False", "False"),
    ("Who wrote Hamlet?\nA. Marlowe\nB. Shakespeare", "True", ""),
    ("What is 7 * 8?\nA. 54\nB. 56", "True", "True"),  # the same question again: another item
]


def q(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    with reader(db) as con:
        return run(con, sql, params)


def write_csv(path: Path, header: list[str], rows: list[tuple]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def routellm_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "mmlu.csv", ["prompt", GPT4, MISTRAL], ROUTELLM_ROWS)


def hand_accuracies(rows: list[tuple]) -> dict[str, tuple[int, float]]:
    """model -> (cells with a result, mean score), counted straight from the rows."""
    out = {}
    for k, model in enumerate((GPT4, MISTRAL), start=1):
        cells = [r[k] for r in rows if r[k] != ""]
        out[model] = (len(cells), sum(c == "True" for c in cells) / len(cells))
    return out


def db_accuracies(db: Path, dataset: str) -> dict[str, tuple[int, float]]:
    rows = q(
        db, "SELECT model, count(*), avg(score) FROM results WHERE dataset = ? GROUP BY model", [dataset]
    )
    return {m: (n, acc) for m, n, acc in rows}


@pytest.mark.slow
def test_routellm_csv_wide_via_cli(tmp_path: Path, db: Path) -> None:
    f = routellm_csv(tmp_path)
    out = run_cli("ingest", str(f), "--dataset", "mmlu", "--format", "scores", "--wide", db=db)
    assert out.returncode == 0, out.stderr
    assert db_accuracies(db, "mmlu") == hand_accuracies(ROUTELLM_ROWS)
    # 5 items (the repeated question is two items), 4 distinct prompt texts
    assert q(db, "SELECT count(DISTINCT instance_id) FROM results") == [(5,)]
    assert q(db, "SELECT count(*) FROM prompts") == [(4,)]
    assert q(db, "SELECT count(*) FROM results WHERE prompt_id IS NULL") == [(0,)]
    # re-importing the same file adds nothing
    again = run_cli("ingest", str(f), "--dataset", "mmlu", "--format", "scores", "--wide", db=db)
    assert again.returncode == 0 and "already imported" in again.stderr


def test_wide_parquet_and_jsonl_booleans(tmp_path: Path, db: Path) -> None:
    records = [
        {"prompt": p, GPT4: {"True": True, "False": False}[a], MISTRAL: {"True": True, "False": False}.get(b)}
        for p, a, b in ROUTELLM_ROWS
    ]
    jl = tmp_path / "mmlu.jsonl"
    jl.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    pq = tmp_path / "mmlu.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_json_auto('{jl}')) TO '{pq}' (FORMAT parquet)")
    assert con.execute(f"SELECT typeof(\"{GPT4}\") FROM '{pq}' LIMIT 1").fetchone() == ("BOOLEAN",)
    con.close()
    expected = hand_accuracies(ROUTELLM_ROWS)
    ingest([jl], "jl", fmt="scores", options={"wide": "1"}, db=db)
    ingest([pq], "pq", fmt="scores", options={"wide": "1"}, db=db)
    assert db_accuracies(db, "jl") == expected
    assert db_accuracies(db, "pq") == expected
    # the same prompt texts give the same item ids whatever the file format
    ids = "SELECT instance_id, model, score FROM results WHERE dataset = ? ORDER BY ALL"
    assert q(db, ids, ["jl"]) == q(db, ids, ["pq"])


def test_wide_with_instance_id_and_words(tmp_path: Path, db: Path) -> None:
    f = write_csv(
        tmp_path / "w.csv",
        ["", "qid", "question", "m1", "m2"],  # a pandas index column first: skipped
        [("0", "a", "Q1?", "yes", "0"), ("1", "b", "Q2?", "no", "1"), ("2", "c", "Q3?", "1.0", "0.5")],
    )
    ingest([f], "w", fmt="scores", options={"wide": "1", "instance_id": "qid", "prompt": "question"}, db=db)
    rows = q(db, "SELECT instance_id, model, score FROM results ORDER BY ALL")
    assert rows == [
        ("a", "m1", 1.0),
        ("a", "m2", 0.0),
        ("b", "m1", 0.0),
        ("b", "m2", 1.0),
        ("c", "m1", 1.0),
        ("c", "m2", 0.5),
    ]


def test_long_scores_accept_true_false(tmp_path: Path, db: Path) -> None:
    f = write_csv(
        tmp_path / "long.csv",
        ["instance_id", "model", "score"],
        [("1", "m", "True"), ("2", "m", "false"), ("3", "m", "YES"), ("4", "m", "0")],
    )
    ingest([f], "l", fmt="scores", db=db)
    assert q(db, "SELECT instance_id, score FROM results ORDER BY 1") == [
        ("1", 1.0),
        ("2", 0.0),
        ("3", 1.0),
        ("4", 0.0),
    ]


def test_long_scores_set_model(tmp_path: Path, db: Path) -> None:
    f = write_csv(tmp_path / "one.csv", ["instance_id", "correct"], [("1", "True"), ("2", "False")])
    ingest([f], "one", fmt="scores", options={"score": "correct", "set:model": "solo"}, db=db)
    assert q(db, "SELECT instance_id, model, score FROM results ORDER BY 1") == [
        ("1", "solo", 1.0),
        ("2", "solo", 0.0),
    ]


def test_cell_scores() -> None:
    import numpy as np

    assert [
        cell_score(v) for v in (True, False, "True", " no ", "1", 0, np.int64(1), np.bool_(True), 0.25)
    ] == [
        1.0,
        0.0,
        1.0,
        0.0,
        1.0,
        0.0,
        1.0,
        1.0,
        0.25,
    ]
    assert [cell_score(v) for v in (None, "", float("nan"))] == [EMPTY] * 3
    assert [cell_score(v) for v in ("maybe", 2, "-0.5", "nan", "inf")] == [BAD] * 5
    assert repr(plain(np.int64(2))) == "2" and repr(plain(np.str_("a"))) == "'a'"


# -- errors ---------------------------------------------------------------------------------------


def test_bad_cell_names_line_and_column(tmp_path: Path, db: Path) -> None:
    rows = [*ROUTELLM_ROWS[:2], ("Q3?", "True", "maybe")]
    f = write_csv(tmp_path / "bad.csv", ["prompt", GPT4, MISTRAL], rows)
    with pytest.raises(InputError) as e:
        ingest([f], "bad", fmt="scores", options={"wide": "1"}, db=db)
    # line 1 is the header; the two 3-line prompts take lines 2-4 and 5-7
    assert (
        str(e.value)
        == f"{f}:8: field '{MISTRAL}': score 'maybe' is not true/false, yes/no, 1/0 or a number in [0, 1]"
    )
    assert "\n" not in str(e.value)


def test_bad_cell_in_parquet_says_record(tmp_path: Path, db: Path) -> None:
    pq = tmp_path / "s.parquet"
    con = duckdb.connect()
    con.execute(
        "COPY (SELECT * FROM (VALUES ('q1', 1, 0), ('q2', 2, 1)) t(prompt, m1, m2)) "
        f"TO '{pq}' (FORMAT parquet)"
    )
    con.close()
    with pytest.raises(InputError) as e:
        ingest([pq], "p", fmt="scores", options={"wide": "1"}, db=db)
    assert (
        str(e.value)
        == f"{pq}: record 2: field 'm1': score 2 is not true/false, yes/no, 1/0 or a number in [0, 1]"
    )
    assert "np." not in str(e.value)


def test_wide_refuses_model_mapping_and_set(tmp_path: Path, db: Path) -> None:
    f = routellm_csv(tmp_path)
    with pytest.raises(ArenatreeError, match="every column not mapped is a model"):
        ingest([f], "x", fmt="scores", options={"wide": "1", "model": GPT4}, db=db)
    with pytest.raises(ArenatreeError, match="takes no constant here"):
        ingest([f], "x", fmt="scores", options={"wide": "1", "set:model": "m"}, db=db)


def test_wide_needs_an_item_column(tmp_path: Path, db: Path) -> None:
    f = write_csv(tmp_path / "n.csv", ["m1", "m2"], [("True", "False")])
    with pytest.raises(InputError, match="needs an item column: instance_id or prompt"):
        ingest([f], "x", fmt="scores", options={"wide": "1"}, db=db)


def test_nothing_half_written_after_an_error(tmp_path: Path, db: Path) -> None:
    good = routellm_csv(tmp_path)
    ingest([good], "mmlu", fmt="scores", options={"wide": "1"}, db=db)
    with store.writer(db) as con:
        before = table_contents(con)
    other = write_csv(tmp_path / "other.csv", ["prompt", "m3"], [("New question?", "True")])
    bad = write_csv(tmp_path / "z_bad.csv", ["prompt", "m3"], [("Another?", "True"), ("Last?", "perhaps")])
    out = run_cli("ingest", str(other), str(bad), "--dataset", "mmlu", "--format", "scores", "--wide", db=db)
    assert out.returncode != 0
    assert f"{bad}:3: field 'm3': score 'perhaps'" in out.stderr
    with store.writer(db) as con:
        assert table_contents(con) == before


# -- label-only pairwise files (Auto-J) ----------------------------------------------------------

# Auto-J's pairwise test set: label 0 (response 1 better), 1 (response 2 better), 2 (tie)
AUTOJ_ROWS = [
    ("Write a haiku.", "Leaves fall...", "Autumn...", 0),
    ("Sum 2 and 2.", "4", "5", 0),
    ("Name a colour.", "red", "Blue.", 1),
    ("Translate 'hi'.", "hola", "salut", 2),
    ("Explain gravity.", "It pulls.", "Mass attracts mass.", 1),
    ("Say hello.", "Hello", "Hi", 0),
]
AUTOJ_ARGS = ("--set", "model_a=resp-1", "--set", "model_b=resp-2", "--map", "winner=label")


def autoj_jsonl(tmp_path: Path) -> Path:
    f = tmp_path / "autoj_pairwise.jsonl"
    keys = ("prompt", "response 1", "response 2", "label")
    f.write_text(
        "".join(json.dumps(dict(zip(keys, r, strict=True))) + "\n" for r in AUTOJ_ROWS), encoding="utf-8"
    )
    return f


def test_autoj_label_only_via_cli(tmp_path: Path, db: Path) -> None:
    f = autoj_jsonl(tmp_path)
    out = run_cli(
        "ingest", str(f), "--dataset", "autoj", "--format", "votes", *AUTOJ_ARGS,
        "--map", "response_a=response 1", "--map", "response_b=response 2",
        "--set", "judge=gpt-4", "--set", "judge_kind=llm",
        "--winner-labels", "0=model_a,1=model_b,2=tie",
        db=db,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    counts = {w: sum(r[3] == k for r in AUTOJ_ROWS) for k, w in enumerate(("model_a", "model_b", "tie"))}
    rows = q(db, "SELECT winner, count(*) FROM battles GROUP BY winner")
    assert dict(rows) == counts == {"model_a": 3, "model_b": 2, "tie": 1}
    assert q(db, "SELECT DISTINCT model_a, model_b, judge, judge_kind FROM battles") == [
        ("resp-1", "resp-2", "gpt-4", "llm")
    ]
    assert q(db, "SELECT count(*) FROM prompts") == [(len(AUTOJ_ROWS),)]


def test_unknown_label_lists_labels_and_spec(tmp_path: Path, db: Path) -> None:
    f = autoj_jsonl(tmp_path)
    out = run_cli("ingest", str(f), "--dataset", "autoj", "--format", "votes", *AUTOJ_ARGS, db=db)
    assert out.returncode != 0
    err = out.stderr.strip().splitlines()[-1]
    assert f"{f}:1: field 'winner': unknown winner label '0' (labels seen: 0, 1, 2)" in err
    assert "--winner-labels 0=model_a,1=model_b,2=tie" in err
    assert "np." not in out.stderr
    assert not db.exists() or q(db, "SELECT count(*) FROM battles") == [(0,)]


def test_unknown_label_from_parquet_ints_is_plain(tmp_path: Path, db: Path) -> None:
    pq = tmp_path / "l.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM (VALUES (1), (2), (1)) t(label)) TO '{pq}' (FORMAT parquet)")
    con.close()
    opts = {"set:model_a": "x", "set:model_b": "y", "winner": "label", "winner_labels": "1=model_a"}
    with pytest.raises(InputError) as e:
        ingest([pq], "l", fmt="votes", options=opts, db=db)
    msg = str(e.value)
    assert msg.startswith(f"{pq}: record 2: field 'winner': unknown winner label '2' (labels seen: 1, 2)")
    assert msg.endswith("--winner-labels 1=model_a,2=model_b") and "np." not in msg


def test_unknown_label_message_many_labels() -> None:
    seen = [str(i) for i in range(30)]
    msg = unknown_label_message("7", seen, {})
    assert "0, 1, 2," in msg and "(30 labels)" in msg and "\n" not in msg


@pytest.mark.slow
def test_set_for_a_mapped_field_is_an_error(tmp_path: Path, db: Path) -> None:
    f = autoj_jsonl(tmp_path)
    out = run_cli(
        "ingest", str(f), "--dataset", "a", "--format", "votes", "--map", "model_a=prompt",
        "--set", "model_a=x", "--set", "model_b=y", "--map", "winner=label", db=db,
    )  # fmt: skip
    assert out.returncode != 0
    assert "model_a is given twice, by --map model_a=prompt and by --set model_a=x" in out.stderr
    with pytest.raises(ArenatreeError, match="judge_kind is given twice, by --judge-kind human"):
        ingest([f], "a", fmt="votes", options={"judge_kind": "human", "set:judge_kind": "llm"}, db=db)
    with pytest.raises(ArenatreeError, match="response_a takes no constant here"):
        ingest([f], "a", fmt="votes", options={"set:response_a": "x"}, db=db)
    bad = run_cli("ingest", str(f), "--dataset", "a", "--set", "model_a", db=db)
    assert bad.returncode != 0 and "expected FIELD=VALUE" in bad.stderr


def test_judge_kind_option_is_not_a_column_mapping(tmp_path: Path, db: Path) -> None:
    f = autoj_jsonl(tmp_path)
    opts = {"set:model_a": "x", "set:model_b": "y", "winner": "label", "judge_kind": "llm"}
    ingest([f], "k", fmt="votes", options={**opts, "winner_labels": "0=model_a,1=model_b,2=tie"}, db=db)
    assert q(db, "SELECT DISTINCT judge_kind FROM battles") == [("llm",)]
