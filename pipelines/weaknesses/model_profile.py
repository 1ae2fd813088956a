"""One model's weakness (and strength) profile on a dataset's tree, end to end.

This is what ``arenatree weaknesses`` prints and reports export. Four views, all over the same
node scores (stored node scores when a run with the default parameters exists, else computed
on the fly without storing):

* ``evaltree`` at τ: EvalTree's extraction (:func:`.profiles.extract`); τ defaults to the
  model's overall score (its win rate over all its votes, or its accuracy), so a weakness is a
  node whose whole interval lies below the model's own average;
* ``sweep``: every distinct EvalTree profile as τ moves, each with its τ range;
* ``pruned``: no τ — penalised-likelihood pruning (:func:`.profiles.prune_mask`) of each node's
  evidence against the model's own level (accuracy gain for per-instance data, the
  opponent-adjusted z for votes); the most precise view in ``bench/bench_weakness_validity.py``;
* ``selected`` (votes only; the default for votes): :mod:`.stepwise` — tree nodes *and* prompt
  facets (languages, arena categories) screened by the opponent-adjusted score test with
  Benjamini–Hochberg, then a forward/backward selection keeps the few groups that jointly explain
  the model's departures, with the opponents' own departures backfitted; offsets in points;
* ``adjusted`` (votes only): the opponent-adjusted test of every node (is the model weaker in
  the node than its global rating says, given whom it met there?), p-values optionally
  Benjamini–Hochberg adjusted over every node tested, topmost significant nodes extracted.
"""

from __future__ import annotations

from typing import Literal

import duckdb
import numpy as np
import pandas as pd

from ..battles import NO_FILTERS, Filters, dataset_kind
from ..errors import ArenatreeError
from ..queries import records
from ..tree.read import resolve_tree, tree_nodes
from .arena import opponent_adjusted_tests
from .profiles import (
    MIN_CHILD_SIZE,
    accuracy_gain,
    bh_adjust,
    extract,
    extract_significant,
    penalty_for,
    prune_mask,
    sweep,
    tree_index,
    z_gain,
)

View = Literal["evaltree", "sweep", "pruned", "adjusted", "selected"]
NODE_FIELDS = ["node_id", "parent_id", "depth", "size", "description", "keywords"]
DEFAULT_PRUNE_ALPHA = 0.001  # per-node level an isolated node must pass in the pruned view


def model_nodes(nodes: pd.DataFrame, node_scores: pd.DataFrame, model: str) -> pd.DataFrame:
    """Every node of a tree with ``model``'s score there.

    ``nodes``: :func:`pipelines.tree.read.tree_nodes`; ``node_scores``: the long frame of
    :mod:`pipelines.scores` (node_id, model, n, wins, score, lower, upper, ...). Returns the node
    fields (parent_id as float, NaN at the root) plus n (0 where the model has no data), wins,
    score, lower, upper (NaN where the model has no data or no interval) — the input of the
    profile functions.
    """
    mine = node_scores.loc[node_scores["model"] == model, ["node_id", "n", "wins", "score", "lower", "upper"]]
    out = nodes[NODE_FIELDS].merge(mine, on="node_id", how="left")
    out["parent_id"] = out["parent_id"].astype("Float64").astype(float)
    out["n"] = out["n"].fillna(0).astype(np.int64)
    return out


def node_scores_for(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    tree_id: str,
    filters: Filters = NO_FILTERS,
    cells=None,
) -> pd.DataFrame:
    """The node scores of ``tree_id``: the stored run with default parameters when there is one,
    else computed now — win rates (from ``cells``, the :class:`pipelines.scores.NodeCells` of
    these votes, when the caller already has them) or accuracies with their intervals; no node
    ratings (profiles do not use them), nothing stored."""
    from .. import scores

    kind = dataset_kind(con, dataset)
    if kind == "instances" and not filters.is_default():
        raise ArenatreeError(f"dataset {dataset!r} holds per-instance results: vote filters do not apply")
    run_id = scores.find_run(con, dataset, tree_id, {"filters": filters})
    if run_id is not None:
        return scores.stored_node_scores(con, run_id)
    if kind == "instances":
        return scores.instance_scores(scores.node_results(con, dataset, tree_id))[0]
    if kind != "pairwise":
        raise ArenatreeError(f"dataset {dataset!r} holds only prompts: there are no scores to profile")
    cells = cells if cells is not None else scores.node_cells(con, dataset, tree_id, filters)
    played, wins, _ = cells.model_totals()
    return scores.proportion_table(cells.node_ids, cells.models, played, wins, scores.wilson_interval, 0.95)[
        0
    ]


