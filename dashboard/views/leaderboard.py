"""Leaderboard: ratings with bootstrap intervals, for the whole dataset or inside one capability node.

Pairwise votes get a Bradley–Terry (or Rao–Kupper) leaderboard with style control, head-to-head
heatmaps and online Elo; per-instance results get accuracy with Clopper–Pearson intervals.
"""

from __future__ import annotations

import streamlit as st

from dashboard import data, widgets
from pipelines.errors import ArenatreeError

ROUNDS = [50, 100, 200, 500, 1000]  # bootstrap rounds offered
HEATMAP_MODELS = 20  # models in the heatmaps by default (the top ones)

st.title("Leaderboard")

summary, all_trees = widgets.load_or_stop(data.dataset_summary, data.trees)
dataset = widgets.sidebar_dataset(summary["dataset"].tolist())
kind = data.dataset_kind(summary, dataset)
if kind == "prompts":
    st.info("This dataset holds prompts only: no votes or results to rank.", icon=":material/info:")
    st.text(f"Dataset: {dataset}")
    st.stop()

# --- where: the whole dataset or one node of its capability tree ---------------------------------
trees = all_trees[all_trees["dataset"] == dataset].set_index("tree_id")
tree_id, node, nodes = None, data.ROOT, None
if trees.empty:
    st.caption("No capability tree for this dataset yet: the global leaderboard only.")
else:
    tree_id = widgets.sidebar_tree(trees)
    nodes = data.tree_nodes(tree_id)
    node = widgets.current_node(tree_id, nodes["node_id"])
    widgets.node_picker(nodes, tree_id, node)
where = "global" if node == data.ROOT else f"node-{node}"


def show_accuracy() -> None:
    """Per-instance data: accuracy per model with exact intervals."""
    board = data.accuracy(dataset, tree_id, node)
    if board.empty:
        st.info("No item under this node has results.", icon=":material/info:")
        return
    with st.container(horizontal=True):
        st.metric("Models", f"{len(board):,}", border=True)
        st.metric("Items", f"{int(board['items'].max()):,}", border=True)
        st.metric("Results", f"{int(board['items'].sum()):,}", border=True)
    st.caption(
        "Accuracy = mean item score; 95% Clopper–Pearson intervals (none under 5 items); rank (UB) from the "
        "intervals — the numbers `arenatree leaderboard` prints."
    )
    left, right = st.columns([2, 3], gap="large")
    with left:
        st.dataframe(
            board,
            hide_index=True,
            column_order=list(widgets.ACCURACY_COLUMN_CONFIG),
            column_config=widgets.ACCURACY_COLUMN_CONFIG,
            key="accuracy-table",
        )
        widgets.download_csv(board, f"accuracy-{widgets.slug(dataset)}-{where}.csv")
    with right:
        st.plotly_chart(
            widgets.interval_figure(
                board.dropna(subset=["lower"]), "score", "lower", "upper", title="Accuracy", count="items"
            ),
            key="accuracy-chart",
            config={"displaylogo": False},
        )


if kind == "instances":
    show_accuracy()
    st.stop()

# --- pairwise votes ----------------------------------------------------------------------------
filters = widgets.sidebar_filters(data.filter_options(dataset))
with st.container(horizontal=True, vertical_alignment="bottom"):
    method = widgets.shared_widget(
        st.radio,
        "Rating model",
        "method",
        default="bt",
        valid=data.METHODS.__contains__,
        options=list(data.METHODS),
        format_func=data.METHODS.get,
        horizontal=True,
        help="Rao–Kupper models ties with a tie parameter θ; Bradley–Terry counts a tie as half a win",
    )
    rounds = widgets.shared_widget(
        st.select_slider,
        "Bootstrap rounds",
        "rounds",
        default=100,
        parse=lambda raw: int(raw) if raw.isdigit() else None,
        valid=ROUNDS.__contains__,
        options=ROUNDS,
        width=260,
    )
    style = widgets.shared_widget(
        st.toggle,
        "Style control",
        "style",
        default=False,
        parse=widgets.parse_flag,
        valid=widgets.is_flag,
        help="Adjust for answer length and markdown (headers, lists, bold), as LMArena does",
    )

stages = widgets.Stages(4 if style else 3, "Loading votes…")
try:
    votes = data.battles(dataset, filters, tree_id, node)
    if votes.empty:
        stages.done()
        st.info("No vote under this node passes the filters.", icon=":material/filter_alt_off:")
        st.stop()
    stages.step(f"Fitting {data.METHODS[method]} with {rounds} bootstrap rounds…")
    board = data.leaderboard(dataset, filters, tree_id, node, method=method, rounds=rounds)
    if style:
        stages.step("Fitting style control…")
        styled = data.style_leaderboard(dataset, filters, tree_id, node, rounds=rounds)
    stages.step("Counting head-to-head battles…")
    win_rate, pair_counts = data.head_to_head(dataset, filters, tree_id, node)
except ArenatreeError as exc:
    stages.done()
    st.warning("No leaderboard for this choice.", icon=":material/warning:")
    st.code(str(exc), language=None, wrap_lines=True)
    st.stop()
