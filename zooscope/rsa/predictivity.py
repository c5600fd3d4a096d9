"""Neural predictivity (Brain-Score's cross-regressed correlation) and its internal-consistency ceiling.

Predictivity: over cross-validation splits of the images (Brain-Score: 10 stratified 90 / 10
splits, ``random_state=1``), fit a regression from model features to every neuron on the train
images, predict the test images, Pearson r per neuron; a group's score is the **median over its
neurons**, then the **mean over splits**. Regressions as in Brain-Score: ``pls``
(``PLSRegression(n_components=25, scale=False)``), ``ridge`` (``Ridge(alpha=1)``), ``ridgecv``
(``RidgeCV`` over :data:`RIDGECV_ALPHAS`).

Ceiling: split the repetitions in half (``ShuffleSplit(10, train_size=0.5, random_state=1)`` over
the repetition index), average each half, Pearson r per neuron across images, Spearman-Brown
correct (``2 r / (1 + r)``), median over neurons, mean over splits. The ceiled score is the
explained variance ``r**2 / ceiling``.

Speed: the features enter every regression only through the span of their rows, so a layer's
features ``X`` [n, p] with ``p > n`` are first replaced by ``U S`` of their thin SVD ``X = U S V^T``
(an orthogonal change of feature basis, computed from the n x n Gram matrix). Ridge, PLS and
RidgeCV are all invariant to it, so the numbers do not change while each fit shrinks from p to at
most n columns; ``ridge`` is then solved in closed form for every split and neuron at once.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "PREDICTIVITY_SPLITS",
    "REGRESSIONS",
    "RIDGECV_ALPHAS",
    "cross_validation_splits",
    "fit_predict",
    "group_medians",
    "internal_consistency",
    "predictivity",
    "row_space",
]

#: Regressions of :func:`predictivity` (Brain-Score's names).
REGRESSIONS: tuple[str, ...] = ("pls", "ridge", "ridgecv")
#: Split schemes: Brain-Score's 10 stratified 90/10 splits, or one even/odd split.
PREDICTIVITY_SPLITS: tuple[str, ...] = ("brainscore", "even-odd")
#: Brain-Score's published alpha grid of its ``ridgecv`` regression.
RIDGECV_ALPHAS: tuple[float, ...] = tuple(
    float(a)
    for a in (
        *[0.01, 0.1, 0.5, 1.0],
        *np.linspace(1e1, 1e2, 4, endpoint=False),
        *np.linspace(1e2, 1e3, 18, endpoint=False),
        *np.linspace(1e3, 1e4, 18, endpoint=False),
        *np.linspace(1e4, 1e5, 18, endpoint=False),
        *np.linspace(1e5, 1e6, 18, endpoint=False),
        *np.linspace(1e6, 1e7, 19),
    )
)
_PLS_COMPONENTS = 25
_RIDGE_ALPHA = 1.0


def cross_validation_splits(
    n_images: int,
    stratify: Any = None,
    method: str = "brainscore",
    n_splits: int = 10,
    train_size: float = 0.9,
    seed: int = 1,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test image positions of each cross-validation split.

    Parameters
    ----------
    n_images : int
    stratify : array_like, shape (n_images,), optional
        Labels (Brain-Score: ``object_name``) for ``StratifiedShuffleSplit``; plain
        ``ShuffleSplit`` without them.
    method : {"brainscore", "even-odd"}
        ``even-odd``: one split, train = even positions, test = odd.
    n_splits, train_size, seed : int, float, int
        Brain-Score: 10, 0.9, 1.

    Returns
    -------
    list of (ndarray, ndarray)
        ``(train, test)`` int positions, ``n_splits`` of them (one for ``even-odd``).
    """
    from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

    if method == "even-odd":
        positions = np.arange(n_images)
        return [(positions[0::2], positions[1::2])]
    if method != "brainscore":
        raise ValueError(f"method must be one of {PREDICTIVITY_SPLITS}, got {method!r}")
    placeholder = np.zeros(n_images)
    if stratify is None:
        splitter = ShuffleSplit(n_splits=n_splits, train_size=train_size, random_state=seed)
        return list(splitter.split(placeholder))
    labels = np.asarray(stratify)
    if labels.shape != (n_images,):
        raise ValueError(f"stratify must have shape ({n_images},), got {labels.shape}")
    splitter = StratifiedShuffleSplit(n_splits=n_splits, train_size=train_size, random_state=seed)
    return list(splitter.split(placeholder, labels))


