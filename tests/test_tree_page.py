"""Page tests of the Capability tree page: AppTest on a real DuckDB with a real (offline) tree.

The module builds one small tree once (MiniLM runs locally: a few seconds) and every test reads
it; the Build-tree test builds its own tree in its own database.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import EVIL, load, metrics, open_app_page, pairwise_batch, rerun, topic_batch
from streamlit.testing.v1 import AppTest

from dashboard import widgets
from pipelines import store
from pipelines.tree import read
from pipelines.tree.build import build_tree

PAGE = "views/tree.py"
DATASET = "topics"


@pytest.fixture(scope="module")
def tree_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with dataset 'topics' (72 prompts) and its tree, plus 'no-tree' without one."""
    db = tmp_path_factory.mktemp("tree-page") / "arenatree.duckdb"
    load(db, DATASET, [topic_batch(72)])
    load(db, "no-tree", [pairwise_batch(3)])
    build_tree(DATASET, db=db, min_size=4)
    return db


@pytest.fixture()
def tree(tree_db: Path) -> dict:
    """The stored tree of 'topics': its ``trees`` row plus ``nodes`` (the nodes frame)."""
    with store.reader(tree_db) as con:
        row = read.list_trees(con, DATASET).iloc[0].to_dict()
        row["nodes"] = read.tree_nodes(con, row["tree_id"])
    return row


def treemap(at: AppTest) -> dict:
    """The Plotly figure the page sent (the only chart on the page)."""
    (chart,) = at.get("plotly_chart")
    return json.loads(chart.proto.spec)


def table(at: AppTest, column: str) -> pd.DataFrame:
    """The page's dataframe that has ``column``."""
    (df,) = [d.value for d in at.dataframe if column in d.value.columns]
    return df


def matches_picker(at: AppTest):
    (picker,) = [s for s in at.selectbox if s.label.startswith("Matching nodes")]
    return picker


def node_title(at: AppTest) -> str:
    return at.subheader[0].value


@pytest.mark.slow
def test_page_shows_the_datasets_newest_tree(tree_db: Path, tree: dict, monkeypatch) -> None:
    at = open_tree_page(tree_db, monkeypatch)
    nodes = tree["nodes"]

    assert at.title[0].value == "Capability tree"
    assert at.sidebar.selectbox[0].value == DATASET  # the dataset that has a tree is the default
    shown = metrics(at)
    assert (shown["Items"], shown["Nodes"]) == ("72", str(len(nodes)))
    assert shown["Leaves"] == str(int((nodes["n_children"] == 0).sum()))
    assert shown["Depth"] == str(int(nodes["depth"].max()))
    assert len(nodes) >= 7 and nodes["depth"].max() >= 1  # a real tree, not a single split

    # The treemap: one tile per node, id = node id, area = items, parent links as stored.
    trace = treemap(at)["data"][0]
    assert trace["type"] == "treemap"
    assert trace["ids"] == [str(i) for i in nodes["node_id"]]
    assert trace["values"] == nodes["size"].tolist()
    assert trace["parents"] == ["" if pd.isna(p) else str(int(p)) for p in nodes["parent_id"]]
    assert trace["labels"][0] == "All items"
    assert trace["marker"]["colorbar"]["title"]["text"] == "Items"

    # The node panel opens at the root; its children are listed biggest first.
    assert node_title(at) == "All items"
    root_description = nodes.loc[0, "description"]
    assert root_description in [t.value for t in at.text]
    kids = table(at, "share")
    expected = nodes[nodes["parent_id"] == 0].sort_values("size", ascending=False, kind="stable")
    assert kids["node_id"].tolist() == expected["node_id"].tolist()
    assert kids["size"].sum() == 72
    assert len(table(at, "text")) == 50  # example prompts, capped
    assert at.query_params["dataset"] == DATASET
    assert at.query_params["tree"] == tree["tree_id"]
    assert at.query_params["node"] == "0"


