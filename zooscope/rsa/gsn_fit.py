"""GSN: generative modeling of signal and noise (Kay et al.; port of cvnlab/GSN v1.2 ``perform_gsn``).

Responses ``data[unit, condition, trial]`` are modelled as a signal drawn once per condition,
:math:`s_c \\sim \\mathcal N(\\mu_S, C_S)`, plus independent noise on every trial,
:math:`n_{c,t} \\sim \\mathcal N(0, C_N)`. The noise covariance is pooled from within-condition
covariances, the data covariance :math:`C_D` is the covariance of trial averages, and
:math:`C_S = C_D - C_N / T`. Both covariance estimates have their off-diagonal elements shrunk
towards zero by the level that minimizes the Gaussian negative log-likelihood of held-out
conditions (one fifth, GSN's fixed permutation). A biconvex refinement then finds positive
semi-definite :math:`C_S^b, C_N^b` that jointly explain :math:`C_N` and :math:`C_D`.

Differences from the reference, all deliberate: every shrinkage level is scored from one
eigendecomposition instead of one Cholesky per level; the chosen level is the smallest
*finite* NLL (``nanargmin``, as GSN's later releases and MATLAB's ``min``); a rank-deficient
training covariance of trial averages gets no ``1e-6`` ridge (GSN >= 1.2 dropped it too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from zooscope._backend import Backend, BackendName, get_backend
from zooscope.rsa.gsn_linalg import (
    choose_shrinklevel,
    flat_corr,
    fold_permutation,
    holdout_split,
    nearest_psd_covariance,
    shrink_offdiagonal,
    shrinkage_nll,
)

logger = logging.getLogger(__name__)

__all__ = ["GSNResult", "perform_gsn"]

DEFAULT_SHRINKLEVELS = np.linspace(0, 1, 51)


@dataclass(frozen=True)
class GSNResult:
    """Estimated signal and noise distributions (field names as in cvnlab/GSN).

    Attributes
    ----------
    mnN : ndarray, shape (n_units,)
        Noise mean (zero by construction).
    cN : ndarray, shape (n_units, n_units)
        Shrunken noise covariance (raw estimate).
    mnS : ndarray, shape (n_units,)
        Signal mean (mean of the trial-averaged responses).
    cS : ndarray, shape (n_units, n_units)
        Raw signal covariance :math:`C_D - C_N / T` (may be indefinite).
    cNb, cSb : ndarray, shape (n_units, n_units)
        Noise and signal covariances after the biconvex refinement (positive definite).
    ncsnr : ndarray, shape (n_units,)
        :math:`\\sqrt{\\max(\\mathrm{diag}\\,C_S, 0)} / \\sqrt{\\mathrm{diag}\\,C_N}` (0 where the
        noise variance is 0).
    shrinklevelN, shrinklevelD : float
        Shrinkage levels chosen for the noise and the data covariance.
    numiters : int
        Biconvex iterations beyond the first (0: the first PSD estimate had converged).
    nllN, nllD : ndarray, shape (n_levels,)
        Held-out NLL per shrinkage level (``NaN``: singular); empty without shrinkage.
    ntrial : int
        Trials per condition behind ``cD`` (the minimum valid count for uneven data).
    ntrial_bc : float
        Average trial count used in the biconvex weighting.
    """

    mnN: np.ndarray
    cN: np.ndarray
    mnS: np.ndarray
    cS: np.ndarray
    cNb: np.ndarray
    cSb: np.ndarray
    ncsnr: np.ndarray
    shrinklevelN: float
    shrinklevelD: float
    numiters: int
    nllN: np.ndarray
    nllD: np.ndarray
    ntrial: int
    ntrial_bc: float


def validate_responses(data: ArrayLike, allow_nan: bool = True) -> np.ndarray:
    """Check ``data`` [units, conditions, trials] and return it as float64.

    A trial is missing when its value is NaN; a trial with NaN in some units only is
    treated as missing for all units (as in GSN).
    """
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim != 3:
        raise ValueError(
            f"data must be [units, conditions, trials], got shape {arr.shape}; "
            "for a single unit use data[None]"
        )
    _, n_cond, n_trial = arr.shape
    if n_trial < 2:
        raise ValueError(f"GSN needs at least 2 trials per condition, got {n_trial}")
    if n_cond < 3:
        raise ValueError(f"GSN needs at least 3 conditions (held-out folds), got {n_cond}")
    if np.isinf(arr).any():
        raise ValueError("data contains +/-inf; mark missing trials with NaN")
    if np.isnan(arr).any():
        if not allow_nan:
            raise ValueError(
                "data contains NaN (missing trials); the RSA ceiling needs complete trials, "
                "as in GSN (select conditions with all repetitions first)"
            )
        valid = _valid_trials(arr)
        if np.any(valid.sum(axis=1) < 1):
            bad = np.flatnonzero(valid.sum(axis=1) < 1)[:5]
            raise ValueError(
                f"every condition needs >= 1 complete trial; conditions {bad} have none"
            )
    return arr


def perform_gsn(
    data: ArrayLike,
    shrinklevels: ArrayLike = DEFAULT_SHRINKLEVELS,
    wantshrinkage: bool = True,
    leaveout: int = 5,
    seed: int = 42,
    backend: BackendName | Backend = "numpy",
    max_iter: int = 1000,
) -> GSNResult:
    """Estimate signal and noise distributions with GSN (Kay et al.; cvnlab/GSN v1.2).

    Parameters
    ----------
    data : array_like, shape (n_units, n_conditions, n_trials)
        Single-trial responses; ``NaN`` marks a missing trial (uneven repetitions, see Notes).
    shrinklevels : array_like, shape (n_levels,), default=linspace(0, 1, 51)
        Off-diagonal shrinkage fractions to evaluate (1 = no shrinkage).
    wantshrinkage : bool, default=True
        If False, use level 1 only (GSN's ``wantshrinkage=0``).
    leaveout : int, default=5
        One ``1/leaveout`` of conditions is held out to score the levels.
    seed : int, default=42
        Seed of the fixed held-out permutation (GSN's; keep it to agree with GSN).
    backend : {"numpy", "torch", "torch_cuda", "auto"} or Backend, default="numpy"
        Where the linear algebra runs (float64 throughout).
    max_iter : int, default=1000
        Safety cap on biconvex iterations.

    Returns
    -------
    GSNResult

    Notes
    -----
    Noise: :math:`C_N = \\frac1C\\sum_c \\mathrm{cov}_t(x_{c,t})` (ddof=1), shrunk by the level
    minimizing the NLL of held-out conditions' within-condition centred trials. Data:
    :math:`C_D = \\mathrm{cov}_c(\\bar x_c)` of trial means, shrunk likewise with held-out
    condition means. Signal: :math:`\\mu_S = \\bar x`, :math:`C_S = C_D - C_N/T`.
    Biconvex refinement (iterate to a flattened correlation > 0.999 with the previous pair):

    .. math::

        C_S^b \\leftarrow \\mathrm{psd}(C_D - C_N^b / T),\\qquad
        C_N^b \\leftarrow \\mathrm{psd}\\big(a\\,C_N + b\\,T\\,(C_D - C_S^b)\\big),

    with :math:`a = \\frac{C(T-1)T^2}{CT^2(T-1) + C - 1}`, :math:`b = \\frac{C-1}{CT^2(T-1) + C - 1}`
    and psd the nearest positive semi-definite matrix (:func:`nearest_psd_covariance`).

    Uneven trials (GSN 2025/07): noise covariances are averaged over conditions with >= 2
    trials; :math:`C_D` uses, in every condition, the first :math:`T_{min}` valid trials in
    GSN's fixed permutation; the biconvex step uses :math:`T = \\sum_{c: n_c > 1} n_c / C`.

    References
    ----------
    Kay, K., Prince, J. S., Gebhart, T., Tuckute, G., Zhou, J., Naselaris, T., & Schütt, H.
    Disentangling signal and noise in neural responses through generative modeling.
    cvnlab/GSN v1.2 (``perform_gsn.py``, ``rsa_noise_ceiling.py``, ``calc_shrunken_covariance.py``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> data = rng.standard_normal((5, 1, 1)) + rng.standard_normal((5, 40, 3))
    >>> res = perform_gsn(data)
    >>> res.cSb.shape, res.ncsnr.shape
    ((5, 5), (5,))
    """
    arr = validate_responses(data, allow_nan=True)
    be = get_backend(backend)
    levels = (
        np.atleast_1d(np.asarray(shrinklevels, dtype=np.float64)) if wantshrinkage else np.ones(1)
    )
    if levels.size == 0 or np.any((levels < 0) | (levels > 1)):
        raise ValueError("shrinklevels must be a non-empty list of values in [0, 1]")
    n_cond = arr.shape[1]
    valid = _valid_trials(arr)  # (conditions, trials)
    uneven = not bool(valid.all())

    with be.exact():
        mnN, cN, levelN, nllN = _noise_covariance(arr, valid, levels, leaveout, seed, be)
        if uneven:
            counts = valid.sum(axis=1)
            ntrial = int(counts.min())
            means = _balanced_trial_means(arr, valid, ntrial, seed)
            ntrial_bc = float(counts[counts > 1].sum()) / n_cond
            if ntrial_bc < 1:
                logger.info("average trial count %.3f < 1 (lopsided data); using 1", ntrial_bc)
                ntrial_bc = 1.0
        else:
            ntrial = arr.shape[2]
            means = arr.mean(axis=2)
            ntrial_bc = float(ntrial)
        mnD, cD, levelD, nllD = _data_covariance(means.T, levels, leaveout, seed, be)
        mnS = mnD - mnN
        cS = cD - cN / ntrial
        cSb, cNb, numiters = _biconvex(cN, cD, ntrial, ntrial_bc, n_cond, be, max_iter)

    cN_np, cS_np = be.to_numpy(cN), be.to_numpy(cS)
    sd_noise = np.sqrt(np.maximum(np.diag(cN_np), 0))
    sd_signal = np.sqrt(np.maximum(np.diag(cS_np), 0))
    snr = np.divide(sd_signal, sd_noise, out=np.zeros_like(sd_signal), where=sd_noise != 0)
    return GSNResult(
        mnN=be.to_numpy(mnN),
        cN=cN_np,
        mnS=be.to_numpy(mnS),
        cS=cS_np,
        cNb=be.to_numpy(cNb),
        cSb=be.to_numpy(cSb),
        ncsnr=snr,
        shrinklevelN=levelN,
        shrinklevelD=levelD,
        numiters=numiters,
        nllN=nllN,
        nllD=nllD,
        ntrial=ntrial,
        ntrial_bc=ntrial_bc,
    )


def _valid_trials(arr: np.ndarray) -> np.ndarray:
    """(conditions, trials) mask of trials with data in every unit."""
    return ~np.isnan(arr).any(axis=0)


def _pooled_within_cov(arr: np.ndarray, valid: np.ndarray, conds: np.ndarray, be: Backend):
    """Average over ``conds`` (with >= 2 trials) of the within-condition covariance, ddof=1.

    Returns the covariance (n_units, n_units) on the backend and the number of conditions used.
    """
    sub = arr[:, conds, :]
    vmask = valid[conds]
    counts = vmask.sum(axis=1)
    use = counts >= 2
    n_used = int(use.sum())
    if n_used == 0:
        raise ValueError(
            "no condition with >= 2 complete trials among the conditions used for the noise "
            "covariance (training or held-out fold); GSN cannot estimate noise"
        )
    filled = np.where(vmask[None], sub, 0.0)
    cmean = filled.sum(axis=2) / np.maximum(counts, 1)[None]
    centred = np.where(vmask[None], sub - cmean[..., None], 0.0)
    weight = np.where(use, 1.0 / np.sqrt(np.maximum(counts - 1, 1)), 0.0)
    y = be.asarray((centred * weight[None, :, None]).reshape(arr.shape[0], -1), dtype="float64")
    return be.xp.matmul(y, y.T) / n_used, n_used


def _noise_covariance(arr, valid, levels, leaveout, seed, be):
    n_units, n_cond, _ = arr.shape
    held, train = holdout_split(n_cond, leaveout, seed)
    nll = np.empty(0)
    if levels.size > 1:
        c_train, _ = _pooled_within_cov(arr, valid, train, be)
        _check_variances(c_train, be, "noise (within-condition)")
        rows = []
        for c in held:
            v = valid[c]
            if v.sum() > 1:
                x = arr[:, c, v].T
                rows.append(x - x.mean(axis=0))
        if not rows:
            raise ValueError("held-out conditions have no condition with >= 2 complete trials")
        pts = be.asarray(np.concatenate(rows, axis=0), dtype="float64")
        nll = shrinkage_nll(c_train, pts, levels, be)
    level = choose_shrinklevel(nll, levels) if levels.size > 1 else float(levels[0])
    c_all, _ = _pooled_within_cov(arr, valid, np.arange(n_cond), be)
    _check_variances(c_all, be, "noise (within-condition)")
    mn = be.asarray(np.zeros(n_units), dtype="float64")
    return mn, shrink_offdiagonal(c_all, level, be), level, nll


def _data_covariance(means, levels, leaveout, seed, be):
    """Shrunken covariance of trial means ``means`` (conditions, units)."""
    xp = be.xp
    n_cond = means.shape[0]
    held, train = holdout_split(n_cond, leaveout, seed)
    nll = np.empty(0)
    if levels.size > 1:
        xt = be.asarray(means[train], dtype="float64")
        mn_t = xp.mean(xt, axis=0)
        c_train = _cov_rows(xt - mn_t, be)
        _check_variances(c_train, be, "trial-averaged data")
        pts = be.asarray(means[held], dtype="float64") - mn_t
        nll = shrinkage_nll(c_train, pts, levels, be)
    level = choose_shrinklevel(nll, levels) if levels.size > 1 else float(levels[0])
    x = be.asarray(means, dtype="float64")
    mn = xp.mean(x, axis=0)
    return mn, shrink_offdiagonal(_cov_rows(x - mn, be), level, be), level, nll


def _cov_rows(xc, be: Backend):
    """Covariance (ddof=1) of already-centred rows."""
    return be.xp.matmul(xc.T, xc) / (xc.shape[0] - 1)


def _check_variances(c, be: Backend, what: str) -> None:
    d = be.to_numpy(be.xp.linalg.diagonal(c))
    bad = np.flatnonzero(~(d > 0))
    if bad.size:
        raise ValueError(
            f"{bad.size} unit(s) have zero {what} variance (e.g. units {bad[:5].tolist()}); "
            "drop constant units before GSN"
        )


def _balanced_trial_means(arr: np.ndarray, valid: np.ndarray, ntrial: int, seed: int) -> np.ndarray:
    """Mean of ``ntrial`` valid trials per condition, chosen by GSN's fixed permutation."""
    out = np.empty(arr.shape[:2])
    for c in range(arr.shape[1]):
        idx = np.flatnonzero(valid[c])
        pick = idx[fold_permutation(idx.size, seed)[:ntrial]]
        out[:, c] = arr[:, c, pick].mean(axis=1)
    return out


def _biconvex(cN, cD, ntrial, ntrial_bc, n_cond, be, max_iter):
    """GSN's alternating projection to PSD signal and noise covariances."""
    t, c = ntrial_bc, n_cond
    denom = c * t**2 * (t - 1) + c - 1
    a = c * (t - 1) * t**2 / denom
    b = (c - 1) / denom * t
    cNb = cN
    cS_old, cN_old = cD - cN / ntrial, cN
    numiters = 0
    single = cN.shape[0] == 1
    while True:
        cSb = nearest_psd_covariance(cD - cNb / ntrial, be)
        cNb = nearest_psd_covariance(a * cN + b * (cD - cSb), be)
        if single:
            done = (abs(float(cS_old[0, 0] - cSb[0, 0])) < 1e-5) and (
                abs(float(cN_old[0, 0] - cNb[0, 0])) < 1e-5
            )
        else:
            done = flat_corr(cS_old, cSb, be) > 0.999 and flat_corr(cN_old, cNb, be) > 0.999
        if done:
            break
        numiters += 1
        if numiters >= max_iter:
            logger.warning(
                "biconvex refinement stopped after %d iterations without converging; "
                "pass a larger max_iter",
                numiters,
            )
            break
        cS_old, cN_old = cSb, cNb
    return cSb, cNb, numiters
