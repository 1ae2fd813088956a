"""Pairwise ratings on aggregated battle cells: Bradley–Terry, Rao–Kupper, online Elo, bootstrap.

FastChat ``rating_systems.py`` style: battles are aggregated once into per-(model_a, model_b) cells of
outcome counts, and every fit runs on those few cells. Ratings are on the Elo-like scale
``scale * beta / ln(base) + init_rating``, so a 400-point gap means 10x odds with the defaults.

All maximum-likelihood fits go through one batched Newton solver (:func:`fit_pairwise`): it fits
many bootstrap rounds at once (stacked Hessians of shape (rounds, p, p), one ``np.linalg.solve``
per iteration), warm-started from the point estimate, so a bootstrap round costs a few vectorised
passes over the cells instead of a scalar optimiser run. The same solver takes extra per-row
covariates (style control, :mod:`pipelines.style_control`) and the Rao–Kupper tie parameter.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from threadpoolctl import ThreadpoolController

from .errors import NotApplicable

WINNERS = {"model_a": 0, "model_b": 1, "tie": 2, "tie_bothbad": 2}
TIE_WEIGHTS = {"half": 0.5, "drop": 0.0}
METHODS = ("bt", "rao-kupper")
# Tiny ridge on the natural-scale parameters: keeps the Newton systems non-singular when a model is
# absent from a bootstrap round or never loses (its MLE is infinite; it then ends far out but finite).
# With losses normalised per battle its bias on identified ratings is < 1e-3 rating points.
RIDGE = 1e-10
# Bootstrap rounds whose resampled battles split the models into groups one of which never loses to
# the rest (see :func:`separated_rounds`) have no finite MLE: some rating differences go to infinity
# and only RIDGE stops them, 20-100 log-odds out, after 20-40 Newton iterations at ~1 log-odds each.
# Such rounds stop after this many iterations instead: the runaway differences end at roughly this
# many log-odds (~1,000+ points) beyond the point fit's, still far outside any identified interval.
SEPARATED_MAXITER = 6
# Bootstrap rounds stop at this Newton step (natural log-odds, ~2e-4 rating points): far below the
# Monte-Carlo noise of a percentile interval, and it saves an iteration of the usual 4-5.
ROUND_TOL = 1e-6
TRUST_STEP = 1e-2  # Newton steps below this (natural log-odds) skip the line search
CHUNK_ELEMENTS = 1_000_000  # rounds x rows per solver chunk (bounds memory at ~8 MB per array)
# The stacked solves are many tiny LAPACK calls: multi-threaded OpenBLAS on a loaded machine turns
# them from ~10 ms into seconds (measured: 1.6 s -> 10-20 s per 100-round bootstrap on 2 busy cores).
_BLAS = ThreadpoolController()  # threadpoolctl ships with scikit-learn


class Cells(NamedTuple):
    """Outcome counts per ordered (model_a, model_b) pair that occurs in the battles.

    All arrays have shape (n_cells,); ``a`` and ``b`` index into the sorted model list.
    """

    a: np.ndarray  # int, model_a index
    b: np.ndarray  # int, model_b index
    wins_a: np.ndarray  # float, battles won by model_a
    wins_b: np.ndarray  # float, battles won by model_b
    ties: np.ndarray  # float, ties of either kind ('tie', 'tie_bothbad')

    @property
    def counts(self) -> np.ndarray:
        """Counts stacked as (n_cells, 3): wins_a, wins_b, ties."""
        return np.column_stack([self.wins_a, self.wins_b, self.ties])


def winner_codes(winner: pd.Series) -> np.ndarray:
    """Outcome codes (n_battles,) int: 0 = model_a won, 1 = model_b won, 2 = tie of either kind."""
    codes, uniques = pd.factorize(winner, use_na_sentinel=False)
    bad = [u for u in uniques if u not in WINNERS]
    if bad:
        raise ValueError(f"unknown winner value(s): {sorted(map(str, bad))}")
    return np.array([WINNERS[u] for u in uniques], dtype=np.int64)[codes]


def index_models(battles: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Sorted model names and the model_a / model_b index of every battle, (n_battles,) int each."""
    codes, uniques = pd.factorize(pd.concat([battles["model_a"], battles["model_b"]], ignore_index=True))
    order = np.argsort(uniques.to_numpy(dtype=object))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    n_rows = len(battles)
    return list(uniques[order]), rank[codes[:n_rows]], rank[codes[n_rows:]]