def _source_ids(con: duckdb.DuckDBPyConnection, tree_id: str, node_ids: list[int]) -> dict[int, list[str]]:
    """The items' own ids (prompt_sources, else the prompt id) under each of ``node_ids``."""
    if not node_ids:
        return {}
    rows = con.execute(
        """
        WITH picked AS (
            SELECT node_id AS picked_id, path FROM nodes WHERE tree_id = ? AND list_contains(?, node_id)
        )
        SELECT p.picked_id, list(DISTINCT coalesce(s.source_id, m.prompt_id)
                                 ORDER BY coalesce(s.source_id, m.prompt_id))
        FROM picked p
        JOIN nodes n ON n.tree_id = ? AND (n.path = p.path OR starts_with(n.path, p.path || '.'))
        JOIN node_members m ON m.tree_id = n.tree_id AND m.node_id = n.node_id
        JOIN trees t ON t.tree_id = m.tree_id
        LEFT JOIN prompt_sources s ON s.dataset = t.dataset AND s.prompt_id = m.prompt_id
        GROUP BY p.picked_id
        """,
        [tree_id, node_ids, tree_id],
    ).fetchall()
    return {int(k): [str(v) for v in ids] for k, ids in rows}


def _entries(con, tree_id: str, frame: pd.DataFrame, columns: list[str]) -> list[dict]:
    """JSON-able rows of a profile, each with the source ids of the items behind it."""
    sources = _source_ids(con, tree_id, [int(i) for i in frame["node_id"]])
    return [rec | {"source_ids": sources.get(int(rec["node_id"]), [])} for rec in records(frame[columns])]


def _selected(con, dataset, model, tree_id, filters, alpha, fdr, strengths) -> dict:
    """The ``selected`` view of :func:`model_profile` (:func:`.stepwise.arena_weaknesses`)."""
    from .stepwise import arena_weaknesses, load_groups

    votes, cand = load_groups(con, dataset, tree_id, filters)
    if model not in votes.models:
        known = ", ".join(votes.models[:20])
        raise ArenatreeError(f"model {model!r} has no data in dataset {dataset!r}; models: {known}")
    mine = (votes.a == votes.models.index(model)) | (votes.b == votes.models.index(model))
    score_m = np.where(votes.a == votes.models.index(model), votes.score_a, 1 - votes.score_a)[mine]
    out = {
        "dataset": dataset,
        "model": model,
        "tree_id": tree_id,
        "kind": "pairwise",
        "view": "selected",
        "score": float(score_m.mean()) if len(score_m) else float("nan"),
        "n": int(mine.sum()),
        "filters": filters.key(),
        "alpha": alpha,
        "fdr": fdr,
    }
    if len(votes.models) < 2 or not cand.keys:
        out["weaknesses"] = []
        out["strengths"] = [] if strengths else None
        out["note"] = "fewer than two models or no group of prompts to test: nothing is estimated"
        if not strengths:
            out.pop("strengths")
        return out
    table = arena_weaknesses(votes, cand, q=alpha, fdr=fdr)[model]
    out["tested"] = int(len(table))
    out["discoveries"] = int(table["discovery"].sum())
    columns = ["key", "kind", "node_id", "description", "size", "battles", "observed", "expected"]
    columns += ["offset", "offset_lower", "offset_upper", "z", "p", "p_adj", "p_step", "step"]
    chosen = table[table["step"] > 0]
    sources = _group_sources(con, dataset, cand, chosen["key"].tolist())
    for d, name in (("weak", "weaknesses"), ("strong", "strengths")):
        if d == "strong" and not strengths:
            continue
        rows = chosen[chosen["offset"] < 0] if d == "weak" else chosen[chosen["offset"] > 0]
        entries = []
        for rec in records(rows[columns]):
            rec["node_id"] = None if rec["node_id"] == -1 else rec["node_id"]
            rec["n"] = rec["battles"]
            rec["score"] = rec["observed"] / rec["battles"] if rec["battles"] else None
            entries.append(rec | {"source_ids": sources.get(rec["key"], [])})
        out[name] = entries
    return out


def _group_sources(con, dataset: str, cand, keys: list[str]) -> dict[str, list[str]]:
    """The items' own ids (prompt_sources, else the prompt id) of each candidate group in ``keys``."""
    out = {}
    col = pd.Index(cand.keys).get_indexer(keys)
    for key, c in zip(keys, col, strict=True):
        rows = np.flatnonzero(cand.membership[:-1, [c]].toarray().ravel() > 0)
        ids = [cand.prompt_ids[r] for r in rows]
        con.register("want_prompts", pd.DataFrame({"prompt_id": ids}))
        got = con.execute(
            "SELECT DISTINCT coalesce(s.source_id, w.prompt_id) AS sid FROM want_prompts w "
            "LEFT JOIN prompt_sources s ON s.dataset = ? AND s.prompt_id = w.prompt_id ORDER BY sid",
            [dataset],
        ).fetchall()
        con.unregister("want_prompts")
        out[key] = [str(r[0]) for r in got]
    return out


