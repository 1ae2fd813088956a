"""One leaderboard request end to end: which votes (dataset, filters, a tree node), which method.

The CLI's ``leaderboard`` command and the reports call :func:`build_leaderboard`; the numbers come
from :mod:`pipelines.ratings` (Bradley–Terry / Rao–Kupper with bootstrap intervals),
:mod:`pipelines.style_control` and, for per-instance datasets, Clopper–Pearson accuracy intervals
from :mod:`pipelines.scores`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from . import ratings
from .battles import NO_FILTERS, Filters, dataset_kind, load_battles, load_results
from .design import leaderboard_notes, node_sentence
from .errors import ArenatreeError
from .queries import records
from .sandwich import fallback_notes
from .scores import proportion_table
from .slices import spread_leaderboard
from .stats import clopper_pearson_interval, wilson_interval
from .store import one
from .tree.read import resolve_tree
from .vote_drop import board_drops

METHODS = ("bt", "rao-kupper")


@dataclass
class Leaderboard:
    """A computed leaderboard and what produced it.

    ``table``: one row per model, best first. Pairwise data: model, rating (Elo-like points,
    400 = 10x odds), lower, upper (percentile bootstrap interval at ``level``), rank_ub, battles,
    and with style control also rank_change (plain rank_ub - controlled rank_ub). Per-instance
    data: model, score (accuracy in [0, 1]), lower, upper (Clopper–Pearson; NaN under 5 items),
    rank_ub, items. ``coefficients``: style coefficients (feature, coef, lower, upper) or None.
    """

    dataset: str
    kind: str  # 'pairwise' | 'instances'
    table: pd.DataFrame
    params: dict
    tree_id: str | None = None
    node: int | None = None
    node_description: str | None = None
    n_votes: int = 0
    coefficients: pd.DataFrame | None = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-able form (what ``arenatree leaderboard --json`` prints)."""
        out = {
            "dataset": self.dataset,
            "kind": self.kind,
            "tree_id": self.tree_id,
            "node": self.node,
            "node_description": self.node_description,
            "n_votes" if self.kind == "pairwise" else "n_results": self.n_votes,
            "params": self.params,
            "models": records(self.table),
            **self.extra,
        }
        if self.coefficients is not None:
            out["style_coefficients"] = records(self.coefficients)
        return out


def subtree_prompt_ids(con: duckdb.DuckDBPyConnection, tree_id: str, node: int) -> tuple[list[str], str]:
    """The prompt ids of every item under ``node`` (its subtree) and the node's description."""
    row = one(con, "SELECT path, description FROM nodes WHERE tree_id = ? AND node_id = ?", [tree_id, node])
    if row is None:
        raise ArenatreeError(f"tree {tree_id!r} has no node {node}")
    ids = con.execute(
        """
        SELECT m.prompt_id FROM node_members m
        JOIN nodes n ON n.tree_id = m.tree_id AND n.node_id = m.node_id
        WHERE m.tree_id = ? AND (n.path = ? OR starts_with(n.path, ? || '.'))
        ORDER BY m.prompt_id
        """,
        [tree_id, row[0], row[0]],
    ).fetchall()
    return [r[0] for r in ids], row[1]


