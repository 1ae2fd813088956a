"""Bradley–Terry with per-vote covariates, and per-voter score tests: the model the preference
audits (position, style, refusal, identity leakage) share.

Votes enter as decisive outcomes only (ties carry no information about a side's advantage and are
dropped, ``ties='drop'``). A covariate is a per-vote difference between the two answers (a
constant 1 for the left side, normalised style differences, refusal or leak flags); its
coefficient is in natural log-odds of "model_a wins" per unit. :func:`covariate_fit` fits one
covariate with a bootstrap or Wald interval; :func:`batched_fit` fits many groups' covariates at
once (Wald); :func:`voter_score_test` tests a voter-specific extra coefficient at the global fit,
vectorised over voters.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import sparse, stats

from ..ratings import Cells, fit_pairwise, outcome_weights, pairwise_loss, resample_counts, separated_rounds
from ..style_control import STYLE_FEATURES, style_differences
from .frame import MODEL_A, AuditVotes
from .tables import percentile_interval

NEWTON_STEPS = 25  # per-voter Newton iterations (vectorised over voters)
MAX_STEP = 1.0  # per-voter Newton step cap, log-odds
# Ridge on each voter's own coefficients (a N(0, 1 / 0.05) prior, sd ~4.5 log-odds): keeps the
# estimates of voters whose votes all go one way finite (they end ~5-10 log-odds out) and shrinks a
# 20-vote voter's estimate by a few percent at most.
VOTER_RIDGE = 0.05


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
