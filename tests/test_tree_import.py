"""Importing EvalTree's tree JSON: both subtree shapes, exact structure, node scores and weaknesses
on the imported tree, agreement with a built tree, bad files, and the Capability tree page.

The tree files are written here in EvalTree's schema (stage 4: ``description`` / ``subtrees`` as
an object of cluster labels or a list / an int leaf, ``distinguishing`` one line per child) over
a small per-instance dataset whose item ids are 0..23.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import open_app_page, run_cli, table_contents, topic_prompts
from scipy.stats import binomtest
from sklearn.metrics import normalized_mutual_info_score

from pipelines import store
from pipelines.errors import ArenatreeError, InputError
from pipelines.ingest.base import Batch
from pipelines.scores import MIN_N, compute_node_scores, stored_node_scores
from pipelines.tree.agreement import item_paths, labels_at_depth, tree_agreement
from pipelines.tree.build import build_tree
from pipelines.tree.imported import import_tree
from pipelines.tree.read import node_items, route, show_tree, tree_nodes
from pipelines.weaknesses import model_profile

DATASET = "acc"
N_ITEMS = 24
CODE = [i for i in range(N_ITEMS) if i % 6 in (0, 1)]  # topic_prompts: sql, python, cooking, ...

# (description, distinguishing line the parent gives it, children); an int child is an instance.
SPEC = (
    "Answering everyday and technical requests",
    None,
    [
        (
            "Writing code",
            "asks for a program or a query",
            [
                ("Writing SQL queries", "databases", [0, 6, 12, 18]),
                ("Writing Python functions", "scripts", [1, 7, 13, 19]),
            ],
        ),
        (
            "Everyday requests",
            "no code involved",
            [
                ("Giving cooking advice", "food", [2, 8, 14, 20]),
                ("Writing verse and planning trips", "poems or travel", [3, 9, 15, 4, 10, 16]),
                5,
            ],
        ),
    ],
)
PLACED = sorted([0, 6, 12, 18, 1, 7, 13, 19, 2, 8, 14, 20, 3, 9, 15, 4, 10, 16, 5])


def evaltree_json(spec, shape: str, parent_line: str | None = None):
    """``spec`` in EvalTree's schema. ``shape='dict'``: subtrees as {cluster label: node} and
    instance leaves as stage-4 leaf objects ``{"description", "subtrees": int}``; ``'list'``:
    subtrees as lists and instance leaves as bare ints."""
    if isinstance(spec, int):
        return {"description": f"handling item {spec}", "subtrees": spec} if shape == "dict" else spec
    desc, _, kids = spec
    children = [evaltree_json(k, shape) for k in kids]
    lines = [k[1] if not isinstance(k, int) else "a single request" for k in kids]
    node = {
        "description": desc,
        "distinguishing": "\n".join(lines),
        "subtrees": {str(i): c for i, c in enumerate(children)} if shape == "dict" else children,
        "size": 99,  # extra keys are ignored
        "ranking": [["m", 0.5]],
    }
    return node


def expected_nodes(spec, shape: str) -> list[dict]:
    """The nodes the import must store, in preorder, by a recursive walk over ``spec``."""
    out: list[dict] = []

    def walk(s, parent, depth, path, line):
        me = len(out)
        if isinstance(s, int):
            desc = f"handling item {s}" if shape == "dict" else f"instance {s}"
            out.append(dict(parent=parent, depth=depth, path=path, desc=desc, dist=line, items={s}))
            return {s}
        desc, _, kids = s
        out.append(dict(parent=parent, depth=depth, path=path, desc=desc, dist=line, items=set()))
        for i, k in enumerate(kids):
            kline = k[1] if not isinstance(k, int) else "a single request"
            out[me]["items"] |= walk(k, me, depth + 1, f"{path}.{i}", kline)
        return out[me]["items"]

    walk(spec, None, 0, "0", None)
    return out


def scores_batch() -> Batch:
    """24 items (ids 0..23, topic prompts) x 2 models: 'coder-weak' misses every code item and
    gets the rest right; 'alternating' gets the even ids right."""
    texts = topic_prompts(N_ITEMS)
    models = {"coder-weak": lambda i: float(i not in CODE), "alternating": lambda i: float(i % 2 == 0)}
    rows = [
        {"instance_id": str(i), "prompt_text": texts[i], "model": model, "score": score(i)}
        for model, score in models.items()
        for i in range(N_ITEMS)
    ]
    df = pd.DataFrame(rows).assign(line=lambda d: np.arange(1, len(d) + 1))
    return Batch(kind="instances", format="test", path=Path("acc.csv"), rows_read=len(df), results=df)


@pytest.fixture(scope="module")
def base_db(tmp_path_factory) -> Path:
    """'acc' with its built (offline) tree; tests copy it before importing."""
    from helpers import load

    d = tmp_path_factory.mktemp("tree-import")
    db = d / "base.duckdb"
    load(db, DATASET, [scores_batch()])
    build_tree(DATASET, db=db, min_size=4)
    for shape in ("dict", "list"):
        (d / f"{shape}.json").write_text(json.dumps(evaltree_json(SPEC, shape), indent=1))
    return db


@pytest.fixture()
def db(base_db: Path, tmp_path: Path) -> Path:
    path = tmp_path / "arenatree.duckdb"
    shutil.copyfile(base_db, path)
    return path


def tree_file(base_db: Path, shape: str) -> Path:
    return base_db.parent / f"{shape}.json"


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["dict", "list"])
def test_import_stores_the_files_tree_exactly(db, base_db, shape):
    out = import_tree(tree_file(base_db, shape), DATASET, db=db, name=f"evaltree-{shape}")
    want = expected_nodes(SPEC, shape)
    assert (out["n_nodes"], out["max_depth"], out["n_items"]) == (len(want), 3, len(PLACED)) == (26, 3, 19)
    assert out["coverage"] == pytest.approx(19 / 24) and out["index"] == "idx"
    with store.reader(db) as con:
        nodes = tree_nodes(con, out["tree_id"])
        shown = show_tree(con, out["tree_id"])
        under = {
            n: set(node_items(con, out["tree_id"], n, limit=None)["source_ids"].map(min)) for n in range(26)
        }
        row = con.execute(
            "SELECT describer, params FROM trees WHERE tree_id = ?", [out["tree_id"]]
        ).fetchone()
    assert row[0] == "imported:evaltree" and json.loads(row[1])["name"] == f"evaltree-{shape}"
    assert nodes["node_id"].tolist() == list(range(26))
    assert [None if pd.isna(p) else int(p) for p in nodes["parent_id"]] == [w["parent"] for w in want]
    assert nodes["depth"].tolist() == [w["depth"] for w in want]
    assert nodes["path"].tolist() == [w["path"] for w in want]
    assert nodes["description"].tolist() == [w["desc"] for w in want]
    assert [n["distinguishing"] for n in shown] == [w["dist"] for w in want]
    assert nodes.loc[1, "distinguishing"] == "asks for a program or a query"
    assert nodes["size"].tolist() == [len(w["items"]) for w in want]
    assert [{int(s) for s in under[n]} for n in range(26)] == [w["items"] for w in want]
    assert nodes["n_children"].tolist() == [sum(v["parent"] == i for v in want) for i in range(26)]
    # a rerun of the same file is the same tree, replaced in place
    assert import_tree(tree_file(base_db, shape), DATASET, db=db)["tree_id"] == out["tree_id"]


def test_node_scores_and_weaknesses_work_on_the_imported_tree(db, base_db):
    tree_id = import_tree(tree_file(base_db, "dict"), DATASET, db=db)["tree_id"]
    run_id = compute_node_scores(db, DATASET, tree_id)
    with store.reader(db) as con:
        got = stored_node_scores(con, run_id)
        results = con.execute(
            "SELECT instance_id, model, score FROM results WHERE dataset = ?", [DATASET]
        ).df()
        weak = model_profile(con, DATASET, "coder-weak", view="evaltree", tau=0.5, tree_id=tree_id)
    results["i"] = results["instance_id"].astype(int)
    for node_id, want in enumerate(expected_nodes(SPEC, "dict")):
        mine = results if node_id == 0 else results[results["i"].isin(want["items"])]  # root: every result
        for model, rows in mine.groupby("model"):
            have = got[(got["node_id"] == node_id) & (got["model"] == model)].iloc[0]
            assert (have["n"], have["wins"]) == (len(rows), rows["score"].sum())
            assert have["score"] == pytest.approx(rows["score"].mean(), abs=1e-12)
            if len(rows) >= MIN_N:
                ci = binomtest(int(rows["score"].sum()), len(rows)).proportion_ci(0.95, method="exact")
                assert (have["lower"], have["upper"]) == pytest.approx((ci.low, ci.high), abs=1e-12)
            else:
                assert np.isnan(have["lower"])
    # 'coder-weak' misses all 8 code items: EvalTree's extraction finds exactly "Writing code"
    assert weak["tree_id"] == tree_id
    assert [(w["node_id"], w["description"]) for w in weak["weaknesses"]] == [(1, "Writing code")]


def test_routing_uses_the_imported_centroids(db, base_db):
    from pipelines.tree.build import backends_for
    from pipelines.tree.read import stored_tree_row

    tree_id = import_tree(tree_file(base_db, "list"), DATASET, db=db)["tree_id"]
    with store.reader(db) as con:
        ann, emb = backends_for(stored_tree_row(con, tree_id))
        routed = route(con, tree_id, [topic_prompts(N_ITEMS)[0]], ann, emb)
        nodes = tree_nodes(con, tree_id)
    assert routed["node_id"].iloc[0] in set(nodes.loc[nodes["n_children"] == 0, "node_id"])
    assert routed["path"].iloc[0].startswith("0.0.0")  # an SQL prompt goes down the SQL branch


def test_agreement_is_nmi_at_matching_depths(db, base_db):
    imported = import_tree(tree_file(base_db, "dict"), DATASET, db=db)["tree_id"]
    twin = import_tree(tree_file(base_db, "list"), DATASET, db=db)["tree_id"]
    with store.reader(db) as con:
        built = con.execute("SELECT tree_id FROM trees WHERE describer NOT LIKE 'imported:%'").fetchone()[0]
        same = tree_agreement(con, imported, twin)
        cross = tree_agreement(con, imported, built)
        pa, pb = item_paths(con, imported), item_paths(con, built)
    assert same["depth"].tolist() == [1, 2, 3] and (same["nmi"] == 1.0).all()
    assert (same["items"] == 19).all() and same["nodes_a"].tolist() == [2, 5, 19]
    assert len(cross) >= 1 and cross["nmi"].between(0, 1).all() and (cross["items"] == 19).all()
    common = pa.index.intersection(pb.index)
    for r in cross.itertuples():
        want = normalized_mutual_info_score(
            labels_at_depth(pa.loc[common], r.depth), labels_at_depth(pb.loc[common], r.depth)
        )
        assert r.nmi == pytest.approx(want, abs=1e-12)


@pytest.mark.slow
def test_cli_prints_id_nodes_depth_and_coverage(db, base_db):
    out = run_cli(
        "tree", "import", str(tree_file(base_db, "list")), "--dataset", DATASET, "--name", "et", db=db
    )
    assert out.returncode == 0, out.stderr
    assert "26 nodes, depth 3, coverage 19/24 items (79.2%)" in out.stdout
    assert out.stdout.startswith(f"tree {DATASET}:evaltree-")
    doc = run_cli("tree", "import", str(tree_file(base_db, "list")), "--dataset", DATASET, "--json", db=db)
    assert json.loads(doc.stdout)["n_nodes"] == 26


def _bad(tmp_path: Path, doc) -> Path:
    p = tmp_path / "bad.json"
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ('{"subtrees": [1, 2', r"bad\.json:1: not valid JSON"),
        ([1, 2], r"bad\.json: at \$: the root must be an object"),
        (
            {"subtrees": [0, {"subtrees": [1, 99]}]},
            r"at \$\.subtrees\[1\]\.subtrees\[1\]: instance 99 is not an item",
        ),
        ({"subtrees": {"a": [0, 1], "b": {"subtrees": [2, 0]}}}, r"at \$\.subtrees\[\"a\"\]: a node must be"),
        (
            {"subtrees": [0, {"subtrees": [1, 0]}]},
            r"at \$\.subtrees\[1\]\.subtrees\[1\]: instance 0 appears again",
        ),
        ({"subtrees": [0, {"description": "x"}]}, r"at \$\.subtrees\[1\]: the node has no 'subtrees'"),
        ({"subtrees": [0, {"subtrees": []}]}, r"at \$\.subtrees\[1\]: 'subtrees' is empty"),
        ({"subtrees": [0, -3]}, r"instance -3 is not an item"),
        ({"subtrees": [0, True]}, r"a node must be an object or an instance index, not bool"),
        ({"description": 7, "subtrees": [0]}, r"at \$: 'description' must be text"),
    ],
)
def test_bad_files_name_the_node_and_write_nothing(db, tmp_path, doc, message):
    with store.reader(db) as con:
        before = table_contents(con)
    with pytest.raises(InputError, match=message):
        import_tree(_bad(tmp_path, doc), DATASET, db=db)
    with store.reader(db) as con:
        assert table_contents(con) == before


@pytest.mark.slow
def test_unknown_dataset_and_missing_file(db, base_db, tmp_path):
    with pytest.raises(ArenatreeError, match="no dataset 'nope'"):
        import_tree(tree_file(base_db, "dict"), "nope", db=db)
    with pytest.raises(InputError, match=r"missing\.json: No such file"):
        import_tree(tmp_path / "missing.json", DATASET, db=db)
    out = run_cli("tree", "import", str(tmp_path / "missing.json"), "--dataset", DATASET, db=db)
    assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1


def test_position_index_counts_items_in_id_order(db, base_db, tmp_path):
    # ids 0..23 are integers: the k-th item in numeric order is the item with id k
    a = import_tree(tree_file(base_db, "list"), DATASET, db=db, index="position")
    with store.reader(db) as con:
        by_position = item_paths(con, a["tree_id"])
    b = import_tree(tree_file(base_db, "list"), DATASET, db=db, index="idx")
    with store.reader(db) as con:
        by_idx = item_paths(con, b["tree_id"])
    assert a["index"] == "position" and a["tree_id"] != b["tree_id"]
    assert by_position.sort_index().tolist() == by_idx.sort_index().tolist()


@pytest.mark.slow
def test_tree_page_shows_the_imported_tree_beside_the_built_one(db, base_db, monkeypatch):
    tree_id = import_tree(tree_file(base_db, "dict"), DATASET, db=db, name="evaltree-math")["tree_id"]
    at = open_app_page(db, monkeypatch, "views/tree.py", dataset=DATASET, tree=tree_id)
    (picker,) = [s for s in at.sidebar.selectbox if s.label == "Tree"]
    assert picker.value == tree_id
    assert any(o.startswith("imported evaltree-math · ") for o in picker.options)
    (agree,) = [d.value for d in at.sidebar.dataframe if "nmi" in d.value.columns]
    with store.reader(db) as con:
        built = con.execute("SELECT tree_id FROM trees WHERE describer NOT LIKE 'imported:%'").fetchone()[0]
        want = tree_agreement(con, tree_id, built)
    pd.testing.assert_frame_equal(agree.reset_index(drop=True), want)
    assert any("Agreement with the newest built tree" in c.value for c in at.sidebar.caption)
    # the root's children carry their distinguishing text
    (kids,) = [d.value for d in at.dataframe if "share" in d.value.columns]
    assert set(kids["distinguishing"]) == {"asks for a program or a query", "no code involved"}
    # the built tree is set beside the imported one too
    at = open_app_page(db, monkeypatch, "views/tree.py", dataset=DATASET, tree=built)
    assert any("Agreement with the newest imported tree" in c.value for c in at.sidebar.caption)
