"""The offline annotator keeps a long prompt's question; ``tree build`` says what texts are missing."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from helpers import run_cli

from pipelines.tree.base import (
    OFFLINE_CAPABILITY_CHARS,
    OfflineAnnotator,
    needs_question_mode,
    offline_annotator,
    shared_heads,
)
from pipelines.tree.build import missing_texts_hint
from pipelines.tree.digest import SEPARATOR, digest, flat

PASSAGE = " ".join(
    f"Sentence {i} of the passage tells how the river town grew around its mill and its bridge."
    for i in range(12)
)  # about 1,100 characters, shared by every item below
QUESTIONS = [
    "What is the main idea of the passage?",
    "Why was the bridge built, according to the passage?",
    "Which word best describes the town's attitude towards the mill?",
    "What happened to the mill at the end of the passage?",
]


def reading_items() -> list[str]:
    """MMLU/RACE-style items: one shared passage, a blank line, then each item's own question."""
    return [f"{PASSAGE}\n\n{q}" for q in QUESTIONS]


def test_shared_passage_items_keep_their_questions() -> None:
    caps = offline_annotator(reading_items()).annotate(reading_items())
    assert len(set(caps)) == len(QUESTIONS)  # the head alone would make them one text
    assert len({flat(t)[:OFFLINE_CAPABILITY_CHARS] for t in reading_items()}) == 1
    for cap, question in zip(caps, QUESTIONS, strict=True):
        assert question in cap
        assert cap.startswith("Sentence 0 of the passage")  # plus a sample of the passage
        assert len(cap) <= OFFLINE_CAPABILITY_CHARS


def test_options_after_the_question_line() -> None:
    stems = ["The author mentions the mill in order to", "The passage suggests that the bridge"]
    options = "\nA. praise it\nB. mock it\nC. date the town\nD. explain its name"
    items = [f"{PASSAGE}\n{s}{options}" for s in stems]
    caps = [digest(t, 500) for t in items]
    assert caps[0] != caps[1]
    for cap, stem in zip(caps, stems, strict=True):
        assert f"{SEPARATOR}{stem} A. praise it" in cap and len(cap) <= 500


def test_short_and_unstructured_prompts_are_their_head() -> None:
    short = "What is 2 + 2?\n\nShow your work."
    assert digest(short, 500) == "What is 2 + 2? Show your work."
    one_block = "word " * 300  # no question, no paragraphs
    assert digest(one_block, 500) == flat(one_block)[:500]
    code = "Fix this?\n\n" + "x = compute(a, b); y = [i for i in range(10)]\n" * 30 + "\n\nprint(x);"
    assert digest(code, 500) == flat(code)[:500]  # the question is the first line, in the head
    long_question = PASSAGE + "\n\nWhy " + "really " * 200 + "?"
    cap = digest(long_question, 500)
    assert len(cap) <= 500 and f"{SEPARATOR}Why really" in cap


def test_question_mode_only_where_heads_collide() -> None:
    """Head-only stays the default (its cache and trees unchanged); a dataset whose items share
    their head gets the question mode, named so the two modes' cached texts never mix."""
    distinct = [f"Problem {i}: " + "x " * 400 + f"Why {i}?" for i in range(200)]
    assert shared_heads(distinct) == 0 and not needs_question_mode(distinct)
    assert offline_annotator(distinct).name == f"offline:{OFFLINE_CAPABILITY_CHARS}"
    assert OfflineAnnotator().annotate(distinct) == [flat(t)[:OFFLINE_CAPABILITY_CHARS] for t in distinct]
    mixed = distinct + reading_items()
    assert shared_heads(mixed) == len(QUESTIONS) and needs_question_mode(mixed)
    assert offline_annotator(mixed).name == f"offline:{OFFLINE_CAPABILITY_CHARS}:question"
    # one pair in 10,000 distinct texts is below the 1% share: not worth changing every text
    assert not needs_question_mode([f"item {i}" for i in range(10_000)] + reading_items()[:2])


@pytest.mark.slow
def test_tree_build_keeps_shared_passage_items_apart(tmp_path: Path, db: Path) -> None:
    """End to end: a reading-comprehension dataset builds in question mode, every item keeps its
    own capability text, and routing the built tree recreates the same annotator."""
    import json

    from pipelines import store
    from pipelines.tree.build import backends_for, build_tree

    rows = [{"prompt": t, "model_a": "m1", "model_b": "m2", "winner": "model_a"} for t in reading_items()]
    rows += [
        {"prompt": f"Short question {i} about arithmetic?", "model_a": "m1", "model_b": "m2", "winner": "tie"}
        for i in range(20)
    ]
    f = tmp_path / "votes.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = run_cli("ingest", str(f), "--dataset", "reading", "--format", "votes", db=db)
    assert out.returncode == 0, out.stderr
    tree = build_tree("reading", db=db)
    assert tree["annotator"] == f"offline:{OFFLINE_CAPABILITY_CHARS}:question"
    with store.reader(db) as con:
        ann, _ = backends_for(tree)
        caps = con.execute(
            "SELECT DISTINCT a.capability FROM annotations a WHERE a.annotator = ?", [tree["annotator"]]
        ).fetchall()
    assert ann.name == tree["annotator"]
    kept = [c for (c,) in caps if c.startswith("Sentence 0")]
    assert len(kept) == len(QUESTIONS) and all(any(q in c for c in kept) for q in QUESTIONS)


def test_hint_names_what_is_missing_for_the_format() -> None:
    assert "--map prompt=COLUMN" in missing_texts_hint(["scores"])
    assert "clean_battle files carry no prompt text" in missing_texts_hint(["clean-battle"])
    assert "clean_battle" not in missing_texts_hint(["scores"])


@pytest.mark.slow
def test_tree_build_hint_for_scores_without_prompts(tmp_path: Path, db: Path) -> None:
    f = tmp_path / "scores.csv"
    with open(f, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["instance_id", "m1", "m2"], ["a", "True", "False"], ["b", "no", "yes"]])
    out = run_cli("ingest", str(f), "--dataset", "s", "--format", "scores", "--wide", db=db)
    assert out.returncode == 0, out.stderr
    out = run_cli("tree", "build", "--dataset", "s", db=db)
    assert out.returncode != 0
    assert "dataset 's' has 0 prompt texts; a tree needs at least 2" in out.stderr
    assert "--map prompt=COLUMN" in out.stderr and "clean_battle" not in out.stderr