def aggregate(battles: pd.DataFrame) -> tuple[list[str], Cells]:
    """Count outcomes per ordered (model_a, model_b) pair.

    ``battles`` needs columns model_a, model_b, winner (one of 'model_a', 'model_b', 'tie',
    'tie_bothbad'). Returns the sorted model names and the cells (one per pair that occurs,
    side kept, so position effects stay visible; counts are additive across subsets).
    """
    outcome = winner_codes(battles["winner"])
    models, a, b = index_models(battles)
    n = len(models)
    flat = np.bincount((a * n + b) * 3 + outcome, minlength=n * n * 3).reshape(n * n, 3)
    keep = np.flatnonzero(flat.sum(axis=1))
    counts = flat[keep].astype(np.float64)
    return models, Cells(keep // n, keep % n, counts[:, 0], counts[:, 1], counts[:, 2])


# --------------------------------------------------------------------------------------------------
# Likelihood and the batched Newton solver
# --------------------------------------------------------------------------------------------------


def outcome_weights(counts: np.ndarray, method: str = "bt", ties: str = "half") -> tuple[np.ndarray, ...]:
    """Per-row likelihood weights from outcome counts ``counts`` (..., n_rows, 3).

    Returns ``(score_a, score_b, tie_total)``: shapes (..., n_rows), (..., n_rows), (...), each divided
    by the total battle count of its round so losses are per battle. For ``method='bt'`` a tie
    credits ``TIE_WEIGHTS[ties]`` of a win to each side and ``tie_total`` is 0. For Rao–Kupper a tie
    enters both ``log P(a beats b)``- and ``log P(b beats a)``-shaped terms (see :func:`pairwise_loss`)
    and ``tie_total`` carries the ``log(theta**2 - 1)`` term.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if ties not in TIE_WEIGHTS:
        raise ValueError(f"ties must be one of {sorted(TIE_WEIGHTS)}, got {ties!r}")
    wins_a, wins_b, n_ties = counts[..., 0], counts[..., 1], counts[..., 2]
    total = np.maximum(counts.sum(axis=(-2, -1)), 1.0)
    tie_share = 1.0 if method == "rao-kupper" else TIE_WEIGHTS[ties]
    score_a = (wins_a + tie_share * n_ties) / total[..., None]
    score_b = (wins_b + tie_share * n_ties) / total[..., None]
    tie_total = n_ties.sum(axis=-1) / total if method == "rao-kupper" else np.zeros_like(total)
    return score_a, score_b, tie_total


def _log_sigmoid(x: np.ndarray, with_sigmoid: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """log sigmoid(x) and sigmoid(x), elementwise, from one shared exp (stable for either sign)."""
    e = np.exp(-np.abs(x))
    log_p = np.minimum(x, 0.0) - np.log1p(e)
    if not with_sigmoid:
        return log_p, None
    p = np.where(x >= 0, 1.0, e)
    p /= 1.0 + e
    return log_p, p


def _split(params: np.ndarray, n_models: int, n_features: int, fit_eta: bool) -> tuple[np.ndarray, ...]:
    beta = params[:, :n_models]
    gamma = params[:, n_models : n_models + n_features]
    eta = params[:, -1] if fit_eta else np.zeros(len(params))
    return beta, gamma, eta


def pair_segments(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """Start offsets (P,) of the runs of rows sharing one (a, b) pair, rows sorted by (a, b).

    None when every row is its own pair (aggregated cells), where no reduction is needed.
    """
    key = a.astype(np.int64) * (int(max(a.max(initial=0), b.max(initial=0))) + 1) + b
    if len(key) and np.any(np.diff(key) < 0):
        raise ValueError("rows must be sorted by (a, b)")
    starts = np.flatnonzero(np.r_[True, np.diff(key) != 0]) if len(key) else np.zeros(0, dtype=np.int64)
    return None if len(starts) == len(key) else starts


def pairwise_loss(
    params: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    score_a: np.ndarray,
    score_b: np.ndarray,
    tie_total: np.ndarray,
    features: np.ndarray | None = None,
    fit_eta: bool = False,
    n_models: int | None = None,
    derivatives: bool = True,
    segments: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Negative log-likelihood per round, its gradient and Hessian, for R rounds at once.

    ``params`` (R, p) stacks ``beta`` (n_models natural log-strengths), ``gamma`` (n_features
    covariate coefficients) and, if ``fit_eta``, ``eta = ln(theta)`` (Rao–Kupper). Rows u have
    model indices ``a``/``b`` (U,), weights ``score_a``/``score_b`` (R, U) and optional covariates
    ``features`` (U, k). With ``s = beta[a] - beta[b] + features @ gamma``:

        loss = -sum_u [score_a log sigmoid(s - eta) + score_b log sigmoid(-s - eta)]
               - tie_total * log(exp(2 eta) - 1) + (sum beta)**2 / 2 + RIDGE * |beta, gamma|**2 / 2

    Bradley–Terry is ``eta = 0`` (not fitted, ``tie_total = 0``). Rao–Kupper: P(a wins) =
    sigmoid(s - eta), P(b wins) = sigmoid(-s - eta), P(tie) = (theta**2 - 1) P(a wins) P(b wins), so
    a tie adds one term of each kind plus ``log(theta**2 - 1)``. The ``(sum beta)**2`` term pins the
    free shift to sum-to-zero without touching differences. The loss is jointly convex.
    ``segments`` (from :func:`pair_segments`, rows sorted by pair) lets per-model sums reduce each
    pair's rows first. Returns loss (R,), gradient (R, p), Hessian (R, p, p) (both None unless
    ``derivatives``).
    """
    n_rounds, n_rows = score_a.shape
    k = 0 if features is None else features.shape[1]
    n = params.shape[1] - k - int(fit_eta) if n_models is None else n_models
    beta, gamma, eta = _split(params, n, k, fit_eta)
    if segments is None:
        s = beta[:, a] - beta[:, b]
    else:  # one difference per pair, repeated over its rows (cheaper than a row-wise gather)
        s = np.repeat(beta[:, a[segments]] - beta[:, b[segments]], np.diff(np.r_[segments, n_rows]), axis=1)
    if k:
        s += gamma @ features.T
    total = beta.sum(axis=1)
    penalty = 0.5 * total**2 + 0.5 * RIDGE * ((beta**2).sum(axis=1) + (gamma**2).sum(axis=1))
    if fit_eta:
        x, y = s - eta[:, None], -s - eta[:, None]
        log_px, px = _log_sigmoid(x, derivatives)
        log_py, py = _log_sigmoid(y, derivatives)
        loss = -(score_a * log_px + score_b * log_py).sum(axis=1) + penalty
        with np.errstate(divide="ignore", invalid="ignore"):
            loss -= np.where(tie_total > 0, tie_total * np.log(np.expm1(2 * eta)), 0.0)
    else:  # y = -s and log sigmoid(-s) = log sigmoid(s) - s: one sigmoid per row
        weight = score_a + score_b
        log_p, p_s = _log_sigmoid(s, derivatives)
        loss = -(weight * log_p - score_b * s).sum(axis=1) + penalty
    if not derivatives:
        return loss, None, None

    if fit_eta:
        lx, ly = -score_a * (1.0 - px), -score_b * (1.0 - py)  # d loss / dx, d loss / dy per row
        lxx, lyy = -lx * px, -ly * py
        g_s, h_ss = lx - ly, lxx + lyy  # derivatives in s
    else:
        g_s = weight * p_s - score_a
        h_ss = weight * p_s * (1.0 - p_s)

    if segments is None:
        pa, pb = a, b

        def reduce(values: np.ndarray) -> np.ndarray:
            return values
    else:
        pa, pb = a[segments], b[segments]

        def reduce(values: np.ndarray) -> np.ndarray:
            """Sum each pair's rows: (R, U, ...) -> (R, P, ...)."""
            return np.add.reduceat(values, segments, axis=1)

    off = (np.arange(n_rounds) * n)[:, None]
    ia, ib = (off + pa).ravel(), (off + pb).ravel()
    size = n_rounds * n

    def scatter(pair_values: np.ndarray) -> np.ndarray:
        """D^T per round: pair sums (R, P) -> (R, n_models), D the +1/-1 model incidence matrix."""
        v = pair_values.ravel()
        return (np.bincount(ia, v, size) - np.bincount(ib, v, size)).reshape(n_rounds, n)

    def scatter_abs(pair_values: np.ndarray) -> np.ndarray:
        """|D|^T per round: pair sums (R, P) -> (R, n_models), each pair's value to both its models."""
        v = pair_values.ravel()
        return (np.bincount(ia, v, size) + np.bincount(ib, v, size)).reshape(n_rounds, n)

    p = params.shape[1]
    grad = np.empty((n_rounds, p))
    grad[:, :n] = scatter(reduce(g_s)) + total[:, None] + RIDGE * beta
    # D^T diag(h) D + 1 + RIDGE I per round, with few passes over the (R, p, p) block: a pair adds h at
    # (a, a) and (b, b) and -h at (a, b) and (b, a)
    pair_h = reduce(h_ss)
    off = np.bincount(
        ((np.arange(n_rounds) * p * p)[:, None] + pa * p + pb).ravel(), pair_h.ravel(), n_rounds * p * p
    ).reshape(n_rounds, p, p)
    hess = off + off.transpose(0, 2, 1)
    np.subtract(1.0, hess[:, :n, :n], out=hess[:, :n, :n])
    hess[:, np.arange(n), np.arange(n)] += scatter_abs(pair_h) + RIDGE
    if k:
        grad[:, n : n + k] = g_s @ features + RIDGE * gamma
        outer = (features[:, :, None] * features[:, None, :]).reshape(n_rows, k * k)
        hess[:, n : n + k, n : n + k] = (h_ss @ outer).reshape(n_rounds, k, k) + RIDGE * np.eye(k)
        pair_hz = reduce(h_ss[:, :, None] * features)  # (R, P, k)
        cross = np.stack([scatter(np.ascontiguousarray(pair_hz[:, :, j])) for j in range(k)], axis=2)
        hess[:, :n, n : n + k] = cross
        hess[:, n : n + k, :n] = cross.transpose(0, 2, 1)
    if fit_eta:
        h_se = -lxx + lyy
        em, ep = -np.expm1(-2 * eta), np.expm1(2 * eta)  # 1 - e^{-2 eta}, e^{2 eta} - 1
        with np.errstate(divide="ignore", invalid="ignore"):
            tie_g = np.where(tie_total > 0, 2 * tie_total / em, 0.0)
            tie_h = np.where(tie_total > 0, 4 * tie_total / (em * ep), 0.0)
        grad[:, -1] = (-lx - ly).sum(axis=1) - tie_g
        hess[:, -1, -1] = h_ss.sum(axis=1) + tie_h
        hess[:, :n, -1] = hess[:, -1, :n] = scatter(reduce(h_se))
        if k:
            hess[:, n : n + k, -1] = hess[:, -1, n : n + k] = h_se @ features
        # a round without ties has its MLE on the boundary theta = 1: eta stays fixed at 0 there
        no_ties = tie_total <= 0
        grad[no_ties, -1] = 0.0
        hess[no_ties, -1, :] = hess[no_ties, :, -1] = 0.0
        hess[no_ties, -1, -1] = 1.0
    return loss, grad, hess


def _newton(
    params: np.ndarray,
    args: tuple,
    fit_eta: bool,
    n_models: int,
    tol: float,
    maxiter: np.ndarray,
) -> np.ndarray:
    """Damped Newton on :func:`pairwise_loss` for every round in ``params`` (R, p) at once.

    Each iteration solves the stacked (R, p, p) systems. Steps larger than ``TRUST_STEP`` are
    line-searched (halved for the rounds whose loss would rise or whose eta would leave (0, inf));
    smaller ones, in Newton's quadratic regime on this convex loss, are taken as they are, which
    saves a loss evaluation per iteration near the optimum. A round stops when its largest Newton
    step is below ``tol`` (natural log-odds units), or when quadratic convergence predicts the
    next one would be (step_k**3 / step_{k-1}**2 < tol), which saves the confirming iteration, or
    after its own ``maxiter`` (R,) iterations.
    """
    a, b, score_a, score_b, tie_total, features, segments = args
    params = params.copy()
    active = np.arange(len(params))
    previous = np.full(len(params), np.inf)  # last step size per round

    def rows(idx: np.ndarray) -> tuple[np.ndarray, ...]:
        if len(idx) == len(params):  # every round: no copies
            return score_a, score_b, tie_total
        return score_a[idx], score_b[idx], tie_total[idx]

    for done in range(1, int(maxiter.max(initial=0)) + 1):
        if not len(active):
            break
        loss, grad, hess = pairwise_loss(
            params[active], a, b, *rows(active), features, fit_eta, n_models, segments=segments
        )
        step = -np.linalg.solve(hess, grad[..., None])[..., 0]
        size = np.abs(step).max(axis=1)
        scale = np.ones(len(active))
        pending = np.flatnonzero(size >= TRUST_STEP)
        if fit_eta:  # a small step may still cross eta = 0 when theta is close to 1
            cross = (params[active, -1] + step[:, -1] <= 0) & (tie_total[active] > 0)
            pending = np.union1d(pending, np.flatnonzero(cross))
        sure = np.setdiff1d(np.arange(len(active)), pending)
        params[active[sure]] += step[sure]
        for _ in range(60):
            if not len(pending):
                break
            trial = params[active[pending]] + scale[pending, None] * step[pending]
            new = pairwise_loss(
                trial, a, b, *rows(active[pending]), features, fit_eta, n_models, False, segments
            )[0]
            bad = ~(new <= loss[pending] + 1e-12 * np.maximum(1.0, np.abs(loss[pending])))
            if fit_eta:
                bad |= (trial[:, -1] <= 0) & (tie_total[active[pending]] > 0)
            params[active[pending[~bad]]] = trial[~bad]
            pending = pending[bad]
            scale[pending] *= 0.5
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            last = previous[active]
            predicted = np.where((size < last) & np.isfinite(last), size**3 / last**2, np.inf)
        previous[active] = size
        active = active[(size >= tol) & ~(predicted < tol) & (maxiter[active] > done)]
    return params


def fit_pairwise(
    a: np.ndarray,
    b: np.ndarray,
    n_models: int,
    counts: np.ndarray,
    *,
    features: np.ndarray | None = None,
    method: str = "bt",
    ties: str = "half",
    start: np.ndarray | None = None,
    tol: float = 1e-10,
    maxiter: int | np.ndarray = 200,
) -> np.ndarray:
    """Maximum-likelihood parameters for many rounds of outcome counts at once.

    ``counts`` (R, U, 3) or (U, 3): wins_a, wins_b, ties per row u with model indices ``a``/``b``
    (U,) and optional covariates ``features`` (U, k). Returns params (R, n_models + k [+ 1]) as in
    :func:`pairwise_loss`: natural log-strengths summing to zero, covariate coefficients (log-odds
    per unit of feature), and for ``method='rao-kupper'`` ``eta = ln(theta)`` last. ``start``
    (p,) or (R, p) warm-starts every round (e.g. from the point estimate). Rounds are solved in
    chunks so memory stays ~``CHUNK_ELEMENTS`` floats per array. ``maxiter``: Newton iterations at
    most, for every round or per round (R,).
    """
    counts = np.asarray(counts, dtype=np.float64)
    squeeze = counts.ndim == 2
    counts = counts[None] if squeeze else counts
    a, b = np.asarray(a), np.asarray(b)
    order = np.lexsort((b, a))  # rows of one pair together, for np.add.reduceat
    if np.any(order != np.arange(len(order))):
        a, b, counts = a[order], b[order], counts[:, order]
        features = None if features is None else features[order]
    segments = pair_segments(a, b)
    k = 0 if features is None else features.shape[1]
    fit_eta = method == "rao-kupper"
    score_a, score_b, tie_total = outcome_weights(counts, method, ties)
    p = n_models + k + int(fit_eta)
    if start is None:
        start = np.zeros(p)
        if fit_eta:
            start[-1] = 0.5
    params = np.broadcast_to(start, (len(counts), p)).astype(np.float64)
    if len(a) == 0:  # no battle at all: nothing moves the (ridge-pinned) parameters off zero
        out = np.zeros_like(params)
        return out[0] if squeeze else out
    if fit_eta:
        params[:, -1] = np.where(tie_total > 0, np.maximum(params[:, -1], 1e-3), 0.0)
    maxiter = np.broadcast_to(np.asarray(maxiter, dtype=np.int64), len(counts))
    chunk = max(1, CHUNK_ELEMENTS // max(len(a), 1))
    out = np.empty_like(params)
    with _BLAS.limit(limits=1, user_api="blas"):
        for lo in range(0, len(counts), chunk):
            sl = slice(lo, lo + chunk)
            args = (a, b, score_a[sl], score_b[sl], tie_total[sl], features, segments)
            out[sl] = _newton(params[sl], args, fit_eta, n_models, tol, maxiter[sl])
    return out[0] if squeeze else out


def to_ratings(
    beta: np.ndarray,
    models: list[str],
    *,
    scale: float = 400.0,
    base: float = 10.0,
    init_rating: float = 1000.0,
    anchor: str | None = None,
) -> np.ndarray:
    """Natural log-strengths (..., n_models) -> Elo-like points, same shape.

    ``scale * beta / ln(base)``, shifted so the models average ``init_rating`` (per row), or so
    that ``anchor`` sits at ``init_rating``.
    """
    ratings = scale * np.asarray(beta, dtype=np.float64) / math.log(base)
    ref = ratings.mean(axis=-1, keepdims=True) if anchor is None else ratings[..., [models.index(anchor)]]
    return ratings + init_rating - ref


# --------------------------------------------------------------------------------------------------
# Public fits
# --------------------------------------------------------------------------------------------------


def bradley_terry(
    models: list[str],
    cells: Cells,
    *,
    counts: np.ndarray | None = None,
    ties: str = "half",
    scale: float = 400.0,
    base: float = 10.0,
    init_rating: float = 1000.0,
    anchor: str | None = None,
    tol: float = 1e-10,
) -> np.ndarray:
    """Maximum-likelihood Bradley–Terry ratings, shape (n_models,), Elo-like points.

    ``ties='half'`` credits each side with half a win (FastChat/evalica default); ``'drop'`` ignores
    ties. ``counts`` (n_cells, 3) overrides the cells' own counts (used by the bootstrap). Ratings
    average ``init_rating`` unless ``anchor`` names a model, which then sits at ``init_rating``.
    A model that never loses (or never wins) has no finite MLE; it ends up far out but finite.
    """
    params = fit_pairwise(
        cells.a, cells.b, len(models), cells.counts if counts is None else counts, ties=ties, tol=tol
    )
    return to_ratings(params, models, scale=scale, base=base, init_rating=init_rating, anchor=anchor)


def rao_kupper(
    models: list[str],
    cells: Cells,
    *,
    counts: np.ndarray | None = None,
    scale: float = 400.0,
    base: float = 10.0,
    init_rating: float = 1000.0,
    anchor: str | None = None,
    tol: float = 1e-10,
) -> tuple[np.ndarray, float]:
    """Maximum-likelihood Rao–Kupper fit: ratings (n_models,) in Elo-like points and ``theta >= 1``.

    Rao & Kupper (1967): P(i beats j) = pi_i / (pi_i + theta pi_j), P(tie) = (theta**2 - 1) pi_i pi_j
    / ((pi_i + theta pi_j)(pi_j + theta pi_i)), with ``beta = ln(pi)`` mapped to points as in
    :func:`bradley_terry`. Ties are modelled rather than split; both tie kinds count as a tie.
    Without any tie the MLE has ``theta = 1`` and equals Bradley–Terry with ties dropped.
    """
    counts = cells.counts if counts is None else counts
    require_decisive(counts)
    params = fit_pairwise(cells.a, cells.b, len(models), counts, method="rao-kupper", tol=tol)
    ratings = to_ratings(params[:-1], models, scale=scale, base=base, init_rating=init_rating, anchor=anchor)
    return ratings, float(math.exp(params[-1]))


def require_decisive(counts: np.ndarray) -> None:
    """Rao–Kupper needs a decisive vote: with ties only, its likelihood rises without bound as
    theta grows, and the strengths are not identified. ``counts``: (n_cells, 3) outcome counts."""
    if counts.size and not counts[..., :2].any():
        raise NotApplicable(
            f"Rao–Kupper needs at least one decisive vote: all {int(counts.sum()):,} votes are ties, so "
            "neither the tie parameter nor any strength is identified (Bradley–Terry with ties as half "
            "a win gives every model the same rating)"
        )


def resample_counts(cells: Cells, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """Multinomial bootstrap of the cell outcome counts, shape (rounds, n_cells, 3).

    Each round redraws all ``N`` battles over the (cell, outcome) categories with probabilities
    equal to their observed frequencies, so every round keeps the total ``N`` fixed. Two exact
    samplers of that law, picked by cost: numpy's multinomial (one binomial per category, for
    ``N`` much larger than the number of categories K) or drawing ``N`` battle indices with
    replacement and counting them (for ``N < 10 K``, typical of small tree nodes; ~10x faster there).
    """
    flat = cells.counts.ravel()
    n_total = int(flat.sum())
    n_cat = len(flat)
    if n_total < 10 * n_cat:
        category = np.repeat(np.arange(n_cat), flat.astype(np.int64))
        draws = np.empty((rounds, n_cat), dtype=np.int64)
        step = max(1, CHUNK_ELEMENTS // max(n_total, 1))  # bounds the (rounds, N) index block
        for lo in range(0, rounds, step):
            size = min(step, rounds - lo)
            picks = category[rng.integers(0, n_total, (size, n_total))] + (np.arange(size) * n_cat)[:, None]
            draws[lo : lo + size] = np.bincount(picks.ravel(), minlength=size * n_cat).reshape(size, n_cat)
    else:
        draws = rng.multinomial(n_total, flat / n_total, size=rounds)
    return draws.reshape(rounds, len(cells.a), 3).astype(np.float64)


class BootstrapFit(NamedTuple):
    """Point fit and bootstrap draws on the natural scale (see :func:`bootstrap_fit`)."""

    point: np.ndarray  # (p,) params of the point fit: beta (n_models,), then eta for Rao–Kupper
    draws: np.ndarray  # (rounds, p) params per bootstrap round


def bootstrap_fit(
    models: list[str],
    cells: Cells,
    rounds: int = 100,
    seed: int = 0,
    *,
    method: str = "bt",
    ties: str = "half",
    tol: float = 1e-10,
    maxiter: int = 200,
    weights: np.ndarray | None = None,
) -> BootstrapFit:
    """Point MLE plus ``rounds`` multinomial-bootstrap refits, natural-scale parameters.

    The fast path for many small fits (e.g. every tree node): one vectorised multinomial draw
    (:func:`resample_counts`), then all rounds solved together by batched Newton, each warm-started
    at the point estimate (typically 3–4 iterations to :data:`ROUND_TOL`). A round whose MLE is infinite
    (:func:`separated_rounds`) stops after :data:`SEPARATED_MAXITER` iterations, its runaway models
    far out but finite. ``weights`` (n_cells,): a weight per battle of each cell (e.g. LMArena's
    inverse-frequency weights, :func:`pipelines.sandwich.inverse_frequency_weights`), applied to
    the observed and to every resampled count, as arena-rank does; None weighs every battle 1.
    """
    n = len(models)
    w = np.ones(len(cells.a)) if weights is None else np.asarray(weights, dtype=np.float64)
    point = fit_pairwise(cells.a, cells.b, n, cells.counts * w[:, None], method=method, ties=ties, tol=tol)
    draws = resample_counts(cells, rounds, np.random.default_rng(seed))
    cap = np.where(separated_rounds(cells.a, cells.b, n, draws, method, ties), SEPARATED_MAXITER, maxiter)
    tol = max(tol, ROUND_TOL)
    kw = {"method": method, "ties": ties, "start": point, "tol": tol, "maxiter": cap}
    boot = fit_pairwise(cells.a, cells.b, n, draws * w[None, :, None], **kw)
    return BootstrapFit(point, boot)


def separated_rounds(
    a: np.ndarray, b: np.ndarray, n_models: int, counts: np.ndarray, method: str = "bt", ties: str = "half"
) -> np.ndarray:
    """Rounds (R,) bool of ``counts`` (R, U, 3) whose maximum-likelihood fit does not exist.

    That is when the models that play in the round are not strongly connected by wins (a credited
    tie links both ways): some group then never loses to the others and the likelihood keeps
    rising as their rating gap grows. One strongly-connected-components pass over all rounds.
    """
    score_a, score_b, _ = outcome_weights(counts, method, ties)
    n_rounds = len(counts)
    if not n_rounds * n_models:
        return np.zeros(n_rounds, dtype=bool)
    off = (np.arange(n_rounds) * n_models)[:, None]
    ia, ib = np.broadcast_to(off + a, score_a.shape), np.broadcast_to(off + b, score_a.shape)
    win_a, win_b = score_a > 0, score_b > 0  # a has beaten b (counts as an edge b -> a) and vice versa
    size = n_rounds * n_models
    graph = sparse.csr_matrix(
        (np.ones(win_a.sum() + win_b.sum()), (np.r_[ib[win_a], ia[win_b]], np.r_[ia[win_a], ib[win_b]])),
        shape=(size, size),
    )
    _, label = connected_components(graph, directed=True, connection="strong")
    played = np.zeros(size, dtype=bool)
    played[ia[win_a | win_b]] = played[ib[win_a | win_b]] = True
    label = label.reshape(n_rounds, n_models).astype(np.float64)
    present = played.reshape(n_rounds, n_models)
    high = np.where(present, label, -np.inf).max(axis=1)
    low = np.where(present, label, np.inf).min(axis=1)
    return high > low


def bootstrap(
    models: list[str],
    cells: Cells,
    rounds: int = 100,
    seed: int = 0,
    *,
    method: str = "bt",
    ties: str = "half",
    scale: float = 400.0,
    base: float = 10.0,
    init_rating: float = 1000.0,
    anchor: str | None = None,
    tol: float = 1e-10,
) -> np.ndarray:
    """Bootstrap ratings, shape (rounds, n_models), Elo-like points.

    Resampling is one vectorised multinomial draw over the cells (battle total fixed); all rounds
    are then fitted together (:func:`bootstrap_fit`). ``method`` is 'bt' or 'rao-kupper'; the
    other arguments are those of :func:`bradley_terry`. Each round is centred (or anchored) on its
    own, like the point ratings.
    """
    fit = bootstrap_fit(models, cells, rounds, seed, method=method, ties=ties, tol=tol)
    beta = fit.draws[:, : len(models)]
    return to_ratings(beta, models, scale=scale, base=base, init_rating=init_rating, anchor=anchor)


def rank_upper_bound(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Rank (upper bound), shape (n_models,): 1 + number of models whose lower bound exceeds this upper."""
    return 1 + (lower[None, :] > upper[:, None]).sum(axis=1)


def battles_played(n_models: int, a: np.ndarray, b: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Battles each model took part in (n_models,) int, from rows ``a``/``b`` (U,) and ``counts`` (U, 3)."""
    n_row = counts.sum(axis=1)
    return (np.bincount(a, n_row, n_models) + np.bincount(b, n_row, n_models)).astype(np.int64)


def leaderboard_table(
    models: list[str],
    ratings: np.ndarray,
    boot: np.ndarray,
    played: np.ndarray,
    level: float = 0.95,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Leaderboard frame from point ratings (n,), bootstrap ratings (rounds, n) and battles played (n,).

    Columns model, rating, lower, upper (``level`` percentile interval of ``boot``, or ``bounds``
    (lower, upper) each (n,) when given, e.g. sandwich intervals), rank_ub, battles; best first.
    """
    tail = 100 * (1 - level) / 2
    lower, upper = np.percentile(boot, [tail, 100 - tail], axis=0) if bounds is None else bounds
    table = pd.DataFrame(
        {
            "model": models,
            "rating": ratings,
            "lower": lower,
            "upper": upper,
            "rank_ub": rank_upper_bound(lower, upper),
            "battles": played,
        }
    )
    return table.sort_values("rating", ascending=False, ignore_index=True)


def leaderboard(
    battles: pd.DataFrame,
    rounds: int = 100,
    seed: int = 0,
    level: float = 0.95,
    *,
    method: str = "bt",
    ties: str = "half",
    scale: float = 400.0,
    base: float = 10.0,
    init_rating: float = 1000.0,
    anchor: str | None = None,
    tol: float = 1e-10,
    ci: str = "bootstrap",
    reweight: bool = False,
) -> pd.DataFrame:
    """Bradley–Terry (or Rao–Kupper) leaderboard with ``level`` intervals.

    Columns: model, rating (point MLE, Elo-like points), lower, upper, rank_ub (see
    :func:`rank_upper_bound`), battles (battles the model played). Sorted by rating, best first.
    ``ci``: 'bootstrap' (percentile interval over ``rounds`` multinomial rounds), 'sandwich'
    (LMArena's CLT interval, :mod:`pipelines.sandwich`) or 'auto' (sandwich where it is valid,
    :func:`pipelines.sandwich.choose_ci`); ``table.attrs['ci']`` says which was used and
    ``attrs['ci_reason']`` why bootstrap was used under 'auto'. ``reweight``: LMArena's
    inverse-frequency weights per pair. ``method='rao-kupper'`` models ties (``ties`` is then
    unused) and stores the tie parameter in ``table.attrs['theta']`` with its interval in
    ``table.attrs['theta_interval']``.
    """
    kw = {"method": method, "ties": ties, "scale": scale, "base": base, "init_rating": init_rating}
    kw |= {"anchor": anchor, "tol": tol, "ci": ci, "reweight": reweight}
    return leaderboard_rounds(battles, rounds, seed, level, **kw)[0]


def leaderboard_rounds(
    battles: pd.DataFrame,
    rounds: int = 100,
    seed: int = 0,
    level: float = 0.95,
    *,
    method: str = "bt",
    ties: str = "half",
    scale: float = 400.0,
    base: float = 10.0,
    init_rating: float = 1000.0,
    anchor: str | None = None,
    tol: float = 1e-10,
    ci: str = "bootstrap",
    reweight: bool = False,
) -> tuple[pd.DataFrame, list[str], np.ndarray]:
    """:func:`leaderboard` and what it was computed from: the table, the models (in
    :func:`aggregate` order) and their rating rounds (rounds, n_models) in points, for statistics
    over the same rounds (e.g. each model's rank range): bootstrap rounds, or for a sandwich fit
    ``rounds`` draws from the fit's asymptotic normal law."""
    from . import sandwich

    models, cells = aggregate(battles)
    if method == "rao-kupper":
        require_decisive(cells.counts)
    n = len(models)
    weights = sandwich.inverse_frequency_weights(cells.a, cells.b, cells.counts) if reweight else None
    used, reason = sandwich.choose_ci(ci, method, cells, n, ties)
    kw = {"scale": scale, "base": base, "init_rating": init_rating, "anchor": anchor}
    played = battles_played(n, cells.a, cells.b, cells.counts)
    if used == "sandwich":
        w = np.ones(len(cells.a)) if weights is None else weights
        point = fit_pairwise(cells.a, cells.b, n, cells.counts * w[:, None], ties=ties, tol=tol)
        cov = sandwich.pairwise_covariance(
            cells.a, cells.b, n, cells.counts, point, weights=weights, ties=ties
        )
        rated, rating_cov = sandwich.rating_law(point, cov, models, **kw)
        boot = sandwich.normal_draws(rated, rating_cov, rounds, seed)
        bounds = sandwich.normal_intervals(rated, rating_cov, level)
        table = leaderboard_table(models, rated, boot, played, level, bounds=bounds)
    else:
        fit = bootstrap_fit(models, cells, rounds, seed, method=method, ties=ties, tol=tol, weights=weights)
        boot = to_ratings(fit.draws[:, :n], models, **kw)
        table = leaderboard_table(models, to_ratings(fit.point[:n], models, **kw), boot, played, level)
        if method == "rao-kupper":
            tail = 100 * (1 - level) / 2
            theta = np.exp(fit.draws[:, -1])
            table.attrs["theta"] = float(math.exp(fit.point[-1]))
            table.attrs["theta_interval"] = tuple(float(v) for v in np.percentile(theta, [tail, 100 - tail]))
    table.attrs.update(ci=used, ci_reason=reason, reweight=bool(reweight))
    return table, models, boot


def online_elo(
    battles: pd.DataFrame, k: float = 4, scale: float = 400, base: float = 10, init_rating: float = 1000
) -> pd.Series:
    """Sequential (online) Elo over the battles in row order, as FastChat's ``compute_elo``.

    Each battle moves model_a by ``k * (s_a - e_a)`` and model_b by ``k * (1 - s_a - e_b)`` with
    ``e_a = 1 / (1 + base ** ((r_b - r_a) / scale))``, ``s_a`` = 1 / 0 / 0.5 for a win / loss / tie
    (winner values as in :func:`aggregate`, plus FastChat's 'tie (bothbad)'). Order-dependent and
    without intervals: a secondary view next to the Bradley–Terry leaderboard. Returns ratings
    (points) indexed by model, best first.
    """
    score = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie_bothbad": 0.5, "tie (bothbad)": 0.5}
    s_a = battles["winner"].map(score)
    if s_a.isna().any():
        raise ValueError(
            f"unknown winner value(s): {sorted(battles['winner'][s_a.isna()].astype(str).unique())}"
        )
    codes, models = pd.factorize(pd.concat([battles["model_a"], battles["model_b"]], ignore_index=True))
    rating = [float(init_rating)] * len(models)
    n = len(battles)
    for ia, ib, sa in zip(codes[:n].tolist(), codes[n:].tolist(), s_a.tolist(), strict=True):
        ra, rb = rating[ia], rating[ib]
        ea = 1 / (1 + base ** ((rb - ra) / scale))
        eb = 1 / (1 + base ** ((ra - rb) / scale))
        rating[ia] += k * (sa - ea)
        rating[ib] += k * (1 - sa - eb)
    return pd.Series(rating, index=pd.Index(models, name="model"), name="elo").sort_values(ascending=False)


def pair_matrices(votes: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Head-to-head matrices over the models of ``votes`` (rows and columns in the same order):
    ``win_rate[i, j]`` = share of i's battles against j that i won, ties counted as half (NaN where
    they never met), and ``battles[i, j]`` = their battles (either side)."""
    models, cells = aggregate(votes)
    n = len(models)
    played = np.zeros((n, n))
    won = np.zeros((n, n))
    total = cells.wins_a + cells.wins_b + cells.ties
    np.add.at(played, (cells.a, cells.b), total)
    np.add.at(played, (cells.b, cells.a), total)
    np.add.at(won, (cells.a, cells.b), cells.wins_a + 0.5 * cells.ties)
    np.add.at(won, (cells.b, cells.a), cells.wins_b + 0.5 * cells.ties)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(played > 0, won / played, np.nan)
    return (
        pd.DataFrame(rate, index=models, columns=models),
        pd.DataFrame(played.astype(np.int64), index=models, columns=models),
    )
