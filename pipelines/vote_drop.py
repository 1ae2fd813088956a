"""Vote-drop robustness: how many votes must be removed to change #1, or the top-k set, of a
Bradley–Terry leaderboard (ties as half a win).

In the spirit of Broderick, Giordano & Meager, "An automatic finite-sample robustness metric: when
can dropping a little data make a big difference?" (2020; the approximate maximum influence
perturbation). For a target gap ``delta = beta_i - beta_j`` (natural log-odds) between a model
inside the top set and one outside it, removing one vote ``v`` between models a and b moves the
maximum-likelihood fit by about ``-H^+ g_v`` (the influence function): ``g_v = (y_v - p_v)(e_a - e_b)``
is the vote's score (``y_v`` = 1 / 0 / 1/2 for a win of a / of b / a tie, ``p_v = sigmoid(beta_a -
beta_b)``) and ``H = sum_v p_v (1 - p_v)(e_a - e_b)(e_a - e_b)^T`` the Fisher information (a weighted
graph Laplacian; ``H^+`` its pseudo-inverse, exact for the contrasts used here). So the gap moves by

    phi_v = -(y_v - p_v) (e_i - e_j)^T H^+ (e_a - e_b)

per removed vote. Votes of one (pair, side, outcome) cell share ``phi``, so everything runs on the
few cells (:func:`pipelines.ratings.aggregate`), never on single votes: for every target the cells
are sorted by ``phi`` and the most negative are removed first until the linearised gap reaches 0
(one (targets, cells) array, vectorised). Then the removal is **verified** by refitting
Bradley–Terry without those votes (:func:`pipelines.ratings.fit_pairwise`, warm-started): the
reported number is the smallest count along that influence order whose refit changes the top set
(bisection between a count that does not and one that does; the count is doubled while the
refit does not change yet). A verified count is an upper bound on the true minimum (finding that
is a combinatorial search); on small arenas it matches brute force (tests/test_vote_drop.py).

"Changes" means strictly: some model outside the top-k rates above some model inside it after the
refit (a tie at the boundary is not a change). Where the data cannot identify the answer — one
model, a top-k that holds every model, a tie already at the boundary, or votes that leave some
group of models unbeaten by the rest (no finite ratings, see
:func:`pipelines.ratings.separated_rounds`) — :attr:`VoteDrop.reason` says why instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from . import ratings

TIE_TOL = 1e-7  # natural log-odds: gaps below this are ties (not a change of order)
MAX_TARGETS = 32  # (inside, outside) pairs linearised: the closest by gap / standard error
VERIFY_TARGETS = 3  # of those, the ones with the fewest linearised removals are verified by refit
OUTCOME_NAMES = ("model_a won", "model_b won", "tie")


@dataclass(frozen=True)
class VoteDrop:
    """How many votes must go to change the top ``k`` of a Bradley–Terry fit (see the module).

    ``top``: the top-k models of the full fit, best first. ``removed``: votes whose removal changes
    that set, verified by refit (None when there is no number; ``reason`` says why). ``linear``:
    the influence-function estimate of that number before verification (None when the linearised
    gap never closes). ``new_top``: the top-k after the removal, best first. ``dropped``: the
    removed votes by cell: model_a, model_b, outcome, votes. ``refits``: Bradley–Terry refits run.
    ``outside``: models left out of the computation because their ratings are not finite and sit
    below the top (they never win against the linked models, or never meet them).
    """

    k: int
    n_votes: int
    top: tuple[str, ...]
    removed: int | None = None
    linear: int | None = None
    new_top: tuple[str, ...] = ()
    dropped: pd.DataFrame | None = None
    reason: str | None = None
    refits: int = 0
    outside: int = 0  # models left out: not linked both ways by wins to the top (never win there)

    @property
    def share(self) -> float | None:
        """``removed`` as a share of all votes, or None."""
        return None if self.removed is None or not self.n_votes else self.removed / self.n_votes

    def as_dict(self) -> dict:
        """JSON-able form, with the sentence of :func:`drop_sentence`."""
        return {
            "k": self.k,
            "n_votes": self.n_votes,
            "top": list(self.top),
            "removed": self.removed,
            "share": self.share,
            "linear_estimate": self.linear,
            "new_top": list(self.new_top),
            "dropped": [] if self.dropped is None else self.dropped.to_dict("records"),
            "reason": self.reason,
            "refits": self.refits,
            "models_outside": self.outside,
            "sentence": drop_sentence(self),
        }


def fisher_inverse(beta: np.ndarray, a: np.ndarray, b: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``(H + 11^T / n)^{-1}``, (n, n), with ``H`` the Fisher information of the Bradley–Terry fit
    ``beta`` (n,) on ``counts`` (U, 3) over pairs ``a``/``b`` (U,): the graph Laplacian with edge
    weights ``votes * p (1 - p)``. On contrasts (vectors summing to 0) it equals ``H^+`` when the
    graph is connected, so gaps' variances and influences can be read off it."""
    n = len(beta)
    p = 1.0 / (1.0 + np.exp(-(beta[a] - beta[b])))
    h = np.zeros((n, n))
    np.add.at(h, (a, b), -counts.sum(axis=1) * p * (1.0 - p))
    h = h + h.T
    h[np.diag_indices(n)] = -h.sum(axis=1)
    return np.linalg.inv(h + 1.0 / n + ratings.RIDGE * np.eye(n))


