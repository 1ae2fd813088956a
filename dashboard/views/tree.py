"""Capability tree: the dataset's tree as a treemap; click or search a node to see what it holds."""

from __future__ import annotations

from functools import partial

import streamlit as st

from dashboard import data, widgets
from pipelines.errors import ArenatreeError

EXAMPLES = 50  # example prompts shown per node

st.title("Capability tree")

summary, all_trees = widgets.load_or_stop(data.dataset_summary, data.trees)

newest = all_trees["dataset"].iloc[0] if len(all_trees) else None
dataset = widgets.sidebar_dataset(summary["dataset"].tolist(), default=newest)
trees = all_trees[all_trees["dataset"] == dataset].set_index("tree_id")

# --- no tree yet: offer to build one ------------------------------------------------------------
if trees.empty:
    prompts = int(summary.set_index("dataset").loc[dataset, "prompts"])
    st.info("This dataset has no capability tree yet.", icon=":material/account_tree:")
    st.text(f"Dataset: {dataset} ({prompts:,} prompts)")
    if prompts < 2:
        st.warning("A tree needs at least 2 prompt texts; this dataset has none to cluster.")
        st.stop()
    st.markdown(
        "Building clusters the prompts by the capability they test (offline: MiniLM embeddings, "
        "recursive k-means, each capability named from its prompts' own phrases). It runs here, "
        "or from the command line:"
    )
    st.code(f"arenatree tree build --dataset '{dataset}'", language="bash")
    if st.button("Build tree", type="primary", icon=":material/construction:"):
        bar = st.progress(0.0, text="Starting…")
        try:
            data.build_tree(dataset, on_progress=widgets.progress_callback(bar))
        except ArenatreeError as exc:
            st.error("The tree could not be built.", icon=":material/error:")
            st.code(str(exc), language=None, wrap_lines=True)
            st.stop()
        st.rerun()
    st.stop()

# --- the tree -----------------------------------------------------------------------------------
tree_id = widgets.sidebar_tree(trees)
tree = trees.loc[tree_id]
partner = data.agreement_partner(trees, tree_id)
if partner is not None:  # an imported tree and a built one: how far their partitions agree
    with st.sidebar:
        other = "built" if widgets.is_imported(tree) else "imported"
        st.caption(f"Agreement with the newest {other} tree ({widgets.tree_label(trees.loc[partner])})")
        st.dataframe(
            data.tree_agreement(tree_id, partner),
            hide_index=True,
            column_order=list(widgets.AGREEMENT_COLUMN_CONFIG),
            column_config=widgets.AGREEMENT_COLUMN_CONFIG,
            key=f"agreement-{tree_id}-{partner}",
        )
        st.caption("NMI of the item partitions at each depth, over the items both trees hold.")
nodes = data.tree_nodes(tree_id)
by_id = nodes.set_index("node_id", drop=False)
node = widgets.current_node(tree_id, nodes["node_id"])

with st.container(horizontal=True):
    st.metric("Items", f"{tree['n_items']:,}", border=True)
    st.metric("Nodes", f"{tree['n_nodes']:,}", border=True)
    st.metric("Leaves", f"{tree['n_leaves']:,}", border=True)
    st.metric("Depth", f"{tree['max_depth']}", border=True)
if widgets.is_imported(tree):
    st.caption(
        f"Imported {tree['created_at']:%Y-%m-%d %H:%M} UTC from an EvalTree tree file "
        f"({widgets.tree_label(tree)}) · centroids for routing: embedder {tree['embedder']}"
    )
else:
    st.caption(
        f"Built {tree['created_at']:%Y-%m-%d %H:%M} UTC in {tree['seconds']:.1f} s · "
        f"annotator {tree['annotator']} · embedder {tree['embedder']} · describer {tree['describer']}"
    )

query = st.text_input(
    "Find a capability",
    placeholder="Search node descriptions, keywords and prompt text",
    key=f"query-{tree_id}",
)
if query.strip():
    matches = data.search_nodes(tree_id, query)
    if matches.empty:
        st.caption("No node or prompt matches.")
    else:
        options = matches["node_id"].tolist()
        hits = dict(zip(options, matches["hits"], strict=True))
        picker = f"matches-{tree_id}-{node}"
        st.selectbox(
            f"Matching nodes ({len(options):,})",
            options,
            index=options.index(node) if node in options else None,
            format_func=lambda i: widgets.search_result_label(by_id.loc[i], hits[i]),
            placeholder="Pick a node to open it",
            key=picker,
            on_change=widgets.node_picked,
            args=(tree_id, picker),
        )