def row_space(X: Any, min_columns: int = 0) -> np.ndarray:
    """Features in an orthonormal basis of their row space: ``U S`` of ``X = U S V^T``.

    ``row_space(X) = X V`` for an orthonormal ``V`` [p, r], so every regression that is invariant
    to an orthogonal change of feature basis (ridge, PLS, RidgeCV, with or without intercept)
    gives the same predictions on it. Only worth it when ``p > n``; returns ``X`` otherwise.

    Parameters
    ----------
    X : array_like, shape (n, p)
    min_columns : int
        Pad with zero columns up to ``min(p, min_columns)`` (PLS needs ``n_components`` of them).

    Returns
    -------
    ndarray of float64, shape (n, r)
        ``r`` = numerical rank of ``X`` (at least ``min(p, min_columns)``).
    """
    X = np.asarray(X, dtype=np.float64)
    n, p = X.shape
    if p <= n:
        return X
    w, U = np.linalg.eigh(X @ X.T)
    keep = w > max(w[-1], 0.0) * n * np.finfo(np.float64).eps
    Z = U[:, keep] * np.sqrt(w[keep])
    width = min(p, min_columns)
    if Z.shape[1] < width:
        Z = np.hstack([Z, np.zeros((n, width - Z.shape[1]))])
    return Z


def _pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of matching columns of a, b [n, m] (NaN where either is constant)."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    denom = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=0) / denom
    return np.where(denom > 0, r, np.nan)


def _ridge_predict(
    Z_train: np.ndarray, Y_train: np.ndarray, Z_test: np.ndarray, alpha: float
) -> np.ndarray:
    """sklearn ``Ridge(alpha).fit(Z_train, Y_train).predict(Z_test)`` in closed form (intercept)."""
    z_mean, y_mean = Z_train.mean(axis=0), Y_train.mean(axis=0)
    Zc, Yc = Z_train - z_mean, Y_train - y_mean
    n, r = Zc.shape
    if r <= n:
        gram = Zc.T @ Zc
        gram.flat[:: r + 1] += alpha
        coef = np.linalg.solve(gram, Zc.T @ Yc)  # [r, units]
        return (Z_test - z_mean) @ coef + y_mean
    kernel = Zc @ Zc.T
    kernel.flat[:: n + 1] += alpha
    dual = np.linalg.solve(kernel, Yc)  # [n, units]
    return ((Z_test - z_mean) @ Zc.T) @ dual + y_mean


def _fit_predict(
    regression: str, Z_train: np.ndarray, Y_train: np.ndarray, Z_test: np.ndarray
) -> np.ndarray:
    if regression == "ridge":
        return _ridge_predict(Z_train, Y_train, Z_test, _RIDGE_ALPHA)
    if regression == "pls":
        from sklearn.cross_decomposition import PLSRegression
        from sklearn.exceptions import ConvergenceWarning

        model = PLSRegression(n_components=_PLS_COMPONENTS, scale=False)
        with warnings.catch_warnings():
            # NIPALS often stops at max_iter on some of the 25 components, as it does in
            # Brain-Score's own PLS: kept for parity, so nothing for the user to act on (the
            # survey would otherwise print it per split and layer).
            warnings.filterwarnings("ignore", category=ConvergenceWarning)
            model.fit(Z_train, Y_train)
        return np.asarray(model.predict(Z_test)).reshape(len(Z_test), -1)
    if regression == "ridgecv":
        from sklearn.linear_model import RidgeCV

        model = RidgeCV(alphas=RIDGECV_ALPHAS)
        return np.asarray(model.fit(Z_train, Y_train).predict(Z_test)).reshape(len(Z_test), -1)
    raise ValueError(f"regression must be one of {REGRESSIONS}, got {regression!r}")


def fit_predict(X_train: Any, Y_train: Any, X_test: Any, regression: str = "pls") -> np.ndarray:
    """Fit one of :func:`predictivity`'s regressions on all of ``X_train`` and predict ``X_test``.

    Parameters
    ----------
    X_train : array_like, shape (n_train, n_features)
    Y_train : array_like, shape (n_train, n_units)
    X_test : array_like, shape (n_test, n_features)
    regression : {"pls", "ridge", "ridgecv"}

    Returns
    -------
    ndarray of float64, shape (n_test, n_units)
        Equal to the sklearn estimator's ``fit(X_train, Y_train).predict(X_test)``: the features
        of both sets enter in one orthonormal basis of their joint row space (:func:`row_space`).
    """
    if regression not in REGRESSIONS:
        raise ValueError(f"regression must be one of {REGRESSIONS}, got {regression!r}")
    X_train, X_test = np.asarray(X_train), np.asarray(X_test)
    n_train = X_train.shape[0]
    Z = row_space(
        np.concatenate([X_train, X_test]), min_columns=_PLS_COMPONENTS if regression == "pls" else 0
    )
    return _fit_predict(regression, Z[:n_train], np.asarray(Y_train, dtype=np.float64), Z[n_train:])


