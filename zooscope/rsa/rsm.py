"""Representational similarity matrices (RSMs) and their comparison.

An RSM here is the Pearson correlation matrix between the *rows* of a response matrix
(rows = images/conditions, columns = units/features), i.e. ``1 - RDM`` for the
``"correlation"`` RDM of rsatoolbox. Comparisons run over the strict upper triangle
(``k=1``, row-major order, like ``np.triu_indices(n, 1)``).

A fixed (brain) RSM is typically compared with many model RSMs; :class:`RSMComparator`
prepares it once (centring, normalising and, for Spearman, ranking) and reuses it.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
from scipy import stats

from zooscope._backend import BackendName, get_backend

logger = logging.getLogger(__name__)

CompareMethod = Literal["pearson", "spearman", "kendall"]
_METHODS = ("pearson", "spearman", "kendall")

__all__ = ["RSMComparator", "compare_rsms", "crsa", "pearson_columns", "rsm", "upper_triangle"]


def rsm(
    X: Any,
    dtype: Literal["float32", "float64"] = "float32",
    backend: BackendName = "numpy",
) -> np.ndarray:
    r"""Pearson RSM between the rows of ``X``, computed with one GEMM.

    Each row is centred and scaled to unit norm (in float64, so the only float32 rounding is
    in the GEMM), then ``R = Z Z^T``:

    .. math:: R_{ij} = \frac{(x_i - \bar x_i)\cdot(x_j - \bar x_j)}
                            {\lVert x_i - \bar x_i\rVert\,\lVert x_j - \bar x_j\rVert}

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (n_images, n_features)
        Responses; one row per image.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the GEMM. float32 agrees with float64 to about 1e-7 per entry
        (inputs are normalised in float64 first, so rounding errors do not accumulate).
    backend : {"numpy", "torch", "torch_cuda", "auto"}, default="numpy"
        Where the GEMM runs (TF32 is switched off on CUDA).

    Returns
    -------
    R : np.ndarray, shape (n_images, n_images)
        Symmetric, unit diagonal, entries clipped to [-1, 1], dtype ``dtype``. Rows of
        constant images (zero variance) are NaN (a warning is logged), as for
        ``np.corrcoef``.
    """
    be = get_backend(backend)
    Xb = be.asarray(X)
    if Xb.ndim != 2:
        raise ValueError(
            f"rsm expects a 2-D array (n_images, n_features), got shape {tuple(Xb.shape)}"
        )
    n, p = Xb.shape
    if n < 2 or p < 2:
        raise ValueError(f"rsm needs at least 2 images and 2 features, got shape {(n, p)}")
    xp = be.xp
    with be.exact():
        Z = be.asarray(Xb, dtype="float64")
        Z = Z - xp.mean(Z, axis=1, keepdims=True)
        norms = xp.sqrt(xp.sum(Z * Z, axis=1, keepdims=True))
        constant = norms[:, 0] == 0
        Z = Z / xp.where(norms == 0, xp.ones_like(norms), norms)
        Z = be.asarray(Z, dtype=dtype)
        R = be.to_numpy(xp.matmul(Z, Z.T))
    R = np.clip(R, -1.0, 1.0)
    np.fill_diagonal(R, 1.0)
    constant = be.to_numpy(constant)
    if constant.any():
        logger.warning(
            "rsm: %d of %d rows have zero variance; their RSM rows/columns are NaN",
            int(constant.sum()),
            n,
        )
        R[constant, :] = np.nan
        R[:, constant] = np.nan
    return R


def upper_triangle(M: Any) -> np.ndarray:
    """Strict upper triangle of a square matrix, row-major (``np.triu_indices(n, 1)`` order).

    Parameters
    ----------
    M : array-like or torch.Tensor, shape (n, n)

    Returns
    -------
    v : np.ndarray, shape (n * (n - 1) // 2,)
    """
    M = get_backend("numpy").asarray(M)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"upper_triangle expects a square matrix, got shape {M.shape}")
    return M[np.triu_indices(M.shape[0], 1)]


def _as_vector(a: Any, name: str) -> np.ndarray:
    """An RSM given as a square matrix or as its upper triangle -> float64 vector."""
    a = get_backend("numpy").asarray(a)
    if a.ndim == 2:
        a = upper_triangle(a)
    elif a.ndim != 1:
        raise ValueError(f"{name} must be a square RSM or its upper triangle, got shape {a.shape}")
    if a.size < 3:
        raise ValueError(f"{name} has {a.size} off-diagonal entries; at least 3 are needed")
    return np.asarray(a, dtype=np.float64)


def _standardize(v: np.ndarray) -> np.ndarray:
    """Centre and scale to unit norm so a dot product is a Pearson r (NaN if constant)."""
    v = v - v.mean()
    norm = np.sqrt(v @ v)
    return v / norm if norm > 0 else np.full_like(v, np.nan)


class RSMComparator:
    """A fixed RSM prepared once, compared with many others.

    Parameters
    ----------
    reference : array-like, shape (n, n) or (n * (n - 1) // 2,)
        The fixed RSM (usually the brain's), square or as its upper triangle.
    method : {"pearson", "spearman", "kendall"}, default="pearson"
        Pearson r of the upper triangles; Spearman = Pearson r of their ranks (average ranks
        for ties; the reference is ranked once here); Kendall tau-b (``scipy.stats.kendalltau``;
        rsatoolbox's "tau-a" differs when there are ties).

    Examples
    --------
    >>> brain = RSMComparator(brain_rsm, "spearman")  # doctest: +SKIP
    >>> scores = [brain.score(m) for m in model_rsms]  # doctest: +SKIP
    """

    def __init__(self, reference: Any, method: CompareMethod = "pearson") -> None:
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
        self.method = method
        v = _as_vector(reference, "reference")
        if np.isnan(v).any():
            raise ValueError("reference RSM contains NaN; cannot compare with it")
        self.size = v.size
        if method == "pearson":
            self._ref = _standardize(v)
        elif method == "spearman":
            self._ref = _standardize(stats.rankdata(v))
        else:
            self._ref = v

    def score(self, other: Any) -> float:
        """Similarity of ``other`` (square RSM or upper triangle) to the reference.

        Returns NaN (with a warning) when ``other`` contains NaN or is constant.
        """
        v = _as_vector(other, "other")
        if v.size != self.size:
            raise ValueError(
                f"RSM sizes differ: {v.size} off-diagonal entries vs {self.size} in the reference"
            )
        if np.isnan(v).any():
            logger.warning("compare_rsms: RSM contains NaN; returning NaN")
            return float("nan")
        if self.method == "pearson":
            return float(np.clip(_standardize(v) @ self._ref, -1.0, 1.0))
        if self.method == "spearman":
            return float(np.clip(_standardize(stats.rankdata(v)) @ self._ref, -1.0, 1.0))
        return float(stats.kendalltau(v, self._ref).statistic)


def compare_rsms(a: Any, b: Any, method: CompareMethod = "pearson") -> float:
    """Compare two RSMs over their strict upper triangles.

    Parameters
    ----------
    a, b : array-like, shape (n, n) or (n * (n - 1) // 2,)
        Square RSMs or already-extracted upper triangles (any mix).
    method : {"pearson", "spearman", "kendall"}, default="pearson"
        See :class:`RSMComparator`. To compare many RSMs with one fixed RSM, build
        ``RSMComparator(b, method)`` once and call ``.score(a)``: Spearman then ranks ``b`` once.

    Returns
    -------
    score : float
    """
    if isinstance(b, RSMComparator):
        if b.method != method:
            raise ValueError(f"comparator was built for {b.method!r}, not {method!r}")
        return b.score(a)
    return RSMComparator(b, method).score(a)


def crsa(model_rsm: Any, brain_rsm: Any, method: CompareMethod = "pearson") -> float:
    """Classical RSA score: similarity of a model RSM to a brain RSM.

    Parameters
    ----------
    model_rsm : array-like, shape (n, n) or (n * (n - 1) // 2,)
    brain_rsm : array-like of the same size, or RSMComparator
        Pass an :class:`RSMComparator` to reuse a prepared brain RSM across models/layers.
    method : {"pearson", "spearman", "kendall"}, default="pearson"
        Conwell et al. (2024) use Pearson.

    Returns
    -------
    score : float
    """
    return compare_rsms(model_rsm, brain_rsm, method)


def pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns of two arrays.

    Parameters
    ----------
    a, b : np.ndarray, shape (n, t)

    Returns
    -------
    r : np.ndarray, shape (t,)
        NaN where a column is constant.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(
            f"pearson_columns expects two equal 2-D shapes, got {a.shape} and {b.shape}"
        )
    ac = a - a.mean(axis=0)
    bc = b - b.mean(axis=0)
    num = np.einsum("ij,ij->j", ac, bc)
    den = np.sqrt(np.einsum("ij,ij->j", ac, ac) * np.einsum("ij,ij->j", bc, bc))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    r[den == 0] = np.nan
    return np.clip(r, -1.0, 1.0)