def model_profile(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    model: str,
    *,
    view: View | None = None,
    tau: float | None = None,
    tree_id: str | None = None,
    filters: Filters = NO_FILTERS,
    alpha: float | None = None,
    fdr: bool = True,
    strengths: bool = False,
    min_child_size: int = MIN_CHILD_SIZE,
) -> dict:
    """``model``'s profile on ``dataset``'s tree (newest unless ``tree_id``), as a JSON-able dict.

    Keys: dataset, model, tree_id, kind, view, score (the model's overall score: win rate with ties
    as half, or accuracy), n (its battles / results), and per view:

    - evaltree: tau, weaknesses (and strengths when asked): node_id, description, size (items),
      n, score, lower, upper, source_ids;
    - sweep: profiles: tau_low, tau_high, node_ids (loosest first);
    - pruned: alpha (per-node level an isolated node must pass; default 0.001), weaknesses
      (+ strengths);
    - adjusted: alpha, fdr, weaknesses (+ strengths) with offset (rating points), its interval,
      z, p and p_adj (BH over every node where the model played when ``fdr``).
    """
    if view not in (None, "evaltree", "sweep", "pruned", "adjusted", "selected"):
        raise ArenatreeError(f"unknown view {view!r}")
    if view is None:  # votes: opponent-adjusted selection; results: EvalTree at tau
        view = "selected" if dataset_kind(con, dataset) == "pairwise" and tau is None else "evaltree"
    if alpha is None:
        alpha = DEFAULT_PRUNE_ALPHA if view == "pruned" else 0.05
    if not 0 < alpha < 1:
        raise ArenatreeError(f"alpha={alpha}: expected a level between 0 and 1")
    tree_id = resolve_tree(con, dataset, tree_id)
    kind = dataset_kind(con, dataset)
    if view in ("adjusted", "selected") and kind != "pairwise":
        raise ArenatreeError(
            "the opponent-adjusted view needs pairwise votes; use --tau, --sweep or --pruned"
        )
    if view == "selected":
        return _selected(con, dataset, model, tree_id, filters, alpha, fdr, strengths)
    cells = None
    if kind == "pairwise" and view in ("pruned", "adjusted"):  # both views test the node cells
        from ..scores import node_cells

        cells = node_cells(con, dataset, tree_id, filters)
    scores = node_scores_for(con, dataset, tree_id, filters, cells)
    if model not in set(scores["model"]):
        known = ", ".join(sorted(set(scores["model"]))[:20])
        raise ArenatreeError(f"model {model!r} has no data in dataset {dataset!r}; models: {known}")
    nodes = model_nodes(tree_nodes(con, tree_id), scores, model)
    root = nodes.loc[nodes["parent_id"].isna()].iloc[0]
    out = {
        "dataset": dataset,
        "model": model,
        "tree_id": tree_id,
        "kind": kind,
        "view": view,
        "score": float(root["score"]),
        "n": int(root["n"]),
        "filters": filters.key(),
    }
    columns = ["node_id", "description", "size", "n", "score", "lower", "upper"]
    directions = ["weak", "strong"] if strengths else ["weak"]
    names = {"weak": "weaknesses", "strong": "strengths"}
    if view == "evaltree":
        out["tau"] = float(root["score"]) if tau is None else float(tau)
        for d in directions:
            picked = nodes["node_id"].isin(extract(nodes, out["tau"], d, min_child_size)["node_id"])
            out[names[d]] = _entries(con, tree_id, nodes.loc[picked], columns)
        return out
    if view == "sweep":
        for d in directions:
            key = "profiles" if d == "weak" else "strength_profiles"
            out[key] = [
                {"tau_low": p.tau_low, "tau_high": p.tau_high, "node_ids": list(p.node_ids)}
                for p in sweep(nodes, d, min_child_size)
            ]
        return out
    if kind == "pairwise":
        tests = opponent_adjusted_tests(cells)
        mine = tests.loc[tests["model"] == model, ["node_id", "offset", "offset_lower", "offset_upper", "z"]]
        mine = mine.assign(p_weak=tests.loc[mine.index, "p_weak"], p_strong=tests.loc[mine.index, "p_strong"])
        nodes = nodes.merge(mine, on="node_id", how="left")
    if view == "pruned":
        out["alpha"] = alpha
        index = tree_index(nodes)
        for d in directions:
            if kind == "pairwise":
                gain = z_gain(nodes["z"].to_numpy(float), d)
            else:
                gain = accuracy_gain(
                    nodes["wins"].to_numpy(float), nodes["n"].to_numpy(float), out["score"], d
                )
            mask = prune_mask(index, gain, penalty_for(out["alpha"]))
            extra = ["offset", "offset_lower", "offset_upper", "z"] if kind == "pairwise" else []
            out[names[d]] = _entries(con, tree_id, nodes.loc[mask], columns + extra)
        return out
    out |= {"alpha": alpha, "fdr": fdr}
    for d in directions:
        p = nodes["p_weak" if d == "weak" else "p_strong"].to_numpy(float)
        tested = ~np.isnan(p)
        p_adj = np.full(len(p), np.nan)
        p_adj[tested] = bh_adjust(p[tested]) if fdr else p[tested]
        frame = nodes.assign(p=p, p_adj=p_adj)
        picked = frame["node_id"].isin(extract_significant(frame, "p_adj", alpha, rule="maximal")["node_id"])
        out[names[d]] = _entries(
            con,
            tree_id,
            frame.loc[picked],
            columns + ["offset", "offset_lower", "offset_upper", "z", "p", "p_adj"],
        )
    return out
