"""Linear-algebra building blocks of GSN (Kay et al., cvnlab/GSN v1.2), backend-generic.

Shared by :mod:`zooscope.rsa.gsn_fit` (estimation) and :mod:`zooscope.rsa.gsn_rsa` (RSA ceilings):
the reference's fixed fold permutation, off-diagonal shrinkage, the cross-validated Gaussian
negative log-likelihood of every shrinkage level from a single eigendecomposition, and the
nearest positive semi-definite covariance (Higham, 1988).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from zooscope._backend import Backend

logger = logging.getLogger(__name__)

#: Ridge the reference adds (repeatedly) when a clipped matrix still fails Cholesky.
PSD_RIDGE = 1e-10


def fold_permutation(n: int, seed: int = 42) -> np.ndarray:
    """The reference's ``deterministic_randperm``: MATLAB ``randperm`` under ``rng(seed, 'twister')``.

    MATLAB draws ``rand(1, n)`` from MT19937 and sorts it; NumPy's legacy ``RandomState``
    produces the same doubles for the same seed, so ``argsort`` gives the same permutation
    (0-based). This is what makes held-out folds, hence shrinkage levels, agree with GSN.

    Parameters
    ----------
    n : int
        Number of items.
    seed : int, default=42
        GSN's fixed seed.

    Returns
    -------
    ndarray of int, shape (n,)
    """
    return np.argsort(np.random.RandomState(seed).rand(n), kind="stable")


def holdout_split(n: int, leaveout: int = 5, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Held-out and training indices: the first ``round(n / leaveout)`` of :func:`fold_permutation`.

    Returns
    -------
    held_out : ndarray of int, shape (round(n / leaveout),)
    train : ndarray of int, shape (n - round(n / leaveout),)
    """
    perm = fold_permutation(n, seed)
    n_out = round(n / leaveout)
    return perm[:n_out], perm[n_out:]


def shrink_offdiagonal(c: Any, level: float, be: Backend) -> Any:
    """``level * c`` with the diagonal of ``c`` kept: :math:`s C + (1 - s)\\,\\mathrm{diag}(C)`.

    Parameters
    ----------
    c : array, shape (n, n)
    level : float in [0, 1]
    be : Backend
    """
    xp = be.xp
    d = xp.linalg.diagonal(c)
    return level * c + (1.0 - level) * _diag_matrix(d, be)


def shrinkage_nll(c: Any, pts: Any, shrinklevels: np.ndarray, be: Backend) -> np.ndarray:
    """Mean held-out Gaussian negative log-likelihood for every shrinkage level at once.

    With :math:`D = \\mathrm{diag}(C)` and the correlation matrix
    :math:`R = D^{-1/2} C D^{-1/2} = Q \\Lambda Q^\\top`, the shrunken covariance is

    .. math::

        C_s = s C + (1 - s) D = D^{1/2} Q\\,(s\\Lambda + (1 - s) I)\\,Q^\\top D^{1/2},

    so for held-out zero-mean points :math:`x_i` and :math:`y_i = Q^\\top D^{-1/2} x_i`

    .. math::

        \\mathrm{NLL}(s) = \\frac{1}{2}\\sum_k \\frac{\\overline{y_{k}^2}}{s\\lambda_k + 1 - s}
        + \\frac{1}{2}\\Big(\\sum_j \\log D_{jj} + \\sum_k \\log(s\\lambda_k + 1 - s)\\Big)
        + \\frac{n}{2}\\log 2\\pi .

    One eigendecomposition serves all levels, where the reference factors every level
    (``calc_mv_gaussian_pdf``: Cholesky + triangular solve). Levels whose :math:`C_s` is not
    numerically positive definite get ``NaN``, as a failed Cholesky does in the reference.

    Parameters
    ----------
    c : array, shape (n, n)
        Training covariance, positive diagonal.
    pts : array, shape (n_points, n)
        Held-out points, already centred (minus the training mean, or per condition).
    shrinklevels : ndarray, shape (n_levels,)
    be : Backend

    Returns
    -------
    nll : ndarray, shape (n_levels,)
    """
    xp = be.xp
    n = c.shape[0]
    d = xp.linalg.diagonal(c)
    inv_sd = 1.0 / xp.sqrt(d)
    r = c * inv_sd[:, None] * inv_sd[None, :]
    r = (r + r.T) / 2
    lam, q = xp.linalg.eigh(r)
    y = xp.matmul(pts * inv_sd[None, :], q)
    msq = be.to_numpy(xp.mean(y * y, axis=0)).astype(np.float64)
    lam = be.to_numpy(lam).astype(np.float64)
    logdet_d = float(np.sum(np.log(be.to_numpy(d).astype(np.float64))))
    levels = np.asarray(shrinklevels, dtype=np.float64)
    ev = levels[:, None] * lam[None, :] + (1.0 - levels[:, None])  # (n_levels, n)
    tol = n * np.finfo(np.float64).eps * np.max(np.abs(ev), axis=1)
    ok = np.min(ev, axis=1) > tol
    with np.errstate(divide="ignore", invalid="ignore"):
        quad = np.sum(msq[None, :] / ev, axis=1)
        logdet = logdet_d + np.sum(np.log(np.where(ev > 0, ev, np.nan)), axis=1)
    nll = 0.5 * quad + 0.5 * logdet + n / 2 * math.log(2 * math.pi)
    return np.where(ok, nll, np.nan)


