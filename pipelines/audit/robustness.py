"""Robustness of #1: the fewest votes whose removal changes the top of the Bradley–Terry leaderboard.

The leaderboard is the plain Bradley–Terry point fit (ties as half a win, both tie kinds alike;
:func:`pipelines.ratings.fit_pairwise`); #1 is the model with the highest rating among the
models that still have a vote. #1 *changes* when another model's rating rises strictly above it
(by more than :data:`FLIP_EPS` log-odds; an exact tie does not dethrone) or when it has no vote
left. Huang et al. (2025, "Dropping just a handful of preferences") found that a handful of
votes out of tens of thousands can change an arena's top; this audit measures it per dataset and
per tree node and names the votes.

Votes in the same (ordered pair, outcome) cell are interchangeable for the fit, so a removal is a
count vector over the cells. Two searches:

* exact: every count vector of size 1, 2, ... (refits batched by size) until one changes #1,
  or until the known upper bound is reached (then the bound is exact). Run when the upper bound
  is at most ``exact_max_votes + 1`` (or none was found), while the number of vectors stays
  within ``exact_candidates``.
* upper bound (any size): for each challenger among the ``challengers`` next-best models, order the
  cells by the first-order (influence-function / one-step Newton) effect of removing one vote on
  the gap beta_top - beta_challenger, then find the shortest prefix of that vote ordering whose
  removal changes #1 by refitting (a geometric grid, then bisection). A second pass re-linearises
  at the refit halfway along the best prefix. Every reported removal is verified by a refit.

The result says 'exact' when the exact search proved minimality, 'upper bound' otherwise, and
'not found' when no prefix up to ``max_remove`` of the votes changes #1.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
import pandas as pd

from .. import ratings
from ..scores import ancestor_matrix
from .cells import NodeVotes, node_counts, vote_cells
from .frame import OUTCOMES, AuditVotes
from .result import EXAMPLE_IDS, Finding, not_applicable

AUDIT = "robustness"
TITLE = "How many votes decide #1"
FLIP_EPS = 1e-7  # natural log-odds by which a challenger must exceed the old #1
FIT_TOL = 1e-10
FIT_MAXITER = 100
REMOVED_ROWS = 2000  # removed votes listed in the 'removed' table for all votes ...
REMOVED_NODE_ROWS = 200  # ... and per tree node
# Nodes: each node's leaderboard needs enough votes that #1 means something; 300 matches the
# inversions audit (about 50 battles per model with ~12 models).
MIN_NODE_VOTES = 300


class Flip(NamedTuple):
    """Result of the search on one set of cells."""

    k: int | None  # votes removed (None: no change of #1 found within the limits)
    method: str  # 'exact' | 'upper bound' | 'not found'
    top: int  # model index of #1 before
    new_top: int  # model index of #1 after the removal (-1 when k is None)
    challenger: int  # model the search aimed at (-1 for the exact search's own find)
    removal: np.ndarray  # (U, 3) votes removed per cell and outcome
    order: np.ndarray  # (U * 3,) flat cells of the removal, most influential first
    candidates: int  # count vectors the exact search refitted


# --------------------------------------------------------------------------- fitting


def _fit(a: np.ndarray, b: np.ndarray, n: int, counts: np.ndarray, start: np.ndarray | None) -> np.ndarray:
    return ratings.fit_pairwise(a, b, n, counts, start=start, tol=FIT_TOL, maxiter=FIT_MAXITER)


def _present(a: np.ndarray, b: np.ndarray, n: int, counts: np.ndarray) -> np.ndarray:
    """Models with at least one vote, (R, n) bool, for counts (R, U, 3)."""
    per_row = counts.sum(axis=2) > 0  # (R, U)
    out = np.zeros((counts.shape[0], n), dtype=bool)
    rows, cols = np.nonzero(per_row)
    out[rows, a[cols]] = True
    out[rows, b[cols]] = True
    return out


def top_model(beta: np.ndarray, present: np.ndarray) -> np.ndarray:
    """#1 per round: highest beta among present models, (R,) int (lowest index on exact ties)."""
    return np.argmax(np.where(present, beta, -np.inf), axis=-1)


