"""Tests for zooscope.rsa.reliability (ncsnr, noise ceilings; GLMsingle/NSD convention)."""

import numpy as np
import pytest

from zooscope.rsa.reliability import ncsnr, noise_ceiling_percent


def _ncsnr_loop(data):
    """Unit-by-unit restatement of computenoiseceiling.m (cvnlab/GSN), NaN-aware."""
    out = np.empty(data.shape[0])
    for u, unit in enumerate(data):
        cond_vars = [np.var(c[~np.isnan(c)], ddof=1) for c in unit if (~np.isnan(c)).sum() >= 2]
        noise_var = np.mean(cond_vars)
        vals = unit[~np.isnan(unit)]
        total_var = np.var(vals, ddof=1)
        out[u] = np.sqrt(max(total_var - noise_var, 0.0)) / np.sqrt(noise_var)
    return out


def test_ncsnr_recovers_planted_snr():
    rng = np.random.default_rng(0)
    n_units, n_cond, n_trials = 6, 50000, 3
    signal_sd = np.array([0.0, 0.4, 0.5, 1.0, 1.5, 3.0])
    noise_sd = np.array([1.0, 1.0, 2.0, 0.5, 1.0, 1.5])
    signal = signal_sd[:, None, None] * rng.standard_normal((n_units, n_cond, 1))
    noise = noise_sd[:, None, None] * rng.standard_normal((n_units, n_cond, n_trials))
    data = 5.0 + signal + noise  # an offset must not matter
    snr, svar, nvar = ncsnr(data, return_variances=True)
    truth = signal_sd / noise_sd
    np.testing.assert_allclose(nvar, noise_sd**2, rtol=0.03)
    np.testing.assert_allclose(svar[1:], signal_sd[1:] ** 2, rtol=0.1, atol=0.01)
    np.testing.assert_allclose(snr[1:], truth[1:], rtol=0.05)
    # Zero planted signal: rectified variance, small ncsnr.
    assert 0.0 <= snr[0] < 0.05


def test_ncsnr_matches_loop_with_missing_trials():
    rng = np.random.default_rng(1)
    data = rng.standard_normal((7, 40, 4)) + rng.standard_normal((7, 40, 1))
    mask = rng.random(data.shape) < 0.2
    data[mask] = np.nan
    data[0, 3, :3] = np.nan  # a condition with one trial left: excluded from the noise term
    np.testing.assert_allclose(ncsnr(data), _ncsnr_loop(data), rtol=1e-12)


def test_ncsnr_full_data_matches_closed_form():
    rng = np.random.default_rng(2)
    data = rng.standard_normal((5, 30, 3)) + 2 * rng.standard_normal((5, 30, 1))
    noise_var = np.mean(np.var(data, axis=2, ddof=1), axis=1)
    total_var = np.var(data.reshape(5, -1), axis=1, ddof=1)
    expected = np.sqrt(np.maximum(total_var - noise_var, 0)) / np.sqrt(noise_var)
    np.testing.assert_allclose(ncsnr(data), expected, rtol=1e-12)
    np.testing.assert_allclose(ncsnr(data), _ncsnr_loop(data), rtol=1e-12)


def test_ncsnr_undefined_without_repeats():
    data = np.full((2, 5, 3), np.nan)
    data[:, :, 0] = 1.0
    data[1, 0, 1] = 2.0  # unit 1 has one repeated condition
    out = ncsnr(data)
    assert np.isnan(out[0]) and np.isfinite(out[1])


@pytest.mark.parametrize("shape", [(10, 3), (2, 10, 1)])
def test_ncsnr_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=r"trial|3-D"):
        ncsnr(np.zeros(shape))


def test_noise_ceiling_percent_values():
    np.testing.assert_allclose(noise_ceiling_percent(1.0, 3), 75.0)
    np.testing.assert_allclose(noise_ceiling_percent(0.0, 3), 0.0)
    np.testing.assert_allclose(noise_ceiling_percent(np.inf, 1), 100.0)
    snr = np.array([0.2, 0.5, 2.0])
    np.testing.assert_allclose(noise_ceiling_percent(snr, 1), 100 * snr**2 / (snr**2 + 1))
    # Broadcasting over n
    out = noise_ceiling_percent(snr[:, None], np.array([1, 3]))
    assert out.shape == (3, 2) and np.all(out[:, 1] > out[:, 0])
    with pytest.raises(ValueError, match="non-negative"):
        noise_ceiling_percent(-1.0, 3)
    with pytest.raises(ValueError, match="n_trials"):
        noise_ceiling_percent(1.0, 0)


def test_noise_ceiling_is_variance_explained_by_trial_mean():
    # Planted truth: r^2 between the true signal and the n-trial average equals the ceiling.
    rng = np.random.default_rng(3)
    signal_sd, noise_sd, n = 1.0, 1.5, 3
    s = signal_sd * rng.standard_normal(200000)
    avg = s + noise_sd * rng.standard_normal((n, s.size)).mean(axis=0)
    r2 = np.corrcoef(s, avg)[0, 1] ** 2
    np.testing.assert_allclose(noise_ceiling_percent(signal_sd / noise_sd, n), 100 * r2, atol=0.5)
