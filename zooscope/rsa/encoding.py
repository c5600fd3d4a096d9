"""Voxel-encoding RSA (veRSA) and per-unit encoding scores.

veRSA (Conwell et al. 2024): standardise model features on the training images, fit a ridge
regression from features to every brain unit at once (one alpha per unit, chosen by exact
leave-one-out on the training images, :class:`~zooscope.rsa.ridge.RidgeGCV`), predict the test
images, and for each group of units (subject x ROI) compare the RSM of the *predicted*
responses with the RSM of the measured responses.

Train scores are computed from the exact LOO predictions on the training images, never from
in-sample fits, so "best layer by train score" does not reward overfitting.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from zooscope._timing import stage
from zooscope.rsa.ridge import DEFAULT_ALPHAS, RidgeGCV
from zooscope.rsa.rsm import CompareMethod, RSMComparator, pearson_columns, rsm
from zooscope.rsa.vocabulary import SPLITS as _SPLITS

logger = logging.getLogger(__name__)

__all__ = [
    "ALL_UNITS",
    "TRAIN_PREDICTIONS",
    "VersaResult",
    "groups_to_indices",
    "standardize",
    "versa",
]

#: What the train scores are computed from: exact leave-one-out predictions ("loo"), or the same
#: predictions without each unit's training mean ("loo_centred"), as Conwell et al. (2024) stored
#: them (scikit-learn's RidgeCV kept LOO values in the centred frame).
TRAIN_PREDICTIONS = ("loo", "loo_centred")

#: Index label of the all-units entry of :attr:`VersaResult.alpha_edge_fraction`.
ALL_UNITS = "__all__"


@dataclass
class VersaResult:
    """Outcome of :func:`versa`.

    Attributes
    ----------
    scores : pd.DataFrame
        Tidy, columns ``[group, metric, split, score]``; metric in ``{"versa", "encoding_r"}``,
        split in ``{"train", "test"}``. ``encoding_r`` is the mean per-unit Pearson r (NaN
        units, i.e. constant predictions, are skipped). train = exact LOO predictions on the
        training images; test = predictions on the test images.
    alpha_ : np.ndarray, shape (n_units,)
        Chosen ridge penalty per unit.
    alpha_edge_fraction : pd.Series
        Fraction of units whose alpha is the smallest or largest grid value, indexed by group
        label, plus the fraction over all units under :data:`ALL_UNITS`.
    unit_r : np.ndarray, shape (n_units,)
        Test encoding r per unit.
    unit_r_train : np.ndarray, shape (n_units,)
        LOO (train) encoding r per unit.
    rsms : dict or None
        ``{group: predicted test RSM [n_test, n_test]}`` if ``return_rsms``.
    predictions : np.ndarray or None, shape (n_test, n_units)
        Predicted test responses of every unit if ``return_predictions``.
    """

    scores: pd.DataFrame
    alpha_: np.ndarray
    alpha_edge_fraction: pd.Series
    unit_r: np.ndarray
    unit_r_train: np.ndarray
    rsms: dict[Any, np.ndarray] | None = field(default=None)
    predictions: np.ndarray | None = field(default=None, repr=False)


def standardize(X_train: Any, X_test: Any) -> tuple[np.ndarray, np.ndarray]:
    """Z-score features with the training images' mean and standard deviation.

    Features that are constant on the training images (standard deviation 0, or at rounding
    level: ``std <= 10 * eps * |mean|``) are only centred, so no NaN/inf appears.

    Parameters
    ----------
    X_train : array-like, shape (n_train, p)
    X_test : array-like, shape (n_test, p)

    Returns
    -------
    X_train_std, X_test_std : np.ndarray, float64, shapes (n_train, p) and (n_test, p)
    """
    X_train_std, X_test_std, _ = _standardize(X_train, X_test)
    return X_train_std, X_test_std


def _standardize(X_train: Any, X_test: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`standardize`, plus the mask [p] of features constant on the training images."""
    X_train = np.asarray(X_train, dtype=np.float64)
    X_test = np.asarray(X_test, dtype=np.float64)
    if X_train.ndim != 2 or X_test.ndim != 2 or X_train.shape[1] != X_test.shape[1]:
        raise ValueError(
            f"X_train and X_test must be 2-D with the same number of features, "
            f"got {X_train.shape} and {X_test.shape}"
        )
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    constant = std <= 10 * np.finfo(np.float64).eps * np.abs(mean)
    std[constant] = 1.0
    return (X_train - mean) / std, (X_test - mean) / std, constant


