"""Position bias: does the left answer (model_a) win more than the two models' strengths predict?

Overall: P(left wins) among decisive votes (Wilson interval) and a Bradley–Terry fit on the
ordered (model_a, model_b) cells with a constant covariate, whose coefficient is the left
side's advantage in natural log-odds (percentile bootstrap over the cells' counts). Per voter:
a strength-adjusted score test of a voter-specific left term. Per tree node: left rate and the
node's own left coefficient (Wald interval), tested against the overall coefficient.

Ties carry no information about position in these models and are left out everywhere in this
module (decisive votes only, ``ties='drop'``): the coefficient is the log-odds of "left wins"
given that someone won, which is what a planted position logit in a Davidson tie model is.

The module also holds the helpers the other preference audits share (vote covariates, the
decisive-vote baseline fit, batched Wald fits, per-voter score tests, flags and examples).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import sparse, stats

from ..ratings import Cells, fit_pairwise, outcome_weights, pairwise_loss, resample_counts, separated_rounds
from ..scores import wilson_interval
from ..style_control import STYLE_FEATURES, style_differences
from ..weaknesses.profiles import bh_adjust
from .frame import MODEL_A, MODEL_B, AuditVotes
from .result import EXAMPLE_IDS, Finding, not_applicable

AUDIT = "position"
TITLE = "Position bias: does the left answer win more often?"
# Nodes with at least this many votes get their own row: at 200 votes (~120 decisive ones at a
# 40% tie rate) the Wald standard error of a node's left log-odds is about 2 / sqrt(120) ~ 0.18,
# small enough to tell a left advantage of 0.5 log-odds from none.
MIN_NODE_VOTES = 200
NEWTON_STEPS = 25  # per-voter Newton iterations (vectorised over voters)
MAX_STEP = 1.0  # per-voter Newton step cap, log-odds
# Ridge on each voter's own coefficients (a N(0, 1 / 0.05) prior, sd ~4.5 log-odds): keeps the
# estimates of voters whose votes all go one way finite (they end ~5-10 log-odds out) and shrinks a
# 20-vote voter's estimate by a few percent at most.
VOTER_RIDGE = 0.05


# --------------------------------------------------------------------------- shared helpers


def numeric_pair(votes: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``<name>_a`` and ``<name>_b`` as float arrays (n_votes,) each, NaN where missing; None when the
    source has no such columns."""
    cols = [f"{name}_a", f"{name}_b"]
    if not all(c in votes for c in cols):
        return None
    out = []
    for c in cols:
        col = votes[c]
        if col.dtype == object:
            col = col.map(lambda x: np.nan if x is None else float(x))
        out.append(pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64))
    return out[0], out[1]


def flag_difference(votes: pd.DataFrame, name: str) -> np.ndarray | None:
    """``flag_a - flag_b`` per vote (n_votes,) in {-1, 0, 1}, NaN where either side is missing;
    None when the source has no such columns."""
    pair = numeric_pair(votes, name)
    if pair is None:
        return None
    fa, fb = pair
    return (fa > 0).astype(np.float64) - (fb > 0).astype(np.float64) + 0.0 * (fa + fb)