def test_search_finds_a_node_and_the_panel_shows_its_items(tree_db: Path, tree: dict, monkeypatch) -> None:
    at = open_tree_page(tree_db, monkeypatch)
    nodes = tree["nodes"].set_index("node_id")

    at.text_input[0].input("haiku")
    rerun(at)
    picker = matches_picker(at)
    assert picker.value is None and len(picker.options) >= 1
    found = int(picker.options[0].split()[0].lstrip("#"))
    assert found != 0  # the root holds everything: never a result
    words = nodes.loc[found, "description"] + " " + " ".join(nodes.loc[found, "keywords"])
    assert "haiku" in words.lower()  # description matches come first

    picker.select(found)
    rerun(at)
    assert at.query_params["node"] == str(found)
    assert nodes.loc[found, "description"] in [t.value for t in at.text]
    assert metrics(at)["Items"] == str(nodes.loc[found, "size"])
    items = table(at, "text")
    with store.reader(tree_db) as con:
        under = read.node_items(con, tree["tree_id"], found, limit=None)
    assert len(items) == nodes.loc[found, "size"] == len(under)
    assert sorted(items["text"]) == sorted(under["text"])  # exactly the node's subtree
    assert items["text"].str.contains("haiku").any()
    assert items["source_ids"].str.fullmatch(r"q\d+").all()  # the files' own ids
    # The treemap opens at the found node's parent and outlines the node.
    trace = treemap(at)["data"][0]
    assert trace.get("level", "0") == str(nodes.loc[found, "parent_id"])
    assert trace["marker"]["line"]["width"][trace["ids"].index(str(found))] > 1

    # Prompt text is searched too: a prompt that no description quotes finds its leaf.
    case = next(
        f"(case {i})"
        for i in range(72)
        if not nodes["description"].str.contains(f"(case {i})", regex=False).any()
    )
    at.text_input[0].input(case)
    rerun(at)
    (option,) = matches_picker(at).options
    assert "1 matching prompt" in option


@pytest.mark.slow
def test_breadcrumb_and_children_navigate(tree_db: Path, tree: dict, monkeypatch) -> None:
    nodes = tree["nodes"]
    leaf = int(nodes[nodes["depth"] == nodes["depth"].max()]["node_id"].iloc[0])
    at = open_tree_page(tree_db, monkeypatch, dataset=DATASET, tree=tree["tree_id"], node=str(leaf))

    assert metrics(at)["Items"] == str(nodes.set_index("node_id").loc[leaf, "size"])
    crumbs = [b for b in at.button if b.key and b.key.startswith("crumb-")]
    assert len(crumbs) == nodes.set_index("node_id").loc[leaf, "depth"] + 1  # root .. leaf
    assert "A leaf" in " ".join(c.value for c in at.caption)
    crumbs[0].click()
    rerun(at)
    assert node_title(at) == "All items"
    assert at.query_params["node"] == "0"

    # A stale or foreign node in the URL falls back to the root.
    at = open_tree_page(tree_db, monkeypatch, dataset=DATASET, tree="other:tree", node=str(leaf))
    assert at.query_params["node"] == "0"


def test_untrusted_prompts_only_ever_appear_as_text(tree_db: Path, tree: dict, monkeypatch) -> None:
    at = open_tree_page(tree_db, monkeypatch)
    at.text_input[0].input("limerick")
    rerun(at)
    picker = matches_picker(at)
    picker.select(int(picker.options[0].split()[0].lstrip("#")))
    rerun(at)

    items = table(at, "text")
    assert items["text"].str.startswith(EVIL).all() and len(items) > 0  # shown, as data
    texts = [t.value for t in at.text]
    assert any(EVIL in t for t in texts)  # the node's example prompt, as plain text
    assert not at.get("html")
    for md in at.markdown:
        assert not md.proto.allow_html, md.value
        assert "<script>" not in md.value and "evil.example" not in md.value
    for label in [e.value for e in (*at.caption, *at.title, *at.subheader)] + [b.label for b in at.button]:
        assert "<script>" not in label and "evil.example" not in label
    # Plotly parses tags in labels and hover text: the figure never carries one raw, and a
    # description with markup (an LLM describer may echo a prompt) is sent escaped.
    assert "<script>" not in json.dumps(treemap(at))
    nodes = tree["nodes"].assign(keywords=tree["nodes"]["keywords"].map(list))
    nodes.loc[nodes["node_id"] == nodes["node_id"].max(), "description"] = EVIL
    spec = widgets.tree_figure(nodes.assign(parent_id=nodes["parent_id"].astype("Int64"))).to_json()
    assert "&lt;script&gt;" in spec and "<script>" not in spec