def groups_to_indices(groups: Any, n_units: int) -> dict[Any, np.ndarray]:
    """Normalise a unit grouping to ``{label: int index array}``.

    Parameters
    ----------
    groups : array-like, shape (n_units,), or mapping
        One hashable label per unit (groups in order of first appearance), or a mapping
        ``{label: indices or boolean mask}`` (units may then belong to several groups).
    n_units : int

    Returns
    -------
    dict
    """
    if isinstance(groups, Mapping):
        out = {}
        for label, idx in groups.items():
            idx = np.asarray(idx)
            if idx.dtype == bool:
                if idx.shape != (n_units,):
                    raise ValueError(
                        f"boolean mask for group {label!r} must have shape ({n_units},)"
                    )
                idx = np.flatnonzero(idx)
            elif idx.size and not np.issubdtype(idx.dtype, np.integer):
                raise ValueError(f"indices of group {label!r} must be integers, got {idx.dtype}")
            idx = idx.astype(np.intp).ravel()
            if idx.size and (idx.min() < 0 or idx.max() >= n_units):
                raise ValueError(f"indices of group {label!r} out of range [0, {n_units})")
            out[label] = idx
    else:
        labels = np.asarray(groups)
        if labels.shape != (n_units,):
            raise ValueError(
                f"groups must have one label per unit ({n_units}), got shape {labels.shape}"
            )
        codes, uniques = pd.factorize(labels)
        out = {label: np.flatnonzero(codes == k) for k, label in enumerate(uniques)}
    for label, idx in out.items():
        if idx.size < 2:
            raise ValueError(f"group {label!r} has {idx.size} unit(s); an RSM needs at least 2")
    return out


def _brain_comparator(brain_rsms, label, split, Y, method) -> RSMComparator:
    if brain_rsms is None:
        return RSMComparator(rsm(Y, dtype="float64"), method)
    try:
        ref = brain_rsms[label][split]
    except KeyError as err:
        raise KeyError(f"brain_rsms has no entry [{label!r}][{split!r}]") from err
    if isinstance(ref, RSMComparator):
        if ref.method != method:
            raise ValueError(
                f"brain_rsms[{label!r}][{split!r}] compares by {ref.method!r}, not {method!r}"
            )
        return ref
    return RSMComparator(ref, method)


def versa(
    X_train: Any,
    X_test: Any,
    Y_train: Any,
    Y_test: Any,
    groups: Any,
    alphas: Any = DEFAULT_ALPHAS,
    criterion: str = "pearson",
    brain_rsms: Mapping | None = None,
    compare: CompareMethod = "pearson",
    backend: str = "numpy",
    return_rsms: bool = False,
    edge_warning: float = 0.2,
    train_predictions: str = "loo",
    return_predictions: bool = False,
) -> VersaResult:
    """veRSA and encoding scores of one model layer.

    Parameters
    ----------
    X_train, X_test : array-like, shapes (n_train, p) and (n_test, p)
        Model features (e.g. sparse random projections); standardised with training statistics.
    Y_train, Y_test : array-like, shapes (n_train, n_units) and (n_test, n_units)
        Trial-averaged brain responses.
    groups : array-like, shape (n_units,), or mapping ``{label: int indices}``
        Unit groups (subject x ROI); see :func:`groups_to_indices`.
    alphas : array-like, default=np.logspace(-1, 5, 7)
    criterion : {"pearson", "mse"}, default="pearson"
        LOO selection criterion of :class:`RidgeGCV` (Conwell et al. 2024 used Pearson r).
    brain_rsms : mapping, optional
        ``{label: {"train": RSM, "test": RSM}}``; RSMs square, upper triangles, or
        :class:`RSMComparator` (prepared once, reused across layers and models). Computed from
        ``Y[:, group]`` when None.
    compare : {"pearson", "spearman", "kendall"}, default="pearson"
        How predicted and brain RSMs are compared.
    backend : {"numpy", "torch", "torch_cuda", "auto"}, default="numpy"
    return_rsms : bool, default=False
        Also return the predicted test RSM of every group.
    edge_warning : float, default=0.2
        Log (at debug level) when more than this fraction of units (in any group, or overall)
        chose the smallest or largest alpha; ``alpha_edge_fraction`` of the result holds the
        fractions, and the survey reports them per model.
    train_predictions : {"loo", "loo_centred"}, default="loo"
        Train scores from the exact LOO predictions, or from the LOO predictions minus each
        unit's training mean (Conwell et al. 2024). Per-unit r is the same either way; the
        predicted RSM, and so the train veRSA, is not (adding a per-unit offset changes the
        correlation between two images' predicted patterns).
    return_predictions : bool, default=False
        Also return the predicted test responses of every unit (NaN for a constant layer).

    Returns
    -------
    VersaResult
        All scores NaN (and no RSMs) when every feature is constant on the training images:
        such a layer carries no information, yet the leave-one-out intercept alone (the mean of
        the other n - 1 images, ``(S - y_i) / (n - 1)``) mirrors the brain RSM and would earn a
        high train veRSA, winning layer selection.
    """
    Xtr, Xte, constant = _standardize(X_train, X_test)
    Y_train, Y_test = _check_responses(Y_train, Y_test, Xtr, Xte)
    index = groups_to_indices(groups, Y_train.shape[1])
    if constant.all():
        logger.debug("veRSA: every feature is constant on the training images; scores are NaN")
        return _constant_layer(index, Y_test, return_rsms, return_predictions)
    if train_predictions not in TRAIN_PREDICTIONS:
        raise ValueError(
            f"train_predictions must be one of {TRAIN_PREDICTIONS}, got {train_predictions!r}"
        )
    with stage("ridge"):
        model = RidgeGCV(alphas=alphas, criterion=criterion, backend=backend).fit(Xtr, Y_train)
        loo = model.loo_predictions_
        if train_predictions == "loo_centred":
            loo = loo - model.y_mean_
        pred = {"train": loo, "test": model.predict(Xte)}
    actual = {"train": Y_train, "test": Y_test}
    unit_r = {split: pearson_columns(pred[split], actual[split]) for split in _SPLITS}
    scores, rsms = _group_scores(
        index, pred, actual, unit_r, brain_rsms, compare, backend, return_rsms
    )
    return VersaResult(
        scores=scores,
        alpha_=model.alpha_,
        alpha_edge_fraction=_alpha_edges(model, index, edge_warning),
        unit_r=unit_r["test"],
        unit_r_train=unit_r["train"],
        rsms=rsms,
        predictions=pred["test"] if return_predictions else None,
    )


