"""Leaderboard: ratings with bootstrap intervals, for the whole dataset or inside one capability node.

Pairwise votes get a Bradley–Terry (or Rao–Kupper) leaderboard with each model's rank range and
P(#1), slice weighting (the children of the node weighted by the analyst, re-ranked with stratified
bootstrap intervals), style control, head-to-head heatmaps, a drill-down (model -> its record
against each opponent -> the battles of one pair) and online Elo; per-instance results get accuracy
with Clopper–Pearson intervals. The view (dataset, tree, node, filters, model, opponent and the
weights as ``?w=node:weight,...``) is kept in the URL.
"""

from __future__ import annotations

from functools import partial

import streamlit as st

from dashboard import data, widgets
from pipelines import design, slices
from pipelines.errors import ArenatreeError

ROUNDS = [50, 100, 200, 500, 1000]  # bootstrap rounds offered
HEATMAP_MODELS = 20  # models in the heatmaps by default (the top ones)
WEIGHTS = "w"  # URL query parameter of the slice weights ('node:weight,...')
OPPONENT = "opponent"  # session-state key and URL query parameter of the drill-down's opponent
TOP_K = 3  # the vote-drop robustness of the top k (besides #1)

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
    if node != data.ROOT:
        description = nodes.set_index("node_id")["description"].get(node)
        small = design.node_sentence(node, description, int(board["items"].max()))
        if small:
            st.info(small, icon=":material/rule:")
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
    ci = widgets.shared_widget(
        st.radio,
        "Intervals",
        "ci",
        default="auto",
        valid=data.CI_METHODS.__contains__,
        options=list(data.CI_METHODS),
        format_func=data.CI_METHODS.get,
        horizontal=True,
        help="Sandwich: LMArena's CLT interval of the fit (arena-rank), used where the fit has a finite "
        "estimate; otherwise, and on request, the multinomial bootstrap",
    )
    rounds = widgets.shared_widget(
        st.select_slider,
        "Bootstrap rounds",
        "rounds",
        default=100,
        parse=widgets.parse_count,
        valid=ROUNDS.__contains__,
        options=ROUNDS,
        width=260,
        help="Bootstrap rounds; with sandwich intervals, the normal draws behind the rank range, "
        "rank set and P(#1)",
    )
    reweight = widgets.shared_widget(
        st.toggle,
        "Reweight pairs",
        "reweight",
        default=False,
        parse=widgets.parse_flag,
        valid=widgets.is_flag,
        help="LMArena's inverse-frequency reweighting: each pair's battles weigh "
        "1 / max(battles of the pair, 50), so heavily sampled pairs do not dominate",
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
    stages.step(f"Fitting {data.METHODS[method]} with {data.CI_METHODS[ci].lower()} intervals…")
    fit = {"rounds": rounds, "ci": ci, "reweight": reweight}
    board = data.leaderboard(dataset, filters, tree_id, node, method=method, **fit)
    if style:
        stages.step("Fitting style control…")
        styled = data.style_leaderboard(dataset, filters, tree_id, node, **fit)
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
intervals = (
    f"95% sandwich (CLT) intervals, as LMArena's arena-rank computes them · rank figures over {rounds} "
    "draws from the fit's normal law (seed 0)"
    if board["ci"] == "sandwich"
    else f"95% intervals from {rounds} multinomial bootstrap rounds (seed 0)"
)
st.caption(
    f"{data.METHODS[method]} ratings (Elo-like points, mean 1000)"
    + (" · inverse-frequency reweighted pairs" if reweight else "")
    + f" · {intervals} · rank from–to: the 95% range of the model's rank over those "
    f"rounds · rank set: a 95% set for every model's rank at once · P(#1): share of rounds in which it "
    f"rates highest · filters: {applied or 'none'}"
)

for note in board["notes"]:
    st.info(note, icon=":material/rule:")
drops = data.vote_drop(dataset, filters, tree_id, node, top_k=TOP_K, method=method)
with st.container(border=True, key="vote-drop"):
    for drop in drops:
        st.text(drop["sentence"])  # plain text: the sentence carries model names
    st.caption(
        "Vote-drop robustness: the votes with the most influence on the gap at the top (influence functions "
        "of the Bradley–Terry fit) are removed until it closes, then the fit is redone without them to check "
        "the change; the number is the fewest found that way (an upper bound on the true minimum)."
    )

left, right = st.columns([3, 2], gap="large")
with left:
    st.dataframe(
        widgets.with_rank_range(table),
        hide_index=True,
        column_order=["rank_ub", "model", "rating", "lower", "upper", "rank_range", "rank_set", "p_top"]
        + ["battles"]
        + (["group"] if "group" in table else []),
        column_config=widgets.HUB_COLUMN_CONFIG,
        key="leaderboard-table",
        on_select=partial(widgets.row_picked, "leaderboard-table", widgets.MODEL, table["model"].tolist()),
        selection_mode="single-row",
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


# --- a fixed baseline (AlpacaEval): every model against it, with AlpacaEval's own numbers ----------
fixed = data.baseline_view(dataset, filters, tree_id, node)
if fixed is not None:
    st.subheader(f"Against the fixed baseline {widgets.md_escape(fixed['baseline'])}", anchor=False)
    for note in fixed["notes"]:
        st.text(note)  # plain text: the sentences carry model names
    st.dataframe(
        fixed["table"],
        hide_index=True,
        column_config=widgets.BASELINE_COLUMN_CONFIG,
        key="baseline-table",
    )
    widgets.download_csv(
        fixed["table"], f"baseline-{widgets.slug(dataset)}-{where}-{widgets.slug(fixed['baseline'])}.csv",
        "Baseline view CSV",
    )  # fmt: skip


# --- slice weighting: re-rank with the children of the node weighted --------------------------------


def _weights_state(key: str, defaults: dict[int, float]) -> dict[int, float]:
    """The slice weights of ``key`` (tree:node) kept in the session; first from the URL's ``?w=``
    when it names exactly these slices, else as voted."""
    store = st.session_state.setdefault("slice_weights", {})
    if key not in store:
        raw = slices.parse_weights(st.query_params.get(WEIGHTS, "")) if WEIGHTS in st.query_params else None
        usable = raw is not None and set(raw) <= set(defaults) and sum(raw.values()) > 0
        store[key] = {i: round(min(raw.get(i, 0.0), 100.0), 1) if usable else w for i, w in defaults.items()}
    return store[key]


def _set_weights(key: str, weights: dict[int, float]) -> None:
    st.session_state["slice_weights"][key] = dict(weights)


def _remember_weight(key: str, node_id: int, widget_key: str) -> None:
    st.session_state["slice_weights"][key][node_id] = float(st.session_state[widget_key])


def slice_weighting() -> None:
    """Sliders (and presets) weighting the children of the current node, and the leaderboard
    re-ranked on the weighted votes when the mix differs from the votes' own."""
    frame, cells = data.node_slices(dataset, filters, tree_id, node)
    if len(frame) < 2 or (frame["votes"] > 0).sum() < 2:  # a leaf, or one slice holds every vote
        if WEIGHTS in st.query_params:
            del st.query_params[WEIGHTS]
        return
    defaults = slices.preset_weights(frame, "as voted")
    key = f"{tree_id}:{node}"
    weights = _weights_state(key, defaults)
    st.subheader("Slice weighting", anchor=False)
    scope = "the tree's top-level nodes" if node == data.ROOT else "the children of this node"
    st.caption(
        f"Weight {scope} (a percentage of the mix; normalised) and the leaderboard is refitted with every "
        "vote in a slice counting its weight divided by the slice's share of the votes; the intervals come "
        f"from resampling votes within each slice. Slices under {slices.THIN_VOTES} votes are greyed out: "
        "weighting them up inflates the variance."
    )
    presets = dict.fromkeys(slices.PRESETS)
    presets.update({p: slices.preset_weights(frame, p) for p in slices.PRESETS})
    if presets["coding-heavy"] == defaults:
        del presets["coding-heavy"]  # no slice about code: the preset would change nothing
    with st.container(horizontal=True):
        for name, mix in presets.items():
            st.button(
                name.capitalize(),
                key=f"preset-{name}",
                on_click=_set_weights,
                args=(key, mix),
                type="primary" if mix == weights else "secondary",
            )
    label_of = widgets.node_option_label(data.tree_nodes(tree_id))
    columns = st.columns(min(len(frame), 3), gap="medium")
    for j, row in enumerate(frame.itertuples(index=False)):
        node_id = int(row.node_id)
        text = f"{widgets.md_escape(label_of(node_id))} · {int(row.votes):,} votes ({row.share:.1%})"
        widget_key = f"_slice_w_{tree_id}_{node}_{node_id}"
        st.session_state[widget_key] = float(weights.get(node_id, 0.0))
        columns[j % len(columns)].slider(
            f":gray[{text} · thin]" if row.thin else text,
            0.0,
            100.0,
            step=0.1,
            format="%.1f",
            key=widget_key,
            on_change=_remember_weight,
            args=(key, node_id, widget_key),
            help="weighting a thin slice up inflates the variance" if row.thin else None,
        )
    if weights == defaults:
        if WEIGHTS in st.query_params:
            del st.query_params[WEIGHTS]
        st.caption("Weights as voted: the leaderboard above is the unweighted one.")
        return
    st.query_params[WEIGHTS] = slices.encode_weights(weights)
    raised = frame[frame["thin"] & (frame["node_id"].map(weights) > frame["node_id"].map(defaults))]
    if len(raised):
        counts = ", ".join(
            f"#{i}: {v:,} votes" for i, v in zip(raised["node_id"], raised["votes"], strict=True)
        )
        st.warning(
            f"{len(raised)} thin slice(s) weighted above their share of the votes ({counts}): "
            "their few votes now count many times, so the intervals widen.",
            icon=":material/warning:",
        )
    if sum(weights.get(i, 0.0) for i in frame.loc[frame["votes"] > 0, "node_id"]) <= 0:
        st.info("Every slice with votes has weight 0: nothing to fit.", icon=":material/info:")
        return
    with st.spinner("Refitting on the weighted votes…"):
        weighted = data.weighted_leaderboard(dataset, filters, tree_id, node, weights, rounds=rounds)
    moved = int((weighted["rank_change"].fillna(0) != 0).sum())
    outside = f" · {cells.outside:,} votes on prompts in no slice are left out" if cells.outside else ""
    st.caption(
        f"Bradley–Terry (ties half, no style control) on the weighted votes · 95% intervals from {rounds} "
        f"stratified bootstrap rounds · {moved} model(s) change rank against the order as voted on the same "
        f"votes (tinted rows){outside}."
    )
    st.dataframe(
        widgets.rank_change_style(widgets.with_rank_range(weighted)),
        hide_index=True,
        column_order=[
            "rank", "rank_change", "model", "rating", "lower", "upper", "rank_range", "p_top", "rank_ub",
            "battles",
        ],
        column_config=widgets.HUB_COLUMN_CONFIG,
        key="weighted-table",
    )  # fmt: skip
    widgets.download_csv(
        weighted, f"leaderboard-{widgets.slug(dataset)}-{where}-weighted.csv", "Weighted leaderboard CSV"
    )


if tree_id is not None:
    slice_weighting()


def node_rank_sets() -> None:
    """Every model's rank in every child of the node, with sets holding for all of them at once."""
    frame, _ = data.node_slices(dataset, filters, tree_id, node)
    if len(frame) < 2 or (frame["votes"] > 0).sum() < 2:
        return
    scope = "top-level node" if node == data.ROOT else "child node"
    box = st.expander(
        f"Ranks in every {scope} at once (rank sets over models × nodes)",
        icon=":material/account_tree:",
        key="node-rank-sets",
        on_change="rerun",
    )
    if not box.open:  # computed only when opened: one bootstrap per node
        return
    with box:
        with st.spinner("Fitting every node…"):
            sets = data.node_rank_sets(dataset, filters, tree_id, node, rounds=rounds)
        st.caption(widgets.md_escape(sets.attrs["method"]))
        if sets.empty:
            return
        label_of = widgets.node_option_label(data.tree_nodes(tree_id))
        span = (
            sets["set_low"]
            .astype(str)
            .where(
                sets["set_low"] == sets["set_high"],
                sets["set_low"].astype(str) + "–" + sets["set_high"].astype(str),
            )
        )
        grid = sets.assign(node=sets["node_id"].map(label_of), rank_set=span).pivot(
            index="model", columns="node", values="rank_set"
        )
        order = [m for m in table["model"] if m in grid.index]
        st.dataframe(grid.loc[order].reset_index(), hide_index=True, key="node-rank-sets-table")
        widgets.download_csv(sets, f"node-rank-sets-{widgets.slug(dataset)}-{where}.csv", "Rank sets CSV")


if tree_id is not None:
    node_rank_sets()

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
            f"{styled['used']:,} votes that have them ({styled['dropped']:,} without); 95% "
            + ("sandwich (CLT)" if styled["ci"] == "sandwich" else "bootstrap")
            + " intervals. Rank change = rank (UB) without minus with style control: + moves up."
        )
        left, right = st.columns([3, 2], gap="large")
        with left:
            st.dataframe(
                widgets.with_rank_range(styled["table"]),
                hide_index=True,
                column_order=["rank_ub", "rank_change", "model", "rating", "lower", "upper"]
                + ["rank_range", "p_top", "battles"],
                column_config={  # rank change here: without minus with style control
                    **widgets.HUB_COLUMN_CONFIG,
                    "rank_change": widgets.LEADERBOARD_COLUMN_CONFIG["rank_change"],
                },
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
# Lazy tabs: only the open one is computed and sent (each heatmap costs the browser a Plotly draw).
rate_tab, count_tab = st.tabs(["Win rate", "Battle count"], key="head-to-head", on_change="rerun")
if rate_tab.open:
    with rate_tab:
        st.caption("Share of the row model's battles against the column model that it won (ties count half).")
        st.plotly_chart(
            widgets.matrix_figure(
                win_rate.loc[shown, shown], title="Win rate", zmid=0.5, counts=pair_counts.loc[shown, shown]
            ),
            key="winrate-heatmap",
            config={"displaylogo": False},
        )
if count_tab.open:
    with count_tab:
        st.caption("Battles between each pair of models (either side).")
        st.plotly_chart(
            widgets.matrix_figure(
                pair_counts.loc[shown, shown], title="Battles", colorscale="Greens", fmt=",d"
            ),
            key="count-heatmap",
            config={"displaylogo": False},
        )


# --- drill-down: model -> its opponents in this node -> the battles of one pair --------------------
st.subheader("Drill down", anchor=False)
ranked = table["model"].tolist()
model = widgets.model_choice(ranked)
record = data.model_record(dataset, filters, tree_id, node, model)
opponents = record["opponent"].tolist()
here = "here" if node == data.ROOT else "in this node"
st.caption(
    f"{widgets.md_escape(model)}'s record against each opponent {here}: ties count "
    "half in the win rate; 95% Wilson intervals. Pick an opponent (a row, or below) to read their battles; "
    "pick a row of the leaderboard to change the model."
)
st.dataframe(
    record,
    hide_index=True,
    column_config=widgets.RECORD_COLUMN_CONFIG,
    key="record-table",
    on_select=partial(widgets.row_picked, "record-table", OPPONENT, opponents),
    selection_mode="single-row",
)
widgets.download_csv(
    record, f"record-{widgets.slug(dataset)}-{where}-{widgets.slug(model)}.csv", "Record CSV"
)
if opponents:
    opponent = widgets.shared_widget(
        st.selectbox,
        "Opponent",
        OPPONENT,
        default=opponents[0],
        valid=opponents.__contains__,
        always_in_url=True,
        options=opponents,
        width=360,
    )
    shown, total = data.pair_battles(dataset, filters, tree_id, node, model, opponent)
    st.caption(
        f"{len(shown):,} of the {total:,} votes between {widgets.md_escape(model)} and "
        f"{widgets.md_escape(opponent)}, newest first: prompt and "
        "both answers as plain text (select a vote to read it in full)."
    )
    widgets.vote_table(
        shown,
        key="pair-battles",
        column_order=["outcome", "model_a", "model_b", "winner", "prompt", "response_a", "response_b"],
        column_config=widgets.PAIR_BATTLE_COLUMNS,
    )
    pair = f"{widgets.slug(model)}-vs-{widgets.slug(opponent)}"
    widgets.download_csv(shown, f"battles-{widgets.slug(dataset)}-{where}-{pair}.csv", "Battles CSV")

elo_box = st.expander(
    "Online Elo (order-dependent, no intervals)",
    icon=":material/timeline:",
    key="online-elo",
    on_change="rerun",
)
if elo_box.open:  # computed and sent only when opened
    with elo_box:
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
