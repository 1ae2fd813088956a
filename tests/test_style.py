"""Style features computed in DuckDB agree with FastChat's own Python counting."""

from __future__ import annotations

import random
import re

import duckdb
import pytest

from pipelines.style import response_features_sql


def fastchat_counts(text: str) -> tuple[int, int, int]:
    """FastChat's count_markdown_elements after removing ```code``` blocks (reference)."""
    for block in re.compile(r"```[^`]*```").findall(text):
        text = text.replace(block, "")
    headers = sum(len(re.findall(rf"^#{{{i}}}\s", text, re.MULTILINE)) for i in range(1, 7))
    lists = len(re.findall(r"^\s*\d+\.\s", text, re.MULTILINE)) + len(
        re.findall(r"^\s*[-*+]\s", text, re.MULTILINE)
    )
    bold = len(re.findall(r"\*\*[^*\n]+\*\*", text)) + len(re.findall(r"__[^_\n]+__", text))
    return headers, lists, bold


def features(texts: list[str]) -> list[tuple]:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, text VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(texts)))
    return con.execute(f"SELECT {response_features_sql('text')} FROM t ORDER BY i").fetchall()


PIECES = [
    "# Title",
    "## Sub",
    "###### deep",
    "####### seven",
    "#nospace",
    "1. first",
    "  2. second",
    "10. tenth",
    "- dash",
    "* star",
    "+ plus",
    "-notalist",
    "**bold**",
    "__under__",
    "**a** and **b**",
    "**multi\nline**",
    "plain words here",
    "```python\n# comment\n- not a list\n**x**\n```",
    "",
    "    - indented",
    "1.no space",
    "text with __two__ and __three__",
    "* **bold item**",
]


def test_markdown_counts_match_fastchat_on_random_documents():
    rng = random.Random(7)
    docs = ["\n".join(rng.choice(PIECES) for _ in range(rng.randint(1, 25))) for _ in range(400)]
    got = [row[1:4] for row in features(docs)]
    want = [fastchat_counts(d) for d in docs]
    assert got == want
    assert sum(g[0] for g in got) > 100 and sum(g[1] for g in got) > 100  # the sample exercises them


def test_token_count_is_cl100k_pretokenisation():
    # hand-split by cl100k_base's pre-tokeniser
    (row,) = features(["hello world, it's 12345 tokens"])
    assert row[0] == 9  # hello| world|,| it|'s| |123|45| tokens


@pytest.mark.parametrize(
    "text, refusal",
    [
        ("I'm sorry, but I can't help with that request.", True),
        ("I cannot assist with creating malware.", True),
        ("As an AI language model, I cannot provide medical advice.", True),
        ("Sorry, I won't write that.", True),
        ("I'm unable to provide instructions for that.", True),
        ("I cannot believe how well this works!", False),
        ("I'm sorry to hear that. Here are five ways to feel better: ...", False),
        ("Sure! Here is the poem you asked for.", False),
        ("Here is the code.\n\nI'm sorry, but I cannot guarantee it compiles.", False),
    ],
)
def test_refusal_heuristic(text, refusal):
    assert features([text])[0][4] is refusal


@pytest.mark.parametrize(
    "text, leak",
    [
        ("I am ChatGPT, a model trained by OpenAI.", True),
        ("As Claude, made by Anthropic, I ...", True),
        ("I'm an assistant built on Llama 2.", True),
        ("The capital of France is Paris.", False),
        ("The palmtree grows in the sun.", False),  # whole words only
    ],
)
def test_identity_leak(text, leak):
    assert features([text])[0][5] is leak
