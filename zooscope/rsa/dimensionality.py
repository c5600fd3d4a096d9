"""Effective dimensionality of a representation: the participation ratio of its covariance spectrum."""

from __future__ import annotations

import numpy as np

from zooscope._gram import gram_product

__all__ = ["effective_dimensionality", "participation_ratio"]


def participation_ratio(eigenvalues: np.ndarray) -> float:
    """Effective dimensionality of a spectrum: :math:`(\\sum_i \\lambda_i)^2 / \\sum_i \\lambda_i^2`.

    Parameters
    ----------
    eigenvalues : array, shape (n_eigenvalues,)
        Non-negative eigenvalues (e.g. of a feature covariance).
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if lam.ndim != 1 or lam.size == 0:
        raise ValueError(f"eigenvalues must be a non-empty 1-D array, got shape {lam.shape}")
    if np.any(lam < -1e-10 * max(1.0, np.abs(lam).max())):
        raise ValueError("eigenvalues of a covariance must be non-negative")
    lam = np.clip(lam, 0, None)
    denom = np.sum(lam**2)
    return float(np.sum(lam) ** 2 / denom) if denom > 0 else 0.0


def effective_dimensionality(features: np.ndarray) -> float:
    r"""Participation ratio of the eigenvalues of the feature covariance.

    Parameters
    ----------
    features : array, shape (n_samples, n_features)

    Notes
    -----
    With column-centred features :math:`X_c`, the covariance eigenvalues are those of
    :math:`X_c^\top X_c / (n - 1)`, whose non-zero ones are also those of the smaller Gram
    matrix :math:`K = X_c X_c^\top` (or of :math:`X_c^\top X_c` when there are fewer features
    than samples). The ratio needs no eigendecomposition: :math:`\sum_i \lambda_i =
    \mathrm{tr}\,K` and :math:`\sum_i \lambda_i^2 = \|K\|_F^2`, so

    .. math:: \mathrm{PR} = \frac{(\mathrm{tr}\,K)^2}{\|K\|_F^2},

    scale-free (the 1/(n - 1) cancels). One float64 Gram product instead of an SVD: for 1000 x
    5920 SRP features (a survey computes it for every layer) 0.2 s instead of 14 s of CPU
    (measured on 2 busy cores), the same value to rounding.
    """
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be (n_samples >= 2, n_features), got shape {x.shape}")
    means = x.mean(axis=0, dtype=np.float64)
    if x.shape[0] <= x.shape[1]:  # centred and converted block by block, split over threads
        gram = gram_product(x, column_shift=means, dtype=np.float64)
    else:
        xc = x.astype(np.float64) - means
        gram = xc.T @ xc
    total = float(np.sum(np.square(gram)))
    return float(np.trace(gram)) ** 2 / total if total > 0 else 0.0
