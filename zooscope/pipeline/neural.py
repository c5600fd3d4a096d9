"""The ``predictivity`` metric in a survey: per layer, per split, per (subject, region, time bin).

For each benchmark split (``train`` = the commitment images, ``test`` = held out) the layer's SRP
features of that split's images are scored by Brain-Score's cross-validated regression *within*
the split (:func:`zooscope.rsa.predictivity.predictivity`): ``brainscore`` = 10 stratified 90/10
splits (by the image table's ``object_name`` when every object has two images in the split),
``even-odd`` = one split of even/odd positions. A region's committed layer is the best on
``train``; its ``test`` score is reported. The internal-consistency ceiling is computed on the
``test`` images.

Stored unit predictions (:func:`predictivity_predictions`, kept for the committed layer of each
group by :mod:`zooscope.pipeline.predictions`) are made differently from the score: the
configured regression is **fit on the commitment images** (all of ``train``) and **predicts the
held-out images** (``test``), one prediction per test image, so a unique-variance analysis gets a
full ``[n_test, n_units]`` matrix. The predictivity score instead cross-validates *within* each
split, so these predictions do not reproduce the stored score (the veRSA/encoding predictions do).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from zooscope.benchmark import Benchmark
from zooscope.rsa.predictivity import (
    cross_validation_splits,
    fit_predict,
    group_medians,
    internal_consistency,
    predictivity,
)
from zooscope.rsa.vocabulary import PREDICTIVITY_CEILING_METHOD

logger = logging.getLogger(__name__)

__all__ = [
    "PredictivityData",
    "default_metrics",
    "internal_consistency_ceilings",
    "is_neural",
    "missing_ceilings",
    "predictivity_predictions",
    "score_predictivity",
]

UNIT_SCORE_COLUMNS = ["subject", "roi", "metric", "split", "unit", "score"]


def is_neural(benchmark: Benchmark) -> bool:
    """A neural benchmark (time bins, or ``kind: neural`` in its attributes)."""
    return bool(benchmark.time_bins) or benchmark.attrs.get("kind") == "neural"


def _stratify(labels: np.ndarray | None, positions: np.ndarray) -> np.ndarray | None:
    if labels is None:
        return None
    subset = labels[positions]
    _, counts = np.unique(subset, return_counts=True)
    if counts.min() < 2:
        logger.info("an object has < 2 images in a split: unstratified ShuffleSplit instead")
        return None
    return subset


@dataclass
class PredictivityData:
    """Cross-validation splits of each benchmark split, prepared once per benchmark and config.

    Attributes
    ----------
    cv : dict
        ``"train"``/``"test"`` -> list of (train, test) positions *within* that split's images.
    units : ndarray of int64
        Benchmark unit index of each response column of :class:`BrainData`.
    """

    cv: dict[str, list[tuple[np.ndarray, np.ndarray]]]
    units: np.ndarray

    @classmethod
    def from_benchmark(
        cls,
        benchmark: Benchmark,
        split_positions: dict[str, np.ndarray],
        units: np.ndarray,
        method: str,
    ) -> PredictivityData:
        images = benchmark.image_table
        labels = images["object_name"].astype(str).to_numpy() if "object_name" in images else None
        cv = {
            name: cross_validation_splits(
                len(positions), stratify=_stratify(labels, positions), method=method
            )
            for name, positions in split_positions.items()
        }
        return cls(cv=cv, units=np.asarray(units, dtype=np.int64))


def score_predictivity(
    features: Any, brain: Any, config: Any
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Predictivity of one layer on both splits.

    Parameters
    ----------
    features : LayerFeatures
        Needs ``srp`` [n_images, k].
    brain : BrainData
        With ``predictivity`` prepared.
    config : ScoringConfig

    Returns
    -------
    rows : list of dict
        ``subject, roi, metric, split, score`` (median over the group's neurons, mean over CV splits).
    unit_scores : DataFrame
        Columns :data:`UNIT_SCORE_COLUMNS`: each neuron's r, averaged over CV splits.
    """
    from zooscope.pipeline.scoring import split_label

    rows: list[dict[str, Any]] = []
    units: list[pd.DataFrame] = []
    prepared: PredictivityData = brain.predictivity
    for split, positions, Y in (
        ("train", brain.train, brain.Y_train),
        ("test", brain.test, brain.Y_test),
    ):
        unit_r = predictivity(features.srp[positions], Y, prepared.cv[split], config.regression)
        with np.errstate(invalid="ignore"), _quiet_mean():
            per_unit = np.nanmean(unit_r, axis=0)
        for label, score in group_medians(unit_r, brain.groups).items():
            subject, roi = split_label(label)
            rows.append(
                {
                    "subject": subject,
                    "roi": roi,
                    "metric": "predictivity",
                    "split": split,
                    "score": score,
                }
            )
            columns = brain.groups[label]
            units.append(
                pd.DataFrame(
                    {
                        "subject": subject,
                        "roi": roi,
                        "metric": "predictivity",
                        "split": split,
                        "unit": prepared.units[columns],
                        "score": per_unit[columns],
                    }
                )
            )
    frame = (
        pd.concat(units, ignore_index=True) if units else pd.DataFrame(columns=UNIT_SCORE_COLUMNS)
    )
    return rows, frame