def predictivity(
    X: Any,
    Y: Any,
    splits: list[tuple[np.ndarray, np.ndarray]],
    regression: str = "pls",
) -> np.ndarray:
    """Cross-validated Pearson r of every neuron (Brain-Score's ``CrossRegressedCorrelation``).

    Parameters
    ----------
    X : array_like, shape (n_images, n_features)
        Model features (zooscope: a layer's SRP features).
    Y : array_like, shape (n_images, n_units)
        Repetition-averaged responses.
    splits : list of (train, test) positions
        From :func:`cross_validation_splits`.
    regression : {"pls", "ridge", "ridgecv"}

    Returns
    -------
    ndarray of float64, shape (n_splits, n_units)
        Test-image Pearson r per split and neuron (NaN for a constant prediction or response).
        Aggregate with :func:`group_medians`.
    """
    if regression not in REGRESSIONS:
        raise ValueError(f"regression must be one of {REGRESSIONS}, got {regression!r}")
    Y = np.asarray(Y, dtype=np.float64)
    X = np.asarray(X)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"X [n, p] and Y [n, units] must share n; got {X.shape} and {Y.shape}")
    Z = row_space(X, min_columns=_PLS_COMPONENTS if regression == "pls" else 0)
    out = np.empty((len(splits), Y.shape[1]))
    for k, (train, test) in enumerate(splits):
        predicted = _fit_predict(regression, Z[train], Y[train], Z[test])
        out[k] = _pearson_columns(predicted, Y[test])
    return out


def group_medians(unit_values: np.ndarray, groups: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Median over a group's units per split, then mean over splits (NaN units/splits skipped).

    Parameters
    ----------
    unit_values : ndarray, shape (n_splits, n_units)
    groups : mapping of label to unit columns

    Returns
    -------
    dict
        label -> score (NaN when no unit of the group has a finite value).
    """
    out = {}
    for label, idx in groups.items():
        block = unit_values[:, np.asarray(idx)]
        finite = np.isfinite(block).any(axis=1)
        if not finite.any():
            out[label] = float("nan")
            continue
        out[label] = float(np.mean(np.nanmedian(block[finite], axis=1)))
    return out


@dataclass
class ConsistencyResult:
    """Outcome of :func:`internal_consistency`.

    Attributes
    ----------
    unit_r : ndarray, shape (n_splits, n_units)
        Spearman-Brown corrected split-half r per split and neuron.
    halves : list of (ndarray, ndarray)
        The repetition indices of the two halves of each split.
    """

    unit_r: np.ndarray
    halves: list[tuple[np.ndarray, np.ndarray]]


def internal_consistency(responses: Any, n_splits: int = 10, seed: int = 1) -> ConsistencyResult:
    """Brain-Score's internal-consistency ceiling per neuron (split-half over repetitions).

    Parameters
    ----------
    responses : array_like, shape (n_units, n_images, n_reps)
        Single-repetition responses, NaN where a repetition is missing (each half is averaged
        over its present repetitions).
    n_splits, seed : int
        Brain-Score: ``ShuffleSplit(n_splits=10, train_size=0.5, random_state=1)`` over the
        repetition index.

    Returns
    -------
    ConsistencyResult
        Aggregate ``unit_r`` with :func:`group_medians` for a group's ceiling.
    """
    from sklearn.model_selection import ShuffleSplit

    data = np.asarray(responses, dtype=np.float64)
    if data.ndim != 3 or data.shape[2] < 2:
        raise ValueError(f"responses must be [units, images, reps >= 2], got {data.shape}")
    splitter = ShuffleSplit(n_splits=n_splits, train_size=0.5, random_state=seed)
    halves = list(splitter.split(np.zeros(data.shape[2])))
    out = np.empty((len(halves), data.shape[0]))
    with np.errstate(invalid="ignore", divide="ignore"):
        for k, (first, second) in enumerate(halves):
            a = np.nanmean(data[:, :, first], axis=2).T  # [images, units]
            b = np.nanmean(data[:, :, second], axis=2).T
            r = _pearson_columns(a, b)
            out[k] = 2 * r / (1 + r)
    return ConsistencyResult(out, halves)
