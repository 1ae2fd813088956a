"""Ranking inversions: tree nodes whose own leaderboard significantly reverses the global one.

EvalTree's Chatbot Arena finding was a node (toxic requests) where weak compliant models
outranked GPT-4. Here every tree node of depth 1..``max_depth`` with at least ``min_node_votes``
votes gets its own Bradley–Terry leaderboard (ties as half a win; :func:`pipelines.ratings.bootstrap_fit`
on the node's cells, ``rounds`` multinomial bootstrap rounds) over the models that the global
fit and the node fit can both rate. It is compared with the global point leaderboard:

* Kendall's tau between the node's and the global ratings of those models, with a percentile
  bootstrap interval (the node's rounds against the fixed global point ratings);
* for every pair with model i globally above model j, the node gap ``r_i - r_j`` (points) with
  its bootstrap interval and a one-sided p-value for "i is not below j in the node". The p-value
  is a normal tail on the bootstrap: ``Phi(gap / se)`` with ``se`` the bootstrap standard error of
  the gap (a robust one, the 16–84 % half-range, so a few separated rounds cannot blow it up). The
  plain bootstrap share ``(1 + #rounds with gap >= 0) / (rounds + 1)`` is also reported, but it
  cannot go below ``1 / (rounds + 1)``, so with 100 rounds and the ~66 pairs of 12 models it could
  never pass a Holm correction; the normal tail can.
* multiplicity within a node: the pairs' gaps are strongly correlated (pairs share models), so
  Bonferroni/Holm over all m(m-1)/2 pairs is very conservative. Each pair's adjusted p is the
  single-step max-T one: P(max over pairs of the standardised gap >= this pair's) under "no
  inversion", with the gaps jointly normal with the correlations of the node fit's sandwich
  covariance (:func:`max_t_pvalues`, 10,000 draws), capped at Bonferroni's bound. Pairs far
  apart in the global order's direction (z > sqrt(2 log log n)) keep their estimated mean in the
  null (Hansen 2005, the "consistent" SPA p-value) instead of the least favourable 0. Holm's are
  reported too. Node p-value = its smallest adjusted pair p; BH across the tested nodes at
  ``alpha``; a pair is significant when its adjusted p <= alpha in a flagged node.

The global leaderboard is treated as fixed (it has many more votes than any node); the global
fit includes the node's votes.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy import stats

from .. import ratings
from ..scores import fitted_models
from ..stats import bh_adjust
from .cells import NodeVotes, cells_of, node_counts, subset_cells, vote_cells
from .frame import AuditVotes
from .result import EXAMPLE_IDS, Finding, not_applicable

AUDIT = "inversions"
TITLE = "Ranking inversions in tree nodes"
# Default vote threshold for a node to get its own leaderboard. With ~12 models a 300-vote node
# gives each model ~50 battles: rating standard errors of ~55 points, so after the multiplicity
# correction over the ~66 pairs only inversions of ~200+ points can be significant; smaller nodes
# add fits and BH burden without any power. Raise it for many-model arenas (each model needs tens
# of battles in the node).
MIN_NODE_VOTES = 300
ROUND_MAXITER = 10  # Newton steps per bootstrap round (warm-started rounds converge in 3-5)
ROBUST_SE = 2.0  # the 16-84 % range of a normal is 2 standard errors
MAXT_DRAWS = 10_000  # normal draws for the max-T adjustment (p-values resolve down to ~1e-4) ...
MAXT_FIRST = 1_000  # ... after a first batch of this many, which suffices when the smallest p is
MAXT_STOP = 0.2  # above this


def global_fit(v: AuditVotes, pairs: np.ndarray, category: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global Bradley–Terry point fit: (fitted model indices (m,), ratings in points (m,))."""
    counts = np.bincount(category, minlength=len(pairs) * 3).reshape(-1, 3).astype(np.float64)
    cells = cells_of(pairs, counts)
    keep = fitted_models(len(v.models), cells)
    if len(keep) < 2:
        return keep, np.zeros(0)
    sub = subset_cells(cells, keep)
    beta = ratings.fit_pairwise(sub.a, sub.b, len(keep), sub.counts)
    return keep, ratings.to_ratings(beta, [v.models[i] for i in keep])


