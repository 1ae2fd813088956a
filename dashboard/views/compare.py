"""Model vs model: every capability where two models differ significantly, with both answers."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data, widgets
from pipelines.errors import ArenatreeError

EXAMPLES = 10  # prompts shown side by side per node
LEVELS = [0.01, 0.05, 0.1, 0.2]  # false discovery rates offered

_NUM = st.column_config.NumberColumn
COLUMNS = {
    "node_id": _NUM("Node", width="small"),
    "label": st.column_config.TextColumn("Capability"),
    "depth": _NUM("Depth", width="small"),
    "n": _NUM("n", format="localized", help="votes with A or B in the node / items both answered"),
    "score_a": _NUM("A", format="%.3g", help="A's node rating (points) / mean score on the paired items"),
    "score_b": _NUM("B", format="%.3g", help="B's node rating (points) / mean score on the paired items"),
    "diff": _NUM("A − B", format="%+.3g"),
    "diff_lower": _NUM("Lower", format="%+.3g", help="95% interval of A − B"),
    "diff_upper": _NUM("Upper", format="%+.3g"),
    "p": _NUM("p", format="%.2g", help="two-sided, this node alone"),
    "q": _NUM("q (BH)", format="%.2g", help="Benjamini–Hochberg adjusted over every node tested"),
    "favours": st.column_config.TextColumn("Favours", width="small"),
    "topmost": st.column_config.CheckboxColumn("Topmost", help="significant, no significant ancestor"),
    "h2h": _NUM("Head-to-head", format="localized", help="votes where A met B in the node"),
    "h2h_a_wins": _NUM("A won", format="localized"),
    "h2h_b_wins": _NUM("B won", format="localized"),
    "h2h_ties": _NUM("Ties", format="localized"),
    "h2h_p": _NUM("h2h p", format="%.2g", help="exact sign test on the decisive head-to-head votes"),
    "a_better": _NUM("A only", format="localized", help="items A got right and B wrong (higher score)"),
    "b_better": _NUM("B only", format="localized", help="items B got right and A wrong (higher score)"),
    "reason": st.column_config.TextColumn("Not tested because", width="medium"),
}


def _text(value: object, missing: str) -> str:
    """Raw text for st.code (never rendered as Markdown or HTML); ``missing`` when there is none."""
    return missing if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


st.title("Model vs model")

summary, all_trees = widgets.load_or_stop(data.dataset_summary, data.trees)
dataset = widgets.sidebar_dataset(summary["dataset"].tolist())
kind = data.dataset_kind(summary, dataset)
if kind == "prompts":
    st.info("This dataset holds prompts only: no votes or results to compare.", icon=":material/info:")
    st.stop()
trees = all_trees[all_trees["dataset"] == dataset].set_index("tree_id")
tree_id = widgets.sidebar_tree(trees) if not trees.empty else None
filters = widgets.sidebar_filters(data.filter_options(dataset)) if kind == "pairwise" else {}
if tree_id is None:
    st.caption("This dataset has no capability tree yet: the comparison covers the whole dataset only.")
    st.page_link("views/tree.py", label="Build its tree", icon=":material/construction:")

models = data.report_models(dataset)
if len(models) < 2:
    st.info("Comparing needs two models; this dataset has one.", icon=":material/info:")
    st.stop()
with st.container(horizontal=True, vertical_alignment="bottom"):
    model_a = widgets.model_choice(models)
    others = [m for m in models if m != model_a]
    model_b = st.selectbox("Compare with (B)", others, key=f"compare-b-{dataset}-{model_a}", width=360)
    q = st.select_slider("False discovery rate q", LEVELS, value=0.05, key="compare-q", width=240)
    every = st.toggle("Show every node", value=False, key="compare-all")

try:
    table = data.comparison(dataset, filters, tree_id, model_a, model_b, q)
except ArenatreeError as exc:
    st.code(str(exc), language=None, wrap_lines=True)
    st.stop()

tested = int(table["p"].notna().sum())
with st.container(horizontal=True):
    st.metric("Nodes tested", f"{tested:,} of {len(table):,}")
    st.metric("Significant", f"{int(table['significant'].sum()):,}")
    st.metric("Topmost significant", f"{int(table['topmost'].sum()):,}")
    st.metric("A ahead", f"{int((table['favours'] == 'A').sum()):,}")
    st.metric("B ahead", f"{int((table['favours'] == 'B').sum()):,}")
unit = "rating points (400 = 10x odds)" if kind == "pairwise" else "mean score (accuracy for 0/1 data)"
st.caption(
    f"A = {model_a}, B = {model_b}. Test: {table.attrs['test']}; A − B in {unit}. Benjamini–Hochberg "
    f"over the {tested:,} nodes tested, q ≤ {q}; topmost = significant with no significant ancestor. "
    "Nodes too small to test say why."
)

shown = table if every else table[table["significant"]]
shown = shown.assign(label=widgets.node_labels(shown).to_numpy()).reset_index(drop=True)
extra = (
    ["h2h", "h2h_a_wins", "h2h_b_wins", "h2h_ties", "h2h_p"]
    if kind == "pairwise"
    else ["a_better", "b_better"]
)
order = ["node_id", "label", "n", "score_a", "score_b", "diff", "diff_lower", "diff_upper", "p", "q"]
order += ["favours", "topmost", *extra, "reason"]
st.subheader(f"{'Every node' if every else 'Where they differ'} ({len(shown):,})", anchor=False)
if shown.empty:
    st.caption("No node differs significantly at this q. Show every node to see them all.")
    picked = int(table["node_id"].iloc[0])  # the root: read the two models side by side anyway
else:
    event = st.dataframe(
        shown,
        hide_index=True,
        column_order=order,
        column_config=COLUMNS,
        key=f"compare-table-{tree_id}-{model_a}-{model_b}-{every}",
        on_select="rerun",
        selection_mode="single-row",
    )
    rows = event["selection"]["rows"] if event else []
    topmost = shown.index[shown["topmost"]]
    picked = int(shown["node_id"].iloc[rows[0] if rows else topmost[0] if len(topmost) else 0])
name = f"compare-{widgets.slug(model_a)}-vs-{widgets.slug(model_b)}-{widgets.slug(dataset)}"
widgets.download_csv(shown.drop(columns="label"), f"{name}{'-all' if every else ''}.csv", key="compare-csv")

if picked is not None:
    row = table[table["node_id"] == picked].iloc[0]
    st.subheader(f"Node {picked}: side by side", anchor=False)
    st.text(widgets.node_label(row["description"], picked == data.ROOT, chars=400))
    examples = data.comparison_examples(dataset, filters, tree_id, model_a, model_b, picked, EXAMPLES)
    if kind == "pairwise":
        st.caption(
            f"{len(examples):,} votes where A met B here (up to {EXAMPLES}), decisive first; "
            "outcome = who won (when they never met here: prompts both answered). Select a table row "
            "to change node."
        )
    else:
        st.caption(
            f"{len(examples):,} items both answered here (up to {EXAMPLES}), items where they differ first."
        )
    if examples.empty:
        st.caption("No prompt here where both can be read side by side.")
    for i, ex in examples.iterrows():
        with st.container(border=True, key=f"example-{i}"):
            who = {"A": model_a, "B": model_b}.get(ex["outcome"], ex["outcome"])
            better = "won" if kind == "pairwise" else "scored higher"
            st.text(f"Prompt · {who} {better}" if ex["outcome"] in ("A", "B") else f"Prompt · {who}")
            st.code(_text(ex["prompt"], "(no prompt text stored)"), language=None, wrap_lines=True)
            left, right = st.columns(2)
            for column, side, model in ((left, "answer_a", model_a), (right, "answer_b", model_b)):
                with column:
                    st.text(f"{'A' if side == 'answer_a' else 'B'}: {model}")
                    st.code(_text(ex[side], "(no answer stored)"), language=None, wrap_lines=True)
    if not examples.empty:
        widgets.download_csv(
            examples, f"{name}-node{picked}-examples.csv", "Examples CSV", key="compare-ex-csv"
        )
