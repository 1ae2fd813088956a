"""The shared statistics (pipelines.stats) against statsmodels and scipy on known values."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from pipelines import stats

K = np.array([0, 1, 7, 50, 99, 100, 3])
N = np.array([10, 10, 20, 100, 100, 100, 3])


@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_wilson_equals_statsmodels(level):
    lo, hi = stats.wilson_interval(K, N, level)
    want_lo, want_hi = proportion_confint(K, N, alpha=1 - level, method="wilson")
    np.testing.assert_allclose(lo, want_lo, atol=1e-12)
    np.testing.assert_allclose(hi, want_hi, atol=1e-12)


@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_clopper_pearson_equals_statsmodels_beta(level):
    lo, hi = stats.clopper_pearson_interval(K, N, level)
    want_lo, want_hi = proportion_confint(K, N, alpha=1 - level, method="beta")
    np.testing.assert_allclose(lo, np.nan_to_num(want_lo), atol=1e-12)
    np.testing.assert_allclose(hi, np.nan_to_num(want_hi, nan=1.0), atol=1e-12)


def test_no_items_no_interval():
    for fn in (stats.wilson_interval, stats.clopper_pearson_interval):
        lo, hi = fn(np.array([0.0]), np.array([0.0]))
        assert np.isnan(lo).all() and np.isnan(hi).all()


def test_bh_equals_statsmodels_and_keeps_nan():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 0.01, size=10)])
    np.testing.assert_allclose(stats.bh_adjust(p), multipletests(p, method="fdr_bh")[1], atol=1e-12)
    with_nan = np.array([0.01, np.nan, 0.04, 0.03])
    got = stats.bh_adjust(with_nan)
    assert np.isnan(got[1])
    np.testing.assert_allclose(got[[0, 2, 3]], multipletests([0.01, 0.04, 0.03], method="fdr_bh")[1])


def test_percentile_interval_equals_numpy_and_skips_nan():
    rng = np.random.default_rng(1)
    draws = rng.normal(size=(200, 3))
    lo, hi = stats.percentile_interval(draws, 0.9)
    np.testing.assert_allclose(lo, np.percentile(draws, 5, axis=0))
    np.testing.assert_allclose(hi, np.percentile(draws, 95, axis=0))
    one = stats.percentile_interval(draws[:, 0], 0.9)
    assert isinstance(one[0], float) and one == pytest.approx((lo[0], hi[0]))
    draws[:50, 1] = np.nan
    draws[:, 2] = np.nan
    lo, hi = stats.percentile_interval(draws, 0.9)
    assert lo[1] == pytest.approx(np.percentile(draws[50:, 1], 5)) and np.isnan(lo[2]) and np.isnan(hi[2])


def test_sandwich_covariance_equals_statsmodels_hc0_for_least_squares():
    """OLS: H = X'X, G = sum e_i^2 x_i x_i'; H^-1 G H^-1 is White's HC0."""
    rng = np.random.default_rng(2)
    x = sm.add_constant(rng.normal(size=(300, 2)))
    y = x @ [1.0, 2.0, -1.0] + rng.normal(size=300) * (1 + np.abs(x[:, 1]))  # heteroscedastic
    fit = sm.OLS(y, x).fit(cov_type="HC0")
    e = y - x @ fit.params
    cov = stats.sandwich_covariance(x.T @ x, (x * e[:, None] ** 2).T @ x)
    np.testing.assert_allclose(cov, fit.cov_params(), rtol=1e-10)
    lo, hi = stats.normal_interval(fit.params, np.sqrt(np.diag(cov)))
    np.testing.assert_allclose(np.c_[lo, hi], fit.conf_int(), rtol=1e-8)
