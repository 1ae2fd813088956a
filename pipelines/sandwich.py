"""Sandwich (CLT) intervals for pairwise fits and LMArena's inverse-frequency reweighting.

LMArena's ranking code (the ``arena-rank`` package, ``BradleyTerry`` / ``ContextualBradleyTerry``
with ``ci_method='sandwich'``) gives each rating the robust asymptotic covariance of the
(weighted) maximum-likelihood fit::

    Cov(theta) = H^-1 G H^-1
    H = sum_u w_u n_u p_u (1 - p_u) x_u x_u'                         (Fisher information)
    G = sum_u w_u^2 [wins_a (1 - p_u)^2 + wins_b p_u^2 + ties (1/2 - p_u)^2] x_u x_u'

over rows u (one per (model_a, model_b[, style features]) combination, as the solver's cells),
with x_u = e_a - e_b (+ the row's covariates), p_u the fitted P(model_a wins), n_u the row's
battles and w_u its weight. Each battle's score is its own term, so G is the Huber–White
"meat": the interval stays honest when the weights are not inverse variances. Ratings are only
identified up to a common shift; the shift direction is removed exactly (H and G both vanish
on it), where arena-rank adds a small ridge (1e-5 per battle) to the diagonal of H instead:
the two agree to ~1e-5 relative.

Reweighting (arena-rank ``reweighted=True``): every battle of the unordered pair {a, b} weighs
``1 / max(n_ab, min_pair_count)``, so heavily sampled pairs do not dominate the fit.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from .errors import ArenatreeError
from .ratings import TIE_WEIGHTS, Cells, separated_rounds, to_ratings
from .stats import normal_interval, sandwich_covariance

MIN_PAIR_COUNT = 50  # arena-rank's floor on a pair's battle count in the inverse-frequency weight
CI_METHODS = ("auto", "sandwich", "bootstrap")


def choose_ci(
    ci: str, method: str, cells: Cells, n_models: int, ties: str = "half"
) -> tuple[str, str | None]:
    """The interval method to use and, when 'auto' falls back to the bootstrap, why (a clause).

    'auto' takes the sandwich where it is valid: a Bradley–Terry fit (Rao–Kupper's tie parameter
    has no sandwich here) whose maximum-likelihood estimate exists, i.e. the models are strongly
    connected by wins (:func:`pipelines.ratings.separated_rounds`). Without that some rating is
    infinite and its curvature 0, so a CLT interval would be meaningless; the bootstrap's
    separated rounds show the missing information instead. 'sandwich' asked for explicitly on such
    data is an error, not a silent switch."""
    if ci not in CI_METHODS:
        raise ArenatreeError(f"--ci must be one of {', '.join(CI_METHODS)}, got {ci!r}")
    if ci == "bootstrap":
        return "bootstrap", None
    why = None
    if method != "bt":
        why = "the sandwich covers Bradley–Terry only, not Rao–Kupper's tie parameter"
    elif len(cells.a) and separated_rounds(cells.a, cells.b, n_models, cells.counts[None], method, ties)[0]:
        why = (
            "the models fall into groups that never meet, so ratings across groups have no estimate"
            if _groups(cells, n_models) > 1
            else "some models never lose (or never win) against the rest, so their ratings have no "
            "finite estimate and no CLT interval"
        )
    if why is None:
        return "sandwich", None
    if ci == "sandwich":
        raise ArenatreeError(f"sandwich intervals do not apply here: {why}; use --ci bootstrap")
    return "bootstrap", why


def fallback_notes(attrs: dict) -> list[str]:
    """The sentence saying why a table's intervals are bootstrap under ``ci='auto'`` (its
    ``attrs['ci_reason']``, set by :func:`pipelines.ratings.leaderboard_rounds` and
    :func:`pipelines.style_control.style_control`), or nothing."""
    reason = attrs.get("ci_reason")
    return [f"Intervals are bootstrap, not sandwich: {reason}."] if reason else []


def _groups(cells: Cells, n_models: int) -> int:
    """Number of groups of models that play each other, directly or through others."""
    played = cells.counts.sum(axis=1) > 0
    graph = sparse.csr_matrix(
        (np.ones(played.sum()), (cells.a[played], cells.b[played])), (n_models, n_models)
    )
    _, label = connected_components(graph, directed=False)
    present = np.bincount(np.r_[cells.a[played], cells.b[played]], minlength=n_models) > 0
    return len(np.unique(label[present]))


def inverse_frequency_weights(
    a: np.ndarray, b: np.ndarray, counts: np.ndarray, min_pair_count: int = MIN_PAIR_COUNT
) -> np.ndarray:
    """Per-row weight (U,) ``1 / max(n_ab, min_pair_count)``: ``n_ab`` the battles of the unordered
    pair of row u's models, both sides together (``counts`` (U, 3) outcome counts, ``a``/``b``
    (U,) model indices)."""
    a, b = np.asarray(a), np.asarray(b)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pair, inverse = np.unique(np.stack([lo, hi], axis=1), axis=0, return_inverse=True)
    totals = np.bincount(inverse.ravel(), np.asarray(counts).sum(axis=1), len(pair))
    return 1.0 / np.maximum(totals[inverse.ravel()], min_pair_count)


def design(a: np.ndarray, b: np.ndarray, n_models: int, features: np.ndarray | None = None) -> np.ndarray:
    """Row design matrix (U, n_models + k): +1 at model_a, -1 at model_b, then the covariates."""
    x = np.zeros((len(a), n_models))
    rows = np.arange(len(a))
    x[rows, a] += 1.0
    x[rows, b] -= 1.0
    return x if features is None else np.hstack([x, np.asarray(features, dtype=np.float64)])


def pairwise_covariance(
    a: np.ndarray,
    b: np.ndarray,
    n_models: int,
    counts: np.ndarray,
    params: np.ndarray,
    *,
    features: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    ties: str = "half",
) -> np.ndarray:
    """Sandwich covariance (p, p) of the Bradley–Terry MLE ``params`` (p = n_models + k: natural
    log-strengths summing to zero, then the ``features`` (U, k) coefficients), as in the module
    docstring. ``counts`` (U, 3): wins_a, wins_b, ties per row; ``weights`` (U,) per-row battle
    weights (None: 1); ``ties`` 'half' (a tie is half a win each, outcome 1/2) or 'drop'. Natural
    units (log-odds squared); the rating block has the shift direction removed (rows sum to 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    w = np.ones(len(a)) if weights is None else np.asarray(weights, dtype=np.float64)
    x = design(a, b, n_models, features)
    p = 1.0 / (1.0 + np.exp(-(x @ np.asarray(params, dtype=np.float64))))
    share = TIE_WEIGHTS[ties]
    wins_a, wins_b, n_ties = counts[:, 0], counts[:, 1], counts[:, 2]
    # a credited tie scores share * (1 - p) - share * p = 2 share (1/2 - p) and has curvature 2 share
    info = w * (wins_a + wins_b + 2 * share * n_ties) * p * (1 - p)
    meat = w**2 * (wins_a * (1 - p) ** 2 + wins_b * p**2 + n_ties * (2 * share) ** 2 * (0.5 - p) ** 2)
    hess = x.T @ (info[:, None] * x)
    grad_cov = x.T @ (meat[:, None] * x)
    # H u = G u = 0 for u = (1, ..., 1, 0, ...)/sqrt(n): adding u u' makes H invertible and the
    # sandwich then carries no component along u (the sum-to-zero gauge), exactly.
    u = np.zeros(len(hess))
    u[:n_models] = 1.0 / math.sqrt(n_models)
    scale = max(float(np.trace(hess)) / len(hess), 1e-300)
    return sandwich_covariance(hess + scale * np.outer(u, u), grad_cov)


def rating_covariance(cov: np.ndarray, n_models: int, anchor: int | None = None) -> np.ndarray:
    """Covariance (n, n) of the centred (or ``anchor``-pinned) log-strengths from ``cov``'s rating
    block: ratings minus their mean, or minus model ``anchor``'s, as :func:`pipelines.ratings.to_ratings`."""
    t = np.eye(n_models)
    t -= 1.0 / n_models if anchor is None else np.eye(n_models)[[anchor]]
    return t @ cov[:n_models, :n_models] @ t.T


def rating_law(
    point: np.ndarray,
    cov: np.ndarray,
    models: list[str],
    *,
    scale: float = 400.0,
    base: float = 10.0,
    init_rating: float = 1000.0,
    anchor: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ratings (n,) and their sandwich covariance (n, n), in Elo-like points, from the fit's
    natural-scale ``point`` and ``cov`` (:func:`pairwise_covariance`; their first n entries are
    the models'), centred or ``anchor``-pinned as :func:`pipelines.ratings.to_ratings` does."""
    n = len(models)
    rated = to_ratings(point[:n], models, scale=scale, base=base, init_rating=init_rating, anchor=anchor)
    pinned = None if anchor is None else models.index(anchor)
    return rated, rating_covariance(cov, n, pinned) * (scale / math.log(base)) ** 2


def normal_intervals(
    point: np.ndarray, cov: np.ndarray, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """``point`` +- z * sqrt(diag(cov)), z the two-sided ``level`` normal quantile; shapes (n,)."""
    return normal_interval(point, np.sqrt(np.clip(np.diag(cov), 0.0, None)), level)


def normal_draws(point: np.ndarray, cov: np.ndarray, rounds: int, seed: int = 0) -> np.ndarray:
    """``rounds`` draws (rounds, n) from N(point, cov) (cov may be singular, e.g. centred ratings):
    the rank spread and joint rank sets of a sandwich fit come from these, as from bootstrap rounds."""
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(point, cov, size=rounds, method="eigh")
