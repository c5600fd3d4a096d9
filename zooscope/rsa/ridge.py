r"""Ridge regression with a per-target penalty chosen by exact, efficient leave-one-out.

Math
----
Let :math:`X \in \mathbb{R}^{n\times p}` (training images x features) and
:math:`Y \in \mathbb{R}^{n\times t}` (images x targets). With ``fit_intercept`` the columns are
centred with their training means, :math:`X_c = X - 1\bar x^\top`, :math:`Y_c = Y - 1\bar y^\top`
(the unpenalised intercept is then exactly :math:`\bar y - \bar x^\top\beta`).

Thin decomposition. If :math:`n \le p` (the usual case: a few hundred images, thousands of
features) we eigendecompose the Gram matrix :math:`K = X_c X_c^\top = U\,\mathrm{diag}(w)\,U^\top`.
With ``fit_intercept``, :math:`K1 = 0`; we eigendecompose :math:`K + c\,11^\top/n` with
:math:`c > \lambda_{\max}(K)` instead, which isolates :math:`1/\sqrt n` as the top eigenvector, and
drop it: :math:`U` (n x (n-1)) is then a complete basis of :math:`1^\perp`, where the centred
targets live (without the intercept, U is n x n). Eigenvalues below 0 from rounding are clipped
to 0. If :math:`n > p` we take the thin SVD :math:`X_c = U S V^\top`, :math:`w = s^2`,
:math:`U \in \mathbb{R}^{n\times p}`. Both are computed in float64, whatever ``dtype`` says.

Hat matrix. For a penalty :math:`\alpha`, with :math:`h_k = w_k / (w_k + \alpha)`,

.. math:: H_\alpha = U\,\mathrm{diag}(h)\,U^\top + \tfrac{1}{n} 1 1^\top

where the last term (present only with ``fit_intercept``) is the hat matrix of the unpenalised
intercept (:math:`1/\sqrt n` is orthogonal to the columns of :math:`X_c`). The fitted values are
:math:`\hat Y = H_\alpha Y`, and because ridge with an unpenalised intercept is a penalised least
squares fit, the leave-one-out (LOO) residual is exact (no approximation):

.. math:: e_i = \frac{y_i - \hat y_i}{1 - H_{ii}}, \qquad
          \tilde y_i = y_i - e_i = \frac{\hat y_i - H_{ii} y_i}{1 - H_{ii}} ,

:math:`\tilde y_i` being the prediction for image :math:`i` of the model fitted without it.
This is what scikit-learn's ``_RidgeGCV`` computes (it adds :math:`1 1^\top` to the Gram matrix
and un-penalises the eigenvector closest to :math:`1`); here the intercept term is explicit.

Per-alpha cost. Per chunk of targets, :math:`Z = U^\top Y_c` and, for an incomplete basis
(:math:`n > p`), :math:`R = Y_c - UZ` (the part of :math:`Y_c` no alpha fits) are formed once in
float64. With :math:`g_k = \alpha/(w_k+\alpha) = 1 - h_k` and :math:`d = 1 - \mathrm{diag}(H_\alpha)`
(both float64), each alpha is then one GEMM in ``dtype``:

* residual form: :math:`e = \mathrm{diag}(1/d)\,(R + U\,\mathrm{diag}(g)\,Z)`. No two nearly
  equal numbers are subtracted even when the fit is nearly exact (leverage near 1), so float32
  keeps relative accuracy. Used for the MSE criterion, and for LOO predictions
  :math:`\tilde y = y - e` when :math:`\max_i H_{ii} > 1/3`.
* prediction form: :math:`\tilde Y_c = \mathrm{diag}(1/d)\,U\,\mathrm{diag}(h)\,Z
  - \mathrm{diag}(\mathrm{diag}(H)/d)\,Y_c`, more accurate at low leverage, where predictions are
  small (large :math:`\alpha`) and :math:`y - e` would cancel.

So choosing among :math:`A` alphas costs :math:`2 A n^2 t` flops (in ``dtype``) plus
:math:`2 n^2 t` in float64 (``Z``), against scikit-learn's
:math:`2 A n (n + p) t` in float64: it forms the p x t primal coefficients for every alpha.
(A triangular-factor variant of the MSE scores, with BLAS ``trmm`` at half the flops, was
tried: ``trmm`` exists only in SciPy's OpenBLAS copy, whose threads fought NumPy's and made
fits erratically 3-10x slower on a shared 2-core machine, so it was dropped.)

Selection. ``criterion="mse"``: the alpha minimising :math:`\frac1n\sum_i e_i^2` (scikit-learn's
``RidgeCV(alpha_per_target=True)``). ``criterion="pearson"``: the alpha maximising the Pearson
correlation between :math:`\tilde y` and :math:`y` (Conwell et al. 2024). Ties go to the earliest
alpha in ``alphas`` (scikit-learn's rule); NaN scores (constant targets) never win, and a target
whose scores are all NaN gets the first alpha.

Model form. The fitted model is kept in the eigenbasis: :math:`Q = \mathrm{diag}(1/(w +
\alpha_j))\,Z` (``eigen_coef_`` [r, t], one column per target at its own alpha), so that the dual
coefficients are :math:`c = (K + \alpha I)^{-1} Y_c = U Q` restricted to :math:`\mathrm{span}(U)`.
``predict(X')`` costs :math:`X' X_c^\top` (m x n x p), a product with :math:`U` (m x n x r) and
one GEMM with ``Q`` (m x r x t); it never stores the p x t primal coefficients (950 MB for
p=5920, t=20000 in float64), and the fit forms no n x t dual matrix (one float64 GEMM of
:math:`2 n r t` flops fewer per fit than the dual form). ``dual_coef_`` [n, t]
and ``coef_`` [t, p] are properties, computed on demand (:math:`c = UQ`, :math:`\beta =
X_c^\top c`).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from zooscope._backend import Backend, get_backend
from zooscope._gram import gram_product, single_threaded_blas
from zooscope.rsa.ridge_kernels import scale_chosen, take_chosen

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_ALPHAS", "RidgeGCV"]

DEFAULT_ALPHAS = np.logspace(-1, 5, 7)
_CRITERIA = ("mse", "pearson")
_NAN_POLICIES = ("raise", "mask")
#: Working-memory budget for one chunk of targets when ``target_chunk_size`` is None.
_CHUNK_BUDGET_BYTES = 128 * 2**20


class RidgeGCV(RegressorMixin, BaseEstimator):
    """Ridge regression, one penalty per target, chosen by exact leave-one-out.

    See the module docstring for the math. scikit-learn compatible (``fit``, ``predict``,
    ``score``, ``get_params``, ``clone``).

    Parameters
    ----------
    alphas : array-like, shape (n_alphas,), default=np.logspace(-1, 5, 7)
        Candidate penalties, all positive.
    criterion : {"mse", "pearson"}, default="mse"
        LOO mean squared error (scikit-learn's) or LOO Pearson r (Conwell et al. 2024).
    fit_intercept : bool, default=True
        Fit an unpenalised intercept (exactly, see the module docstring).
    backend : {"numpy", "torch", "torch_cuda", "auto"}, default="numpy"
        Where the per-chunk GEMMs run; ``"auto"`` uses CUDA when present. TF32 is off.
    target_chunk_size : int or None, default=None
        Targets processed at once; None picks a size from a 128 MB budget (and the device's
        free memory), so memory stays bounded for tens of thousands of targets.
    store_cv_values : bool, default=False
        Keep ``cv_values_`` [n, t, n_alphas], the LOO *predictions* for every alpha (not the
        squared errors that scikit-learn stores). Costs n * t * n_alphas * 8 bytes.
    nan_policy : {"raise", "mask"}, default="raise"
        Targets with a non-finite value: raise a ValueError, or leave them out of the fit
        (their ``alpha_``, ``loo_score_``, ``loo_predictions_``, ``intercept_`` and
        predictions are NaN) and log how many.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the GEMMs over targets: the per-alpha LOO products and the last product of
        ``predict`` (the decomposition, the hat diagonal, the LOO operators, ``U^T Y`` and the
        coefficients are always formed in float64, and the intercept direction is removed
        exactly, so float32 rounding does not accumulate). float32 is about twice as fast;
        LOO scores then carry ~1e-6 relative rounding, so alphas whose LOO scores are tied to
        that level may be chosen differently from a float64 solver, and predictions carry
        ~1e-7 of their scale (per-unit r and predicted RSMs of veRSA move by < 1e-7,
        ``tests/test_rsa_ridge.py``). Use "float64" to reproduce scikit-learn to ~1e-10.
    progress : bool, default=False
        Show a progress bar over the chunks of targets (a survey shows its own, per layer).

    Attributes
    ----------
    alpha_ : np.ndarray, shape (t,)
        Chosen penalty per target.
    loo_score_ : np.ndarray, shape (t,)
        LOO score at ``alpha_``: minus the mean squared LOO error for ``"mse"`` (scikit-learn's
        ``best_score_`` convention: larger is better), the LOO Pearson r for ``"pearson"``.
    loo_predictions_ : np.ndarray, shape (n, t)
        Exact LOO predictions at ``alpha_`` (an honest train-set prediction).
    eigen_coef_ : np.ndarray, shape (r, t)
        Coefficients in the eigenbasis ``basis_``: ``Q = diag(1 / (w + alpha)) U^T Y_c``.
    basis_ : np.ndarray, shape (n, r)
        :math:`U`, the thin eigenbasis of the centred training Gram matrix.
    dual_coef_ : np.ndarray, shape (n, t)
        Dual coefficients :math:`c = UQ` on the centred training features (a property).
    intercept_ : np.ndarray, shape (t,)
        So that ``predict(X) = X @ coef_.T + intercept_``.
    y_mean_ : np.ndarray, shape (t,)
        Training mean of each target (0 without ``fit_intercept``): ``loo_predictions_ -
        y_mean_`` are the LOO predictions in the centred frame (scikit-learn's ``cv_values_``).
    cv_values_ : np.ndarray, shape (n, t, n_alphas)
        Only if ``store_cv_values``.
    X_fit_ : np.ndarray, shape (n, p)
        Centred training features (needed by ``predict`` in dual form).
    X_mean_ : np.ndarray, shape (p,)
    n_features_in_ : int
    """

    def __init__(
        self,
        alphas: Any = DEFAULT_ALPHAS,
        criterion: Literal["mse", "pearson"] = "mse",
        fit_intercept: bool = True,
        backend: str = "numpy",
        target_chunk_size: int | None = None,
        store_cv_values: bool = False,
        nan_policy: Literal["raise", "mask"] = "raise",
        dtype: Literal["float32", "float64"] = "float32",
        progress: bool = False,
    ) -> None:
        self.alphas = alphas
        self.criterion = criterion
        self.fit_intercept = fit_intercept
        self.backend = backend
        self.target_chunk_size = target_chunk_size
        self.store_cv_values = store_cv_values
        self.nan_policy = nan_policy
        self.dtype = dtype
        self.progress = progress

    # ------------------------------------------------------------------ validation
    def _validated_alphas(self) -> np.ndarray:
        alphas = np.atleast_1d(np.asarray(self.alphas, dtype=np.float64))
        if alphas.ndim != 1 or alphas.size == 0:
            raise ValueError(f"alphas must be a non-empty 1-D array, got shape {alphas.shape}")
        if not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
            raise ValueError(f"alphas must be finite and > 0, got {alphas}")
        return alphas

    def _check_params(self) -> None:
        if self.criterion not in _CRITERIA:
            raise ValueError(f"criterion must be one of {_CRITERIA}, got {self.criterion!r}")
        if self.nan_policy not in _NAN_POLICIES:
            raise ValueError(f"nan_policy must be one of {_NAN_POLICIES}, got {self.nan_policy!r}")
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")
        if self.target_chunk_size is not None and int(self.target_chunk_size) < 1:
            raise ValueError(
                f"target_chunk_size must be >= 1 or None, got {self.target_chunk_size}"
            )

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any) -> RidgeGCV:
        """Fit on training data, choosing one alpha per target by exact LOO.

        Parameters
        ----------
        X : array-like or torch.Tensor, shape (n, p)
        y : array-like or torch.Tensor, shape (n, t) or (n,)
            float32 targets are kept float32 on the host (chunks are converted).

        Returns
        -------
        self : RidgeGCV
        """
        self._check_params()
        alphas = self._validated_alphas()
        X, Y, finite = self._validated_data(X, y)
        n, p = X.shape
        t = Y.shape[1]
        n_bad = int(t - finite.sum())

        be = get_backend(self.backend)
        self.X_mean_ = X.mean(axis=0) if self.fit_intercept else np.zeros(p)
        Xc = X - self.X_mean_ if self.fit_intercept else X
        with be.exact():
            U, w, complete = _thin_decomposition(Xc, be, self.fit_intercept)
        decomp = _LooDecomposition(U, w, alphas, complete, self.fit_intercept, be, self.dtype)

        self.alpha_ = np.full(t, np.nan)
        self.loo_score_ = np.full(t, np.nan)
        self.basis_ = be.to_numpy(decomp.U64)
        r = self.basis_.shape[1]
        # every column is written below unless targets are masked: no fill pass over n x t
        self.loo_predictions_ = np.empty((n, t)) if n_bad == 0 else np.full((n, t), np.nan)
        self.eigen_coef_ = np.empty((r, t)) if n_bad == 0 else np.zeros((r, t))
        self.intercept_ = np.full(t, np.nan)
        self.y_mean_ = np.full(t, np.nan)
        self.cv_values_ = np.full((n, t, alphas.size), np.nan) if self.store_cv_values else None
        # (Xc x_mean)^T U, so that intercept_ = y_mean - (Xc x_mean) . U Q (sklearn's intercept)
        xmean_proj = (Xc @ self.X_mean_) @ self.basis_

        chunk = self._chunk_size(n, alphas.size, be)
        # contiguous slices when nothing is masked (no strided gathers/scatters)
        cols_all = np.flatnonzero(finite)
        blocks = [
            slice(s, min(s + chunk, t)) if n_bad == 0 else cols_all[s : s + chunk]
            for s in range(0, cols_all.size, chunk)
        ]
        with be.exact():
            for cols in tqdm(blocks, desc="RidgeGCV", unit="chunk", disable=not self.progress):
                Yb = np.array(Y[:, cols], dtype=np.float64)
                y_mean = Yb.mean(axis=0) if self.fit_intercept else np.zeros(Yb.shape[1])
                Yb -= y_mean
                # contiguous columns are written in place; masked ones through a copy
                views = isinstance(cols, slice)
                loo_out = self.loo_predictions_[:, cols] if views else np.empty(Yb.shape)
                coef_out = self.eigen_coef_[:, cols] if views else np.empty((r, Yb.shape[1]))
                res = decomp.solve_chunk(
                    Yb, y_mean, self.criterion, self.store_cv_values, loo_out, coef_out
                )
                if not views:
                    self.loo_predictions_[:, cols] = loo_out
                    self.eigen_coef_[:, cols] = coef_out
                self.alpha_[cols] = alphas[res.best]
                self.loo_score_[cols] = res.score
                self.intercept_[cols] = y_mean - xmean_proj @ coef_out
                self.y_mean_[cols] = y_mean
                if res.cv is not None:
                    res.cv += y_mean[None, :, None]
                    self.cv_values_[:, cols, :] = res.cv
        if self.cv_values_ is None:
            del self.cv_values_
        self.X_fit_ = Xc
        self._coef32 = None  # predict's float32 copy of eigen_coef_, made on first use
        self.n_features_in_ = p
        self.alphas_ = alphas
        return self

    def _validated_data(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``X`` [n, p] float64, ``Y`` [n, t] (float32 kept) and the finite targets' mask [t]."""
        host = get_backend("numpy")
        X = host.asarray(X, dtype="float64")
        Y = host.asarray(y)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        self._y_1d = Y.ndim == 1
        if self._y_1d:
            Y = Y[:, None]
        if Y.ndim != 2:
            raise ValueError(f"y must be 1-D or 2-D (n_samples, n_targets), got shape {Y.shape}")
        if Y.dtype not in (np.float32, np.float64):
            Y = Y.astype(np.float64)
        n, t = X.shape[0], Y.shape[1]
        if Y.shape[0] != n:
            raise ValueError(f"X has {n} samples but y has {Y.shape[0]}")
        min_n = 3 if self.fit_intercept else 2
        if n < min_n:
            raise ValueError(f"leave-one-out needs at least {min_n} samples, got {n}")
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or infinite values; clean or impute features first")
        finite = _finite_columns(Y)
        n_bad = int(t - finite.sum())
        if n_bad:
            if self.nan_policy == "raise":
                raise ValueError(
                    f"{n_bad} of {t} targets contain NaN/inf; drop them or use nan_policy='mask'"
                )
            # nan_policy="mask" asked for this (NaN voxels are reported when the data is made).
            logger.info("RidgeGCV: %d of %d targets contain NaN/inf and are masked out", n_bad, t)
        return X, Y, finite

    def _chunk_size(self, n: int, n_alphas: int, be: Backend) -> int:
        if self.target_chunk_size is not None:
            return int(self.target_chunk_size)
        # per target: the stack of per-alpha LOO values (n_alphas x n in dtype), and about 10
        # float64 columns of n values (host copy, projections, the chunk's outputs)
        itemsize = 4 if self.dtype == "float32" else 8
        per_target = n * (n_alphas * itemsize + 80) + (
            n * n_alphas * 16 if self.store_cv_values else 0
        )
        budget = min(_CHUNK_BUDGET_BYTES, be.free_memory_bytes() // 4)
        return max(1, min(8192, budget // per_target))

    # ------------------------------------------------------------------ predict
    def predict(self, X: Any) -> np.ndarray:
        """Predict with each target's chosen alpha.

        Parameters
        ----------
        X : array-like, shape (m, p)

        Returns
        -------
        Y_pred : np.ndarray, shape (m, t) (or (m,) if fitted on 1-D y)
        """
        check_is_fitted(self, "eigen_coef_")
        X = get_backend("numpy").asarray(X, dtype="float64")
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X must have shape (m, {self.n_features_in_}), got {X.shape}")
        scores = (X @ self.X_fit_.T) @ self.basis_  # [m, r], float64
        if self.dtype == "float32":
            # the one GEMM over targets in float32, like the LOO ones: m x r x t, half the time
            out = (scores.astype(np.float32) @ self._eigen_coef32()).astype(np.float64)
        else:
            out = scores @ self.eigen_coef_
        out += self.intercept_
        return out[:, 0] if self._y_1d else out

    def _eigen_coef32(self) -> np.ndarray:
        """``eigen_coef_`` in float32, made once per fit."""
        if getattr(self, "_coef32", None) is None:
            self._coef32 = self.eigen_coef_.astype(np.float32)
        return self._coef32

    @property
    def dual_coef_(self) -> np.ndarray:
        """Dual coefficients :math:`c = UQ`, shape (n, t), computed on demand (n * t * 8 bytes)."""
        check_is_fitted(self, "eigen_coef_")
        return self.basis_ @ self.eigen_coef_

    @property
    def coef_(self) -> np.ndarray:
        """Primal coefficients, shape (t, p), computed on demand (t * p * 8 bytes)."""
        check_is_fitted(self, "eigen_coef_")
        coef = (self.X_fit_.T @ self.dual_coef_).T
        return coef[0] if self._y_1d else coef

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


# ---------------------------------------------------------------------- internals
def _thin_decomposition(Xc: np.ndarray, be: Backend, fit_intercept: bool) -> tuple[Any, Any, bool]:
    """``U`` [n, r] and ``w`` [r] with ``Xc Xc^T = U diag(w) U^T`` (float64, on ``be``).

    Returns ``complete=True`` when ``U`` is a complete basis of the space the centred targets
    live in (``n <= p``: eigh of the Gram; all of R^n, or 1^perp with ``fit_intercept``).
    """
    xp = be.xp
    n, p = Xc.shape
    Xd = be.asarray(Xc, dtype="float64")
    if n <= p:
        K = gram_product(Xd)
        if not fit_intercept:
            w, U = _eigh(K, be)
            return U, xp.clip(w, 0.0, None), True
        # K 1 = 0. Adding c 11^T/n with c > max eigenvalue makes 1/sqrt(n) the isolated top
        # eigenvector, which we drop: U then spans exactly 1^perp, where centred targets live.
        # Keeping it (with g = 1) would let float32 rounding of Y's mean leak into LOO errors.
        c = 2.0 * float(xp.sum(xp.linalg.diagonal(K))) + 1.0
        w, U = _eigh(K + c / n, be)
        overlap = float(xp.abs(xp.sum(U[:, -1]))) / n**0.5
        if overlap < 1 - 1e-6:  # pragma: no cover - guaranteed by construction
            raise RuntimeError(f"intercept eigenvector not isolated (overlap {overlap:.3g})")
        return U[:, :-1], xp.clip(w[:-1], 0.0, None), True
    U, s, _ = xp.linalg.svd(Xd, full_matrices=False)
    return U, s * s, False


def _eigh(K, be: Backend):
    """``xp.linalg.eigh``; single-threaded BLAS for small numpy matrices.

    LAPACK's symmetric eigensolvers do not scale with threads at n ~ 1000, and on a loaded
    machine multithreaded OpenBLAS made a 500 x 500 eigh 20-80x slower (measured).
    """
    if be.name == "numpy" and K.shape[0] <= 2048:
        with single_threaded_blas():
            return np.linalg.eigh(K)
    return be.xp.linalg.eigh(K)


class _ChunkResult:
    __slots__ = ("best", "cv", "score")

    def __init__(self, best, score, cv):
        self.best, self.score, self.cv = best, score, cv


class _Chunk:
    """Device arrays of one chunk of centred targets (see :meth:`_LooDecomposition.chunk`)."""

    __slots__ = ("R", "Y", "Z", "Z64")

    def __init__(self, Y, Z, Z64, R):
        self.Y, self.Z, self.Z64, self.R = Y, Z, Z64, R


class _LooDecomposition:
    """Per-alpha LOO operators built from one thin decomposition (see the module docstring)."""

    def __init__(self, U, w, alphas, complete, fit_intercept, be: Backend, dtype: str) -> None:
        xp = be.xp
        self.be, self.xp, self.dtype, self.complete = be, xp, dtype, complete
        self.alphas = alphas
        self.n = U.shape[0]
        al = be.asarray(alphas, dtype="float64")
        self.h = w[:, None] / (w[:, None] + al[None, :])  # [r, A]
        self.g = al[None, :] / (w[:, None] + al[None, :])  # 1 - h, without cancellation
        self.inv = 1.0 / (w[:, None] + al[None, :])
        U2 = U * U
        diag_h = xp.matmul(U2, self.h)  # [n, A]
        if fit_intercept:
            diag_h = diag_h + 1.0 / self.n
        if complete:
            # rows of U have squared norm 1 (or 1 - 1/n without the intercept direction), so
            # 1 - H_ii = sum_k U_ik^2 g_k exactly: no cancellation at leverage near 1
            self.d = xp.matmul(U2, self.g)
        else:
            self.d = 1.0 - diag_h
        if bool(xp.any(self.d <= 1e-12)):
            raise ValueError(
                "leave-one-out is undefined: a training sample has leverage ~1 (1 - H_ii <= 1e-12);"
                " use larger alphas or remove duplicated/outlying samples"
            )
        self.diag_h = diag_h
        self.max_leverage = be.to_numpy(xp.max(diag_h, axis=0))
        self.U64 = U
        self._ops: dict[str, Any] = {}  # loo_stack's operators of every alpha, [n_alphas * n, r]
        self._stack: Any = None  # loo_stack's buffer, flat, for the widest chunk so far

    def _cast(self, x):
        return self.be.asarray(x, dtype=self.dtype)

    def _coldot(self, a, b):
        if self.be.name == "numpy":
            return np.einsum("ij,ij->j", a, b)
        return self.xp.sum(a * b, axis=0)

    def chunk(self, Yc_host: np.ndarray) -> _Chunk:
        """Project a centred chunk (float64 [n, c]) on the basis, in float64.

        ``Z = U^T Y``; for an incomplete basis (n > p) also ``R = Y - U Z``, the part of ``Y``
        no alpha can fit. Both in float64: the subtraction cancels when ``Y`` is nearly in
        ``span(U)``, and ``Z`` feeds the dual coefficients, which are ill-conditioned at
        small alpha.
        """
        xp = self.xp
        Y64 = self.be.asarray(Yc_host, dtype="float64")
        Z64 = xp.matmul(self.U64.T, Y64)
        R = None if self.complete else self._cast(Y64 - xp.matmul(self.U64, Z64))
        return _Chunk(self._cast(Y64), self._cast(Z64), Z64, R)

    def _matmul(self, A, B, out):
        if self.be.name == "numpy":
            return np.matmul(A, B, out=out)
        import torch

        return torch.matmul(A, B, out=out)

    def _uses_residual(self, a: int, criterion: str) -> bool:
        """Whether alpha ``a`` goes through the LOO residual form (see :meth:`_finish`)."""
        return criterion == "mse" or self.max_leverage[a] > 1.0 / 3.0

    def _operator(self, a: int, criterion: str):
        """The ``[n, r]`` matrix that multiplies ``Z`` for alpha index ``a`` (float64).

        Residual form: ``diag(1/d) U diag(g)``; prediction form: ``diag(1/d) U diag(h)``.
        ``g = alpha / (w + alpha)`` is formed in float64, so no two nearly equal numbers are
        subtracted even when the fit is nearly exact (small residuals, leverage near 1).
        """
        residual = self._uses_residual(a, criterion)
        weights = self.g[:, a] if residual else self.h[:, a]
        op = self.U64 * (weights[None, :] / self.d[:, a][:, None])
        if self._folded(criterion):
            if residual:  # y - e
                return self.U64 - op
            op -= (self.diag_h[:, a] / self.d[:, a])[:, None] * self.U64  # - diag(H/d) y
        return op

    def _folded(self, criterion: str) -> bool:
        """Whether the LOO predictions are one product ``operator Z``, with no pass over ``Y``.

        With a complete basis the centred targets are ``Y = U Z`` exactly, so the terms in ``Y``
        fold into the operator, formed in float64: ``(U - op) Z`` for the residual form's
        ``y - e``, ``(op - diag(H/d) U) Z`` for the prediction form. The two passes over the
        ``[n, c]`` values per alpha go, and the float32 product rounds the result by
        ``eps |operator| |Z|``, of the same order as the unfolded forms' own rounding.
        """
        return self.complete and criterion != "mse"

    def _finish(self, a: int, criterion: str, ch: _Chunk, e):
        """Turn ``e = operator(a) Z`` [n, c] into LOO residuals (``"mse"``) or predictions, in place.

        Residuals are ``diag(1/d) (R + U diag(g) Z)``. Rounding (relative ``eps``) costs about
        ``eps |y|`` in the residual form of the predictions (``y - e``) and
        ``eps |y| H_ii / (1 - H_ii)`` in the prediction form
        (``diag(1/d) U diag(h) Z - (diag(H)/d) * y``), which wins only at low leverage (where
        predictions are small and ``y - e`` would cancel).
        """
        if self._folded(criterion):
            return e
        if self._uses_residual(a, criterion):
            if ch.R is not None:
                e += self._cast(1.0 / self.d[:, a])[:, None] * ch.R
            if criterion != "mse":
                e *= -1.0
                e += ch.Y
            return e
        e -= self._cast(self.diag_h[:, a] / self.d[:, a])[:, None] * ch.Y
        return e

    def loo_stack(self, ch: _Chunk, criterion: str):
        """LOO residuals (``"mse"``) or predictions of every alpha, ``[n_alphas, n, c]``.

        One GEMM ``[n_alphas * n, r] x [r, c]`` for all alphas: a single tall product keeps BLAS
        at its full rate where a short ``[n, r] x [r, c]`` product per alpha did not (measured
        2-3x slower on 2 cores at n = 500, c ~ 2500).
        """
        A, n, c = self.alphas.size, self.n, ch.Z.shape[1]
        dtype, device = self.be.dtype(self.dtype), ch.Y.device
        ops = self._ops.get(criterion)
        if ops is None:  # the same for every chunk of targets
            ops = self.xp.empty((A * n, ch.Z.shape[0]), dtype=dtype, device=device)
            for a in range(A):  # one float64 [n, r] at a time, cast as it is stored
                ops[a * n : (a + 1) * n] = self._cast(self._operator(a, criterion))
            self._ops[criterion] = ops
        if self._stack is None or self._stack.shape[0] < A * n * c:
            self._stack = self.xp.empty((A * n * c,), dtype=dtype, device=device)
        # one buffer for every chunk: fresh ones cost page faults (the caller copies what it keeps)
        stack = self._stack[: A * n * c].reshape(A, n, c)
        self._matmul(ops, ch.Z, stack.reshape(A * n, c))
        for a in range(A):
            self._finish(a, criterion, ch, stack[a])
        return stack

    def _scores(self, stack, Yc, criterion: str) -> np.ndarray:
        """Every alpha's LOO score per target, [n_alphas, c], on the backend's device."""
        xp, n, A = self.xp, self.n, self.alphas.size
        scores = np.empty((A, Yc.shape[1]))
        if criterion == "pearson":
            s_y = xp.sum(Yc, axis=0)
            var_y = self._coldot(Yc, Yc) - s_y * s_y / n
        for a in range(A):
            if criterion == "mse":
                score = self._coldot(stack[a], stack[a]) / (-n)
            else:
                loo = stack[a]
                s_l = xp.sum(loo, axis=0)
                cov = self._coldot(loo, Yc) - s_l * s_y / n
                var_l = self._coldot(loo, loo) - s_l * s_l / n
                with np.errstate(invalid="ignore", divide="ignore"):
                    score = cov / xp.sqrt(var_l * var_y)
            scores[a] = self.be.to_numpy(score)
        return scores

    def _coefficients(self, best: np.ndarray, ch: _Chunk, out: np.ndarray) -> None:
        """Eigenbasis coefficients ``q_j = diag(1/(w + alpha_j)) z_j`` (the dual is ``U q_j``).

        float64 because ``1/(w + alpha)`` amplifies rounding at small alpha.
        """
        if self.be.name == "numpy":
            scale_chosen(self.inv, best, ch.Z64, out)
            return
        out[...] = self.be.to_numpy(self.inv[:, self.be.asarray(best)] * ch.Z64)

    def solve_chunk(
        self,
        Yc_host: np.ndarray,
        y_mean: np.ndarray,
        criterion: str,
        store_cv: bool,
        loo_out: np.ndarray,
        coef_out: np.ndarray,
    ) -> _ChunkResult:
        """LOO scores for all alphas, selection, and outputs at the chosen alphas.

        The per-alpha LOO residuals (MSE) or predictions (Pearson) of the chunk are kept in a
        stack [n_alphas, n, c], so the chosen ones are gathered rather than recomputed; the
        chunk size accounts for it.

        Parameters
        ----------
        Yc_host : np.ndarray, shape (n, c)
            Centred chunk of targets (float64).
        y_mean : np.ndarray, shape (c,)
            The training means taken out of ``Yc_host`` (added back to the LOO predictions).
        loo_out : np.ndarray, shape (n, c)
            Receives the LOO predictions at the chosen alphas (float64, with ``y_mean``).
        coef_out : np.ndarray, shape (r, c)
            Receives the eigenbasis coefficients at the chosen alphas (float64).
        """
        be = self.be
        ch = self.chunk(Yc_host)
        stack = self.loo_stack(ch, criterion)
        best, best_score = _select(self._scores(stack, ch.Y, criterion), criterion)
        if be.name == "numpy":  # one compiled pass from the stack into the float64 output
            take_chosen(stack, best, y_mean, loo_out, -1.0 if criterion == "mse" else 1.0)
            if criterion == "mse":  # y - e
                loo_out += Yc_host
        else:
            chosen = be.to_numpy(_take_alpha(stack, best, be))  # [n, c] in dtype
            if criterion == "mse":
                np.subtract(Yc_host, chosen, out=loo_out)
                loo_out += y_mean
            else:
                np.add(chosen, y_mean, out=loo_out)
        self._coefficients(best, ch, coef_out)
        cv = None
        if store_cv:
            cv = np.moveaxis(be.to_numpy(stack).astype(np.float64), 0, -1)
            if criterion == "mse":
                cv = Yc_host[:, :, None] - cv
        return _ChunkResult(best, best_score, cv)


def _finite_columns(Y: np.ndarray) -> np.ndarray:
    """Whether each column of ``Y`` [n, t] is all finite, shape (t,).

    A column sum in float64 is NaN or inf exactly when the column holds one (float32 values
    cannot overflow it), which spares an [n, t] boolean temporary; only columns whose float64
    values overflow the sum are checked value by value.
    """
    finite = np.isfinite(Y.sum(axis=0, dtype=np.float64))
    if Y.dtype == np.float64 and not finite.all():
        suspect = np.flatnonzero(~finite)
        finite[suspect] = np.isfinite(Y[:, suspect]).all(axis=0)
    return finite


def _select(scores: np.ndarray, criterion: str) -> tuple[np.ndarray, np.ndarray]:
    """Best alpha index per target (first maximum: ties go to the earliest alpha) and score."""
    scores[~np.isfinite(scores)] = -np.inf
    best = np.argmax(scores, axis=0)
    best_score = scores[best, np.arange(scores.shape[1])]
    best_score[np.isneginf(best_score)] = np.nan
    if criterion == "pearson":
        best_score = np.clip(best_score, -1.0, 1.0)
    return best, best_score


def _take_alpha(stack, best: np.ndarray, be: Backend):
    """``out[:, j] = stack[best[j], :, j]`` for a stack [A, n, c]."""
    if be.name == "numpy":
        return np.take_along_axis(stack, best[None, None, :], axis=0)[0]
    import torch

    idx = torch.as_tensor(best, device=stack.device).reshape(1, 1, -1).expand(1, *stack.shape[1:])
    return torch.gather(stack, 0, idx)[0]
