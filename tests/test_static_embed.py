"""The static embedder distilled from the bundled MiniLM: the distillation is cached and
deterministic, a text's vector is the normalised mean of its word pieces' rows, it keeps
meaning apart, and ``tree build --embedder static`` builds and routes like any embedder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

from pipelines.tree import static_embed as S

pytestmark = pytest.mark.slow  # the whole module: its fixtures are the slow part


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("static-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("ARENATREE_CACHE", str(folder))
    yield folder
    mp.undo()


@pytest.fixture(scope="module")
def embedder(cache) -> S.StaticMiniLMEmbedder:
    emb = S.StaticMiniLMEmbedder()
    emb.embed(["distil once"])
    return emb


def test_distilled_once_cached_and_reloaded_equal(embedder, cache):
    (file,) = list(cache.glob("static-minilm-l6-v2-256-*.npy"))
    table = np.load(file)
    assert table.shape == (embedder._tok.vocab_size, S.DIM) and np.isfinite(table).all()
    again = S.StaticMiniLMEmbedder()
    texts = ["Solve 2x + 3 = 7 for x.", "Écris un poème sur la mer.", ""]
    np.testing.assert_array_equal(again.embed(texts), embedder.embed(texts))  # from the cache file


def test_vector_is_the_normalised_mean_of_its_pieces(embedder):
    text = "Find all real roots of the quadratic x^2 - 5x + 6."
    ids = embedder._tok(text, add_special_tokens=False)["input_ids"]
    mean = embedder._table[ids].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(embedder.embed([text])[0], mean / np.linalg.norm(mean), rtol=1e-5, atol=1e-6)
    got = embedder.embed([text, "", "   "])
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)  # empty texts too


def test_keeps_topics_apart(embedder):
    algebra = ["Solve the linear equation 3x - 4 = 11.", "Find x if 5x + 2 = 17.", "Solve 7 - 2x = 1 for x."]
    poems = [
        "Write a poem about autumn leaves.",
        "Compose a short poem about the sea.",
        "Write a haiku about rain.",
    ]
    X = embedder.embed(algebra + poems)
    sim = X @ X.T
    within = np.mean([sim[i, j] for g in (range(3), range(3, 6)) for i in g for j in g if i != j])
    across = sim[:3, 3:].mean()
    assert within > across + 0.15, (within, across)


def test_tree_build_and_route_with_the_static_embedder(cache, tmp_path):
    db = tmp_path / "arenatree.duckdb"
    topics = {
        "algebra": "Solve the equation {i}x + 3 = {j} for x.",
        "poetry": "Write a short poem about the colour number {i} and the sea {j}.",
        "code": "Write a Python function that returns the {i}th Fibonacci number modulo {j}.",
    }
    rows = [
        {"prompt": t.format(i=i, j=i + 7), "model_a": "m1", "model_b": "m2", "winner": "model_a"}
        for t in topics.values()
        for i in range(20)
    ]
    f = tmp_path / "votes.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    env = {"ARENATREE_CACHE": str(cache)}
    assert run_cli("ingest", str(f), "--dataset", "mix", "--format", "votes", db=db, env=env).returncode == 0
    out = run_cli("tree", "build", "--dataset", "mix", "--embedder", "static", db=db, env=env)
    assert out.returncode == 0, out.stderr
    listed = run_cli("tree", "list", "--dataset", "mix", "--json", db=db, env=env)
    (tree,) = json.loads(listed.stdout)
    assert tree["embedder"].startswith("static-minilm-l6-v2:256:") and tree["n_items"] == 60
    routed = run_cli(
        "tree", "route", "Solve 4x + 3 = 19 for x.", "--dataset", "mix", "--json", db=db, env=env
    )
    assert routed.returncode == 0, routed.stderr
    assert "Solve 4x + 3 = 19" in routed.stdout
