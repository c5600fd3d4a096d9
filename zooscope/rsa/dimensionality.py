"""Effective dimensionality of a representation: the participation ratio of its covariance spectrum."""

from __future__ import annotations

import numpy as np

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
    """Participation ratio of the eigenvalues of the feature covariance.

    Parameters
    ----------
    features : array, shape (n_samples, n_features)

    Notes
    -----
    The covariance eigenvalues are :math:`s_i^2 / (n - 1)` for the singular values :math:`s_i` of
    the column-centered features, so the (n_features x n_features) covariance is never formed.
    The ratio is scale-free, so the 1/(n - 1) factor cancels.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be (n_samples >= 2, n_features), got shape {x.shape}")
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    return participation_ratio(s**2 / (x.shape[0] - 1))
