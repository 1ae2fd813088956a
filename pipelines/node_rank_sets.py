"""Rank confidence sets that hold jointly over all models and all nodes of a set of sibling nodes.

When a page or a report shows ranks for many nodes at once (the children of a node, the tree's
top-level nodes), a per-node set at 95% leaves a good chance that *some* node's set misses. Here
the sets hold at ``level`` for every model in every one of those nodes at once.

**Method: max-t over (node, pair) with independent per-node bootstraps.** Each node gets its own
Bradley–Terry fit (ties half) on its :func:`pipelines.scores.fitted_models` (the largest set
strongly connected by wins; other models get no set there) and ``rounds`` multinomial bootstrap
rounds (:func:`pipelines.ratings.bootstrap_fit`) with its own independent seed. The nodes are
siblings, so they hold disjoint votes: resampling each node's votes on its own, independently, *is*
a joint (stratified) bootstrap of all of them, and round r of every node together is one joint
replicate. The critical value ``c`` is the ``level`` quantile over rounds of the largest
|d* - d| / se over every (node, pair) (:func:`pipelines.slices.pair_max_t`), and each node's sets
follow from d +- c se as in :func:`pipelines.slices.joint_rank_sets`.

Why not a Bonferroni over nodes of the per-node joint sets: it is valid whatever the dependence,
but it needs each node's ``1 - (1 - level) / K`` bootstrap quantile, which 100 rounds cannot
resolve for more than a few nodes (at K = 20 and 95% that is the 99.75% point of 100 draws), and
it ignores that the maximum over independent nodes is known exactly. Nested nodes (a parent and its
child share votes) would need one shared vote-level resample per round, which the per-node fits
here do not have, so only sibling (disjoint) nodes are offered.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import ratings
from .scores import fitted_models
from .slices import SliceCells, pair_max_t, rank_sets_at


def node_fits(
    cells: SliceCells, rounds: int = 100, seed: int = 0
) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Per slice (node) with a fit: (node_id, model indices into ``cells.models`` (m,), point
    ratings (m,), bootstrap ratings (rounds, m)), Elo-like points. Each node's rounds come from
    its own ``np.random.SeedSequence([seed, node_id])``, so nodes are resampled independently and
    a node's numbers do not depend on the order of the slices."""
    out = []
    for k, node_id in enumerate(cells.slices):
        c = cells.counts[k]
        rows = np.flatnonzero(c.sum(axis=1))
        sub = ratings.Cells(cells.a[rows], cells.b[rows], c[rows, 0], c[rows, 1], c[rows, 2])
        keep = fitted_models(len(cells.models), sub)
        if not len(keep):
            continue
        mask = np.isin(sub.a, keep) & np.isin(sub.b, keep)
        local = ratings.Cells(
            np.searchsorted(keep, sub.a[mask]), np.searchsorted(keep, sub.b[mask]),
            sub.wins_a[mask], sub.wins_b[mask], sub.ties[mask],
        )  # fmt: skip
        names = [cells.models[i] for i in keep]
        node_seed = int(np.random.SeedSequence([seed, int(node_id)]).generate_state(1)[0])
        fit = ratings.bootstrap_fit(names, local, rounds=rounds, seed=node_seed)
        out.append(
            (int(node_id), keep, ratings.to_ratings(fit.point, names), ratings.to_ratings(fit.draws, names))
        )
    return out


def node_rank_sets(cells: SliceCells, rounds: int = 100, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Rank sets over all models and all slices of ``cells`` at once (see the module).

    One row per (node, fitted model): node_id, model, rating (the node's own Bradley–Terry fit,
    Elo-like points), rank (by rating in the node, 1 = best), set_low / set_high (the joint set
    over every model and node), node_set_low / node_set_high (the set for that node alone, as the
    single-node leaderboard shows it), battles (the model's votes in the node). Sorted by node then
    rank. ``attrs``: ``critical`` (the joint c), ``node_critical`` ({node_id: that node's own c}),
    ``nodes`` (nodes with a fit), ``pairs`` (ordered model pairs over all of them), ``level``,
    ``rounds`` and ``method`` (one sentence for a page or report).
    """
    fits = node_fits(cells, rounds, seed)
    parts = [(node_id, keep, point, *pair_max_t(point, boot)) for node_id, keep, point, boot in fits]
    if parts:
        tmax = np.max(np.stack([p[-1] for p in parts]), axis=0)
        critical = float(np.quantile(tmax, level)) if rounds else np.inf
    else:
        critical = np.inf
    frames, node_critical = [], {}
    for node_id, keep, point, d, se, t_node in parts:
        own = float(np.quantile(t_node, level)) if rounds else np.inf
        node_critical[node_id] = own
        joint, alone = rank_sets_at(d, se, critical), rank_sets_at(d, se, own)
        row = cells.slices.index(node_id)
        counts = cells.counts[row]
        played = ratings.battles_played(len(cells.models), cells.a, cells.b, counts)[keep]
        frames.append(
            pd.DataFrame(
                {
                    "node_id": node_id,
                    "model": [cells.models[i] for i in keep],
                    "rating": point,
                    "rank": 1 + (point[None, :] > point[:, None]).sum(axis=1),
                    "set_low": joint["set_low"].to_numpy(),
                    "set_high": joint["set_high"].to_numpy(),
                    "node_set_low": alone["set_low"].to_numpy(),
                    "node_set_high": alone["set_high"].to_numpy(),
                    "battles": played,
                }
            )
        )
    columns = ["node_id", "model", "rating", "rank", "set_low", "set_high", "node_set_low", "node_set_high"]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*columns, "battles"])
    out = out.sort_values(["node_id", "rank", "model"], ignore_index=True)
    n_pairs = int(sum(len(p[1]) * (len(p[1]) - 1) for p in parts))
    out.attrs = {
        "critical": critical,
        "node_critical": node_critical,
        "nodes": len(parts),
        "pairs": n_pairs,
        "level": level,
        "rounds": rounds,
        "method": method_sentence(len(parts), n_pairs, level, rounds, critical, node_critical),
    }
    return out


def method_sentence(
    nodes: int, pairs: int, level: float, rounds: int, critical: float, node_critical: dict[int, float]
) -> str:
    """What the joint sets are, in one sentence (with the critical values behind them)."""
    if not nodes:
        return "No node here has enough connected votes for a Bradley–Terry fit, so no rank sets."
    own = np.median(list(node_critical.values()))
    return (
        f"Rank sets that hold at {level:.0%} for every model in all {nodes} nodes at once: a max-t "
        f"bootstrap over the {pairs:,} (node, model pair) rating differences ({rounds} rounds per node; "
        "the nodes hold disjoint votes, so resampling each on its own is one joint bootstrap and no "
        f"Bonferroni correction is needed). Critical value {critical:.2f} standard errors against a "
        f"median {own:.2f} for one node alone, so these sets are wider than each node's own."
    )
