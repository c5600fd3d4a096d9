"""Partial correlation against statsmodels OLS residuals and the closed-form formula."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from zooscope.rsa import explained_variance, partial_correlation


@pytest.fixture(scope="module")
def triple():
    rng = np.random.default_rng(0)
    n = 200
    b = rng.standard_normal(n)
    a = 0.6 * b + rng.standard_normal(n)
    y = 0.5 * a + 0.7 * b + rng.standard_normal(n) + 4.0
    return y, a, b


def test_matches_statsmodels_residuals(triple):
    y, a, b = triple
    design = sm.add_constant(b)
    ry = sm.OLS(y, design).fit().resid
    ra = sm.OLS(a, design).fit().resid
    ref = stats.pearsonr(ry, ra).statistic
    assert partial_correlation(y, a, b) == pytest.approx(ref, abs=1e-12)


def test_matches_closed_form_and_is_vectorised(triple):
    y, a, b = triple
    r = np.corrcoef([y, a, b])
    ref = (r[0, 1] - r[0, 2] * r[1, 2]) / np.sqrt((1 - r[0, 2] ** 2) * (1 - r[1, 2] ** 2))
    assert partial_correlation(y, a, b) == pytest.approx(ref, abs=1e-12)
    cols = partial_correlation(np.c_[y, a], np.c_[a, y], np.c_[b, b])
    assert cols.shape == (2,)
    np.testing.assert_allclose(cols, [ref, ref], atol=1e-12)


def test_planted_unique_variance():
    rng = np.random.default_rng(1)
    b = rng.standard_normal(5000)
    a_only_shared = b + 1e-3 * rng.standard_normal(5000)
    y = b + rng.standard_normal(5000)
    # a carries nothing beyond b: partial correlation ~ 0
    assert abs(partial_correlation(y, a_only_shared, b)) < 0.05
    # collinear a and b: undefined
    assert np.isnan(partial_correlation(y, b, 2 * b))


def test_validation(triple):
    y, a, b = triple
    with pytest.raises(ValueError, match="same shape"):
        partial_correlation(y, a[:-1], b)
    with pytest.raises(ValueError, match="at least 4"):
        partial_correlation(y[:3], a[:3], b[:3])


def test_explained_variance(caplog):
    caplog.set_level(logging.INFO, logger="zooscope.rsa.partial")
    assert explained_variance(0.4, 0.8) == pytest.approx(0.25)
    np.testing.assert_allclose(explained_variance([0.4, 0.2], [0.8, 0.4]), [0.25, 0.25])
    ev = explained_variance([0.4, 0.2], [0.0, np.nan])
    assert np.isnan(ev).all()
    assert "ceiling" in caplog.text
    caplog.clear()  # a missing (NaN) ceiling, e.g. of a non-RSA metric, is no news
    assert np.isnan(explained_variance(0.4, np.nan)) and not caplog.records