def _check_responses(
    Y_train: Any, Y_test: Any, Xtr: np.ndarray, Xte: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The responses as arrays, ``ValueError`` unless their shapes match the features'."""
    Y_train = np.asarray(Y_train)
    Y_test = np.asarray(Y_test)
    if Y_train.ndim != 2 or Y_test.ndim != 2 or Y_train.shape[1] != Y_test.shape[1]:
        raise ValueError(
            f"Y_train and Y_test must be 2-D (images, units) with the same units, "
            f"got {Y_train.shape} and {Y_test.shape}"
        )
    if Y_train.shape[0] != Xtr.shape[0] or Y_test.shape[0] != Xte.shape[0]:
        raise ValueError(
            f"image counts differ: X_train {Xtr.shape[0]} vs Y_train {Y_train.shape[0]}, "
            f"X_test {Xte.shape[0]} vs Y_test {Y_test.shape[0]}"
        )
    return Y_train, Y_test


def _constant_layer(
    index: dict[Any, np.ndarray], Y_test: np.ndarray, return_rsms: bool, return_predictions: bool
) -> VersaResult:
    """The all-NaN result of a layer whose every feature is constant on the training images."""
    n_units = Y_test.shape[1]
    nan = np.full(n_units, np.nan)
    scores = pd.DataFrame(
        [
            (label, m, split, np.nan)
            for label in index
            for m in ("versa", "encoding_r")
            for split in _SPLITS
        ],
        columns=["group", "metric", "split", "score"],
    )
    edge = pd.Series(dict.fromkeys([*index, ALL_UNITS], np.nan), name="alpha_edge_fraction")
    predictions = np.full(Y_test.shape, np.nan) if return_predictions else None
    return VersaResult(scores, nan, edge, nan, nan.copy(), {} if return_rsms else None, predictions)


def _group_scores(
    index: dict[Any, np.ndarray],
    pred: dict[str, np.ndarray],
    actual: dict[str, np.ndarray],
    unit_r: dict[str, np.ndarray],
    brain_rsms: Mapping | None,
    compare: CompareMethod,
    backend: str,
    return_rsms: bool,
) -> tuple[pd.DataFrame, dict[Any, np.ndarray] | None]:
    """veRSA and encoding r of every group and split, and the predicted test RSMs if asked."""
    rows = []
    rsms = {} if return_rsms else None
    for label, idx in index.items():
        for split in _SPLITS:
            pred_rsm = rsm(pred[split][:, idx], backend=backend)
            brain = _brain_comparator(brain_rsms, label, split, actual[split][:, idx], compare)
            rows.append((label, "versa", split, brain.score(pred_rsm)))
            r = unit_r[split][idx]
            rows.append(
                (
                    label,
                    "encoding_r",
                    split,
                    float(np.nanmean(r)) if np.isfinite(r).any() else np.nan,
                )
            )
            if rsms is not None and split == "test":
                rsms[label] = pred_rsm
    return pd.DataFrame(rows, columns=["group", "metric", "split", "score"]), rsms


def _alpha_edges(model: RidgeGCV, index: dict[Any, np.ndarray], edge_warning: float) -> pd.Series:
    """Fraction of units whose alpha is the grid's smallest or largest, per group and overall."""
    grid = np.asarray(model.alphas_)
    on_edge = (model.alpha_ == grid.min()) | (model.alpha_ == grid.max())
    edge = {label: float(on_edge[idx].mean()) for label, idx in index.items()}
    edge[ALL_UNITS] = float(on_edge.mean())
    edge_series = pd.Series(edge, name="alpha_edge_fraction")
    worst = edge_series.idxmax()
    if edge_series[worst] > edge_warning:
        # Per layer this is detail (the survey sums it up per model); at debug level.
        logger.debug(
            "veRSA: %.0f%% of units in %r chose an alpha at the edge of the grid [%g, %g] "
            "(%.0f%% overall)",
            100 * edge_series[worst],
            worst,
            grid.min(),
            grid.max(),
            100 * edge[ALL_UNITS],
        )
    return edge_series
