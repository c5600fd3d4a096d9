"""Per-unit reliability: noise-ceiling SNR (ncsnr) and noise ceilings, GLMsingle/NSD convention.

For one unit with responses :math:`y_{c,t}` to condition :math:`c` on trial :math:`t`,

.. math::

    \\sigma^2_\\text{noise} = \\operatorname{mean}_c \\operatorname{var}_t(y_{c,t}),\\qquad
    \\sigma^2_\\text{total} = \\operatorname{var}_{c,t}(y_{c,t}),\\qquad
    \\sigma^2_\\text{signal} = \\max(\\sigma^2_\\text{total} - \\sigma^2_\\text{noise}, 0),

with sample variances (``ddof=1``), ``ncsnr = sigma_signal / sigma_noise``, and the noise ceiling of
an average of :math:`n` trials, in percent of variance, ``100 * ncsnr**2 / (ncsnr**2 + 1/n)``.
This is the definition of the NSD data release (Allen et al., 2022) and of ``computenoiseceiling.m``
in cvnlab/GSN v1.2 (Kay et al.). For z-scored betas :math:`\\sigma^2_\\text{total} \\approx 1`.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import ArrayLike

logger = logging.getLogger(__name__)

__all__ = ["ncsnr", "noise_ceiling_percent"]


def _as_unit_condition_trial(data: ArrayLike) -> np.ndarray:
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim != 3:
        raise ValueError(
            f"data must be a 3-D array [units, conditions, trials], got shape {arr.shape}; "
            "add a leading axis for a single unit (data[None])"
        )
    if arr.shape[2] < 2:
        raise ValueError(
            f"data has {arr.shape[2]} trial(s) per condition; ncsnr needs repeated trials (>= 2)"
        )
    if np.isinf(arr).any():
        raise ValueError("data contains +/-inf; mark missing trials with NaN instead")
    return arr


def ncsnr(data: ArrayLike, return_variances: bool = False):
    """Noise-ceiling signal-to-noise ratio of each unit (GLMsingle / NSD convention).

    Parameters
    ----------
    data : array_like, shape (n_units, n_conditions, n_trials)
        Single-trial responses. ``NaN`` marks a missing trial (uneven repetitions). Conditions
        with fewer than two present trials do not enter the noise variance; every present
        trial enters the total variance.
    return_variances : bool, default=False
        Also return the signal and noise variances.

    Returns
    -------
    ncsnr : ndarray, shape (n_units,)
        :math:`\\sqrt{\\max(\\sigma^2_\\text{total} - \\sigma^2_\\text{noise}, 0)} /
        \\sigma_\\text{noise}`. ``NaN`` where the noise variance cannot be estimated (no
        condition with two trials) and ``inf`` where it is exactly zero with non-zero signal.
    signal_var : ndarray, shape (n_units,)
        Only if ``return_variances``.
    noise_var : ndarray, shape (n_units,)
        Only if ``return_variances``.

    Notes
    -----
    Variances use ``ddof=1`` throughout, as MATLAB's ``std`` does in the reference
    (cvnlab/GSN ``computenoiseceiling.m``; Allen et al., 2022, NSD data manual).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> signal = rng.standard_normal((1, 2000, 1))  # sd 1
    >>> data = signal + 0.5 * rng.standard_normal((1, 2000, 3))  # noise sd 0.5
    >>> float(np.round(ncsnr(data)[0], 1))
    2.0
    """
    arr = _as_unit_condition_trial(data)
    present = ~np.isnan(arr)
    n_per_cond = present.sum(axis=2)  # (units, conditions)
    filled = np.where(present, arr, 0.0)

    # Across-trial variance per condition (ddof=1), only where >= 2 trials are present.
    with np.errstate(invalid="ignore", divide="ignore"):
        cond_mean = filled.sum(axis=2) / n_per_cond
        sq = np.where(present, (arr - cond_mean[..., None]) ** 2, 0.0).sum(axis=2)
        valid = n_per_cond >= 2
        cond_var = np.where(valid, sq / np.maximum(n_per_cond - 1, 1), 0.0)
        n_valid = valid.sum(axis=1)
        noise_var = np.where(n_valid > 0, cond_var.sum(axis=1) / n_valid, np.nan)

        # Total variance of all present single trials (ddof=1).
        n_all = present.sum(axis=(1, 2))
        grand = filled.sum(axis=(1, 2)) / n_all
        ss_all = np.where(present, (arr - grand[:, None, None]) ** 2, 0.0).sum(axis=(1, 2))
        total_var = np.where(n_all > 1, ss_all / (n_all - 1), np.nan)

        signal_var = np.maximum(total_var - noise_var, 0.0)
        signal_var = np.where(np.isnan(noise_var) | np.isnan(total_var), np.nan, signal_var)
        out = np.sqrt(signal_var) / np.sqrt(noise_var)
    n_nan = int(np.isnan(out).sum())
    if n_nan:
        logger.debug("ncsnr undefined (no condition with >= 2 trials) for %d unit(s)", n_nan)
    if return_variances:
        return out, signal_var, noise_var
    return out


def noise_ceiling_percent(ncsnr: ArrayLike, n_trials: ArrayLike) -> np.ndarray:
    """Noise ceiling (percent of variance explainable) of an average of ``n_trials`` trials.

    .. math:: \\mathrm{NC} = 100\\,\\frac{\\mathrm{ncsnr}^2}{\\mathrm{ncsnr}^2 + 1/n}

    Parameters
    ----------
    ncsnr : array_like, shape (n_units,) or any shape
        Noise-ceiling SNR, e.g. from :func:`ncsnr`; must be >= 0 (``NaN`` propagates).
    n_trials : int or array_like broadcastable against ``ncsnr``
        Number of trials averaged per condition (NSD shared images: 3), > 0.

    Returns
    -------
    ndarray, same shape as ``np.broadcast(ncsnr, n_trials)``
        Values in [0, 100]; ``ncsnr = inf`` gives 100.

    Examples
    --------
    >>> float(noise_ceiling_percent(1.0, 3))
    75.0
    """
    snr = np.asarray(ncsnr, dtype=np.float64)
    n = np.asarray(n_trials, dtype=np.float64)
    if np.any(snr < 0):
        raise ValueError("ncsnr must be non-negative (it is a ratio of standard deviations)")
    if np.any(n <= 0) or np.any(~np.isfinite(n)):
        raise ValueError(f"n_trials must be positive and finite, got {n_trials!r}")
    snr2 = snr**2
    with np.errstate(invalid="ignore"):
        out = 100.0 * snr2 / (snr2 + 1.0 / n)
    return np.where(np.isinf(snr2), 100.0, out)
