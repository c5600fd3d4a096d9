r"""Linear centred kernel alignment (CKA; Kornblith et al. 2019), biased and debiased.

For Gram matrices :math:`K = XX^\top`, :math:`L = YY^\top` (n x n),

.. math:: \mathrm{CKA}(K, L) = \frac{\langle \tilde K, \tilde L\rangle_F}
          {\lVert \tilde K\rVert_F\,\lVert \tilde L\rVert_F}

with :math:`\tilde K = HKH` (:math:`H = I - 11^\top/n`; the biased HSIC estimator) or, for
``debiased=True``, the U-centred :math:`\tilde K` of Song et al. (2012), whose inner product is
:math:`n(n-3)` times the unbiased HSIC estimator:

.. math:: \tilde K_{ij} = K_{ij} - \frac{1}{n-2}\sum_l K_{il} - \frac{1}{n-2}\sum_l K_{lj}
          + \frac{1}{(n-1)(n-2)}\sum_{l,m} K_{lm} \quad (i \ne j), \qquad \tilde K_{ii} = 0,

where the sums run over :math:`K` with its diagonal set to zero.

Both centred matrices are symmetric, so :math:`\langle A, B\rangle_F = 2\sum_{i<j} A_{ij}B_{ij}
+ \sum_i A_{ii}B_{ii}`: packing each into a vector ``[sqrt(2) * upper triangle, diagonal]``
turns all pairwise inner products of ``m`` models into one GEMM (:func:`cka_matrix`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["center_gram", "cka", "cka_matrix", "gram_linear"]


def gram_linear(X: Any) -> np.ndarray:
    """Linear Gram matrix ``X X^T`` of the rows of ``X``.

    Parameters
    ----------
    X : array-like, shape (n, p)

    Returns
    -------
    K : np.ndarray, shape (n, n), float64
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"features must be 2-D (n_samples, n_features), got shape {X.shape}")
    return X @ X.T


def center_gram(K: Any, debiased: bool = False) -> np.ndarray:
    """Double-centred (``HKH``) or U-centred (``debiased``) copy of a Gram matrix.

    Parameters
    ----------
    K : array-like, shape (n, n)
        Symmetric Gram matrix; ``debiased`` needs ``n >= 4``.
    debiased : bool, default=False

    Returns
    -------
    Kc : np.ndarray, shape (n, n), float64
    """
    K = np.array(K, dtype=np.float64)  # a copy: centred in place below
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"a Gram matrix must be square, got shape {K.shape}")
    if not np.allclose(K, K.T, rtol=1e-6, atol=1e-8 * max(1.0, float(np.abs(K).max(initial=0)))):
        raise ValueError("Gram matrix is not symmetric; pass features or X @ X.T")
    n = K.shape[0]
    if debiased:
        if n < 4:
            raise ValueError(f"debiased CKA needs at least 4 samples, got {n}")
        np.fill_diagonal(K, 0.0)
        means = K.sum(axis=0) / (n - 2)
        means -= means.sum() / (2 * (n - 1))
        K -= means[:, None]
        K -= means[None, :]
        np.fill_diagonal(K, 0.0)
    else:
        means = K.mean(axis=0)
        means -= means.mean() / 2
        K -= means[:, None]
        K -= means[None, :]
    return K


def _pack(K: Any, debiased: bool) -> np.ndarray:
    """Vector whose dot products equal Frobenius inner products of the centred Grams."""
    Kc = center_gram(K, debiased)
    iu = np.triu_indices(Kc.shape[0], 1)
    upper = Kc[iu] * np.sqrt(2.0)
    return upper if debiased else np.concatenate([upper, np.diag(Kc)])


def _as_gram(A: Any, gram: bool) -> np.ndarray:
    return np.asarray(A, dtype=np.float64) if gram else gram_linear(A)


def cka(X: Any, Y: Any, debiased: bool = False, gram: bool = False) -> float:
    """Linear CKA between two representations of the same ``n`` stimuli.

    Parameters
    ----------
    X : array-like, shape (n, p1), or (n, n) Gram matrix if ``gram``
    Y : array-like, shape (n, p2), or (n, n) Gram matrix if ``gram``
    debiased : bool, default=False
        Use the unbiased HSIC estimator (U-centring); near 0 for independent representations
        even when ``p >> n``, where biased CKA is inflated.
    gram : bool, default=False
        Inputs are Gram matrices ``X X^T`` rather than features.

    Returns
    -------
    cka : float
        NaN if a representation is constant.
    """
    K, L = _as_gram(X, gram), _as_gram(Y, gram)
    if K.shape != L.shape:
        raise ValueError(
            f"X and Y must describe the same samples, got Grams {K.shape} and {L.shape}"
        )
    return float(cka_matrix([K, L], debiased=debiased)[0, 1])


def cka_matrix(grams: Sequence[Any] | np.ndarray, debiased: bool = False) -> np.ndarray:
    """Linear CKA between all pairs of ``m`` representations, via one GEMM.

    Parameters
    ----------
    grams : sequence of array-like (n, n), or array (m, n, n)
        Gram matrices (e.g. :func:`gram_linear` of each model's features). Memory: ``m`` packed
        vectors of ``n (n + 1) / 2`` float64 each.
    debiased : bool, default=False

    Returns
    -------
    C : np.ndarray, shape (m, m)
        Symmetric, unit diagonal (NaN rows for constant representations).
    """
    if len(grams) < 1:
        raise ValueError("cka_matrix needs at least one Gram matrix")
    shapes = {np.shape(K) for K in grams}
    if len(shapes) != 1:
        raise ValueError(f"all Gram matrices must have the same shape, got {sorted(shapes)}")
    P = np.stack([_pack(K, debiased) for K in grams])
    G = P @ P.T
    norms = np.sqrt(np.clip(np.diag(G), 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        C = G / np.outer(norms, norms)
    C[~np.isfinite(C)] = np.nan
    return C
