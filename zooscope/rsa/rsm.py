"""Representational similarity matrices (RSMs) and their comparison.

An RSM here is the Pearson correlation matrix between the *rows* of a response matrix
(rows = images/conditions, columns = units/features), i.e. ``1 - RDM`` for the
``"correlation"`` RDM of rsatoolbox. Comparisons run over the strict upper triangle
(``k=1``, row-major order, like ``np.triu_indices(n, 1)``).

A fixed (brain) RSM is typically compared with many model RSMs; :class:`RSMComparator`
prepares it once (centring, normalising and, for Spearman, ranking) and reuses it.

Ties. RSMs of discrete features or of duplicated stimuli hold many *exactly* equal entries,
but a float32 GEMM returns them a few 1e-7..1e-6 apart, so a plain ranking would order
equal entries by rounding noise (Spearman off by percents). Rank-based comparisons therefore
treat entries closer than the rounding error of their dtype (:data:`TIE_TOLERANCE`) as one tie
(:func:`tie_codes`).
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Any, Literal

import numpy as np
from scipy import stats

from zooscope._backend import BackendName, get_backend
from zooscope._gram import gram_product

logger = logging.getLogger(__name__)

CompareMethod = Literal["pearson", "spearman", "kendall"]
_METHODS = ("pearson", "spearman", "kendall")

#: Per dtype of an RSM: entries (correlations in [-1, 1]) closer than this are one tie in rank
#: comparisons. Measured: float32 Pearson RSMs of unit-norm rows err by up to 3e-6 (50,000
#: features), float64 ones by 5e-15; on continuous 1000-image RSMs, float32 groups move
#: Spearman's rho by < 1e-7 (relative). Other dtypes use the float32 value.
TIE_TOLERANCE = {"float64": 1e-12, "float32": 1e-5}

__all__ = [
    "TIE_TOLERANCE",
    "RSMComparator",
    "compare_rsms",
    "crsa",
    "pearson_columns",
    "rsm",
    "tie_codes",
    "triangle_size",
    "upper_triangle",
]


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
        constant images (zero variance) are NaN (logged at debug level), as for
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
        R = be.to_numpy(gram_product(Z)).astype(dtype)  # float64 sum of products in dtype
    R = np.clip(R, -1.0, 1.0)
    np.fill_diagonal(R, 1.0)
    constant = be.to_numpy(constant)
    if constant.any():
        # Expected for some layers (e.g. of random-init models); the survey counts such layers.
        logger.debug(
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


def triangle_size(length: int) -> int:
    """The n of an n x n matrix whose strict upper triangle (:func:`upper_triangle`) has ``length`` entries."""
    n = round((1 + math.sqrt(1 + 8 * length)) / 2)
    if n * (n - 1) // 2 != length:
        raise ValueError(
            f"an RSM upper triangle of length {length} is not n (n - 1) / 2 for any n; "
            "store np.triu_indices(n, k=1) entries"
        )
    return n


def _tie_tolerance(a: Any, tie_tol: float | None) -> float:
    """``tie_tol``, or the :data:`TIE_TOLERANCE` of ``a``'s dtype when None."""
    if tie_tol is not None:
        return float(tie_tol)
    dtype = get_backend("numpy").asarray(a).dtype
    return TIE_TOLERANCE["float64" if dtype == np.float64 else "float32"]


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


@functools.cache
def _anchored_groups_kernel() -> Any:
    """Compiled on first use, so importing zooscope.rsa does not import numba."""
    from numba import njit

    @njit(nogil=True)
    def kernel(s: np.ndarray, tol: float) -> np.ndarray:  # pragma: no cover - compiled
        # Sequential by nature: a group's extent depends on where the previous one ended.
        out = np.empty(s.size, np.int64)
        group, anchor = 0, s[0]
        for i in range(s.size):
            if s[i] - anchor > tol:
                group += 1
                anchor = s[i]
            out[i] = group
        return out

    return kernel