stages.done()

table = board["table"]
with st.container(horizontal=True):
    st.metric("Votes", f"{len(votes):,}", border=True)
    st.metric("Models", f"{len(table):,}", border=True)
    st.metric("Judges", f"{votes['judge'].nunique():,}", border=True)
    st.metric("Prompts", f"{votes['prompt_id'].nunique():,}", border=True)
    if "theta" in board:
        low, high = board["theta_interval"]
        st.metric(
            "Tie parameter θ",
            f"{board['theta']:.2f}",
            help=f"95% interval [{low:.2f}, {high:.2f}]",
            border=True,
        )
applied = widgets.active_filters(filters)
st.caption(
    f"{data.METHODS[method]} ratings (Elo-like points, mean 1000) · 95% intervals from {rounds} "
    f"multinomial bootstrap rounds (seed 0) · filters: {applied or 'none'}"
)

left, right = st.columns([2, 3], gap="large")
with left:
    st.dataframe(
        table,
        hide_index=True,
        column_order=["rank_ub", "model", "rating", "lower", "upper", "battles"],
        column_config=widgets.LEADERBOARD_COLUMN_CONFIG,
        key="leaderboard-table",
    )
    with st.container(horizontal=True):
        widgets.download_csv(
            table, f"leaderboard-{widgets.slug(dataset)}-{where}-{method}.csv", "Leaderboard CSV"
        )
        widgets.download_csv(
            votes, f"votes-{widgets.slug(dataset)}-{where}.csv", f"The {len(votes):,} votes (CSV)"
        )
with right:
    st.plotly_chart(
        widgets.interval_figure(table, "rating", "lower", "upper", title="Rating", count="battles"),
        key="leaderboard-chart",
        config={"displaylogo": False},
    )

if style:
    st.subheader("Style control", anchor=False)
    if "error" in styled:
        st.info(
            "Style control needs the answers' style features; these votes have none.", icon=":material/info:"
        )
        st.code(styled["error"], language=None, wrap_lines=True)
    else:
        st.caption(
            "Bradley–Terry with the standardised differences (a − b)/(a + b + 1) of answer tokens, headers, "
            "list items and bold as covariates (LMArena's method), on the "
            f"{styled['used']:,} votes that have them ({styled['dropped']:,} without). "
            "Rank change = rank (UB) without minus with style control: + moves up."
        )
        left, right = st.columns([3, 2], gap="large")
        with left:
            st.dataframe(
                styled["table"],
                hide_index=True,
                column_order=["rank_ub", "rank_change", "model", "rating", "lower", "upper", "battles"],
                column_config=widgets.LEADERBOARD_COLUMN_CONFIG,
                key="style-table",
            )
        with right:
            coefs = styled["coefficients"]
            st.dataframe(
                coefs, hide_index=True, column_config=widgets.COEFFICIENT_COLUMN_CONFIG, key="style-coefs"
            )
            st.plotly_chart(
                widgets.interval_figure(
                    coefs.dropna(), "coef", "lower", "upper", label="feature", title="Coefficient"
                ),
                key="style-chart",
                config={"displaylogo": False},
            )
            widgets.download_csv(
                coefs, f"style-coefficients-{widgets.slug(dataset)}-{where}.csv", "Coefficients CSV"
            )

st.subheader("Head to head", anchor=False)
order = [m for m in table["model"] if m in win_rate.index]
shown = order
if len(order) > HEATMAP_MODELS:
    top = st.slider("Models shown (top by rating)", 2, len(order), HEATMAP_MODELS, key="heatmap-models")
    shown = order[:top]
rate_tab, count_tab = st.tabs(["Win rate", "Battle count"])
with rate_tab:
    st.caption("Share of the row model's battles against the column model that it won (ties count half).")
    st.plotly_chart(
        widgets.matrix_figure(
            win_rate.loc[shown, shown], title="Win rate", zmid=0.5, counts=pair_counts.loc[shown, shown]
        ),
        key="winrate-heatmap",
        config={"displaylogo": False},
    )
with count_tab:
    st.caption("Battles between each pair of models (either side).")
    st.plotly_chart(
        widgets.matrix_figure(pair_counts.loc[shown, shown], title="Battles", colorscale="Greens", fmt=",d"),
        key="count-heatmap",
        config={"displaylogo": False},
    )

with st.expander("Online Elo (order-dependent, no intervals)", icon=":material/timeline:"):
    st.caption(
        "FastChat's sequential Elo over the votes in time order (K = 4): each vote moves both ratings. "
        "It depends on the order of the votes; the table above does not."
    )
    elo = data.online_elo(dataset, filters, tree_id, node)
    elo = elo.merge(table[["model", "rating"]], on="model", how="left")
    st.dataframe(
        elo,
        hide_index=True,
        column_config={
            **widgets.LEADERBOARD_COLUMN_CONFIG,
            "rating": widgets.LEADERBOARD_COLUMN_CONFIG["rating"],
        },
        key="elo-table",
    )
