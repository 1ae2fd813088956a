"""What a report says, gathered as plain data: sections of text, tables and Plotly figures.

:func:`build_report` calls the same pipeline functions as the CLI and the dashboard
(:func:`pipelines.leaderboards.build_leaderboard`, :func:`pipelines.weaknesses.model_profile`,
the stored or freshly run voter audit, ...), so the numbers in a report are theirs. The writers
(:mod:`.html`, :mod:`.markdown`, :mod:`.pdf`, :mod:`.tables`) only render this structure; they
escape every piece of text, which here is kept raw.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .. import __version__, baseline, figures
from ..battles import NO_FILTERS, Filters, dataset_kind
from ..errors import ArenatreeError, NotApplicable
from ..leaderboards import Leaderboard, build_leaderboard
from ..queries import dataset_summary, imports
from ..scores import import_ids

# section key -> title, in report order
SECTIONS: dict[str, str] = {
    "provenance": "Data and provenance",
    "leaderboard": "Leaderboard",
    "style": "Leaderboard with style control",
    "tree": "Capability tree",
    "weaknesses": "Weakness profiles",
    "audit": "Voter audit",
    "methods": "Methods and parameters",
}
MIN_LEADER_N = 20  # votes / items a model needs in a node to lead it (unless none has that many)
EXAMPLE_VOTES = 3  # example votes shown per audit finding
PROMPT_CHARS = 500  # prompt text shown per example vote
PAGE_ROWS = 50  # rows a page (HTML, Markdown, PDF) shows of a long table; the CSV export holds all
ProgressFn = Callable[[str, float], None]


@dataclass
class ReportRequest:
    """Everything that shapes a report. ``sections``: keys of :data:`SECTIONS`. ``node``: scope the
    leaderboards and weakness profiles to the items under this node of ``tree_id`` (default: the
    dataset's newest tree). ``models``: weakness profiles for these (default: the top 2).
    ``rounds``, ``seed``, ``level``: bootstrap of every interval; ``alpha``: audit level."""

    dataset: str
    sections: tuple[str, ...] = tuple(SECTIONS)
    node: int | None = None
    tree_id: str | None = None
    models: tuple[str, ...] = ()
    filters: Filters = NO_FILTERS
    method: str = "bt"
    rounds: int = 100
    seed: int = 0
    level: float = 0.95
    alpha: float = 0.05
    min_votes: int = 20

    def __post_init__(self) -> None:
        unknown = [s for s in self.sections if s not in SECTIONS]
        if unknown:
            raise ArenatreeError(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
        if not self.sections:
            raise ArenatreeError("a report needs at least one section")
        if "audit" in self.sections:  # fail before any section is computed
            from ..audit.run import check_settings

            check_settings(alpha=self.alpha, min_votes=self.min_votes, rounds=self.rounds, level=self.level)


@dataclass
class Block:
    """One piece of a section. ``kind``: 'heading' | 'text' | 'note' | 'table' | 'figure'. ``text``:
    raw text (headings, paragraphs; a table's or figure's caption). ``name``: a file-safe id for
    tables and figures (unique in the report). ``table``: every row; the HTML, Markdown and PDF
    pages show the first ``rows`` of it (None: all), the CSV / Parquet exports every row."""

    kind: str
    text: str = ""
    name: str = ""
    table: pd.DataFrame | None = None
    figure: go.Figure | None = None
    rows: int | None = None


@dataclass
class Section:
    key: str
    title: str
    blocks: list[Block] = field(default_factory=list)

    def text(self, text: str, kind: str = "text") -> None:
        self.blocks.append(Block(kind, text))

    def table(self, name: str, table: pd.DataFrame, caption: str = "", rows: int | None = PAGE_ROWS) -> None:
        """Add ``table``; a page shows its first ``rows`` rows (None: every row, as for leaderboards)."""
        self.blocks.append(Block("table", caption, name, table.reset_index(drop=True), rows=rows))

    def figure(self, name: str, fig: go.Figure | None, caption: str = "") -> None:
        if fig is not None:
            self.blocks.append(Block("figure", caption, name, figure=figures.printable(fig)))


@dataclass
class Report:
    """A built report: ``title``, ``subtitle`` (scope in one line), ``sections`` in order and
    ``params`` (every parameter used, JSON-able)."""

    title: str
    subtitle: str
    sections: list[Section]
    params: dict
    created_at: str

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table of the report by name, in report order."""
        return {b.name: b.table for s in self.sections for b in s.blocks if b.kind == "table"}

    def figures(self) -> dict[str, go.Figure]:
        """Every figure of the report by name, in report order."""
        return {b.name: b.figure for s in self.sections for b in s.blocks if b.kind == "figure"}


@dataclass
class _Context:
    con: duckdb.DuckDBPyConnection
    req: ReportRequest
    kind: str
    tree_id: str | None
    node_description: str | None = None
    board: Leaderboard | None = None
    audit_source: str | None = None


def _fmt(x: object, digits: int = 1) -> str:
    return "-" if x is None or x != x else f"{x:.{digits}f}"  # noqa: PLR0124 - NaN check


def _scope(ctx: _Context) -> str:
    if ctx.req.node is None:
        return "all items"
    return f"node {ctx.req.node} ({ctx.node_description}) of tree {ctx.tree_id}"


def _board(ctx: _Context) -> Leaderboard:
    """The plain leaderboard of the request (computed once)."""
    if ctx.board is None:
        r = ctx.req
        ctx.board = build_leaderboard(
            ctx.con,
            r.dataset,
            node=r.node,
            tree_id=ctx.tree_id,
            filters=r.filters if ctx.kind == "pairwise" else NO_FILTERS,
            method=r.method if ctx.kind == "pairwise" else "bt",
            rounds=r.rounds,
            seed=r.seed,
            level=r.level,
        )
    return ctx.board


def provenance(ctx: _Context) -> Section:
    """Data summary of the dataset (field, value) and its import log (files, sha256, times)."""
    s = Section("provenance", SECTIONS["provenance"])
    summary = dataset_summary(ctx.con)
    row = summary[summary["dataset"] == ctx.req.dataset].iloc[0]
    s.text(
        f"Dataset {ctx.req.dataset} ({row['kind']} data): {row['prompts']:,} prompts, "
        f"{row['battles']:,} votes, {row['results']:,} results, {row['models']:,} models, "
        f"{row['judges']:,} judges, from {row['imports']:,} imports."
    )
    s.table("dataset_summary", pd.DataFrame({"field": row.index, "value": [str(v) for v in row.to_numpy()]}))
    log = imports(ctx.con, ctx.req.dataset)
    cols = ["path", "format", "sha256", "imported_at", "tool_version", "rows_read", "rows_skipped"]
    cols += ["added_battles", "added_results", "origin", "license", "import_id"]
    s.table("imports", log[cols], "Every imported file with its sha256, import time and tool version.")
    return s


def leaderboard_section(ctx: _Context) -> Section:
    """The plain leaderboard with intervals and rank (UB), and its figure."""
    s = Section("leaderboard", SECTIONS["leaderboard"])
    board = _board(ctx)
    t = board.table
    if board.kind == "instances":
        s.text(
            f"Accuracy of {len(t)} models over {board.n_votes:,} results on {_scope(ctx)}, with "
            f"{ctx.req.level:.0%} Clopper–Pearson intervals; rank (UB) = 1 + the number of models "
            "whose lower bound is above this model's upper bound."
        )
        for note in board.extra.get("notes", []):
            s.text(note, "note")
        s.table("leaderboard", t[["rank_ub", "model", "score", "lower", "upper", "items"]], rows=None)
        s.figure(
            "leaderboard",
            figures.interval_figure(t, "score", "lower", "upper", label="model", title="accuracy"),
        )
        return s
    sandwich = board.params.get("ci_used") == "sandwich"
    intervals = (
        f"sandwich (CLT) intervals as LMArena's arena-rank computes them; the rank figures below come "
        f"from {ctx.req.rounds} draws of the fit's normal law (seed {ctx.req.seed})"
        if sandwich
        else f"bootstrap intervals ({ctx.req.rounds} rounds, seed {ctx.req.seed})"
    )
    rounds = "draws" if sandwich else "bootstrap rounds"
    s.text(
        f"Bradley–Terry ratings ({'ties as half a win' if ctx.req.method == 'bt' else 'Rao–Kupper ties'})"
        f" of {len(t)} models from {board.n_votes:,} votes on {_scope(ctx)}, with {ctx.req.level:.0%} "
        f"{intervals}. 400 points = 10x odds; "
        "rank (UB) = 1 + the number of models whose lower bound is above this model's upper bound; "
        f"rank_low..rank_high = the {ctx.req.level:.0%} range of the model's rank over the same {rounds}; "
        f"set_low..set_high = a {ctx.req.level:.0%} confidence set of its rank that holds for all "
        f"models at once (max-t over every pairwise difference in those {rounds}); p_top = the share of "
        "them in which it rates highest (P(#1))."
    )
    for note in board.extra.get("notes", []):
        s.text(note, "note")
    for drop in board.extra.get("vote_drop", []):  # how many removed votes would change #1 / the top k
        s.text(f"Vote-drop robustness: {drop['sentence']}")
    columns = ["rank_ub", "model", "rating", "lower", "upper", "rank_low", "rank_high", "set_low", "set_high"]
    columns += ["p_top", "battles", *(["group"] if "group" in t else [])]
    s.table("leaderboard", t[columns], rows=None)
    s.figure(
        "leaderboard", figures.interval_figure(t, "rating", "lower", "upper", label="model", title="rating")
    )
    _baseline_blocks(ctx, s)
    return s


def _baseline_blocks(ctx: _Context, s: Section) -> None:
    """AlpacaEval's table (:mod:`pipelines.baseline`) when one model is in every vote."""
    fixed = baseline.fixed_baseline(ctx.con, ctx.req.dataset, ctx.req.filters)
    if fixed is None:
        return
    view = baseline.baseline_view(
        ctx.con, ctx.req.dataset, fixed, ctx.req.filters, node=ctx.req.node, tree_id=ctx.tree_id
    )
    s.text(f"Against the fixed baseline {fixed}, as AlpacaEval scores it (rates in %):")
    for note in view["notes"]:
        s.text(note, "note")
    s.table("baseline", pd.DataFrame(view["table"]), rows=None)


def style_section(ctx: _Context) -> Section:
    """The style-controlled leaderboard (rank change against the plain one) and style coefficients."""
    s = Section("style", SECTIONS["style"])
    if ctx.kind != "pairwise":
        s.text("Style control applies to pairwise votes; this dataset holds per-instance results.", "note")
        return s
    r = ctx.req
    try:
        board = build_leaderboard(
            ctx.con,
            r.dataset,
            node=r.node,
            tree_id=ctx.tree_id,
            filters=r.filters,
            style=True,
            rounds=r.rounds,
            seed=r.seed,
            level=r.level,
        )
    except NotApplicable as exc:
        s.text(f"Not applicable: {exc}.", "note")
        return s
    t, coef = board.table, board.coefficients
    s.text(
        f"LMArena's style control on {_scope(ctx)}: answer tokens, headers, list items and bold enter "
        "the Bradley–Terry regression as normalised differences (a-b)/(a+b+1), z-scored, so ratings "
        f"compare models with style held equal. {board.extra.get('battles_used', 0):,} votes used, "
        f"{board.extra.get('battles_dropped', 0):,} dropped for missing style features. rank_change = "
        "plain rank (UB) - controlled rank (UB): positive means the model moves up once style is controlled."
    )
    s.table(
        "style_leaderboard",
        t[
            [
                "rank_ub",
                "model",
                "rating",
                "lower",
                "upper",
                "rank_low",
                "rank_high",
                "p_top",
                "rank_change",
                "battles",
            ]
        ],
        rows=None,
    )
    s.figure(
        "style_leaderboard",
        figures.interval_figure(
            t, "rating", "lower", "upper", label="model", title="rating, style controlled"
        ),
    )
    s.table(
        "style_coefficients",
        coef,
        "Style coefficients: log-odds of winning per SD of the normalised difference, with "
        f"{'sandwich' if board.params.get('ci_used') == 'sandwich' else 'bootstrap'} "
        "intervals; battles_nonzero = votes whose two answers differ in the feature.",
    )
    s.figure(
        "style_coefficients",
        figures.interval_figure(coef, "coef", "lower", "upper", label="feature", title="log-odds per SD"),
    )
    return s


def tree_section(ctx: _Context) -> Section:
    """Top-level nodes (or the children of the scoped node) with size, description and leader."""
    from ..tree.read import tree_nodes
    from ..weaknesses.model_profile import node_scores_for

    s = Section("tree", SECTIONS["tree"])
    if ctx.tree_id is None:
        s.text(
            f"Dataset {ctx.req.dataset} has no capability tree yet: "
            f"run 'arenatree tree build --dataset {ctx.req.dataset}'.",
            "note",
        )
        return s
    nodes = tree_nodes(ctx.con, ctx.tree_id)
    top_id = (
        ctx.req.node
        if ctx.req.node is not None
        else int(nodes.loc[nodes["parent_id"].isna(), "node_id"].iloc[0])
    )
    top = nodes[nodes["parent_id"] == top_id]
    filters = ctx.req.filters if ctx.kind == "pairwise" else NO_FILTERS
    scores = node_scores_for(ctx.con, ctx.req.dataset, ctx.tree_id, filters)
    # the leader is picked among the models with enough data there (MIN_LEADER_N, or the most any has)
    enough = scores["n"] >= np.minimum(MIN_LEADER_N, scores.groupby("node_id")["n"].transform("max"))
    scored = scores[enough & (scores["n"] > 0)]
    scored = scored.sort_values(["node_id", "score", "n"], ascending=[True, False, False])
    leaders = scored.groupby("node_id").head(1).set_index("node_id")
    measure = "win rate (ties half)" if ctx.kind == "pairwise" else "accuracy"
    table = pd.DataFrame(
        {
            "node_id": top["node_id"].to_numpy(),
            "size": top["size"].to_numpy(),
            "children": top["n_children"].to_numpy(),
            "description": top["description"].to_numpy(),
            "keywords": [", ".join(map(str, k)) for k in top["keywords"]],
            "leader": [leaders["model"].get(n) for n in top["node_id"]],
            "leader_score": [leaders["score"].get(n) for n in top["node_id"]],
            "leader_n": [leaders["n"].get(n) for n in top["node_id"]],
        }
    ).sort_values("size", ascending=False)
    where = (
        "top-level nodes" if ctx.req.node is None else f"children of node {top_id} ({ctx.node_description})"
    )
    s.text(
        f"Tree {ctx.tree_id}: {len(nodes):,} nodes, depth {int(nodes['depth'].max())}. Below, its "
        f"{len(table)} {where}, largest first, each with its size (items), description and leader "
        f"(the model with the highest {measure} there among those with at least {MIN_LEADER_N} votes or "
        "items in it; leader_n = its votes or items in the node)."
    )
    s.table("tree_nodes", table)
    s.figure("tree_nodes", figures.bar_figure(table, "size", "description", "items"))
    if ctx.kind == "pairwise":
        _node_rank_sets(ctx, s, top_id, where)
    return s


def _node_rank_sets(ctx: _Context, s: Section, parent: int, where: str) -> None:
    """The rank sets of every model in every node listed above, holding for all of them at once
    (:func:`pipelines.node_rank_sets.node_rank_sets`)."""
    from ..battles import load_battles
    from ..node_rank_sets import node_rank_sets
    from ..slices import slice_cells, slice_of_prompt

    members = slice_of_prompt(ctx.con, ctx.tree_id, parent)
    if members.empty:
        return
    votes = load_battles(ctx.con, ctx.req.dataset, ctx.req.filters)
    slice_of = pd.Series(members["slice"].to_numpy(), index=members["prompt_id"].to_numpy())
    kids = sorted(members["slice"].unique().tolist())
    sets = node_rank_sets(slice_cells(votes, slice_of, kids), ctx.req.rounds, ctx.req.seed, ctx.req.level)
    s.text(
        f"Ranks inside each of the {where} (each node's own Bradley–Terry fit). {sets.attrs['method']} "
        "set_low..set_high = the joint set; node_set_low..node_set_high = the set for that node alone."
    )
    s.table("tree_rank_sets", sets)


def weaknesses_section(ctx: _Context) -> Section:
    """EvalTree weakness profiles (tau = the model's overall score) of the chosen models."""
    from ..tree.read import tree_nodes
    from ..weaknesses import model_profile

    s = Section("weaknesses", SECTIONS["weaknesses"])
    if ctx.tree_id is None:
        s.text("Weakness profiles need the dataset's capability tree.", "note")
        return s
    models = list(ctx.req.models) or _board(ctx).table["model"].head(2).tolist()
    inside = None
    if ctx.req.node is not None:
        nodes = tree_nodes(ctx.con, ctx.tree_id)
        path = nodes.loc[nodes["node_id"] == ctx.req.node, "path"].iloc[0]
        inside = set(nodes.loc[(nodes["path"] == path) | nodes["path"].str.startswith(path + "."), "node_id"])
    s.text(
        "EvalTree's extraction at tau = the model's overall score: a node is a weakness when its whole "
        f"{ctx.req.level:.0%} interval lies below tau, every child with at least 20 items fails too, and no "
        "ancestor was extracted."
        + (f" Only nodes under node {ctx.req.node} ({ctx.node_description}) are listed." if inside else "")
    )
    filters = ctx.req.filters if ctx.kind == "pairwise" else NO_FILTERS
    for i, model in enumerate(models):
        prof = model_profile(
            ctx.con, ctx.req.dataset, model, view="evaltree", tree_id=ctx.tree_id, filters=filters
        )
        rows = pd.DataFrame(
            prof["weaknesses"],
            columns=["node_id", "description", "size", "n", "score", "lower", "upper", "source_ids"],
        )
        if inside is not None:
            rows = rows[rows["node_id"].isin(inside)]
        rows = rows.assign(source_ids=[", ".join(map(str, ids[:10])) for ids in rows["source_ids"]])
        unit = "votes" if ctx.kind == "pairwise" else "items"
        s.text(model, "heading")
        s.text(
            f"Overall score {prof['score']:.3f} over {prof['n']:,} {unit}; {len(rows)} weakness nodes "
            "(source_ids: up to 10 items' own ids)."
        )
        s.table(f"weaknesses_{i + 1}", rows.assign(model=model)[["model", *rows.columns]])
    return s


def audit_section(ctx: _Context) -> Section:
    """Every voter-audit finding: summary, headline, figure, flagged rows and example votes."""
    from ..audit.frame import evidence_votes
    from ..audit.result import headline_text
    from ..audit.run import run_audit
    from ..audit.stored import find_audit

    s = Section("audit", SECTIONS["audit"])
    if ctx.kind != "pairwise":
        s.text("The voter audit needs pairwise votes; this dataset holds per-instance results.", "note")
        return s
    r = ctx.req
    request = {
        "filters": r.filters,
        "tree_id": ctx.tree_id,
        "use_tree": ctx.tree_id is not None,
        "alpha": r.alpha,
        "min_votes": r.min_votes,
        "seed": r.seed,
        "rounds": r.rounds,
        "level": r.level,
    }
    audit = find_audit(ctx.con, r.dataset, **request)
    if audit is not None:
        ctx.audit_source = f"stored audit run {audit.run_id}" if audit.run_id else "stored audit"
    else:
        audit = run_audit(ctx.con, r.dataset, **request)
        ctx.audit_source = "computed for this report"
    s.text(
        f"{audit.votes:,} votes by {audit.voters:,} judges over {audit.models} models "
        f"(tree {audit.tree_id or 'none'}; {ctx.audit_source}). The audit covers every vote that passes "
        "the filters"
        + (", not only the scoped node." if r.node is not None else ".")
        + f" Flags are Benjamini–Hochberg discoveries at {r.alpha} "
        f"(voters with at least {r.min_votes} votes)."
    )
    for f in audit.findings:
        s.text(f.title + ("" if f.applicable else " (not applicable)"), "heading")
        s.text(f.summary)
        head = headline_text(f.headline)
        if head:
            s.text(head, "note")
        if not f.applicable:
            continue
        s.figure(f"audit_{f.audit}", figures.finding_figure(f.tables, f.plot))
        examples: list[str] = []
        for name, table in f.tables.items():
            rows = table[table["flagged"].astype(bool)] if "flagged" in table else table
            if rows.empty:
                continue
            if "battle_ids" in rows and not examples:
                examples = [str(i) for ids in rows["battle_ids"] for i in (ids if ids is not None else [])][
                    :EXAMPLE_VOTES
                ]
            shown = rows.drop(columns=[c for c in ("battle_ids",) if c in rows])
            label = "Flagged rows" if "flagged" in table else "Table"
            s.table(f"audit_{f.audit}_{name}", shown, f"{label} of '{name}' ({len(rows):,}).")
        if examples:
            votes = evidence_votes(ctx.con, r.dataset, examples)
            votes = votes[["battle_id", "judge", "model_a", "model_b", "winner", "prompt"]].assign(
                prompt=votes["prompt"].fillna("").str.slice(0, PROMPT_CHARS)
            )
            s.table(f"audit_{f.audit}_examples", votes, "Example votes behind the first flagged row.")
    return s


def methods_section(ctx: _Context, params: dict) -> Section:
    """How each number was computed, every parameter, and the commands that reproduce them."""
    s = Section("methods", SECTIONS["methods"])
    s.text(
        "Ratings: Bradley–Terry by maximum likelihood on the votes aggregated to (model_a, model_b, "
        "outcome) cells, ties as half a win (Rao–Kupper models ties instead); Elo-like points, 400 = "
        "10x odds, the models average 1000. Intervals: the sandwich (CLT) covariance H^-1 G H^-1 of "
        "the fit, as LMArena's arena-rank, where the fit has a finite estimate; otherwise (and for "
        "Rao–Kupper) the percentile bootstrap, each round redrawing all votes (multinomial over the "
        "cells); the leaderboard says which. Per-instance data: accuracy with Clopper–Pearson intervals. "
        "Style control: LMArena's method (Li, Angelopoulos, Chiang 2024). Capability tree: EvalTree "
        "(Zeng et al. 2025) recursive spherical k-means over MiniLM embeddings. Weaknesses: EvalTree's "
        "extraction at tau. Voter audit: eleven audits (pipelines/audit), flags Benjamini–Hochberg adjusted. "
        "Rank sets: max-t bootstrap over every pairwise difference (Klein, Wright & Wieczorek 2020); over "
        "the tree's nodes, over every (node, pair) difference with each node resampled independently. "
        "Vote-drop robustness: influence functions of the Bradley–Terry fit order the votes (Broderick, "
        "Giordano & Meager's approximate maximum influence perturbation), and the change of #1 / the top 3 "
        "is checked by refitting without the removed votes (bisection along that order)."
    )
    s.table(
        "parameters", pd.DataFrame({"parameter": list(params), "value": [_param(v) for v in params.values()]})
    )
    f = ctx.req.filters
    cmd = ["arenatree", "report", "--dataset", ctx.req.dataset]
    cmd += ["--node", str(ctx.req.node)] if ctx.req.node is not None else []
    cmd += ["--tree", ctx.tree_id] if ctx.tree_id else []
    cmd += ["--sections", ",".join(ctx.req.sections)]
    cmd += ["--models", ",".join(params["models"])] if params.get("models") else []
    cmd += ["--bootstrap", str(ctx.req.rounds), "--seed", str(ctx.req.seed)]
    cmd += (
        ["--alpha", str(ctx.req.alpha), "--min-votes", str(ctx.req.min_votes)]
        if "audit" in ctx.req.sections
        else []
    )
    for name in ("judge_kind", "judge", "language", "since", "until"):
        if getattr(f, name):
            cmd += [f"--{name.replace('_', '-')}", str(getattr(f, name))]
    cmd += ["--exclude-ties"] * f.exclude_ties + ["--dedup-prompts"] * f.dedup_prompts
    s.text("To reproduce (on the same data, i.e. the same import ids):")
    s.text(shlex.join([*cmd, "--out", "report.html"]), "code")
    return s


def _param(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def build_report(
    con: duckdb.DuckDBPyConnection, request: ReportRequest, progress: ProgressFn | None = None
) -> Report:
    """Gather the requested sections of a report on ``request.dataset`` from ``con`` (read only).

    ``progress(section_key, fraction_done)`` is called before each section. Raises
    ArenatreeError for an unknown dataset, node, tree or model.
    """
    from ..tree.read import resolve_tree

    r = request
    kind = dataset_kind(con, r.dataset)
    if kind == "prompts":
        raise ArenatreeError(f"dataset {r.dataset!r} holds only prompts: there is nothing to report")
    try:
        tree_id = resolve_tree(con, r.dataset, r.tree_id)
    except ArenatreeError:
        if r.tree_id is not None or r.node is not None:
            raise
        tree_id = None
    ctx = _Context(con, r, kind, tree_id)
    if r.node is not None:
        from ..leaderboards import subtree_prompt_ids

        ctx.node_description = subtree_prompt_ids(con, tree_id, r.node)[1]
    builders = {
        "provenance": provenance,
        "leaderboard": leaderboard_section,
        "style": style_section,
        "tree": tree_section,
        "weaknesses": weaknesses_section,
        "audit": audit_section,
    }
    sections = []
    wanted = [k for k in SECTIONS if k in r.sections]
    for i, key in enumerate(wanted):
        if progress is not None:
            progress(key, i / len(wanted))
        if key in builders:
            sections.append(builders[key](ctx))
    params = {
        "dataset": r.dataset,
        "kind": kind,
        "tree_id": tree_id,
        "node": r.node,
        "node_description": ctx.node_description,
        "filters": r.filters.key(),
        "method": r.method,
        "bootstrap_rounds": r.rounds,
        "seed": r.seed,
        "level": r.level,
        "audit_alpha": r.alpha,
        "audit_min_votes": r.min_votes,
        "audit_source": ctx.audit_source,
        "models": list(r.models)
        or (
            ctx.board.table["model"].head(2).tolist()
            if ctx.board is not None and "weaknesses" in r.sections
            else []
        ),
        "sections": list(wanted),
        "tool_version": __version__,
        "import_ids": import_ids(con, r.dataset),
    }
    if "methods" in wanted:
        sections.append(methods_section(ctx, params))
    if progress is not None:
        progress("done", 1.0)
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = f"{kind} data, {_scope(ctx)}" + (
        f"; filters {r.filters.key()}" if not r.filters.is_default() else ""
    )
    return Report(f"arenatree report: {r.dataset}", subtitle, sections, params, created)
