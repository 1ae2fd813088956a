"""Offline capability names: markup never reaches a name, names read as skills, siblings differ,
and on every bundled tree the names are clean and pick out their own prompts.

The junk vocabulary that judges names (:mod:`pipelines.tree.name_quality`) is written apart from
the namer's own filters, so a filter that stops working shows here.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from conftest import BUNDLED_DATASETS
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import store
from pipelines.tree.describe import subtree_end
from pipelines.tree.embed import MiniLMEmbedder
from pipelines.tree.language import language_of
from pipelines.tree.markup import plain_segments
from pipelines.tree.name_quality import is_keyword_list, junk_tokens, membership_auc, sibling_clashes
from pipelines.tree.naming import capability_names, distinct_names
from pipelines.tree.phrases import item_phrases
from pipelines.tree.read import resolve_tree, tree_nodes


def test_markup_is_dropped_and_its_meaning_kept() -> None:
    text = (
        "Find $\\frac{1}{2} + \\sqrt{3}$ and the determinant of $\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 "
        '\\end{pmatrix}$. [asy] draw((0,0)--(1,1)); label("$A$", (0,0)); [/asy] See '
        "https://example.com/a?b=1 or run `print(x)`.\n```python\ndef f(x):\n    return x\n```\n"
        "#include <stdio.h>\nint main() { return 0; }\nExpress your answer as a common fraction."
    )
    plain = plain_segments(text)
    words = {w.lower() for seg in plain.segments for w in seg}
    for junk in ("frac", "sqrt", "pmatrix", "begin", "draw", "label", "https", "example", "print", "def"):
        assert junk not in words
    assert not any(ch.isdigit() for w in words for ch in w)
    assert {"fractions", "square roots", "matrices", "diagrams", "code"} <= set(plain.concepts)
    assert "common" not in words  # the answer-format instruction is not what the problem is about
    assert ["Find"] in plain.segments and ["and", "the", "determinant", "of"] in plain.segments


def test_prompt_phrases_task_and_object() -> None:
    it = item_phrases("Can you write a Python function that reverses a list of strings?")
    assert it.task == "write" and "python function" in it.objects
    assert {"python function", "strings"} <= it.topics
    assert "list of strings" not in it.topics  # a general noun ("list", "number") is not the topic
    assert it.after_article["python"] and it.after_article["function"]  # "a Python function"
    it = item_phrases("How many positive three-digit integers are divisible by 7?")
    assert it.task == "count" and it.asked and "three-digit integers" in it.topics
    assert "positive" in it.modifying  # it modifies the next word: never a name's last word
    assert item_phrases("Solve for $x$: $2x + 3 = 7$.").notation


def test_languages_other_than_english() -> None:
    assert language_of("làm bài tập này theo nguyên lí thống kê biết là phân phối chuẩn") == "Vietnamese"
    assert language_of("Напиши функцию на Python, которая сортирует список чисел по убыванию") == "Russian"
    assert language_of("用中文写一首关于春天的诗") == "Chinese"
    assert language_of("Write a short poem about the sea and the ships that sail on it at night") is None
    assert language_of("Solve 2x + 3 = 7.") is None  # too short to judge


def fake_embed(phrases) -> np.ndarray:
    """Deterministic unit vectors from a hash (for properties about words, not meaning)."""
    out = np.array(
        [np.frombuffer(hashlib.sha256(p.encode()).digest(), dtype=np.uint8)[:16] for p in phrases], float
    )
    out = out - 127.5
    return out / np.linalg.norm(out, axis=1, keepdims=True)


FRAGMENTS = st.sampled_from(
    [
        "\\frac{a}{b}",
        "$x^2 + \\sqrt{y}$",
        "\\mathbf{v}",
        "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
        "[asy] draw((0,0)--(1,1)); [/asy]",
        "```\ndef f(x):\n    return self.x\n```",
        "import numpy as np",
        "print(lambda x: x)",
        "https://www.example.org/page",
        "var x = 3;",
        "x = 42",
        "A B C",
        "Find the area of the triangle",
        "Write a story about a dragon",
        "How many integers are there",
        "12345",
        "ABC",
        "\\left( \\right)",
        "the end",
    ]
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(FRAGMENTS, min_size=1, max_size=6).map(" ".join), min_size=6, max_size=14))
def test_no_prompt_can_put_markup_into_a_name(prompts: list[str]) -> None:
    labels = np.array([1 + i % 2 for i in range(len(prompts))])
    parent = np.array([-1, 0, 0])
    centroids = fake_embed(["root", "left", "right"])
    names, keywords = capability_names(prompts, labels, parent, centroids, fake_embed)
    for name in names:
        assert not junk_tokens(name) and not is_keyword_list(name), name
    for phrase in (p for words in keywords for p in words):
        assert not junk_tokens(phrase), phrase


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def test_clear_groups_get_skill_names(minilm: MiniLMEmbedder) -> None:
    groups = {
        "equations": [
            "Solve the system of linear equations $2x+3y=5$ and $x-y=1$.",
            "Solve the system of linear equations $x+y=10$, $x-y=2$ for $x$ and $y$.",
            "Solve a system of linear equations: $3a+b=7$, $a-2b=0$.",
            "Solve a system of linear equations with three unknowns: $x+y+z=6$, $x-y=0$, $z=2$.",
        ],
        "code": [
            "Write a Python function that reverses a list of strings.",
            "Write a Python function to check whether a number is prime.",
            "Write a python function that merges two sorted lists.",
            "Write a Python function which counts the vowels in a string.",
        ],
        "french": [
            "Translate the following sentence into French: I love the sea.",
            "Translate into French: Where is the train station?",
            "Please translate this paragraph into French: The weather is nice today.",
            "Translate the phrase 'good morning, friends' into French.",
        ],
        "chinese": ["请解释一下量子计算的基本原理。", "用中文写一首关于春天的诗。", "什么是机器学习？"],
    }
    texts = [t for group in groups.values() for t in group]
    labels = np.repeat(np.arange(1, len(groups) + 1), [len(g) for g in groups.values()])
    parent = np.array([-1] + [0] * len(groups))
    X = minilm.embed(texts)
    centroids = np.stack([X.mean(0)] + [X[labels == k].mean(0) for k in range(1, len(groups) + 1)])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    names, keywords = capability_names(texts, labels, parent, centroids, minilm.embed)

    assert names[1] == "Solving systems of linear equations"  # "a system of" twice: counted, plural
    assert names[2] == "Writing python functions"
    assert names[3] == "Translating text into French"
    assert names[4] == "Responding to prompts written in Chinese"
    assert any("of linear equations" in k for k in keywords[1])
    assert sibling_clashes(names, parent) == 0


def test_siblings_and_parent_never_share_a_name() -> None:
    parent = np.array([-1, 0, 0, 0, 1])
    candidates = [["writing code"], ["writing code", "debugging code"], ["writing code"], ["writing code"]]
    candidates.append(["debugging code", "writing code"])
    keywords = [[], ["bugs"], ["sql"], [], []]
    names = distinct_names(candidates, keywords, parent)
    assert names[0] == "Writing code" and names[1] == "Debugging code"  # the parent's name is taken
    assert names[2] == "Writing code: sql"  # its own keyword sets it apart
    assert names[3] == "Writing code (second group)"  # nothing else left: counted in words
    assert names[4] == "Writing code"  # a child must differ from its parent, not from its uncles
    assert sibling_clashes(names, parent) == 0


@pytest.mark.parametrize("dataset", BUNDLED_DATASETS)
def test_bundled_tree_names_read_as_capabilities(bundled_db, dataset: str, minilm: MiniLMEmbedder) -> None:
    """Every bundled tree: at most 1% of names hold a junk token, none is a keyword list,
    siblings differ, and a name is closer to its own prompts than to others (AUC well above
    chance, as good as the old keyword lists or better)."""
    from conftest import dataset_embeddings

    with store.reader(bundled_db) as con:
        tree_id = resolve_tree(con, dataset)
        nodes = tree_nodes(con, tree_id)
        members = con.execute(
            "SELECT prompt_id, node_id FROM node_members WHERE tree_id = ? ORDER BY prompt_id", [tree_id]
        ).df()
    names = nodes["description"].tolist()
    parent = nodes["parent_id"].fillna(-1).astype(int).to_numpy()
    inner = [n for n, p in zip(names, parent, strict=True) if p >= 0]
    junk = [n for n in inner if junk_tokens(n) or is_keyword_list(n)]
    assert len(junk) <= 0.01 * len(inner), junk[:10]
    assert not any(is_keyword_list(n) for n in names)
    assert sibling_clashes(names, parent) == 0

    X, items = dataset_embeddings(bundled_db, dataset)
    leaf = members.set_index("prompt_id").loc[items["prompt_id"], "node_id"].to_numpy()
    end = subtree_end(parent)
    member = (leaf[None, :] >= np.arange(len(parent))[:, None]) & (leaf[None, :] < end[:, None])
    auc = membership_auc(minilm.embed(names), X, member)
    assert auc > 0.8, auc