def tie_codes(v: Any, tol: float | None = None) -> np.ndarray:
    """Integer codes that tie entries equal up to ``tol``, in the order of the values.

    Values are sorted and grouped greedily: a group starts at its smallest value and takes
    every value at most ``tol`` above it (groups are at most ``tol`` wide, so near-equal values
    never chain into one wide group). Ranking the codes (``scipy.stats.rankdata``, average
    ranks) or passing them to ``scipy.stats.kendalltau`` gives the tie-aware statistics of
    the exact values, as long as distinct exact values lie more than ``tol`` plus twice the
    rounding error apart.

    Parameters
    ----------
    v : array-like, shape (n,)
        Finite values (an RSM's upper triangle).
    tol : float, optional
        Default: :data:`TIE_TOLERANCE` of ``v``'s dtype. 0 ties only bit-equal values.

    Returns
    -------
    codes : np.ndarray of int64, shape (n,)
        ``codes[i] < codes[j]`` iff ``v[i]`` lies in a lower group than ``v[j]``.
    """
    tol = _tie_tolerance(v, tol)
    v = np.asarray(v, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"tie_codes expects a 1-D array, got shape {v.shape}")
    if v.size == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(v, kind="stable")
    codes = np.empty(v.size, np.int64)
    codes[order] = _anchored_groups_kernel()(v[order], tol)
    return codes


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
    tie_tol : float, optional
        Spearman and Kendall: entries this close are one tie (see :func:`tie_codes`), so
        float rounding does not split exactly equal entries. Default: per RSM, the
        :data:`TIE_TOLERANCE` of its dtype (float32 model RSMs 1e-5, float64 ones 1e-12).

    Examples
    --------
    >>> brain = RSMComparator(brain_rsm, "spearman")  # doctest: +SKIP
    >>> scores = [brain.score(m) for m in model_rsms]  # doctest: +SKIP
    """

    def __init__(
        self, reference: Any, method: CompareMethod = "pearson", tie_tol: float | None = None
    ) -> None:
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
        self.method = method
        self.tie_tol = tie_tol
        ref_tol = _tie_tolerance(reference, tie_tol)
        v = _as_vector(reference, "reference")
        if np.isnan(v).any():
            raise ValueError("reference RSM contains NaN; cannot compare with it")
        self.size = v.size
        if method == "pearson":
            self._ref = _standardize(v)
        elif method == "spearman":
            self._ref = _standardize(stats.rankdata(tie_codes(v, ref_tol)))
        else:
            self._ref = tie_codes(v, ref_tol)

    def score(self, other: Any) -> float:
        """Similarity of ``other`` (square RSM or upper triangle) to the reference.

        Returns NaN when ``other`` contains NaN (a layer with constant images; logged at
        debug level, the survey reports such layers per model) or is constant.
        """
        tol = _tie_tolerance(other, self.tie_tol)
        v = _as_vector(other, "other")
        if v.size != self.size:
            raise ValueError(
                f"RSM sizes differ: {v.size} off-diagonal entries vs {self.size} in the reference"
            )
        if np.isnan(v).any():
            logger.debug("compare_rsms: RSM contains NaN; returning NaN")
            return float("nan")
        if self.method == "pearson":
            return float(np.clip(_standardize(v) @ self._ref, -1.0, 1.0))
        codes = tie_codes(v, tol)
        if self.method == "spearman":
            return float(np.clip(_standardize(stats.rankdata(codes)) @ self._ref, -1.0, 1.0))
        return float(stats.kendalltau(codes, self._ref).statistic)


def compare_rsms(
    a: Any, b: Any, method: CompareMethod = "pearson", tie_tol: float | None = None
) -> float:
    """Compare two RSMs over their strict upper triangles.

    Parameters
    ----------
    a, b : array-like, shape (n, n) or (n * (n - 1) // 2,)
        Square RSMs or already-extracted upper triangles (any mix).
    method : {"pearson", "spearman", "kendall"}, default="pearson"
        See :class:`RSMComparator`. To compare many RSMs with one fixed RSM, build
        ``RSMComparator(b, method)`` once and call ``.score(a)``: Spearman then ranks ``b`` once.
    tie_tol : float, optional
        Rank methods: entries this close are one tie (default: by dtype, :func:`tie_codes`).

    Returns
    -------
    score : float
    """
    if isinstance(b, RSMComparator):
        if b.method != method:
            raise ValueError(f"comparator was built for {b.method!r}, not {method!r}")
        return b.score(a)
    return RSMComparator(b, method, tie_tol).score(a)


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
