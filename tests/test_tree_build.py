"""Tree builds on the real bundled data: stored shape, caching, determinism, routing, CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import BUNDLED_DATASETS
from helpers import load, pairwise_batch, run_cli

from pipelines import store
from pipelines.errors import ArenatreeError
from pipelines.tree.build import build_tree
from pipelines.tree.read import list_trees, node_items, resolve_tree, show_tree, tree_nodes

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("dataset", BUNDLED_DATASETS)
def test_every_bundled_dataset_has_a_consistent_tree(bundled_db, dataset):
    out = run_cli("tree", "show", "--dataset", dataset, "--json", db=bundled_db)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    nodes = {n["node_id"]: n for n in doc["nodes"]}
    with store.reader(bundled_db) as con:
        n_items = con.execute("SELECT count(*) FROM prompts WHERE dataset = ?", [dataset]).fetchall()[0][0]
    root = nodes[0]
    assert root["parent_id"] is None and root["size"] == n_items and root["path"] == "0"
    for n in nodes.values():
        assert n["description"].strip()
        kids = [c for c in nodes.values() if c["parent_id"] == n["node_id"]]
        assert len(kids) == n["n_children"]
        if kids:  # sizes add up; paths extend the parent's
            assert sum(c["size"] for c in kids) == n["size"]
            assert all(c["path"].startswith(n["path"] + ".") and c["depth"] == n["depth"] + 1 for c in kids)
        else:  # leaves list the source ids of their items
            assert len(n["source_ids"]) >= n["size"]
    leaves = [n for n in nodes.values() if n["n_children"] == 0]
    assert sum(n["size"] for n in leaves) == n_items
    if n_items >= 100:
        assert len(leaves) > 3 and max(n["depth"] for n in nodes.values()) >= 2


def test_math_leaves_name_the_source_idx(bundled_db):
    with store.reader(bundled_db) as con:
        tree_id = resolve_tree(con, "math")
        nodes = show_tree(con, tree_id)
    ids = sorted(int(s) for n in nodes if n["n_children"] == 0 for s in n["source_ids"])
    assert ids == list(range(5000))  # every MATH idx exactly once


def test_rerun_is_cached_and_force_rebuild_is_identical(bundled_db):
    t = time.perf_counter()
    again = build_tree("pandalm", db=bundled_db)
    assert again["cached"] and time.perf_counter() - t < 10
    with store.reader(bundled_db) as con:
        before = tree_nodes(con, again["tree_id"])
    rebuilt = build_tree("pandalm", db=bundled_db, force=True)  # annotations + embeddings from cache
    assert not rebuilt["cached"] and rebuilt["tree_id"] == again["tree_id"]
    with store.reader(bundled_db) as con:
        after = tree_nodes(con, again["tree_id"])
    assert before.drop(columns=["silhouette"]).equals(after.drop(columns=["silhouette"]))
    assert np.allclose(before["silhouette"].fillna(-9), after["silhouette"].fillna(-9))


def test_another_seed_is_another_tree_kept_beside_the_first(bundled_db):
    other = build_tree("pandalm", db=bundled_db, seed=1)
    with store.reader(bundled_db) as con:
        trees = list_trees(con, "pandalm")
    assert other["tree_id"] in set(trees["tree_id"]) and len(trees) >= 2
    assert json.loads(trees.set_index("tree_id").loc[other["tree_id"], "params"])["seed"] == 1


def test_route_sends_known_prompts_to_their_own_leaf(bundled_db):
    with store.reader(bundled_db) as con:
        tree_id = resolve_tree(con, "pandalm")
        items = node_items(con, tree_id, 0, limit=None).sample(30, random_state=0)
    out = run_cli(
        "tree", "route", "--dataset", "pandalm", "--tree", tree_id, "--json", *items["text"], db=bundled_db
    )
    assert out.returncode == 0, out.stderr
    routes = json.loads(out.stdout)["routes"]
    hits = sum(r["node_id"] == leaf for r, leaf in zip(routes, items["leaf_id"], strict=True))
    assert hits >= 27, hits  # greedy descent may differ from the clustering for a few border items


def test_node_items_cover_the_subtree(bundled_db):
    with store.reader(bundled_db) as con:
        tree_id = resolve_tree(con, "arena-hard-v0.1")
        nodes = tree_nodes(con, tree_id)
        child = nodes[nodes["depth"] == 1].iloc[0]
        items = node_items(con, tree_id, int(child["node_id"]), limit=None)
    assert len(items) == child["size"]
    assert items["source_ids"].map(len).eq(1).all()  # arena-hard uid per prompt


def test_a_dataset_without_prompt_text_cannot_have_a_tree(tmp_path):
    db = tmp_path / "x.duckdb"
    batch = pairwise_batch(3)
    batch.battles["prompt_text"] = None  # like a clean_battle file
    load(db, "noprompts", [batch])
    with pytest.raises(ArenatreeError, match="0 prompt texts"):
        build_tree("noprompts", db=db)
    with pytest.raises(ArenatreeError, match="no dataset 'missing'"):
        build_tree("missing", db=db)


@pytest.mark.slow
def test_sample_build_fits_a_sample_and_routes_every_other_item(tmp_path):
    """``tree build --sample N``: a tree of its own id (the sample size is a parameter) whose
    leaves hold every item of the dataset, the unsampled ones where routing puts them."""
    from helpers import topic_batch

    from pipelines.tree.build import backends_for
    from pipelines.tree.read import route

    db = tmp_path / "arenatree.duckdb"
    load(db, "topics", [topic_batch(240)])
    out = run_cli("tree", "build", "--dataset", "topics", "--sample", "60", "--json", db=db)
    assert out.returncode == 0, out.stderr
    assert "fitted on 60 sampled items, routed the other 180" in out.stderr
    sampled = json.loads(out.stdout)
    full = build_tree("topics", db=db)
    assert sampled["tree_id"] != full["tree_id"] and json.loads(sampled["params"])["sample"] == 60
    assert sampled["n_items"] == full["n_items"] == 240
    with store.reader(db) as con:
        members = con.execute(
            "SELECT m.prompt_id, m.node_id, p.text FROM node_members m JOIN prompts p USING (prompt_id) "
            "WHERE m.tree_id = ? ORDER BY m.prompt_id",
            [sampled["tree_id"]],
        ).df()
        assert members["prompt_id"].nunique() == 240
        ann, emb = backends_for(sampled)
        placed = route(con, sampled["tree_id"], members["text"].tolist()[:40], ann, emb)
    # routing a stored item again puts it in its own leaf (sampled items by the build, the rest by routing)
    assert (placed["node_id"].to_numpy() == members["node_id"].to_numpy()[:40]).mean() >= 0.9
    bad = run_cli("tree", "build", "--dataset", "topics", "--sample", "1", db=db)
    assert bad.returncode != 0 and "at least 2" in bad.stderr
