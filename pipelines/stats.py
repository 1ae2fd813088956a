"""The statistics every part of arenatree shares, each written once.

Intervals for proportions (Wilson, exact Clopper–Pearson), percentile intervals of bootstrap
draws, Benjamini–Hochberg adjustment, normal (Wald) intervals, and the sandwich covariance
``H^+ G H^+`` of an M-estimator. Every function works on numpy arrays, elementwise where the
inputs have one shape; each is checked against scipy / statsmodels in ``tests/test_stats.py``.
Pairwise-comparison specifics (the Bradley–Terry score and Fisher information) live in
:mod:`pipelines.sandwich`; node and audit code imports from here, not from each other.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats as sps
from scipy.stats import beta, norm


def z_value(level: float = 0.95) -> float:
    """The two-sided ``level`` standard-normal quantile (1.96 at 0.95)."""
    return float(norm.ppf(0.5 + level / 2))


def wilson_interval(
    successes: np.ndarray, n: np.ndarray, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval on ``successes / n`` (arrays of any one shape; successes may be
    fractional). Returns (lower, upper), NaN where ``n == 0``."""
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    z2 = z_value(level) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denom = 1 + z2 / n
        centre = (p + z2 / (2 * n)) / denom
        half = np.sqrt(z2 * (p * (1 - p) / n + z2 / (4 * n * n))) / denom
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def clopper_pearson_interval(
    successes: np.ndarray, n: np.ndarray, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper–Pearson) binomial interval for integer ``successes`` out of ``n`` (arrays of
    one shape), from beta quantiles. Returns (lower, upper), NaN where ``n == 0``."""
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    alpha = 1 - level
    lower = np.where(n > 0, 0.0, np.nan)
    upper = np.where(n > 0, 1.0, np.nan)
    lo, hi = (k > 0) & (n > 0), (k < n) & (n > 0)
    lower[lo] = beta.ppf(alpha / 2, k[lo], n[lo] - k[lo] + 1)
    upper[hi] = beta.ppf(1 - alpha / 2, k[hi] + 1, n[hi] - k[hi])
    return lower, upper


def percentile_interval(draws: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided ``level`` percentile interval over axis 0 of bootstrap ``draws`` (rounds, ...)
    (numpy's linear interpolation), ignoring NaN draws; NaN where a column has none. Shapes:
    ``draws.shape[1:]`` each (floats for 1-d draws)."""
    draws = np.asarray(draws, dtype=np.float64)
    draws = np.where(np.isfinite(draws), draws, np.nan)
    tail = 100 * (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN, said in the docstring
        lo, hi = np.nanpercentile(draws, [tail, 100 - tail], axis=0)
    return (float(lo), float(hi)) if draws.ndim == 1 else (lo, hi)


def bh_adjust(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (scipy's ``false_discovery_control``); NaN stays NaN.

    A test is a discovery at FDR level q when its adjusted p-value is <= q.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = sps.false_discovery_control(np.clip(p[ok], 0.0, 1.0), method="bh")
    return out


def normal_interval(point: np.ndarray, se: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wald interval ``point +- z * se`` (arrays of one shape)."""
    z = z_value(level)
    point, se = np.asarray(point, dtype=np.float64), np.asarray(se, dtype=np.float64)
    return point - z * se, point + z * se


def sandwich_covariance(hessian: np.ndarray, score_cov: np.ndarray) -> np.ndarray:
    """Robust (Huber–White) covariance ``H^+ G H^+`` of an M-estimator, symmetrised: ``hessian``
    (p, p) the curvature of the summed loss at the estimate, ``score_cov`` (p, p) the sum of the
    per-observation score outer products. ``H^+`` is the pseudo-inverse, so a direction the
    data cannot identify (H and G both 0 on it) gets variance 0 rather than infinity; remove such
    directions before reading a variance off."""
    h_inv = np.linalg.pinv(np.asarray(hessian, dtype=np.float64), hermitian=True)
    cov = h_inv @ np.asarray(score_cov, dtype=np.float64) @ h_inv
    return (cov + cov.T) / 2