def style_covariates(votes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Style-control covariates of every vote: (usable (n,) bool, z (n, 4) standardised normalised
    differences, 0 on unusable votes, mean (4,), sd (4,)) as :mod:`pipelines.style_control`
    (features tokens, headers, lists, bold; standardised over the usable votes; a feature without
    variance gets z = 0). None when the source has no style columns or no usable vote."""
    if not all(f"{f}_{s}" in votes for f in STYLE_FEATURES for s in "ab"):
        return None
    keep, diffs = style_differences(votes)
    if not keep.any():
        return None
    mean, sd = diffs.mean(axis=0), diffs.std(axis=0)
    z = np.zeros((len(votes), len(STYLE_FEATURES)))
    z[keep] = np.where(sd > 0, (diffs - mean) / np.where(sd > 0, sd, 1.0), 0.0)
    return keep, z, mean, sd


def outcome_counts(outcome: np.ndarray) -> np.ndarray:
    """One-hot outcome counts (n, 3): wins_a, wins_b, ties (both tie kinds)."""
    counts = np.zeros((len(outcome), 3))
    counts[np.arange(len(outcome)), np.minimum(outcome, 2)] = 1.0
    return counts


def baseline_logits(
    v: AuditVotes, covariates: np.ndarray | None, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Global Bradley–Terry fit on the decisive votes ``rows`` (indices, (m,)) with optional
    per-vote ``covariates`` (n_votes, k). Returns (logit (m,) of "left wins" for those votes,
    params (n_models + k,), natural log-odds)."""
    a, b = v.a[rows], v.b[rows]
    x = None if covariates is None or covariates.shape[1] == 0 else covariates[rows]
    params = fit_pairwise(a, b, len(v.models), outcome_counts(v.outcome[rows]), features=x, ties="drop")
    n = len(v.models)
    s = params[a] - params[b]
    if x is not None:
        s = s + x @ params[n:]
    return s, params


def batched_fit(
    a: np.ndarray,
    b: np.ndarray,
    n_models: int,
    counts: np.ndarray,
    features: np.ndarray | None,
    ties: str,
    start: np.ndarray | None = None,
    tol: float = 1e-10,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit many groups at once (one Bradley–Terry fit per group, rows shared).

    ``counts`` (G, U, 3) per group over rows ``a``/``b`` (U,) with ``features`` (U, k). Returns
    (params (G, p), se (G, p)): natural log-odds and Wald standard errors from the observed
    information (the inverse Hessian of the per-battle loss divided by the group's battles).
    ``start`` (p,) warm-starts every group; ``tol``: Newton step size to stop at (log-odds).
    Groups whose models are not connected by wins stop early (see
    :func:`pipelines.ratings.separated_rounds`); their runaway strengths do not matter for the
    covariate coefficients, whose standard errors stay finite when the covariate is identified.
    """
    sep = separated_rounds(a, b, n_models, counts, "bt", ties)
    params = fit_pairwise(
        a,
        b,
        n_models,
        counts,
        features=features,
        ties=ties,
        maxiter=np.where(sep, 8, 100),
        start=start,
        tol=tol,
    )
    params = np.atleast_2d(params)
    score_a, score_b, _ = outcome_weights(counts, "bt", ties)
    total = np.maximum(counts.sum(axis=(1, 2)), 1.0)
    _, _, hess = pairwise_loss(
        params, a, b, score_a, score_b, np.zeros(len(params)), features, n_models=n_models
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        cov_diag = np.diagonal(np.linalg.pinv(hess), axis1=1, axis2=2)
        se = np.sqrt(np.maximum(cov_diag, 0.0) / total[:, None])
    return params, se


def voter_score_test(
    s: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    voter: np.ndarray,
    n_voters: int,
    *,
    nuisance: np.ndarray | None = None,
    alternative: str = "two-sided",
) -> dict[str, np.ndarray]:
    """Per-voter score test of an extra coefficient on covariate ``x`` beyond a global fit.

    Decisive votes only: ``s`` (m,) baseline logit of "left wins", ``y`` (m,) 1 if left won else 0,
    ``x`` (m,) the tested covariate, ``voter`` (m,) voter index. Model for voter j:
    logit P(left) = s + delta_j x [+ nuisance @ theta_j]; H0: delta_j = 0. ``nuisance`` (m, q)
    are per-voter covariates fitted under H0 (each voter's own theta_j, by vectorised Newton), and
    the efficient score U - I_tn I_nn^-1 U_n is used, so the test is adjusted for them.

    Returns arrays (n_voters,): ``score`` (U), ``info`` (efficient information), ``z`` =
    U / sqrt(info), ``p_value`` (``alternative`` 'two-sided', 'greater' or 'less'), ``estimate``
    (each voter's MLE of delta_j with the nuisance refitted, log-odds per unit of x; capped
    Newton, so voters whose votes all go one way end far out), ``n`` (decisive votes).
    """
    q = 0 if nuisance is None else nuisance.shape[1]
    n = np.bincount(voter, minlength=n_voters).astype(np.float64)

    def fit(cols: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Per-voter MLE of coefficients on ``cols`` (m, c), vectorised Newton with a small ridge."""
        c = cols.shape[1]
        theta = np.zeros((n_voters, c))
        for _ in range(NEWTON_STEPS):
            eta = offset + (cols * theta[voter]).sum(axis=1)
            p = 1.0 / (1.0 + np.exp(-eta))
            w = p * (1.0 - p)
            grad = np.stack([np.bincount(voter, cols[:, i] * (y - p), n_voters) for i in range(c)], axis=1)
            hess = np.empty((n_voters, c, c))
            for i in range(c):
                for k in range(i, c):
                    hess[:, i, k] = hess[:, k, i] = np.bincount(voter, w * cols[:, i] * cols[:, k], n_voters)
            grad -= VOTER_RIDGE * theta
            hess += VOTER_RIDGE * np.eye(c)
            step = np.linalg.solve(hess, grad[..., None])[..., 0]
            step = np.clip(step, -MAX_STEP, MAX_STEP)
            theta += step
            if np.abs(step).max(initial=0.0) < 1e-8:
                break
        return theta

    offset = s
    if q:
        theta0 = fit(nuisance, s)
        offset = s + (nuisance * theta0[voter]).sum(axis=1)
    p = 1.0 / (1.0 + np.exp(-offset))
    w = p * (1.0 - p)
    score = np.bincount(voter, x * (y - p), n_voters)
    info = np.bincount(voter, w * x * x, n_voters)
    if q:
        u_n = np.stack([np.bincount(voter, nuisance[:, i] * (y - p), n_voters) for i in range(q)], axis=1)
        i_tn = np.stack([np.bincount(voter, w * x * nuisance[:, i], n_voters) for i in range(q)], axis=1)
        i_nn = np.empty((n_voters, q, q))
        for i in range(q):
            for k in range(i, q):
                i_nn[:, i, k] = i_nn[:, k, i] = np.bincount(
                    voter, w * nuisance[:, i] * nuisance[:, k], n_voters
                )
        i_nn += 1e-9 * np.eye(q)
        solved = np.linalg.solve(i_nn, np.stack([i_tn, u_n], axis=2))  # (V, q, 2)
        score = score - (i_tn * solved[:, :, 1]).sum(axis=1)
        info = info - (i_tn * solved[:, :, 0]).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(info > 1e-12, score / np.sqrt(np.maximum(info, 1e-300)), np.nan)
    if alternative == "greater":
        pval = stats.norm.sf(z)
    elif alternative == "less":
        pval = stats.norm.cdf(z)
    else:
        pval = 2 * stats.norm.sf(np.abs(z))
    cols = x[:, None] if not q else np.column_stack([x, nuisance])
    estimate = fit(cols, s)[:, 0]
    estimate = np.where(info > 1e-12, estimate, np.nan)
    return {"score": score, "info": info, "z": z, "p_value": pval, "estimate": estimate, "n": n}


def flags(
    p_value: np.ndarray, votes: np.ndarray, *, min_votes: int, alpha: float, fdr: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(q_value, flagged), both (n_rows,): BH across the rows with at least ``min_votes`` votes
    (others get q NaN and are never flagged); without ``fdr`` the raw p-value is compared to alpha."""
    eligible = (votes >= min_votes) & np.isfinite(p_value)
    q = np.full(len(p_value), np.nan)
    q[eligible] = bh_adjust(p_value[eligible])
    test = q if fdr else np.where(eligible, p_value, np.nan)
    return q, eligible & (test <= alpha)


def ranked_examples(v: AuditVotes, rows: np.ndarray, group: np.ndarray, key: np.ndarray) -> pd.Series:
    """Up to EXAMPLE_IDS battle ids per group, the votes ``rows`` (indices) ordered by ``key``
    (ascending, most telling first) within each ``group`` (per row). Indexed by group."""
    order = np.lexsort((key, group))
    rows, group = rows[order], group[order]
    start = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    rank = np.arange(len(group)) - np.repeat(start, np.diff(np.r_[start, len(group)]))
    keep = rank < EXAMPLE_IDS
    ids = v.votes["battle_id"].astype(str).to_numpy()[rows[keep]]
    g = group[keep]
    bounds = np.r_[0, np.flatnonzero(np.diff(g)) + 1, len(g)]
    return pd.Series(
        [list(ids[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)],
        index=g[bounds[:-1]] if len(g) else np.zeros(0, dtype=np.int64),
        dtype=object,
    )


def attach_ids(table: pd.DataFrame, ids: pd.Series, index: np.ndarray) -> pd.DataFrame:
    """``table`` with a ``battle_ids`` column from ``ids`` (indexed by group) for the groups ``index``."""
    got = ids.reindex(index)
    return table.assign(battle_ids=[x if isinstance(x, list) else [] for x in got])


def node_membership(v: AuditVotes, min_node_votes: int) -> tuple[pd.DataFrame, sparse.csr_matrix]:
    """The nodes audited per node: depth-1 nodes plus every node with at least ``min_node_votes``
    votes (root excluded). Returns (node rows: node_id, description, depth, votes; membership
    (n_rows, n_votes) 0/1 sparse)."""
    member = v.node_votes()
    if member.shape[0] == 0:
        return pd.DataFrame(columns=["node_id", "description", "depth", "votes"]), member
    size = np.asarray(member.sum(axis=1)).ravel()
    depth = v.nodes["depth"].to_numpy()
    pick = np.flatnonzero(((depth == 1) | (size >= min_node_votes)) & (depth >= 1))
    nodes = v.nodes.iloc[pick][["node_id", "description", "depth"]].reset_index(drop=True)
    nodes["votes"] = size[pick].astype(np.int64)
    return nodes, member[pick]


def group_counts(
    membership: sparse.csr_matrix, row: np.ndarray, outcome: np.ndarray, n_rows: int
) -> np.ndarray:
    """Outcome counts (G, n_rows, 3) per group of ``membership`` (G, n_votes) over vote rows ``row``
    (n_votes,) in [0, n_rows) and ``outcome`` codes (ties merged)."""
    onehot = sparse.csr_matrix(
        (np.ones(len(row)), (np.arange(len(row)), row * 3 + np.minimum(outcome, 2))),
        shape=(len(row), n_rows * 3),
    )
    return np.asarray((membership @ onehot).todense()).reshape(membership.shape[0], n_rows, 3)


def percentile_interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    """Two-sided ``level`` percentile interval of bootstrap draws (rounds,)."""
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(draws, [tail, 100 - tail])
    return float(lo), float(hi)


class CovariateFit(NamedTuple):
    """Result of :func:`covariate_fit`: aggregated rows and the covariate's coefficient."""

    a: np.ndarray  # (U,) model_a index per aggregated row
    b: np.ndarray  # (U,) model_b index
    x: np.ndarray  # (U, 1) covariate value
    row: np.ndarray  # (m,) each decisive vote's row
    won: np.ndarray  # (m,) outcome column of each decisive vote: 0 left won, 1 right won
    counts: np.ndarray  # (U, 3) wins_a, wins_b, 0
    point: np.ndarray  # (n_models + 1,) natural log-odds
    coef: float  # covariate coefficient, log-odds per unit
    se: float  # its Wald standard error
    lower: float  # percentile bootstrap interval (Wald when rounds == 0)
    upper: float
    p_value: float  # Wald, coef = 0, two-sided
    interval: str  # 'bootstrap' or 'wald'
    separated: int  # +1 / -1 when the side with the higher covariate won / lost every decisive vote


def covariate_fit(
    v: AuditVotes, x: np.ndarray, dec: np.ndarray, rounds: int, seed: int, level: float
) -> CovariateFit:
    """Bradley–Terry plus one integer-valued covariate ``x`` (m,) (e.g. flag_a - flag_b in
    {-1, 0, 1}) on the decisive votes ``dec`` (m,), aggregated into (model_a, model_b, x) rows,
    ties dropped. The interval is a ``level`` percentile bootstrap over ``rounds`` multinomial
    redraws of the rows, all rounds solved at once. When the covariate separates the outcomes
    (the side with the higher value won, or lost, every decisive vote where the sides differ) the
    MLE is infinite: coef, interval and p-value are then NaN and ``separated`` says which way."""
    n_models = len(v.models)
    xi = x.astype(np.int64)
    lo = int(xi.min(initial=0))
    width = int(xi.max(initial=0)) - lo + 1
    key = (v.a[dec] * n_models + v.b[dec]) * width + (xi - lo)
    uniq, row = np.unique(key, return_inverse=True)
    ra, rb = uniq // width // n_models, uniq // width % n_models
    feat = (uniq % width + lo).astype(np.float64)[:, None]
    won = np.where(v.outcome[dec] == MODEL_A, 0, 1)
    counts = np.zeros((len(uniq), 3))
    np.add.at(counts, (row, won), 1.0)
    point, se = batched_fit(ra, rb, n_models, counts[None], feat, "drop")
    point, se = point[0], se[0]
    coef, coef_se = float(point[-1]), float(se[-1])
    zq = stats.norm.ppf(0.5 + level / 2)
    if rounds:
        cells = Cells(ra, rb, counts[:, 0], counts[:, 1], counts[:, 2])
        draws = resample_counts(cells, rounds, np.random.default_rng(seed))
        boot = np.atleast_2d(fit_pairwise(ra, rb, n_models, draws, features=feat, ties="drop", start=point))
        lower, upper = percentile_interval(boot[:, -1], level)
    else:
        lower, upper = coef - zq * coef_se, coef + zq * coef_se
    p_value = float(2 * stats.norm.sf(abs(coef / coef_se))) if coef_se > 0 else float("nan")
    differ = x != 0
    agree = np.sign(x[differ]) * np.where(won[differ] == 0, 1, -1)
    separated = int(agree[0]) if len(agree) and np.all(agree == agree[0]) else 0
    if separated:
        coef = coef_se = lower = upper = p_value = float("nan")
    return CovariateFit(
        ra,
        rb,
        feat,
        row,
        won,
        counts,
        point,
        coef,
        coef_se,
        lower,
        upper,
        p_value,
        "bootstrap" if rounds else "wald",
        separated,
    )


# --------------------------------------------------------------------------- the audit


def position_preference(
    v: AuditVotes,
    *,
    alpha: float = 0.05,
    fdr: bool = True,
    min_votes: int = 20,
    rounds: int = 100,
    seed: int = 0,
    level: float = 0.95,
    min_node_votes: int = MIN_NODE_VOTES,
) -> Finding:
    """Left-side (model_a) preference overall, per voter and per tree node.

    Headline: the left coefficient of a Bradley–Terry fit on the decisive votes' ordered (model_a,
    model_b) cells with a constant covariate (natural log-odds; > 0 = left wins more than the
    strengths predict), with a ``level`` percentile bootstrap over ``rounds`` multinomial redraws
    of the cells (all rounds solved at once) and a Wald p-value.

    Tables:

    - ``voters``: judge, votes, decisive, left_wins, left_rate (of decisive votes) with a Wilson
      ``lower``/``upper``, left_logit (the voter's own left log-odds beyond strength, MLE),
      z and p_value (two-sided score test of a voter-specific left term: sum of y - p over the
      voter's decisive votes, p from the global Bradley–Terry without a position term, variance
      sum p (1 - p); ties left out), q_value (BH across voters with >= ``min_votes`` votes),
      flagged, battle_ids (wins of the side the voter leans to, least expected first: for a
      left-leaning voter the left wins against the stronger model first).
    - ``nodes`` (with a tree): node_id, description, depth, votes, decisive, left_rate, lower,
      upper (Wilson), left_coef, coef_lower, coef_upper (Wald, ``interval`` column), z and p_value
      of left_coef against the overall coefficient (two-sided), q_value (BH across nodes),
      flagged, battle_ids (the node's left wins against the stronger model).
    - ``overall``: one row with the overall numbers.
    """
    t0 = time.perf_counter()
    params = {
        "alpha": alpha,
        "fdr": fdr,
        "min_votes": min_votes,
        "rounds": rounds,
        "seed": seed,
        "level": level,
        "min_node_votes": min_node_votes,
    }
    decisive = np.flatnonzero((v.outcome == MODEL_A) | (v.outcome == MODEL_B))
    if len(decisive) == 0 or len(v.models) < 2:
        return not_applicable(AUDIT, TITLE, "No decisive vote (every vote is a tie).", **params)
    n_models = len(v.models)
    y = (v.outcome[decisive] == MODEL_A).astype(np.float64)
    a, b = v.a[decisive], v.b[decisive]

    # overall: rate and BT with a left term on the ordered cells
    left_wins = float(y.sum())
    n_dec = len(decisive)
    rate_lo, rate_hi = wilson_interval(np.array([left_wins]), np.array([n_dec]), level)
    cell = a * n_models + b
    flat = np.bincount(cell * 3 + np.where(y > 0, 0, 1), minlength=n_models * n_models * 3)
    flat = flat.reshape(-1, 3).astype(np.float64)
    keep = np.flatnonzero(flat.sum(axis=1))
    cells = Cells(keep // n_models, keep % n_models, flat[keep, 0], flat[keep, 1], flat[keep, 2])
    ones = np.ones((len(keep), 1))
    point, se = batched_fit(cells.a, cells.b, n_models, cells.counts[None], ones, "drop")
    point, se = point[0], se[0]
    coef, coef_se = float(point[-1]), float(se[-1])
    draws = resample_counts(cells, rounds, np.random.default_rng(seed))
    boot = np.atleast_2d(
        fit_pairwise(cells.a, cells.b, n_models, draws, features=ones, ties="drop", start=point)
    )
    lower, upper = percentile_interval(boot[:, -1], level) if rounds else (np.nan, np.nan)
    coef_p = float(2 * stats.norm.sf(abs(coef / coef_se))) if coef_se > 0 else float("nan")

    # per voter: score test against the global BT without a position term
    s_plain, _ = baseline_logits(v, None, decisive)
    voter = v.judge[decisive]
    n_voters = len(v.judges)
    test = voter_score_test(s_plain, y, np.ones(n_dec), voter, n_voters)
    votes_per = np.bincount(v.judge, minlength=n_voters)
    wins_per = np.bincount(voter, y, n_voters)
    dec_per = test["n"]
    lo_v, hi_v = wilson_interval(wins_per, dec_per, level)
    q, flagged = flags(test["p_value"], votes_per, min_votes=min_votes, alpha=alpha, fdr=fdr)
    p_left = 1.0 / (1.0 + np.exp(-s_plain))
    # examples: the wins of the side the voter leans to (left when z >= 0), least expected first
    # (e.g. left wins against the stronger model first)
    lean_left = np.nan_to_num(test["z"]) >= 0
    telling = np.flatnonzero((y > 0) == lean_left[voter])
    p_side = np.where(y > 0, p_left, 1.0 - p_left)
    ids = ranked_examples(v, decisive[telling], voter[telling], p_side[telling])
    voters = pd.DataFrame(
        {
            "judge": v.judges,
            "votes": votes_per,
            "decisive": dec_per.astype(np.int64),
            "left_wins": wins_per.astype(np.int64),
            "left_rate": np.where(dec_per > 0, wins_per / np.maximum(dec_per, 1), np.nan),
            "lower": lo_v,
            "upper": hi_v,
            "left_logit": test["estimate"],
            "z": test["z"],
            "p_value": test["p_value"],
            "q_value": q,
            "flagged": flagged,
        }
    )
    voters = attach_ids(voters, ids, np.arange(n_voters))
    voters = voters.sort_values(
        ["flagged", "p_value", "votes"], ascending=[False, True, False], ignore_index=True
    )

    # per node
    tables: dict[str, pd.DataFrame] = {}
    nodes, member = node_membership(v, min_node_votes)
    if len(nodes):
        mem_dec = member[:, decisive]
        counts = group_counts(mem_dec, np.searchsorted(keep, cell), np.where(y > 0, 0, 1), len(keep))
        dec_n = counts.sum(axis=(1, 2))
        wins_n = counts[:, :, 0].sum(axis=1)
        lo_n, hi_n = wilson_interval(wins_n, dec_n, level)
        fit_ok = dec_n >= min_votes
        node_coef = np.full(len(nodes), np.nan)
        node_se = node_coef.copy()
        if fit_ok.any():
            pn, sn = batched_fit(cells.a, cells.b, n_models, counts[fit_ok], ones, "drop")
            node_coef[fit_ok], node_se[fit_ok] = pn[:, -1], sn[:, -1]
        zq = stats.norm.ppf(0.5 + level / 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            z_node = (node_coef - coef) / node_se
        p_node = 2 * stats.norm.sf(np.abs(z_node))
        q_node, flag_node = flags(p_node, dec_n, min_votes=min_votes, alpha=alpha, fdr=fdr)
        rows = np.repeat(np.arange(len(nodes)), np.diff(mem_dec.indptr))
        cols = mem_dec.indices
        tell = y[cols] > 0
        node_ids = ranked_examples(v, decisive[cols[tell]], rows[tell], p_left[cols[tell]])
        table = nodes.assign(
            decisive=dec_n.astype(np.int64),
            left_rate=np.where(dec_n > 0, wins_n / np.maximum(dec_n, 1), np.nan),
            lower=lo_n,
            upper=hi_n,
            left_coef=node_coef,
            coef_lower=node_coef - zq * node_se,
            coef_upper=node_coef + zq * node_se,
            interval="wald",
            z=z_node,
            p_value=p_node,
            q_value=q_node,
            flagged=flag_node,
        )
        tables["nodes"] = attach_ids(table, node_ids, np.arange(len(nodes)))

    overall = pd.DataFrame(
        [
            {
                "votes": v.n,
                "decisive": n_dec,
                "left_wins": int(left_wins),
                "left_rate": left_wins / n_dec,
                "lower": float(rate_lo[0]),
                "upper": float(rate_hi[0]),
                "left_coef": coef,
                "coef_lower": lower,
                "coef_upper": upper,
                "coef_se": coef_se,
                "interval": "bootstrap",
                "p_value": coef_p,
            }
        ]
    )
    tables = {"overall": overall, "voters": voters, **tables}
    eligible = int((votes_per >= min_votes).sum())
    n_flag = int(voters["flagged"].sum())
    summary = (
        f"The left answer won {left_wins / n_dec:.1%} of {n_dec:,} decisive votes "
        f"({level:.0%} CI {rate_lo[0]:.1%}–{rate_hi[0]:.1%}); adjusted for model strength the left side's "
        f"advantage is {coef:+.2f} log-odds ({lower:+.2f} to {upper:+.2f}, odds x{np.exp(coef):.2f}). "
        f"{n_flag} of {eligible} voters with >= {min_votes} votes show a position preference "
        f"({'BH ' if fdr else ''}alpha {alpha})."
    )
    return Finding(
        audit=AUDIT,
        title=TITLE,
        summary=summary,
        headline={
            "label": "left-side advantage beyond model strength",
            "estimate": coef,
            "lower": lower,
            "upper": upper,
            "p_value": coef_p,
            "n": n_dec,
            "unit": "log-odds",
        },
        tables=tables,
        plot={
            "table": "voters",
            "kind": "scatter",
            "x": "votes",
            "y": "left_rate",
            "lower": "lower",
            "upper": "upper",
            "color": "flagged",
            "label": "judge",
        },
        params=params,
        seconds=time.perf_counter() - t0,
    )