@pytest.mark.slow
def test_build_tree_button_builds_the_missing_tree(db: Path, monkeypatch) -> None:
    load(db, "fresh", [topic_batch(30)])
    at = open_tree_page(db, monkeypatch)

    assert "no capability tree yet" in at.info[0].value
    assert "arenatree tree build --dataset 'fresh'" in [c.value for c in at.code]
    assert not at.get("plotly_chart")
    (button,) = [b for b in at.button if b.label == "Build tree"]
    button.click()
    rerun(at)

    with store.reader(db) as con:
        trees = read.list_trees(con, "fresh")
    assert len(trees) == 1 and trees["n_items"][0] == 30
    assert metrics(at)["Nodes"] == str(trees["n_nodes"][0])  # the page reran onto the new tree
    assert treemap(at)["data"][0]["values"][0] == 30
    assert not at.info


def test_dataset_choice_is_shared_across_pages(tree_db: Path, monkeypatch) -> None:
    at = open_tree_page(tree_db, monkeypatch)
    at.sidebar.selectbox[0].select("no-tree")
    rerun(at)
    assert at.query_params["dataset"] == "no-tree"
    assert "no capability tree yet" in at.info[0].value
    assert "at least 2 prompt texts" not in " ".join(w.value for w in at.warning)

    at.switch_page("views/overview.py")
    rerun(at)
    at.switch_page(PAGE)
    rerun(at)
    assert at.sidebar.selectbox[0].value == "no-tree"  # remembered by the session


def test_dataset_without_prompt_text_cannot_have_a_tree(db: Path, monkeypatch) -> None:
    load(db, "one-prompt", [pairwise_batch(2, prompt="Same prompt every time.")])
    at = open_tree_page(db, monkeypatch)
    assert "at least 2 prompt texts" in at.warning[0].value
    assert not [b for b in at.button if b.label == "Build tree"]


def test_tree_page_without_a_database(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "missing.duckdb"
    at = open_tree_page(db, monkeypatch)
    assert "No database yet" in at.info[0].value
    assert "arenatree ingest PATH --dataset NAME" in [c.value for c in at.code]
    assert not at.get("plotly_chart")
    assert not db.exists()


def open_tree_page(db: Path, monkeypatch: pytest.MonkeyPatch, **query: str) -> AppTest:
    """The Capability tree page run against ``db``, opened with URL query parameters ``query``."""
    return open_app_page(db, monkeypatch, PAGE, **query)


def test_treemap_sends_only_the_nodes_in_view() -> None:
    """A big tree's treemap carries the opened node's ancestors (its path bar) and the levels in
    view below it, not every node; sizes, the opened level and the outline are those of the
    whole tree."""
    from dashboard.widgets import tree_figure, visible_nodes

    # 0 -> (1 -> (3 -> 5 -> 6, 4), 2)
    parents = {0: None, 1: 0, 2: 0, 3: 1, 4: 1, 5: 3, 6: 5}
    depth = {0: 0, 1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 4}
    size = {0: 10, 1: 7, 2: 3, 3: 5, 4: 2, 5: 5, 6: 5}
    nodes = pd.DataFrame(
        {
            "node_id": list(parents),
            "parent_id": pd.array(list(parents.values()), dtype="Int64"),
            "depth": [depth[i] for i in parents],
            "size": [size[i] for i in parents],
            "description": [f"node {i}" for i in parents],
            "keywords": [[f"k{i}"] for i in parents],
        }
    )
    assert set(visible_nodes(nodes, 0, 2)["node_id"]) == {0, 1, 2, 3, 4}
    # opened at 3: its child 5 (one level), its ancestors 1 and 0 and their children (path bar clicks)
    assert set(visible_nodes(nodes, 3, 1)["node_id"]) == {0, 1, 2, 3, 4, 5}
    assert set(visible_nodes(nodes, 5, 1)["node_id"]) == {0, 1, 2, 3, 4, 5, 6}
    assert set(visible_nodes(nodes, 0, 9)["node_id"]) == set(parents)
    trace = tree_figure(nodes, selected=6, max_depth=1).data[0]
    assert trace.level == "5" and sorted(trace.ids) == ["0", "1", "2", "3", "4", "5", "6"]
    trace = tree_figure(nodes, selected=3, max_depth=1).data[0]
    assert trace.level == "1" and sorted(trace.ids) == ["0", "1", "2", "3", "4"]  # not 5, 6
    assert dict(zip(trace.ids, trace.values, strict=True)) == {str(i): size[i] for i in (0, 1, 2, 3, 4)}
    assert trace.marker.line.width[list(trace.ids).index("3")] > 1  # the chosen node, outlined
    # the colour scale still spans every node below the root, drawn or not
    assert (trace.marker.cmin, trace.marker.cmax) == (2.0, 7.0)