def predictivity_predictions(
    features: Any, brain: Any, config: Any, rows: list[dict[str, Any]]
) -> dict[tuple[str, str], tuple[float, Any]]:
    """Held-out predictions of one layer, offered per group with its train-split predictivity.

    Parameters
    ----------
    features : LayerFeatures
        Needs ``srp`` [n_images, k].
    brain : BrainData
    config : ScoringConfig
        Its ``regression`` is fit on all ``train`` images and predicts the ``test`` images.
    rows : list of dict
        The layer's :func:`score_predictivity` rows (their ``train`` scores rank the layers).

    Returns
    -------
    dict
        ``("predictivity", "subject|roi") -> (train score, callable)``; the callable returns the
        group's predicted test responses ``[n_test, n_units of the group]``. The regression runs
        at most once per layer, and only when some group keeps the layer.
    """
    from zooscope.pipeline.scoring import split_label

    cached: list[np.ndarray] = []

    def predicted(columns: np.ndarray) -> np.ndarray:
        if not cached:
            cached.append(
                fit_predict(
                    features.srp[brain.train], brain.Y_train, features.srp[brain.test],
                    config.regression,
                )
            )  # fmt: skip
        return cached[0][:, columns]

    train = {(row["subject"], row["roi"]): row["score"] for row in rows if row["split"] == "train"}
    out = {}
    for label, columns in brain.groups.items():
        score = train.get(split_label(label), float("nan"))
        out[("predictivity", label)] = (score, functools.partial(predicted, columns))
    return out


class _quiet_mean:
    """Silence numpy's 'Mean of empty slice' for all-NaN neurons (kept as NaN)."""

    def __enter__(self) -> None:
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._catch.__exit__(*exc)


def internal_consistency_ceilings(
    benchmark: Benchmark,
    config: Any,
    groups: dict[str, np.ndarray] | None = None,
    images: np.ndarray | None = None,
) -> pd.DataFrame:
    """Brain-Score's internal-consistency ceiling of every group on the test images.

    Parameters
    ----------
    benchmark : Benchmark
    config : ScoringConfig
    groups : dict, optional
        ``"subject|roi"`` -> units (default: the config's subject x ROI groups).
    images : ndarray of int, optional
        Image positions (default: the config's test split).

    Returns
    -------
    DataFrame
        Columns ``subject, roi, method, value, lower, upper``: ``value`` = mean over the 10
        repetition splits of the median corrected r; ``lower``/``upper`` = 2.5/97.5 percentiles
        of the per-split medians.
    """
    from zooscope.pipeline.scoring import _subjects, split_label

    if groups is None:
        groups = benchmark.groups(
            subjects=_subjects(benchmark, config.subjects),
            rois=list(config.rois) if config.rois else None,
        )
    test = benchmark.splits[config.test_split] if images is None else images
    rows = []
    for label, units in groups.items():
        data = benchmark.responses(units, test)
        if data.shape[2] < 2:
            logger.warning(
                "group %s has fewer than 2 repetitions: no internal-consistency ceiling", label
            )
            continue
        unit_r = internal_consistency(data).unit_r
        value = group_medians(unit_r, {label: np.arange(len(units))})[label]
        with _quiet_mean():
            per_split = np.nanmedian(unit_r, axis=1)
        low, high = np.nanpercentile(per_split, [2.5, 97.5])
        subject, roi = split_label(label)
        rows.append(
            {"subject": subject, "roi": roi, "method": PREDICTIVITY_CEILING_METHOD,
             "value": value, "lower": float(low), "upper": float(high)}
        )  # fmt: skip
        logger.info("internal consistency %s: %.3f", label, value)
    return pd.DataFrame(rows, columns=["subject", "roi", "method", "value", "lower", "upper"])


def missing_ceilings(
    benchmark: Benchmark, config: Any, stored: pd.DataFrame
) -> pd.DataFrame | None:
    """The internal-consistency ceilings a predictivity survey needs and ``stored`` lacks.

    The default groups (subject x ROI, test images), or under the brainscore profile the
    regions pooled over subjects on every image (:func:`zooscope.neural.brainscore.ceiling_groups`);
    store the result with ``write_ceilings(..., groups_only=True)``. None when none is missing.
    """
    from zooscope.pipeline.scoring import _subjects, split_label

    images = None
    if config.profile == "brainscore":
        from zooscope.neural.brainscore import ceiling_groups

        groups, images = ceiling_groups(benchmark, config)
    else:
        groups = benchmark.groups(
            subjects=_subjects(benchmark, config.subjects),
            rois=list(config.rois) if config.rois else None,
        )
    rows = stored[stored["method"] == PREDICTIVITY_CEILING_METHOD]
    have = set(zip(rows["subject"].astype(str), rows["roi"].astype(str), strict=True))
    groups = {label: units for label, units in groups.items() if split_label(label) not in have}
    if not groups:
        return None
    return internal_consistency_ceilings(benchmark, config, groups=groups, images=images)


def default_metrics(benchmark: Benchmark | str | Any) -> tuple[str, ...]:
    """Metrics of a survey that names none: predictivity on a neural benchmark, else the NSD set.

    Parameters
    ----------
    benchmark : Benchmark or path
    """
    from zooscope.rsa.vocabulary import DEFAULT_METRICS, NEURAL_METRICS

    bench = benchmark if isinstance(benchmark, Benchmark) else Benchmark.open(benchmark)
    return NEURAL_METRICS if is_neural(bench) else DEFAULT_METRICS
