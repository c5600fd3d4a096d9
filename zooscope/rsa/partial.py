"""Partial correlation for unique-variance analyses and noise-corrected explained variance."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["explained_variance", "partial_correlation"]


def _as_columns(v: Any, name: str) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2:
        raise ValueError(f"{name} must be 1-D (n,) or 2-D (n, t), got shape {v.shape}")
    return v


def partial_correlation(y: Any, a: Any, b: Any) -> float | np.ndarray:
    r"""Correlation of ``y`` with ``a``, controlling for ``b`` (column by column).

    Both ``y`` and ``a`` are residualised on ``[1, b]`` by least squares, and the residuals
    correlated; equivalently

    .. math:: r_{ya\cdot b} = \frac{r_{ya} - r_{yb} r_{ab}}{\sqrt{(1 - r_{yb}^2)(1 - r_{ab}^2)}}.

    Used for unique variance: how well model A's predictions ``a`` explain ``y`` beyond model
    B's predictions ``b``.

    Parameters
    ----------
    y : array-like, shape (n,) or (n, t)
        Measured responses (e.g. a brain RSM's upper triangle, or voxel responses).
    a : array-like, same shape as ``y``
        Predictions of interest.
    b : array-like, same shape as ``y``
        Predictions to control for.

    Returns
    -------
    r : float or np.ndarray, shape (t,)
        NaN where a residual is constant (e.g. ``a`` collinear with ``b``).
    """
    one_d = np.ndim(y) == 1
    Y, A, B = _as_columns(y, "y"), _as_columns(a, "a"), _as_columns(b, "b")
    if not (Y.shape == A.shape == B.shape):
        raise ValueError(
            f"y, a and b must have the same shape, got {Y.shape}, {A.shape}, {B.shape}"
        )
    if Y.shape[0] < 4:
        raise ValueError(f"partial correlation needs at least 4 samples, got {Y.shape[0]}")
    Bc = B - B.mean(axis=0)
    bb = np.einsum("ij,ij->j", Bc, Bc)

    def residual(V: np.ndarray) -> np.ndarray:
        Vc = V - V.mean(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            beta = np.where(bb > 0, np.einsum("ij,ij->j", Vc, Bc) / bb, 0.0)
        return Vc - beta * Bc

    ry, ra = residual(Y), residual(A)
    num = np.einsum("ij,ij->j", ry, ra)
    den = np.sqrt(np.einsum("ij,ij->j", ry, ry) * np.einsum("ij,ij->j", ra, ra))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.clip(num / den, -1.0, 1.0)
    r[~(den > 0)] = np.nan
    return float(r[0]) if one_d else r


def explained_variance(score: Any, ceiling: Any, ceiling_power: Any = 2) -> float | np.ndarray:
    """Noise-corrected explained variance, ``score**2 / ceiling**ceiling_power``.

    The RSA metrics are ceiled by a correlation-valued ceiling (GSN), so the ceiling is squared
    (``ceiling_power=2``); Brain-Score's neural predictivity is ceiled by a split-half
    reliability that is already a variance ratio, ``r**2 / ceiling`` (``ceiling_power=1``).

    Parameters
    ----------
    score : float or array-like
        A correlation (e.g. a veRSA, cRSA or predictivity score).
    ceiling : float or array-like, broadcastable to ``score``
        The noise ceiling (e.g. GSN's RSA ceiling, or the internal-consistency ceiling).
    ceiling_power : {1, 2} or array-like of them, broadcastable to ``score``
        The power the ceiling is raised to (see above).

    Returns
    -------
    ev : float or np.ndarray
        NaN where the ceiling is missing (NaN) or not positive (the latter logged: data whose
        noise ceiling is not positive cannot be explained).
    """
    s = np.asarray(score, dtype=np.float64)
    c = np.asarray(ceiling, dtype=np.float64)
    bad = ~(c > 0)
    non_positive = int(np.sum(c <= 0))
    if non_positive:
        # A property of the data (no reliable signal), shown as NaN in every table: not an error.
        logger.info("explained_variance: %d non-positive ceiling(s); result is NaN", non_positive)
    with np.errstate(invalid="ignore", divide="ignore"):
        ev = np.where(bad, np.nan, s**2 / np.where(bad, 1.0, c) ** np.asarray(ceiling_power))
    return float(ev) if ev.ndim == 0 else ev