# --- colour by a model's score ---------------------------------------------------------------------
kind = data.dataset_kind(summary, dataset)
filters = widgets.sidebar_filters(data.filter_options(dataset)) if kind == "pairwise" else {}
scores = data.node_scores(dataset, tree_id, data.score_filters(kind, filters)) if kind != "prompts" else None
ranked = data.with_rank(scores, kind) if scores is not None else None
names = widgets.score_names(kind)
colour: dict = {"color": None, "color_label": "Items"}
legend = "colour = item count"
if kind != "prompts" and scores is None:
    widgets.offer_node_scores(dataset, tree_id, data.score_filters(kind, filters), kind, required=False)
elif scores is not None:
    models = sorted(scores["model"].unique())
    with st.container(horizontal=True, vertical_alignment="bottom"):
        model = widgets.shared_widget(
            st.selectbox,
            "Colour by",
            widgets.MODEL,
            default="",
            valid=lambda m: m == "" or m in models,
            options=["", *models],
            format_func=lambda m: "Item count" if m == "" else m,
            width=320,
        )
        measure = widgets.shared_widget(
            st.radio,
            "Measure",
            "measure",
            default="score",
            valid=("score", "rank").__contains__,
            options=["score", "rank"],
            format_func={"score": names["score"], "rank": "Rank in node"}.get,
            horizontal=True,
            disabled=model == "",
        )
    if model:
        colour, legend = widgets.score_colours(ranked, kind, model, measure)

left, right = st.columns([3, 2], gap="large")
with left:
    chart = f"treemap-{tree_id}-{node}"
    st.plotly_chart(
        widgets.tree_figure(nodes, selected=node, **colour),
        key=chart,
        on_select=partial(widgets.node_clicked, tree_id, chart),
        selection_mode="points",
        config={"displaylogo": False},
    )
    st.caption(f"Area = items under a capability; {legend}. Click a tile to open it.")

with right, st.container(border=True, key="node-panel"):
    widgets.node_panel(nodes, node, tree_id)

# --- how every model does in the node ----------------------------------------------------------------
if ranked is not None:
    here = ranked[ranked["node_id"] == node].drop(columns="node_id")
    here = here.sort_values(["rating", "score"], ascending=False, na_position="last")
    st.subheader("Models in this node", anchor=False)
    st.caption(
        f"{names['score']} with its 95% interval and the {names['n'].lower()} behind it"
        + ("; node rating = Bradley–Terry fit on the node's votes alone." if kind == "pairwise" else ".")
    )
    columns = ["model", "n", "score", "lower", "upper"]
    columns += ["rating", "rating_lower", "rating_upper", "rank_ub"] if kind == "pairwise" else ["rank"]
    st.dataframe(
        here,
        hide_index=True,
        column_order=columns,
        column_config=widgets.node_score_column_config(kind),
        key=f"node-scores-{tree_id}-{node}",
    )
    widgets.download_csv(here[columns], f"node-{node}-scores-{widgets.slug(dataset)}.csv", "Node scores CSV")

# --- what is under the node -----------------------------------------------------------------------
kids = data.children(nodes, node)
st.subheader("Sub-capabilities", anchor=False)
if kids.empty:
    st.caption("A leaf: its items were not split further.")
else:
    st.caption("Select a row to open it.")
    table = f"children-{tree_id}-{node}"
    st.dataframe(
        kids.assign(label=widgets.node_labels(kids).to_numpy(), share=kids["size"] / by_id.loc[node, "size"]),
        hide_index=True,
        column_order=[c for c in widgets.CHILD_COLUMN_CONFIG if c != "distinguishing"]
        + (["distinguishing"] if kids["distinguishing"].notna().any() else []),
        column_config=widgets.CHILD_COLUMN_CONFIG,
        key=table,
        on_select=partial(widgets.node_row_picked, tree_id, table, kids["node_id"].tolist()),
        selection_mode="single-row",
    )

size = int(by_id.loc[node, "size"])
items = data.node_items(tree_id, node, limit=EXAMPLES)
st.subheader("Example prompts", anchor=False)
st.caption(f"{len(items):,} of the {size:,} items under this node. Select a row to read a prompt in full.")
picked = st.dataframe(
    widgets.clip_text(items, ["text"]),  # the selected prompt is shown in full below
    hide_index=True,
    column_order=["source_ids", "text", "leaf_id"],
    column_config=widgets.ITEM_COLUMN_CONFIG,
    key=f"items-{tree_id}-{node}",
    on_select="rerun",
    selection_mode="single-row",
)
rows = picked["selection"]["rows"]
if rows:
    item = items.iloc[rows[0]]
    st.text(f"Prompt {item['prompt_id']} · source id {item['source_ids'] or '—'} · leaf {item['leaf_id']}")
    st.code(item["text"], language=None, wrap_lines=True)