def accuracy_table(results: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per-model mean score with an interval, best first.

    ``results``: model, score rows. Columns: model, score, lower, upper (Clopper–Pearson for
    0/1 scores, Wilson otherwise; NaN under 5 items, as EvalTree), rank_ub, items.
    """
    grouped = results.groupby("model", sort=True)["score"].agg(["sum", "count"])
    binary = bool(results["score"].isin((0.0, 1.0)).all())
    interval = clopper_pearson_interval if binary else wilson_interval
    # one "node" holding everything: the node scores' own table and interval rules
    table, _, _ = proportion_table(
        np.zeros(1, dtype=np.int64),
        list(grouped.index),
        grouped["count"].to_numpy(dtype=np.float64)[None, :],
        grouped["sum"].to_numpy(dtype=np.float64)[None, :],
        interval,
        level,
    )
    table = table[["model", "score", "lower", "upper"]].assign(items=table["n"])
    lo = table["lower"].fillna(-np.inf).to_numpy()
    hi = table["upper"].fillna(np.inf).to_numpy()
    table.insert(4, "rank_ub", ratings.rank_upper_bound(lo, hi))
    return table.sort_values(["score", "model"], ascending=[False, True], ignore_index=True)


def build_leaderboard(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    *,
    node: int | None = None,
    tree_id: str | None = None,
    filters: Filters = NO_FILTERS,
    method: str = "bt",
    style: bool = False,
    rounds: int = 100,
    seed: int = 0,
    level: float = 0.95,
    anchor: str | None = None,
    top_k: int = 3,
    ci: str = "auto",
    reweight: bool = False,
) -> Leaderboard:
    """The leaderboard of ``dataset`` (optionally only the items under ``node`` of its tree).

    Pairwise datasets: Bradley–Terry (``method='bt'``, ties as half a win) or Rao–Kupper, with
    ``ci`` intervals: 'auto' (the default: LMArena's sandwich where valid, else bootstrap, with a
    note saying why; :func:`pipelines.sandwich.choose_ci`), 'sandwich', or 'bootstrap' (``rounds``
    multinomial rounds from ``seed``; a sandwich fit draws ``rounds`` normal rounds for the rank
    spread); ``reweight`` applies LMArena's inverse-frequency pair weights; ``style=True`` adds
    LMArena's style control; ``extra['vote_drop']`` says how many votes must be removed to change
    #1 and the top ``top_k`` (:func:`pipelines.vote_drop.board_drops`). Per-instance datasets: accuracy with
    Clopper–Pearson intervals (``filters``, ``method``, ``style`` and ``rounds`` do not apply and must
    be left at their defaults).
    """
    if method not in METHODS:
        raise ArenatreeError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if rounds < 10:
        raise ArenatreeError(f"--bootstrap needs at least 10 rounds for a {level:.0%} interval, got {rounds}")
    kind = dataset_kind(con, dataset)
    prompt_ids, description = None, None
    if node is not None:
        tree_id = resolve_tree(con, dataset, tree_id)
        prompt_ids, description = subtree_prompt_ids(con, tree_id, node)
    params = {"method": method, "style_control": style, "rounds": rounds, "seed": seed, "level": level}
    params |= {"anchor": anchor, "filters": filters.key(), "top_k": top_k, "ci": ci, "reweight": reweight}
    if kind == "instances":
        if not filters.is_default() or style or method != "bt":
            raise ArenatreeError(
                f"dataset {dataset!r} holds per-instance results: vote filters, --method and "
                "--style-control apply to pairwise votes only"
            )
        results = load_results(con, dataset)
        if prompt_ids is not None:
            results = results[results["prompt_id"].isin(prompt_ids)]
        if results.empty:
            raise ArenatreeError(f"node {node} of tree {tree_id!r} holds no results")
        board = Leaderboard(
            dataset,
            kind,
            accuracy_table(results, level),
            {"level": level},
            tree_id,
            node,
            description,
            n_votes=len(results),
        )
        small = node_sentence(node, description, results["prompt_id"].nunique()) if node is not None else None
        board.extra["notes"] = [small] if small else []
        return board
    if kind != "pairwise":
        raise ArenatreeError(f"dataset {dataset!r} holds only prompts: there is nothing to rank")
    votes = load_battles(con, dataset, filters)
    if prompt_ids is not None:
        votes = votes[votes["prompt_id"].isin(prompt_ids)].reset_index(drop=True)
        if votes.empty:
            raise ArenatreeError(f"no votes of dataset {dataset!r} on the prompts under node {node}")
    if anchor is not None and anchor not in set(votes["model_a"]).union(votes["model_b"]):
        raise ArenatreeError(f"anchor model {anchor!r} has no votes in this selection")
    board = Leaderboard(dataset, kind, pd.DataFrame(), params, tree_id, node, description, n_votes=len(votes))
    if style:
        if method != "bt":
            raise ArenatreeError("style control fits Bradley–Terry; use it with --method bt")
        from .style_control import style_control

        fit = style_control(votes, rounds, seed, level, anchor=anchor, ci=ci, reweight=reweight)
        board.table, board.coefficients = fit.leaderboard, fit.coefficients
        _ci_used(board, fit.leaderboard.attrs)
        board.extra["battles_used"] = int(fit.battles_used)
        board.extra["battles_dropped"] = int(fit.battles_dropped)
        board.extra["vote_drop"] = board_drops(votes, method, style, top_k)
        return with_design_notes(board, votes)
    # the plain fit plus each model's rank range and P(#1) from the same bootstrap rounds
    board.table = spread_leaderboard(
        votes, rounds, seed, level, method=method, anchor=anchor, ci=ci, reweight=reweight
    )
    _ci_used(board, board.table.attrs)
    if method == "rao-kupper":
        board.extra["theta"] = board.table.attrs["theta"]
        board.extra["theta_interval"] = list(board.table.attrs["theta_interval"])
    board.extra["vote_drop"] = board_drops(votes, method, style, top_k)
    return with_design_notes(board, votes)


def _ci_used(board: Leaderboard, attrs: dict) -> None:
    """Record on ``board`` which interval method its table used (``params['ci_used']``) and, when
    'auto' fell back to the bootstrap, a note saying why."""
    board.params["ci_used"] = attrs.get("ci", "bootstrap")
    board.extra.setdefault("ci_notes", []).extend(fallback_notes(attrs))


def with_design_notes(board: Leaderboard, votes: pd.DataFrame) -> Leaderboard:
    """``board`` with what its votes cannot support said in ``extra['notes']`` (sentences) and,
    when the models fall into groups that never meet, a ``group`` column (1 = the biggest)."""
    notes, group_of = leaderboard_notes(votes, board.table)
    small = (
        node_sentence(board.node, board.node_description, votes["prompt_id"].nunique())
        if board.node is not None
        else None
    )
    board.extra["notes"] = [*([small] if small else []), *notes, *board.extra.pop("ci_notes", [])]
    if group_of:
        board.table = board.table.assign(group=board.table["model"].map(group_of).astype("int64"))
    return board
