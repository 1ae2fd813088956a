"""Untrusted text at the edges: what a file may hold and what is stored, counts typed in URLs, and
what the terminal is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import load, open_app_page, run_cli, topic_batch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import store
from pipelines.errors import InputError
from pipelines.ingest import ingest, read
from pipelines.ingest.load import validate_batch
from pipelines.text import clean_text, parse_count, terminal_safe

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=ANY_TEXT, model=ANY_TEXT)
def test_any_json_text_is_refused_in_one_line_or_stored_clean(
    tmp_path: Path, prompt: str, model: str
) -> None:
    """Whatever a JSON file spells (lone surrogates, NULs, escapes, padded names), reading it
    either refuses the file naming the field, or yields texts without NUL or lone surrogate and
    trimmed names."""
    path = tmp_path / "votes.jsonl"
    rows = [
        {"model_a": model, "model_b": "other", "winner": "model_a", "judge": "u1", "prompt": prompt or "x"},
        {"model_a": "other", "model_b": "third", "winner": "tie", "judge": "u1", "prompt": "fine"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="ascii")  # \\u escapes
    try:
        batch = read(path, "votes", {"prompt_text": "prompt"})
        validate_batch(batch)
    except InputError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    battles = batch.battles
    for text in battles["prompt_text"]:
        assert text == clean_text(text) and "\x00" not in text
        text.encode("utf-8")  # storable: no lone surrogate left
    assert battles["model_a"][0] == clean_text(model).strip()  # a lone surrogate is U+FFFD, as in texts
    assert battles["model_a"][0] != battles["model_b"][0]


def test_names_are_trimmed_and_control_characters_refused(db: Path, tmp_path: Path) -> None:
    rows = [{"model_a": "m1", "model_b": "m1 ", "winner": "model_a", "judge": "u", "prompt": "hi"}]
    same = tmp_path / "same.jsonl"
    same.write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(InputError, match="same model 'm1'"):  # 'm1 ' is 'm1'
        ingest([same], "d", fmt="votes", options={"prompt_text": "prompt"}, db=db)
    for bad in ("m1\x1b[2J", "m\n2", "m\x00"):
        path = tmp_path / "bad.jsonl"
        path.write_text(json.dumps({**rows[0], "model_a": bad, "model_b": "m2"}) + "\n")
        with pytest.raises(InputError, match=r"bad.jsonl:1: field 'model_a': .*control character"):
            ingest([path], "d", fmt="votes", options={"prompt_text": "prompt"}, db=db)
    assert not db.exists()  # refused before anything was written


def test_surrogates_and_nuls_in_texts_are_stored_cleaned(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "v.jsonl"
    path.write_text(
        '{"model_a":"m1","model_b":"m2","winner":"model_a","judge":"u","prompt":"a \\ud800 b \\u0000 c"}\n'
    )
    ingest([path], "d", fmt="votes", options={"prompt_text": "prompt"}, db=db)
    with store.reader(db) as con:
        assert con.execute("SELECT text FROM prompts").fetchall() == [("a \ufffd b  c",)]


def test_conflicting_duplicate_scores_are_refused_before_any_write(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    path.write_text("instance_id,model,score\n1,m1,1\n1,m1,0\n2,m1,1\n")
    with pytest.raises(
        InputError, match=r"scores.csv:3: field 'score': instance '1' of model 'm1' has conflicting"
    ):
        ingest([path], "d", fmt="scores", db=db)
    assert not db.exists()


def test_counts_are_ascii_digits_only() -> None:
    assert [parse_count(x) for x in ("0", "12", " 7 ", "²", "١٢", "-1", "1e3", "", "٣")] == [
        0, 12, 7, None, None, None, None, None, None
    ]  # fmt: skip


@pytest.mark.slow
def test_pages_ignore_unicode_digits_in_the_url(db: Path, monkeypatch) -> None:
    load(db, "topics", [topic_batch(24)])
    values = {"node": "²", "rounds": "²", "min_votes": "²", "w": "²:1", "finding": "²"}
    for page in ("views/leaderboard.py", "views/tree.py", "views/audit.py", "views/reports.py"):
        at = open_app_page(db, monkeypatch, page, dataset="topics", **values)  # fails on an error box
        assert at.title


@pytest.mark.slow
def test_the_terminal_never_gets_a_control_character(db: Path) -> None:
    load(db, "topics", [topic_batch(12)])
    with store.writer(db) as con:  # a name stored by an older arenatree, before names were checked
        con.execute("UPDATE battles SET model_a = 'evil\x1b]0;owned\x07\x1b[2J' WHERE model_a = 'gpt-4o'")
    out = run_cli("leaderboard", "--dataset", "topics", db=db)
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    assert "evil\\x1b]0;owned\\x07\\x1b[2J" in out.stdout  # shown, as an escape
    assert terminal_safe("ok\n\ttab\rline") == "ok\n\ttab\rline"