def changed(beta: np.ndarray, present: np.ndarray, top: int) -> np.ndarray:
    """Rounds (R,) bool where ``top`` is no longer #1: absent, or another present model above it
    by more than FLIP_EPS."""
    others = np.where(present, beta, -np.inf)
    others[:, top] = -np.inf
    return ~present[:, top] | (others.max(axis=1) > beta[:, top] + FLIP_EPS)


def refit_changed(
    a: np.ndarray,
    b: np.ndarray,
    n: int,
    counts: np.ndarray,
    removals: np.ndarray,
    top: int,
    start: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Refit after each removal (R, U, 3): (changed (R,) bool, new #1 (R,) int)."""
    left = counts[None] - removals
    beta = _fit(a, b, n, left, start)
    present = _present(a, b, n, left)
    return changed(beta, present, top), top_model(beta, present)


# --------------------------------------------------------------------------- exact search


def count_vectors(caps: np.ndarray, size: int, budget: int) -> np.ndarray | None:
    """Every integer vector r with 0 <= r <= ``caps`` (K,) and sum ``size``, shape (m, K);
    None when there would be more than ``budget`` of them at some size along the way."""
    k = len(caps)
    vecs = np.zeros((1, k), dtype=np.int32)
    last = np.zeros(1, dtype=np.int64)  # index of the last increment: build each multiset once
    cols = np.arange(k)
    for _ in range(size):
        ok = (cols[None, :] >= last[:, None]) & (vecs < caps[None, :])
        if ok.sum() > budget:
            return None
        rows, ks = np.nonzero(ok)
        vecs = vecs[rows]
        vecs[np.arange(len(rows)), ks] += 1
        last = ks
    return vecs


def exact_search(
    a: np.ndarray,
    b: np.ndarray,
    n: int,
    counts: np.ndarray,
    top: int,
    point: np.ndarray,
    upto: int,
    budget: int,
) -> tuple[int | None, np.ndarray | None, int, bool]:
    """Smallest removal of size < ``upto`` that changes #1, by increasing size.

    Returns (k, removal (U, 3), candidates refitted, complete): k None when no size below
    ``upto`` works; ``complete`` False when the search stopped early for the ``budget``."""
    flat = counts.ravel()
    cells = np.flatnonzero(flat > 0)
    caps = flat[cells].astype(np.int64)
    done = 0
    for size in range(1, upto):
        if size > caps.sum():
            break
        vecs = count_vectors(caps, size, budget - done)
        if vecs is None:
            return None, None, done, False
        done += len(vecs)
        for lo in range(0, len(vecs), 4096):
            chunk = vecs[lo : lo + 4096]
            removals = np.zeros((len(chunk), flat.size))
            removals[:, cells] = chunk
            removals = removals.reshape(len(chunk), *counts.shape)
            flips, _ = refit_changed(a, b, n, counts, removals, top, point)
            if flips.any():
                return size, removals[int(np.argmax(flips))], done, True
    return None, None, done, True


# --------------------------------------------------------------------------- influence ordering


def gap_influence(
    a: np.ndarray, b: np.ndarray, n: int, counts: np.ndarray, beta: np.ndarray, top: int, rival: int
) -> np.ndarray:
    """First-order change of beta[top] - beta[rival] (natural log-odds) from removing one vote of
    each (cell, outcome), shape (U, 3).

    One Newton step of the refit without the vote: with x = e_a - e_b, s = x.beta, y = 1 / 0 /
    0.5 for an a win / b win / tie, removing it moves beta by -(y - sigmoid(s)) H^-1 x, H the
    Hessian of the (unnormalised) log-likelihood: sum over votes of sigmoid(s)(1 - sigmoid(s)) x x^T.
    """
    s = beta[a] - beta[b]
    p = 1.0 / (1.0 + np.exp(-s))
    total = counts.sum(axis=1)
    h = total * p * (1 - p)
    hess = np.zeros((n, n))
    np.add.at(hess, (a, a), h)
    np.add.at(hess, (b, b), h)
    np.add.at(hess, (a, b), -h)
    np.add.at(hess, (b, a), -h)
    hess += 1.0 / n + 1e-9 * np.eye(n)  # pins the free shift; e_top - e_rival is orthogonal to it
    target = np.zeros(n)
    target[top], target[rival] = 1.0, -1.0
    w = np.linalg.solve(hess, target)
    wx = w[a] - w[b]
    y = np.array([1.0, 0.0, 0.5])
    return -(y[None, :] - p[:, None]) * wx[:, None]


def _prefix_removals(order: np.ndarray, counts_flat: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Removal count vectors (len(sizes), U*3) taking the first ``size`` votes of the vote ordering
    that lists flat cells ``order`` each repeated its count."""
    cum = np.cumsum(counts_flat[order])
    out = np.zeros((len(sizes), counts_flat.size))
    for i, size in enumerate(sizes):
        full = int(np.searchsorted(cum, size, side="right"))  # cells removed entirely
        out[i, order[:full]] = counts_flat[order[:full]]
        if full < len(order):
            out[i, order[full]] = size - (cum[full - 1] if full else 0)
    return out


def shortest_prefix(
    a: np.ndarray,
    b: np.ndarray,
    n: int,
    counts: np.ndarray,
    top: int,
    point: np.ndarray,
    order: np.ndarray,
    limit: int,
) -> tuple[int | None, np.ndarray | None, int]:
    """Smallest prefix size (<= ``limit``) of the vote ordering ``order`` (flat cells) whose removal
    changes #1, by refits on a geometric grid, then bisection below the first success.

    Returns (size, removal (U, 3), new #1) or (None, None, -1)."""
    flat = counts.ravel()
    avail = int(flat[order].sum())
    limit = min(limit, avail)
    if limit < 1:
        return None, None, -1
    grid = np.unique(np.r_[np.arange(1, min(limit, 8) + 1), np.geomspace(1, limit, 40).round().astype(int)])
    grid = grid[(grid >= 1) & (grid <= limit)]
    rem = _prefix_removals(order, flat, grid).reshape(len(grid), *counts.shape)
    flips, tops = refit_changed(a, b, n, counts, rem, top, point)
    if not flips.any():
        return None, None, -1
    first = int(np.argmax(flips))
    hi, hi_top, hi_rem = int(grid[first]), int(tops[first]), rem[first]
    lo = int(grid[first - 1]) if first else 0  # lo does not flip (or is 0)
    while hi - lo > 1:
        mids = np.unique(np.linspace(lo, hi, 18)[1:-1].round().astype(int))
        mids = mids[(mids > lo) & (mids < hi)]
        rem = _prefix_removals(order, flat, mids).reshape(len(mids), *counts.shape)
        f, t = refit_changed(a, b, n, counts, rem, top, point)
        if f.any():
            j = int(np.argmax(f))
            hi, hi_top, hi_rem = int(mids[j]), int(t[j]), rem[j]
            lo = int(mids[j - 1]) if j else lo
        else:
            lo = int(mids[-1])
    return hi, hi_rem, hi_top


def _ordered_cells(
    a: np.ndarray, b: np.ndarray, n: int, left: np.ndarray, beta: np.ndarray, top: int, rival: int
) -> np.ndarray:
    """Flat (cell, outcome) indices with votes left whose removal narrows top's lead over ``rival``
    to first order, most narrowing first."""
    infl = gap_influence(a, b, n, left, beta, top, rival).ravel()
    order = np.flatnonzero((infl < 0) & (left.ravel() > 0))
    return order[np.argsort(infl[order], kind="stable")]


def approximate_search(
    a: np.ndarray,
    b: np.ndarray,
    n: int,
    counts: np.ndarray,
    top: int,
    point: np.ndarray,
    present: np.ndarray,
    challengers: int,
    limit: int,
) -> tuple[int | None, np.ndarray | None, int, int, np.ndarray]:
    """Verified upper bound: (k, removal (U, 3), new #1, challenger, flat cell order of the
    removal, most influential first); k None when no prefix up to ``limit`` votes works."""
    ranked = np.argsort(-np.where(present, point, -np.inf))
    rivals = [int(c) for c in ranked if c != top and present[c]][:challengers]
    best: tuple = (None, None, -1, -1, np.zeros(0, dtype=np.int64))
    for c in rivals:
        order = _ordered_cells(a, b, n, counts, point, top, c)
        k, rem, new = shortest_prefix(a, b, n, counts, top, point, order, limit)
        if k is None:
            continue
        found = [(k, rem, new, order)]
        if k > 1:  # second pass: re-linearise at the refit halfway along that prefix
            base = _prefix_removals(order, counts.ravel(), np.array([k // 2]))[0].reshape(counts.shape)
            left = counts - base
            beta = _fit(a, b, n, left, point)
            order2 = _ordered_cells(a, b, n, left, beta, top, c)
            k2, rem2, new2 = shortest_prefix(a, b, n, left, top, point, order2, limit - k // 2)
            if k2 is not None:
                first = order[base.ravel()[order] > 0]  # the base is a prefix of ``order``
                merged = np.r_[first, order2[~np.isin(order2, first)]]
                found.append((k2 + k // 2, rem2 + base, new2, merged))
        k, rem, new, order = min(found, key=lambda f: f[0])
        if best[0] is None or k < best[0]:
            best = (k, rem, new, c, order)
    return best


def flip_search(
    a: np.ndarray,
    b: np.ndarray,
    n: int,
    counts: np.ndarray,
    *,
    exact_max_votes: int,
    exact_candidates: int,
    max_remove: float,
    challengers: int,
) -> Flip:
    """The fewest votes whose removal changes #1 of the Bradley–Terry fit on ``counts`` (U, 3)
    over rows ``a``/``b`` (U,) of ``n`` models (see the module docstring)."""
    point = _fit(a, b, n, counts, None)
    present = _present(a, b, n, counts[None])[0]
    top = int(top_model(point[None], present[None])[0])
    total = int(counts.sum())
    limit = max(1, int(np.floor(max_remove * total)))
    k_ub, rem_ub, new_ub, chal, order = approximate_search(
        a, b, n, counts, top, point, present, challengers, limit
    )
    # The exact search runs when it can settle the answer: the bound is within exact_max_votes + 1
    # (so it proves or improves it) or the approximation found nothing. A larger bound it could not
    # certify, and trying every small removal of a big dataset costs seconds for nothing.
    if k_ub is not None and k_ub > exact_max_votes + 1:
        upto = 1
    else:
        upto = min(k_ub if k_ub is not None else limit + 1, exact_max_votes + 1)
    k_ex, rem_ex, tried, complete = exact_search(a, b, n, counts, top, point, upto, exact_candidates)
    if k_ex is not None:
        _, new_top = refit_changed(a, b, n, counts, rem_ex[None], top, point)
        flat = rem_ex.ravel()
        infl_order = np.flatnonzero(flat > 0)
        return Flip(k_ex, "exact", top, int(new_top[0]), -1, rem_ex, infl_order, tried)
    proved = complete and k_ub is not None and upto == k_ub
    if k_ub is None:
        return Flip(None, "not found", top, -1, -1, np.zeros_like(counts), np.zeros(0, dtype=np.int64), tried)
    return Flip(k_ub, "exact" if proved else "upper bound", top, new_ub, chal, rem_ub, order, tried)


# --------------------------------------------------------------------------- the audit


def robustness(
    v: AuditVotes,
    *,
    exact_max_votes: int = 8,
    exact_candidates: int = 20_000,
    max_remove: float = 0.25,
    challengers: int = 3,
    min_node_votes: int = MIN_NODE_VOTES,
    max_nodes: int = 30,
    seed: int = 0,
) -> Finding:
    """How many votes decide #1, for all votes and per tree node.

    ``exact_max_votes``: the exact search tries removals up to this size, within
    ``exact_candidates`` count vectors in all. ``max_remove``: the largest share of votes the
    approximate search removes (beyond it: 'not found'). ``challengers``: next-best models the
    approximation aims at. Nodes: depth >= 1 with >= ``min_node_votes`` votes, the ``max_nodes``
    largest. ``seed``: which of a cell's interchangeable votes are listed as the removed ones.

    Tables: 'leaderboards' (one row per leaderboard: node_id (None for all votes), description,
    votes, models, top, runner_up, gap (points, top minus runner-up), k (votes to remove), share
    (k / votes), method ('exact' | 'upper bound' | 'not found'), new_top, challenger, battle_ids (up
    to 20 removed votes, most influential cells first)) and 'removed' (node_id, battle_id, model_a,
    model_b, winner: the removed votes, at most 2,000 for all votes and 200 per node).
    """
    t0 = time.perf_counter()
    params = {
        "exact_max_votes": exact_max_votes,
        "exact_candidates": exact_candidates,
        "max_remove": max_remove,
        "challengers": challengers,
        "min_node_votes": min_node_votes,
        "max_nodes": max_nodes,
        "seed": seed,
    }
    if len(v.models) < 2 or v.n == 0:
        return not_applicable(AUDIT, TITLE, "Fewer than 2 models: there is no #1 to change.", **params)
    pairs, category = vote_cells(v)
    a, b, n = pairs[:, 0], pairs[:, 1], len(v.models)
    scopes: list[tuple[int | None, str, int, np.ndarray]] = []
    glob = np.bincount(category, minlength=len(pairs) * 3).reshape(-1, 3).astype(np.float64)
    scopes.append((None, "all votes", 0, glob))
    if v.tree_id is not None and len(v.nodes):
        depth = v.nodes["depth"].to_numpy()
        cand = np.flatnonzero(depth >= 1)
        if len(cand):
            leaf_votes = np.bincount(v.member_row[v.member_row >= 0], minlength=len(v.nodes))
            votes = ancestor_matrix(v.nodes["parent_row"].to_numpy())[cand] @ leaf_votes
            big = np.flatnonzero(votes >= min_node_votes)
            big = cand[big[np.argsort(-votes[big], kind="stable")][:max_nodes]]
            counts = node_counts(v, big, category, len(pairs))
            for k, row in enumerate(big.tolist()):
                scopes.append(
                    (int(v.nodes["node_id"].iat[row]), str(v.nodes["description"].iat[row]), row, counts[k])
                )
    kw = {
        "exact_max_votes": exact_max_votes,
        "exact_candidates": exact_candidates,
        "max_remove": max_remove,
        "challengers": challengers,
    }
    rng = np.random.default_rng(seed)
    node_votes = NodeVotes(v)
    ids = v.votes["battle_id"].astype(str).to_numpy()
    winner = np.asarray(OUTCOMES, dtype=object)[v.outcome]
    rows, removed = [], []
    for node_id, description, row, counts in scopes:
        used = np.flatnonzero(counts.sum(axis=1) > 0)
        c = counts[used]
        if len(np.unique(np.r_[a[used], b[used]])) < 2:
            continue
        flip = flip_search(a[used], b[used], n, c, **kw)
        point = _fit(a[used], b[used], n, c, None)
        present = _present(a[used], b[used], n, c[None])[0]
        order = np.argsort(-np.where(present, point, -np.inf))
        runner = int(order[1])
        pts = ratings.to_ratings(point, v.models)
        picked = _pick_votes(category, node_votes(row), used, flip, rng)
        listed = picked[: REMOVED_ROWS if node_id is None else REMOVED_NODE_ROWS]
        removed.append(
            pd.DataFrame(
                {
                    "node_id": node_id,
                    "battle_id": ids[listed],
                    "model_a": [v.models[i] for i in v.a[listed]],
                    "model_b": [v.models[i] for i in v.b[listed]],
                    "winner": winner[listed],
                }
            )
        )
        total = int(c.sum())
        rows.append(
            {
                "node_id": node_id,
                "description": description,
                "votes": total,
                "models": int(present.sum()),
                "top": v.models[flip.top],
                "runner_up": v.models[runner],
                "gap": float(pts[flip.top] - pts[runner]),
                "k": flip.k,
                "share": flip.k / total if flip.k is not None else None,
                "method": flip.method,
                "new_top": v.models[flip.new_top] if flip.new_top >= 0 else None,
                "challenger": v.models[flip.challenger] if flip.challenger >= 0 else None,
                "battle_ids": ids[picked[:EXAMPLE_IDS]].tolist(),
            }
        )
    if not rows:
        return not_applicable(AUDIT, TITLE, "No leaderboard with 2+ models.", **params)
    table = pd.DataFrame(rows)
    table["k"] = table["k"].astype("Int64")
    table["node_id"] = table["node_id"].astype("Int64")
    g = table.iloc[0]
    if g["k"] is pd.NA:
        summary = (
            f"Removing up to {max_remove:.0%} of the {g['votes']} votes does not change #1 "
            f"({g['top']}) of the Bradley–Terry leaderboard (none found)."
        )
    else:
        bound = "exactly" if g["method"] == "exact" else "at most"
        summary = (
            f"Removing {bound} {g['k']} of {g['votes']} votes ({g['share']:.2%}) changes #1 of the "
            f"Bradley–Terry leaderboard from {g['top']} to {g['new_top']} "
            f"(lead over {g['runner_up']}: {g['gap']:.0f} points)."
        )
    nodes = table.iloc[1:]
    if len(nodes):
        fragile = nodes[nodes["share"].astype(float) < 0.01]
        summary += (
            f" In {len(fragile)} of {len(nodes)} tree nodes ({min_node_votes}+ votes) fewer than 1% of the "
            "node's votes decide its #1."
        )
    return Finding(
        audit=AUDIT,
        title=TITLE,
        summary=summary,
        headline={
            "label": "votes whose removal changes #1",
            "estimate": None if g["k"] is pd.NA else int(g["k"]),
            "lower": int(g["k"]) if g["method"] == "exact" else None,
            "upper": None if g["k"] is pd.NA else int(g["k"]),
            "p_value": None,
            "n": int(g["votes"]),
            "unit": "votes",
        },
        tables={
            "leaderboards": table,
            "removed": pd.concat(removed, ignore_index=True).astype({"node_id": "Int64"}),
        },
        plot={
            "table": "leaderboards",
            "kind": "bar",
            "x": "share",
            "y": "description",
            "color": "method",
            "label": "share of votes whose removal changes #1",
        },
        params=params,
        seconds=time.perf_counter() - t0,
    )


def _pick_votes(
    category: np.ndarray, inside: np.ndarray, used: np.ndarray, flip: Flip, rng: np.random.Generator
) -> np.ndarray:
    """Vote indices realising ``flip.removal`` among the votes ``inside`` (indices): for each
    removed (cell, outcome), in ``flip.order`` (most influential first), that many of its votes
    drawn at random (they are interchangeable). ``category``: every vote's global cell code
    (:func:`.inversions.vote_cells`); ``used``: global pair index of each local cell row."""
    if flip.k is None:
        return np.zeros(0, dtype=np.int64)
    removal = flip.removal.ravel()
    order = [int(c) for c in flip.order if removal[c] > 0]
    seen = set(order)
    order += [int(c) for c in np.flatnonzero(removal > 0) if int(c) not in seen]
    cat = category[inside]
    sort = np.argsort(cat, kind="stable")
    cat_sorted = cat[sort]
    out = []
    for local in order:
        u, o = divmod(local, 3)
        code = int(used[u]) * 3 + o
        lo, hi = np.searchsorted(cat_sorted, [code, code + 1])
        out.append(rng.choice(inside[sort[lo:hi]], size=int(removal[local]), replace=False))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