def choose_shrinklevel(nll: np.ndarray, shrinklevels: np.ndarray) -> float:
    """The level with the smallest finite NLL (first on ties); the first level if all are NaN.

    ``nanargmin`` as in GSN >= 1.2 and MATLAB's ``min`` (plain ``argmin`` would pick a NaN).
    """
    if np.all(np.isnan(nll)):
        # GSN's own fallback (few trials for many units), not an error.
        logger.info(
            "All shrunken covariance matrices were singular; using shrinkage level %s",
            shrinklevels[0],
        )
        return float(shrinklevels[0])
    return float(shrinklevels[int(np.nanargmin(nll))])


def try_cholesky(a: Any, be: Backend) -> Any | None:
    """Lower Cholesky factor of ``a``, or ``None`` when ``a`` is not positive definite."""
    if be.name == "torch":
        import torch

        lower, info = torch.linalg.cholesky_ex(a)
        return lower if int(info) == 0 else None
    try:
        return np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        return None


def nearest_psd_covariance(c: Any, be: Backend, return_factor: bool = False):
    """Nearest symmetric positive (semi-)definite matrix in Frobenius norm (Higham, 1988).

    As GSN's ``construct_nearest_psd_covariance``: symmetrise; if Cholesky succeeds return
    the matrix unchanged; otherwise clip negative eigenvalues,
    :math:`\\tfrac12 (A + |A|) = U\\max(\\Lambda, 0)U^\\top`, and add a ridge of ``1e-10``
    until Cholesky succeeds (the result is then positive definite).

    Parameters
    ----------
    c : array, shape (n, n)
    be : Backend
    return_factor : bool, default=False
        Also return the lower Cholesky factor of the result (computed anyway), so callers can
        draw samples without factoring again.

    Returns
    -------
    c_psd : array, shape (n, n)
    lower : array, shape (n, n)
        Only if ``return_factor``.
    """
    xp = be.xp
    c = (c + c.T) / 2
    lower = try_cholesky(c, be)
    if lower is None:
        lam, u = xp.linalg.eigh(c)
        lam = xp.where(lam > 0, lam, xp.zeros_like(lam))
        c = xp.matmul(u * lam[None, :], u.T)
        c = (c + c.T) / 2
        eye = _diag_matrix(xp.ones(c.shape[0], dtype=c.dtype), be)
        ridge = PSD_RIDGE
        for _ in range(60):
            lower = try_cholesky(c, be)
            if lower is not None:
                break
            c = c + ridge * eye
            # The reference adds 1e-10 per recursion; grow geometrically after many tries so
            # badly scaled matrices terminate (never reached for covariances of sane scale).
            ridge = ridge * 2 if _ > 10 else ridge
        else:  # pragma: no cover - defensive
            raise np.linalg.LinAlgError("could not make the covariance positive definite")
    return (c, lower) if return_factor else c


def flat_corr(a: Any, b: Any, be: Backend) -> float:
    """Pearson correlation of the flattened entries of two arrays (GSN's convergence check)."""
    xp = be.xp
    x = xp.reshape(a, (-1,))
    y = xp.reshape(b, (-1,))
    x = x - xp.mean(x)
    y = y - xp.mean(y)
    den = xp.sqrt(xp.sum(x * x) * xp.sum(y * y))
    return float(xp.sum(x * y) / den) if float(den) > 0 else float("nan")


def _diag_matrix(d: Any, be: Backend) -> Any:
    if be.name == "torch":
        import torch

        return torch.diag(d)
    return np.diag(d)