def removal_influence(
    beta: np.ndarray, a: np.ndarray, b: np.ndarray, m: np.ndarray, inside: np.ndarray, outside: np.ndarray
) -> np.ndarray:
    """Linearised change of each target gap per removed vote, (T, U * 3).

    ``beta`` (n,) natural log-strengths, ``m`` (n, n) from :func:`fisher_inverse`, pairs ``a``/``b``
    (U,); target t is the gap ``beta[inside[t]] - beta[outside[t]]``. Column ``3 u + o`` is the
    gap's change when one vote of cell ``u`` with outcome ``o`` (a won, b won, tie) is removed.
    """
    p = 1.0 / (1.0 + np.exp(-(beta[a] - beta[b])))
    i, j = np.asarray(inside), np.asarray(outside)
    lever = m[i][:, a] - m[i][:, b] - m[j][:, a] + m[j][:, b]  # (T, U): (e_i - e_j)^T H^+ (e_a - e_b)
    residual = np.array([1.0, 0.0, 0.5])[None, :] - p[:, None]  # (U, 3): y - p per outcome
    return -(lever[:, :, None] * residual[None]).reshape(len(i), -1)


def linear_removals(gap: np.ndarray, phi: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy linearised removals per target: votes to remove (T,) float (inf when the gap never
    closes) and each target's removal order of the cells (T, C), most negative ``phi`` first.

    ``gap`` (T,) > 0, ``phi`` (T, C) per-vote change of the gap, ``n`` (C,) votes per cell. Cells
    are emptied in order; the last one only as far as needed (rounded up)."""
    order = np.argsort(phi, axis=1, kind="stable")
    step = np.take_along_axis(phi, order, axis=1)
    votes = n[order]
    useful = step < 0
    drop = np.cumsum(np.where(useful, step * votes, 0.0), axis=1)  # linearised gap change, <= 0
    before = np.cumsum(np.where(useful, votes, 0.0), axis=1) - np.where(useful, votes, 0.0)
    closes = gap[:, None] + drop <= 0
    hit = closes.argmax(axis=1)
    rows = np.arange(len(gap))
    prior = np.where(hit > 0, drop[rows, np.maximum(hit - 1, 0)], 0.0)
    need = before[rows, hit] + np.ceil(
        (gap + prior) / -np.where(useful[rows, hit], step[rows, hit], -1.0) - 1e-9
    )
    return np.where(closes.any(axis=1), np.maximum(need, 1.0), np.inf), order


def removed_counts(order: np.ndarray, n: np.ndarray, q: int) -> np.ndarray:
    """Counts (C,) of the first ``q`` votes in cell ``order`` (whole cells, then part of one)."""
    taken = np.clip(q - (np.cumsum(n[order]) - n[order]), 0, n[order])
    out = np.zeros_like(n)
    out[order] = taken
    return out


def linked_models(n_models: int, cells: ratings.Cells) -> np.ndarray:
    """Indices (sorted) of the largest set of models strongly connected by wins (a tie links both
    ways; most models, then most votes): the models whose Bradley–Terry ratings are finite."""
    if not n_models:
        return np.zeros(0, dtype=np.int64)
    credit_a, credit_b = cells.wins_a + cells.ties > 0, cells.wins_b + cells.ties > 0
    graph = sparse.csr_matrix(
        (np.ones(credit_a.sum() + credit_b.sum()),
         (np.r_[cells.a[credit_a], cells.b[credit_b]], np.r_[cells.b[credit_a], cells.a[credit_b]])),
        shape=(n_models, n_models),
    )  # fmt: skip
    _, label = connected_components(graph, directed=True, connection="strong")
    total = cells.counts.sum(axis=1)
    inside = label[cells.a] == label[cells.b]
    size = np.bincount(label)
    votes = np.bincount(label[cells.a[inside]], total[inside], minlength=len(size))
    return np.flatnonzero(label == np.lexsort((-votes, -size))[0])


def _not_identified(models: list[str], k: int, rank: np.ndarray, linked: np.ndarray) -> str | None:
    """Why the top ``k`` cannot be moved by removing votes, or None. ``rank``: model indices best
    first (full fit); ``linked``: :func:`linked_models`."""
    n = len(models)
    if n < 2:
        return (
            f"there {'is one model' if n == 1 else 'are no models'} (fewer than two models): nothing to order"
        )
    if k >= n:
        return f"the top {k} holds all {n} models: no model can enter it"
    loose = [models[i] for i in rank[: k + 1] if i not in set(linked.tolist())]
    if loose:
        return (
            f"{loose[0]} is not linked both ways by wins to the rest (it never loses to them, or never meets "
            "them), so its rating is not a finite estimate and no number of removed votes is meaningful"
        )
    return None


def vote_drop(models: list[str], cells: ratings.Cells, k: int = 1) -> VoteDrop:
    """Votes to remove to change the top ``k`` (1 = the leader) of the Bradley–Terry fit (ties
    half) on ``cells`` over ``models`` (:func:`pipelines.ratings.aggregate`); see the module for the
    method. Never raises for data that cannot answer: :attr:`VoteDrop.reason` says why."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    counts = cells.counts
    n_votes = int(counts.sum())
    n = len(models)
    beta = ratings.fit_pairwise(cells.a, cells.b, n, counts) if n else np.zeros(0)
    rank = np.argsort(-beta, kind="stable")
    top = tuple(models[i] for i in rank[: min(k, n)])
    linked = linked_models(n, cells)
    reason = _not_identified(models, k, rank, linked)
    if reason is None and len(linked) < n:  # models that never win (or never meet the top) sit below
        keep = np.isin(cells.a, linked) & np.isin(cells.b, linked)
        sub = ratings.Cells(
            np.searchsorted(linked, cells.a[keep]), np.searchsorted(linked, cells.b[keep]),
            cells.wins_a[keep], cells.wins_b[keep], cells.ties[keep],
        )  # fmt: skip
        drop = vote_drop([models[i] for i in linked], sub, k)
        return dataclasses.replace(drop, n_votes=n_votes, outside=n - len(linked))
    if reason is None and beta[rank[k - 1]] - beta[rank[k]] < TIE_TOL:
        reason = (
            f"{models[rank[k - 1]]} and {models[rank[k]]} already tie at rank {k}: the top "
            f"{'spot' if k == 1 else k} is not decided by these votes"
        )
    if reason is not None:
        return VoteDrop(k, n_votes, top, reason=reason)
    inside, outside = rank[:k], rank[k:]
    ii, jj = np.repeat(inside, len(outside)), np.tile(outside, len(inside))
    gap = beta[ii] - beta[jj]
    m = fisher_inverse(beta, cells.a, cells.b, counts)
    se = np.sqrt(np.maximum(m[ii, ii] + m[jj, jj] - 2 * m[ii, jj], 1e-300))
    closest = np.argsort(gap / se, kind="stable")[:MAX_TARGETS]
    ii, jj, gap = ii[closest], jj[closest], gap[closest]
    phi = removal_influence(beta, cells.a, cells.b, m, ii, jj)
    flat = counts.ravel()
    need, orders = linear_removals(gap, phi, flat)
    refits = 0

    def refit(q: int, order: np.ndarray) -> np.ndarray:
        nonlocal refits
        refits += 1
        left = (flat - removed_counts(order, flat, q)).reshape(-1, 3)
        return ratings.fit_pairwise(cells.a, cells.b, n, left, start=beta)

    def changed(new_beta: np.ndarray) -> bool:
        inner = new_beta[inside].min()
        rest = np.delete(new_beta, inside).max()
        return bool(rest > inner + TIE_TOL)

    best: tuple[int, np.ndarray, np.ndarray] | None = None  # (votes, order, refit beta)
    for t in np.argsort(need, kind="stable")[:VERIFY_TARGETS]:
        order = orders[t][phi[t, orders[t]] < 0]
        total = int(flat[order].sum())
        if not total:
            continue
        hi = int(min(need[t], total)) if np.isfinite(need[t]) else total
        lo = 0
        fit = refit(hi, orders[t])
        while not changed(fit) and hi < total:  # the linearisation was optimistic: remove more
            lo, hi = hi, min(2 * hi, total)
            fit = refit(hi, orders[t])
        if not changed(fit):
            continue
        while hi - lo > 1:
            mid = (lo + hi) // 2
            trial = refit(mid, orders[t])
            if changed(trial):
                hi, fit = mid, trial
            else:
                lo = mid
        if best is None or hi < best[0]:
            best = (hi, orders[t], fit)
    linear = int(need.min()) if np.isfinite(need.min()) else None
    if best is None:
        return VoteDrop(
            k, n_votes, top, linear=linear, refits=refits,
            reason="removing votes in the order of their influence never changes it (checked by refitting)",
        )  # fmt: skip
    q, order, fit = best
    new_rank = np.argsort(-fit, kind="stable")
    removed = removed_counts(order, flat, q).reshape(-1, 3)
    u, o = np.nonzero(removed)
    dropped = pd.DataFrame(
        {
            "model_a": [models[i] for i in cells.a[u]],
            "model_b": [models[i] for i in cells.b[u]],
            "outcome": [OUTCOME_NAMES[i] for i in o],
            "votes": removed[u, o].astype(np.int64),
        }
    ).sort_values("votes", ascending=False, ignore_index=True)
    new_top = tuple(models[i] for i in new_rank[:k])
    return VoteDrop(k, n_votes, top, q, linear, new_top, dropped, None, refits)


def drop_sentence(drop: VoteDrop) -> str:
    """One sentence for a page or a report, e.g. '#1 changes if 37 of 12,400 votes (0.3%) are
    removed: then B leads.' or, without a number, why not."""
    what = "#1" if drop.k == 1 else f"The top {drop.k}"
    if drop.removed is None:
        return f"{what}: no vote-drop number, because {drop.reason}."
    share = drop.share or 0.0
    pct = f"{share:.1%}" if share >= 0.001 else f"{share:.2%}" if share >= 0.0001 else "<0.01%"
    head = (
        f"{what} changes if {drop.removed:,} of {drop.n_votes:,} votes ({pct}) "
        f"{'is' if drop.removed == 1 else 'are'} removed: "
    )
    if drop.k == 1:
        then = f"then {drop.new_top[0]} leads instead of {drop.top[0]}"
    else:
        enter = [m for m in drop.new_top if m not in drop.top]
        leave = [m for m in drop.top if m not in drop.new_top]
        then = f"then {', '.join(enter)} {'enters' if len(enter) == 1 else 'enter'} and {', '.join(leave)} "
        then += "drops out" if len(leave) == 1 else "drop out"
    est = "" if drop.linear is None else f" (influence estimate {drop.linear:,}; checked by refitting)"
    if drop.outside:
        models = f"{drop.outside} model{'s' if drop.outside > 1 else ''}"
        est += f"; {models} that never beat the others (or never meet them) left out"
    return head + then + est + "."


def leaderboard_drops(votes: pd.DataFrame, top_k: int = 3) -> list[VoteDrop]:
    """:func:`vote_drop` for #1 and for the top ``top_k`` of ``votes`` (model_a, model_b, winner);
    only #1 when ``top_k`` is 1 or less."""
    models, cells = ratings.aggregate(votes)
    ks = [1] + ([top_k] if top_k > 1 else [])
    return [vote_drop(models, cells, k) for k in ks]


def board_drops(votes: pd.DataFrame, method: str = "bt", style: bool = False, top_k: int = 3) -> list[dict]:
    """What a leaderboard shows about vote-drop robustness: :meth:`VoteDrop.as_dict` of
    :func:`leaderboard_drops`, or one entry with only a ``sentence`` saying why there is none (the
    method is for plain Bradley–Terry: not Rao–Kupper, not style control)."""
    if method != "bt" or style:
        what = "Rao–Kupper" if method != "bt" else "style control"
        return [
            {
                "k": 1,
                "removed": None,
                "reason": f"it is computed for plain Bradley–Terry, not {what}",
                "sentence": "Vote-drop robustness (how many votes must be removed to change #1) is computed "
                f"for plain Bradley–Terry ratings, not {what}: switch to Bradley–Terry to see it.",
            }
        ]
    return [d.as_dict() for d in leaderboard_drops(votes, top_k)]