# --------------------------------------------------------------------------- statistics


def kendall_tau(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between ``x`` (m,) and each row of ``y`` (..., m); shape (...).

    Same as :func:`scipy.stats.kendalltau` (tau-b) row by row, vectorised over the pairs."""
    i, j = np.triu_indices(len(x), 1)
    sx = np.sign(x[i] - x[j])
    sy = np.sign(y[..., i] - y[..., j])
    n0 = len(i)
    denom = np.sqrt((n0 - (sx == 0).sum()) * (n0 - (sy == 0).sum(axis=-1)).astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (sx * sy).sum(axis=-1) / denom, np.nan)


def holm(p: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (same shape as ``p``)."""
    p = np.asarray(p, dtype=np.float64)
    m = len(p)
    if not m:
        return p
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = adj
    return out


def sandwich_covariance(
    a: np.ndarray, b: np.ndarray, n: int, counts: np.ndarray, beta: np.ndarray
) -> np.ndarray:
    """Asymptotic covariance (n, n) of Bradley–Terry betas (natural log-odds) at the fit ``beta``
    on cells ``a``/``b`` (U,) with outcome ``counts`` (U, 3) (ties as half a win): the sandwich
    H^-1 J H^-1 with H = sum_u n_u s_u (1 - s_u) x_u x_u^T (information) and J = sum over votes of
    (y - s_u)^2 x_u x_u^T (empirical score variance; y = 1, 0, 1/2 for a win, loss, tie), s_u =
    sigmoid(beta_a - beta_b), x_u = e_a - e_b. Ties make J smaller than H, so the plain inverse
    information would overstate the variance. H gets + 1 1^T to be invertible (no contrast changes).
    """
    p = 1.0 / (1.0 + np.exp(-(beta[a] - beta[b])))

    def gram(w: np.ndarray) -> np.ndarray:
        out = np.zeros((n, n))
        np.add.at(out, (a, a), w)
        np.add.at(out, (b, b), w)
        np.add.at(out, (a, b), -w)
        np.add.at(out, (b, a), -w)
        return out

    info = gram(counts.sum(axis=1) * p * (1 - p)) + 1.0 + 1e-9 * np.eye(n)
    score = gram(counts[:, 0] * (1 - p) ** 2 + counts[:, 1] * p**2 + counts[:, 2] * (0.5 - p) ** 2)
    inv = np.linalg.inv(info)
    return inv @ score @ inv


def max_t_pvalues(
    t_obs: np.ndarray,
    strong: np.ndarray,
    weak: np.ndarray,
    cov: np.ndarray,
    rng: np.random.Generator,
    shift: np.ndarray | None = None,
) -> np.ndarray:
    """Single-step max-T adjusted p-values (P,) for pair statistics ``t_obs`` (P,) (gap over its
    standard error, large = inverted): P(max over pairs of T >= t_obs) when the standardised gaps
    T are jointly normal with the correlation the beta covariance ``cov`` (m, m) implies and
    mean ``shift`` (P,) (default 0: every pair exactly tied, the least favourable null),
    estimated as (1 + hits) / (draws + 1) from :data:`MAXT_DRAWS` draws, or from the first
    :data:`MAXT_FIRST` when they already put the smallest p above :data:`MAXT_STOP`. Accounts
    for the strong correlation of pairs sharing a model, unlike Bonferroni/Holm."""
    m = len(cov)
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2)  # PSD square root (cov is singular along 1)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    var = cov[strong, strong] + cov[weak, weak] - 2 * cov[strong, weak]
    sd = np.sqrt(np.maximum(var, 1e-12 * max(float(var.max(initial=0.0)), 1e-300)))
    maxima = np.empty(MAXT_DRAWS)
    step = max(1, min(MAXT_FIRST, 2_000_000 // max(len(strong), 1)))
    t_max = float(np.max(t_obs, initial=-np.inf))
    done = 0
    while done < MAXT_DRAWS:
        beta = rng.standard_normal((min(step, MAXT_DRAWS - done), m)) @ root.T
        t = (beta[:, strong] - beta[:, weak]) / sd
        if shift is not None:
            t += shift
        maxima[done : done + len(beta)] = t.max(axis=1)
        done += len(beta)
        if done >= MAXT_FIRST and (1 + (maxima[:done] >= t_max).sum()) / (done + 1) > MAXT_STOP:
            break  # clearly not significant: the first draws settle it
    maxima = np.sort(maxima[:done])
    hits = done - np.searchsorted(maxima, t_obs, side="left")
    return (1 + hits) / (done + 1)


def pair_tests(
    glob: np.ndarray,
    point: np.ndarray,
    boot: np.ndarray,
    level: float,
    cov: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    sure: float = 0.0,
    votes: int = 0,
) -> pd.DataFrame:
    """Every pair of ``m`` models, globally stronger first: gaps and one-sided tests.

    ``glob`` (m,) global points, ``point`` (m,) node points, ``boot`` (rounds, m) node bootstrap
    points, ``cov`` (m, m) the node betas' covariance (any scale; only its correlations are used,
    for the max-T adjustment; None: Holm only). Returns columns strong, weak (indices into the m
    models), global_gap, node_gap (points, strong minus weak), lower, upper (``level`` percentile
    interval of the node gap), se (robust bootstrap standard error, points), p_value
    (``Phi(node_gap / se)``), boot_share ((1 + rounds with gap >= 0) / (rounds + 1)), p_holm,
    p_adjusted (single-step max-T over the node's pairs with Hansen's recentring of pairs whose
    z exceeds sqrt(2 log log ``votes``), capped at Bonferroni's p x pairs, which bounds it;
    controls the node's family-wise error asymptotically; Holm's when ``cov`` is None or when
    Bonferroni's smallest p is <= ``sure``)."""
    i, j = np.triu_indices(len(glob), 1)
    swap = glob[i] < glob[j]
    strong, weak = np.where(swap, j, i), np.where(swap, i, j)
    gap = point[strong] - point[weak]
    draws = boot[:, strong] - boot[:, weak]
    tail = 100 * (1 - level) / 2
    lower, upper = np.percentile(draws, [tail, 100 - tail], axis=0)
    q16, q84 = np.percentile(draws, [15.865, 84.135], axis=0)
    se = np.maximum((q84 - q16) / ROBUST_SE, 1e-9)
    p = stats.norm.cdf(gap / se)
    share = (1 + (draws >= 0).sum(axis=0)) / (len(draws) + 1)
    p_holm = holm(p)
    bonferroni = np.minimum(1.0, p * len(p))
    p_adj = p_holm
    # max-T only where it can matter: skipped when Bonferroni already gives p <= ``sure`` (e.g.
    # alpha / nodes, surely a BH discovery)
    if cov is not None and sure < bonferroni.min():
        rng = np.random.default_rng(0) if rng is None else rng
        # the max-T p-value never exceeds Bonferroni's, so that known bound caps its Monte-Carlo estimate
        # Hansen's (2005) consistent recentring: a pair clearly in the global order (z above
        # sqrt(2 log log n)) gets its estimated mean in the null draws instead of 0, so far-apart
        # pairs, which cannot be the maximum, stop diluting the correction
        z = gap / se
        cut = np.sqrt(2 * np.log(np.log(max(votes, 16))))
        shift = np.where(z > cut, -z, 0.0)
        p_adj = np.minimum(bonferroni, max_t_pvalues(-z, strong, weak, cov, rng, shift))
    return pd.DataFrame(
        {
            "strong": strong,
            "weak": weak,
            "global_gap": glob[strong] - glob[weak],
            "node_gap": gap,
            "lower": lower,
            "upper": upper,
            "se": se,
            "p_value": p,
            "boot_share": share,
            "p_holm": p_holm,
            "p_adjusted": p_adj,
        }
    )


def batched_bootstrap(
    a: np.ndarray, b: np.ndarray, n_models: int, counts: np.ndarray, rounds: int, seed: int, keys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bradley–Terry point fits and multinomial-bootstrap refits of many nodes in one batched solve.

    All nodes share the cell rows ``a``/``b`` (U,) over ``n_models`` models; ``counts`` (N, U, 3)
    holds each node's outcome counts (zeros for cells outside the node's fitted models, whose
    betas then stay near 0 and must be ignored). ``keys`` (N,) int seeds each node's draws
    (``default_rng([seed, key])``), so a node's rounds do not depend on the other nodes. Returns
    natural-scale betas: point (N, n_models) and boot (N, rounds, n_models). Same law as
    :func:`pipelines.ratings.bootstrap_fit` per node (resample_counts, warm start at the node's
    point fit, :data:`pipelines.ratings.ROUND_TOL`), one solver call; instead of detecting
    separated rounds (a graph pass that costs more than the fits here) every round stops after
    :data:`ROUND_MAXITER` Newton steps, which converged rounds never reach and which leaves a
    separated round's runaway ratings far out, as bootstrap_fit does.
    """
    n_nodes, n_rows = counts.shape[:2]
    point = ratings.fit_pairwise(a, b, n_models, counts)
    if rounds < 1:
        return point, np.zeros((n_nodes, 0, n_models))
    draws = np.empty((n_nodes, rounds, n_rows, 3))
    for i in range(n_nodes):
        cells = ratings.Cells(a, b, counts[i, :, 0], counts[i, :, 1], counts[i, :, 2])
        draws[i] = ratings.resample_counts(cells, rounds, np.random.default_rng([seed, int(keys[i])]))
    draws = draws.reshape(n_nodes * rounds, n_rows, 3)
    start = np.repeat(point, rounds, axis=0)
    boot = ratings.fit_pairwise(
        a, b, n_models, draws, start=start, tol=ratings.ROUND_TOL, maxiter=ROUND_MAXITER
    )
    return point, boot.reshape(n_nodes, rounds, n_models)


# --------------------------------------------------------------------------- the audit


def ranking_inversions(
    v: AuditVotes,
    *,
    alpha: float = 0.05,
    fdr: bool = True,
    rounds: int = 100,
    seed: int = 0,
    level: float = 0.95,
    min_node_votes: int = MIN_NODE_VOTES,
    max_depth: int = 2,
) -> Finding:
    """Tree nodes whose Bradley–Terry leaderboard significantly inverts the global order.

    Nodes: depth 1..``max_depth`` with >= ``min_node_votes`` votes (see :data:`MIN_NODE_VOTES`)
    and 3+ models rateable both globally and in the node. ``rounds`` bootstrap rounds per node
    (from ``seed``); ``level``: interval coverage; a node is flagged when its BH q-value across
    the tested nodes (its p-value when ``fdr`` is False) is <= ``alpha``.

    Tables: 'nodes' (node_id, description, depth, votes, models, tau, tau_lower, tau_upper
    (Kendall tau with the global ratings; percentile bootstrap interval, which is biased low when
    the node is small, as noise only lowers tau), inverted_pairs (significant ones), worst_pair
    (plain words, the pair with the smallest p among the inverted ones), p_value, q_value,
    flagged, battle_ids: node votes where the globally stronger model of the worst pair lost,
    losses to the weaker model first) and 'pairs' (every significant inverted pair: node_id,
    description, strong, weak, global_rank_strong, global_rank_weak, global_gap, node_gap, lower,
    upper (points), p_value (one-sided, unadjusted), p_holm, p_adjusted, boot_share). Gaps are in
    rating points (400 = 10x odds), strong minus weak, negative = inverted.
    """
    t0 = time.perf_counter()
    params = {
        "alpha": alpha,
        "fdr": fdr,
        "rounds": rounds,
        "seed": seed,
        "level": level,
        "min_node_votes": min_node_votes,
        "max_depth": max_depth,
    }
    if v.tree_id is None or v.nodes.empty:
        return not_applicable(AUDIT, TITLE, "No capability tree: nothing to compare per node.", **params)
    pairs, category = vote_cells(v)
    keep_g, glob = global_fit(v, pairs, category)
    if len(keep_g) < 3:
        return not_applicable(AUDIT, TITLE, "Fewer than 3 rateable models: no ranking to invert.", **params)
    global_rank = np.full(len(v.models), -1)
    global_rank[keep_g[np.argsort(-glob)]] = np.arange(1, len(keep_g) + 1)
    glob_all = np.full(len(v.models), np.nan)
    glob_all[keep_g] = glob

    depth = v.nodes["depth"].to_numpy()
    candidate = np.flatnonzero((depth >= 1) & (depth <= max_depth))
    counts = (
        node_counts(v, candidate, category, len(pairs)) if len(candidate) else np.zeros((0, len(pairs), 3))
    )
    votes = counts.sum(axis=(1, 2))
    # global cells among the globally rated models; every node uses these rows (zeros where absent)
    inside_g = np.isin(pairs[:, 0], keep_g) & np.isin(pairs[:, 1], keep_g)
    ga, gb = np.searchsorted(keep_g, pairs[inside_g, 0]), np.searchsorted(keep_g, pairs[inside_g, 1])
    tested, node_sets, node_counts_ = [], [], []
    for k in np.flatnonzero(votes >= min_node_votes):
        c = counts[k][inside_g]
        used = c.sum(axis=1) > 0
        cells = ratings.Cells(ga[used], gb[used], c[used, 0], c[used, 1], c[used, 2])
        local = fitted_models(len(keep_g), cells)  # indices into keep_g
        if len(local) < 3:
            continue
        c = np.where((np.isin(ga, local) & np.isin(gb, local))[:, None], c, 0.0)
        tested.append(k)
        node_sets.append(local)
        node_counts_.append(c)
    rows_out, pair_frames = [], []
    if tested:
        rows = candidate[np.array(tested)]
        point, boot = batched_bootstrap(ga, gb, len(keep_g), np.array(node_counts_), rounds, seed, rows)
    tail = 100 * (1 - level) / 2
    for t, k in enumerate(tested):
        row = int(candidate[k])
        local = node_sets[t]
        idx = keep_g[local]  # global model indices
        names = [v.models[i] for i in idx]
        pt = ratings.to_ratings(point[t, local], names)
        bt = ratings.to_ratings(boot[t][:, local], names)
        g = glob_all[idx]
        tau = float(kendall_tau(g, pt))
        tau_lo, tau_hi = np.nanpercentile(kendall_tau(g, bt), [tail, 100 - tail])
        cov = sandwich_covariance(ga, gb, len(keep_g), node_counts_[t], point[t])[np.ix_(local, local)]
        rng = np.random.default_rng([seed, row, 1])
        tests = pair_tests(g, pt, bt, level, cov, rng, sure=alpha / len(tested), votes=int(votes[k]))
        tests["strong"] = idx[tests["strong"].to_numpy()]
        tests["weak"] = idx[tests["weak"].to_numpy()]
        tests.insert(0, "row", row)
        pair_frames.append(tests)
        rows_out.append(
            {
                "row": row,
                "node_id": int(v.nodes["node_id"].iat[row]),
                "description": str(v.nodes["description"].iat[row]),
                "depth": int(depth[row]),
                "votes": int(votes[k]),
                "models": len(idx),
                "tau": tau,
                "tau_lower": float(tau_lo),
                "tau_upper": float(tau_hi),
                "p_value": float(tests["p_adjusted"].min()),
            }
        )
    params["nodes_tested"] = len(rows_out)
    if not rows_out:
        why = (
            f"No tree node of depth 1..{max_depth} has {min_node_votes}+ votes and 3+ rateable models "
            f"(largest such node: {int(votes.max(initial=0))} votes)."
        )
        return not_applicable(AUDIT, TITLE, why, **params)
    nodes = pd.DataFrame(rows_out)
    nodes["q_value"] = bh_adjust(nodes["p_value"].to_numpy())
    nodes["flagged"] = (nodes["q_value"] if fdr else nodes["p_value"]) <= alpha
    tests = pd.concat(pair_frames, ignore_index=True)
    tests = tests.merge(nodes[["row", "node_id", "description", "flagged"]], on="row")
    tests["significant"] = tests["flagged"] & (tests["p_adjusted"] <= alpha) & (tests["node_gap"] < 0)
    nodes["inverted_pairs"] = nodes["row"].map(tests.groupby("row")["significant"].sum()).astype(int)
    worst = tests[tests["node_gap"] < 0].sort_values(["p_value", "node_gap"]).drop_duplicates("row")
    worst = worst.set_index("row")
    node_votes = NodeVotes(v)
    ids = v.votes["battle_id"].astype(str).to_numpy()
    nodes["worst_pair"] = [
        _pair_words(worst.loc[r], v.models, global_rank) if r in worst.index else "" for r in nodes["row"]
    ]
    nodes["battle_ids"] = [
        _loss_ids(v, ids, node_votes(r), int(worst.at[r, "strong"]), int(worst.at[r, "weak"]))
        if r in worst.index
        else []
        for r in nodes["row"]
    ]
    pairs_table = tests[tests["significant"]].copy()
    pairs_table["global_rank_strong"] = global_rank[pairs_table["strong"].to_numpy()]
    pairs_table["global_rank_weak"] = global_rank[pairs_table["weak"].to_numpy()]
    pairs_table["strong"] = [v.models[i] for i in pairs_table["strong"]]
    pairs_table["weak"] = [v.models[i] for i in pairs_table["weak"]]
    pairs_table = pairs_table.sort_values(["node_id", "p_value"])[
        [
            "node_id",
            "description",
            "strong",
            "weak",
            "global_rank_strong",
            "global_rank_weak",
            "global_gap",
            "node_gap",
            "lower",
            "upper",
            "p_value",
            "p_holm",
            "p_adjusted",
            "boot_share",
        ]
    ].reset_index(drop=True)
    nodes = nodes.sort_values(["q_value", "tau"]).reset_index(drop=True)
    nodes = nodes[
        [
            "node_id",
            "description",
            "depth",
            "votes",
            "models",
            "tau",
            "tau_lower",
            "tau_upper",
            "inverted_pairs",
            "worst_pair",
            "p_value",
            "q_value",
            "flagged",
            "battle_ids",
        ]
    ]
    flagged = nodes[nodes["flagged"]]
    summary = (
        f"{len(flagged)} of {len(nodes)} tree nodes (depth <= {max_depth}, {min_node_votes}+ votes) have a "
        f"leaderboard that significantly inverts the global order ({'BH q' if fdr else 'p'} <= {alpha}); "
        f"median Kendall tau with the global ranking {nodes['tau'].median():.2f}."
    )
    if len(flagged):
        top = flagged.iloc[0]
        summary += f" Strongest: node {top['node_id']} ({top['description']}): {top['worst_pair']}."
    return Finding(
        audit=AUDIT,
        title=TITLE,
        summary=summary,
        headline={
            "label": "nodes with a significant ranking inversion",
            "estimate": len(flagged),
            "lower": None,
            "upper": None,
            "p_value": float(nodes["q_value"].min()),
            "n": len(nodes),
            "unit": "nodes",
        },
        tables={"nodes": nodes, "pairs": pairs_table},
        plot={
            "table": "nodes",
            "kind": "interval",
            "x": "tau",
            "lower": "tau_lower",
            "upper": "tau_upper",
            "y": "description",
            "color": "flagged",
            "label": "Kendall tau of the node's leaderboard with the global one",
        },
        params=params,
        seconds=time.perf_counter() - t0,
    )


def _pair_words(row: pd.Series, models: list[str], global_rank: np.ndarray) -> str:
    s, w = int(row["strong"]), int(row["weak"])
    return (
        f"{models[s]} (global #{global_rank[s]}) below {models[w]} (global #{global_rank[w]}): "
        f"{row['node_gap']:+.0f} points [{row['lower']:+.0f}, {row['upper']:+.0f}]"
    )


def _loss_ids(v: AuditVotes, ids: np.ndarray, inside: np.ndarray, strong: int, weak: int) -> list[str]:
    """Votes ``inside`` (indices) where ``strong`` lost: to ``weak`` first, then to others (vote order)."""
    a, b, o = v.a[inside], v.b[inside], v.outcome[inside]
    lost = ((a == strong) & (o == 1)) | ((b == strong) & (o == 0))
    to_weak = lost & ((a == weak) | (b == weak))
    order = inside[np.r_[np.flatnonzero(to_weak), np.flatnonzero(lost & ~to_weak)][:EXAMPLE_IDS]]
    return ids[order].tolist()
