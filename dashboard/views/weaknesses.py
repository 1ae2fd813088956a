"""Weaknesses: where a model is weak (and strong), by capability — EvalTree weakness profiles."""

from __future__ import annotations

import streamlit as st

from dashboard import data, widgets
from pipelines import weaknesses
from pipelines.errors import ArenatreeError

EVIDENCE = 20  # example votes / results shown per node

st.title("Weaknesses")

summary, all_trees = widgets.load_or_stop(data.dataset_summary, data.trees)
dataset = widgets.sidebar_dataset(summary["dataset"].tolist())
kind = data.dataset_kind(summary, dataset)
if kind == "prompts":
    st.info(
        "This dataset holds prompts only: no votes or results to profile a model.", icon=":material/info:"
    )
    st.stop()
trees = all_trees[all_trees["dataset"] == dataset].set_index("tree_id")
if trees.empty:
    st.info("Weakness profiles need the dataset's capability tree.", icon=":material/account_tree:")
    st.page_link(
        "views/tree.py", label="Build it on the Capability tree page", icon=":material/construction:"
    )
    st.stop()
tree_id = widgets.sidebar_tree(trees)
filters = widgets.sidebar_filters(data.filter_options(dataset)) if kind == "pairwise" else {}
scores = data.node_scores(dataset, tree_id, data.score_filters(kind, filters))
if scores is None:
    widgets.offer_node_scores(dataset, tree_id, data.score_filters(kind, filters), kind)
    st.stop()

nodes = data.tree_nodes(tree_id)
names = widgets.score_names(kind)
root = scores[scores["node_id"] == data.ROOT].sort_values("score", ascending=False)
models = root["model"].tolist()

with st.container(horizontal=True, vertical_alignment="bottom"):
    model = widgets.model_choice(models)
    profile = data.model_nodes(nodes, scores, model)
    low, high, default = data.tau_range(profile)
    tau = st.slider(
        f"Threshold τ ({names['score'].lower()})",
        low,
        high,
        default,
        step=0.01,
        key=f"tau-{tree_id}-{model}",
        help="A node fails when its interval's upper bound is below τ (EvalTree). Default: the model's "
        f"overall {names['score'].lower()}.",
    )
widgets.model_summary(profile, kind)

weak_tab, sweep_tab, *more = st.tabs(
    ["Profile at τ", "τ sweep", *(["Opponent-adjusted"] if kind == "pairwise" else []), "Compare two models"]
)

with weak_tab:
    weak = weaknesses.extract(profile, tau)
    strong = weaknesses.strengths(profile, tau)
    st.subheader(f"Weaknesses ({len(weak)})", anchor=False)
    st.caption(
        f"Nodes whose {names['score'].lower()} interval lies wholly below τ = {tau:.2f}, with every "
        f"child of at least {weaknesses.MIN_CHILD_SIZE} items below too; no interval under "
        f"{weaknesses.MIN_INTERVAL_N} {names['n'].lower()}. Select a row to see its evidence."
    )
    picked = widgets.profile_table(weak, kind, key=f"weak-{tree_id}-{model}")
    widgets.download_csv(weak, f"weaknesses-{widgets.slug(model)}-{widgets.slug(dataset)}-tau{tau:.2f}.csv")
    if picked is not None:
        widgets.evidence(dataset, filters, tree_id, picked, model, kind, EVIDENCE)
    st.subheader(f"Strengths ({len(strong)})", anchor=False)
    st.caption(f"The mirror rule: intervals wholly above τ = {tau:.2f}.")
    widgets.profile_table(strong, kind, key=f"strong-{tree_id}-{model}", selectable=False)

with sweep_tab:
    direction = st.radio(
        "Profiles of",
        ["weak", "strong"],
        format_func={"weak": "weaknesses", "strong": "strengths"}.get,
        horizontal=True,
    )
    sweep = data.sweep_table(profile, direction)
    st.caption(
        f"Every distinct profile as τ moves ({len(sweep)}), loosest first: the profile holds for τ in "
        "(τ from, τ to]. Each change happens where τ crosses a node's interval bound."
    )
    st.dataframe(
        sweep, hide_index=True, column_config=widgets.SWEEP_COLUMN_CONFIG, key=f"sweep-{tree_id}-{model}"
    )
    widgets.download_csv(sweep.drop(columns="node_ids"), f"sweep-{direction}-{widgets.slug(model)}.csv")

if kind == "pairwise":
    with more[0]:
        st.caption(
            "Win rates depend on who a model met. Here each node tests whether the model is weaker "
            "there than its global Bradley–Terry rating predicts against the same opponents (score "
            "test; offset in rating points). Thousands of nodes are tested at once: "
            "Benjamini–Hochberg keeps the false-discovery rate."
        )
        with st.container(horizontal=True, vertical_alignment="bottom"):
            bh = st.toggle("Benjamini–Hochberg (FDR) control", value=True, key="bh")
            alpha = st.select_slider("Level α", [0.01, 0.05, 0.1, 0.2], value=0.05, key="alpha", width=240)
        try:
            chosen = data.selected_weaknesses(dataset, tree_id, filters, model, alpha)
        except ArenatreeError as exc:
            st.code(str(exc), language=None, wrap_lines=True)
        else:
            st.subheader(f"Where {model} departs from its rating ({len(chosen)})", anchor=False)
            st.caption(
                "Tree nodes and prompt facets (languages; coding, math, creative writing, multi-turn, long "
                "prompts) screened with Benjamini–Hochberg at α, then selected: only the groups that "
                "still explain the model's votes once the others are in the model are kept, with the "
                "opponents' own weaknesses accounted for; offsets under 50 points are not shown. "
                "Negative offset: weaker there."
            )
            st.dataframe(chosen, hide_index=True, key=f"selected-{tree_id}-{model}")
            widgets.download_csv(chosen, f"selected-weaknesses-{widgets.slug(model)}.csv", key="selected-csv")
        try:
            tested = data.opponent_adjusted(dataset, tree_id, filters, profile, model)
        except ArenatreeError as exc:
            st.code(str(exc), language=None, wrap_lines=True)
        else:
            found = weaknesses.extract_significant(tested, "p_adj" if bh else "p", alpha)
            st.subheader(f"Significantly weaker nodes ({len(found)})", anchor=False)
            widgets.adjusted_table(found, key=f"adjusted-{tree_id}-{model}")
            widgets.download_csv(
                tested.drop(columns="keywords"), f"opponent-adjusted-{widgets.slug(model)}.csv"
            )
            with st.expander(f"Every tested node ({int(tested['p'].notna().sum()):,})"):
                widgets.adjusted_table(tested.dropna(subset=["p"]).sort_values("p"), key="adjusted-all")

with more[-1]:
    others = [m for m in models if m != model]
    if not others:
        st.caption("Only one model: nothing to compare.")
    else:
        other = st.selectbox("Compare with", others, key=f"compare-{tree_id}-{model}", width=360)
        st.caption(f"Both weakness profiles at the same τ = {tau:.2f}.")
        left, right = st.columns(2, gap="large")
        for column, name in ((left, model), (right, other)):
            with column:
                mine = data.model_nodes(nodes, scores, name)
                st.text(name)
                widgets.model_summary(mine, kind)
                widgets.profile_table(
                    weaknesses.extract(mine, tau), kind, key=f"compare-{name}", selectable=False
                )
