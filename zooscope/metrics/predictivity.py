"""The ``predictivity`` metric: per layer, per split, per (subject, region, time bin).

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

Its settings (``regression``, ``predictivity_splits``) enter the config hash only when it is scored.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from zooscope.benchmark import Benchmark, split_label
from zooscope.metrics.base import CeilingMethod, LayerContext, LayerScores, Metric, register_metric
from zooscope.metrics.ceilings import CEILING_COLUMNS, CeilingResult
from zooscope.neural.brainscore import ceiling_groups
from zooscope.rsa.predictivity import (
    cross_validation_splits,
    fit_predict,
    group_medians,
    internal_consistency,
    predictivity,
)

logger = logging.getLogger(__name__)

__all__ = [
    "INTERNAL_CONSISTENCY",
    "PREDICTIVITY",
    "PredictivityData",
    "internal_consistency_ceilings",
    "iter_internal_consistency",
    "predictivity_predictions",
    "score_predictivity",
]

NAME = "predictivity"
UNIT_SCORE_COLUMNS = ["subject", "roi", "metric", "split", "unit", "score"]
#: The ``method`` of the internal-consistency ceiling in the ``ceilings`` table.
PREDICTIVITY_CEILING_METHOD = "internal_consistency"


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
        With :class:`PredictivityData` prepared (``brain.prepared["predictivity"]``).
    config : ScoringConfig

    Returns
    -------
    rows : list of dict
        ``subject, roi, metric, split, score`` (median over the group's neurons, mean over CV splits).
    unit_scores : DataFrame
        Columns :data:`UNIT_SCORE_COLUMNS`: each neuron's r, averaged over CV splits.
    """
    rows: list[dict[str, Any]] = []
    units: list[pd.DataFrame] = []
    prepared: PredictivityData = brain.prepared[NAME]
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
                    "metric": NAME,
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
                        "metric": NAME,
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
) -> dict[str, tuple[float, Any]]:
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
        ``"subject|roi" -> (train score, callable)``; the callable returns the
        group's predicted test responses ``[n_test, n_units of the group]``. The regression runs
        at most once per layer, and only when some group keeps the layer.
    """
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
        out[label] = (score, functools.partial(predicted, columns))
    return out


class _quiet_mean:
    """Silence numpy's 'Mean of empty slice' for all-NaN neurons (kept as NaN)."""

    def __enter__(self) -> None:
        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._catch.__exit__(*exc)


def iter_internal_consistency(
    benchmark: Benchmark,
    config: Any,
    n_sims: int = 50,
    skip: Collection[str] = (),
    claim: Callable[[str], bool] | None = None,
) -> Iterator[CeilingResult]:
    """Brain-Score's internal-consistency ceiling of each group on the test images, one at a time.

    ``value`` = mean over the 10 repetition splits of the median corrected r; ``lower``/``upper`` =
    2.5/97.5 percentiles of the per-split medians. A group with fewer than 2 repetitions is logged
    and left out. ``n_sims`` is not used (the repetition splits are Brain-Score's); ``skip``
    names groups not to compute (e.g. already stored); ``claim``, asked with each group's label
    just before it is computed, skips the group when it answers False (a concurrent survey has it).
    """
    if config.profile == "brainscore":  # regions pooled over subjects, on every image
        groups, test = ceiling_groups(benchmark, config)
    else:
        groups, test = config.groups(benchmark), benchmark.splits[config.test_split]
    for label, units in groups.items():
        if label in set(skip) or (claim is not None and not claim(label)):
            continue
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
        row = {"subject": subject, "roi": roi, "method": PREDICTIVITY_CEILING_METHOD,
               "value": value, "lower": float(low), "upper": float(high)}  # fmt: skip
        logger.info("internal consistency %s: %.3f", label, value)
        yield CeilingResult(label, row=row, n_units=len(units))


def internal_consistency_ceilings(benchmark: Benchmark, config: Any) -> pd.DataFrame:
    """Every group's internal-consistency ceiling (:func:`iter_internal_consistency`) as one table.

    Returns
    -------
    DataFrame
        Columns ``subject, roi, method, value, lower, upper``.
    """
    rows = [result.row for result in iter_internal_consistency(benchmark, config)]
    return pd.DataFrame(rows, columns=CEILING_COLUMNS[:6])


INTERNAL_CONSISTENCY = CeilingMethod(
    PREDICTIVITY_CEILING_METHOD,
    power=1,
    compute=iter_internal_consistency,
    description="Brain-Score's split-half (over repetitions), Spearman-Brown corrected per-neuron "
    "consistency, on the test images",
)


class Predictivity(Metric):
    """Brain-Score's neural predictivity (cross-validated regression, median per-neuron r)."""

    name = NAME
    label = "predictivity"
    description = "Brain-Score's cross-validated regression on SRP features, median per-unit r"
    needs = frozenset({"srp", "responses", "splits"})
    stores = frozenset({"scores", "unit_predictions", "unit_scores"})
    ceiling = INTERNAL_CONSISTENCY
    settings = ("regression", "predictivity_splits")
    default_on = frozenset({"neural"})

    def prepare(
        self, benchmark: Any, splits: Mapping[str, np.ndarray], units: np.ndarray, config: Any
    ) -> PredictivityData:
        return PredictivityData.from_benchmark(
            benchmark, dict(splits), units, config.predictivity_splits
        )

    def score(self, layer: LayerContext) -> LayerScores:
        rows, units = score_predictivity(layer.features, layer.brain, layer.config)
        predictions = (
            predictivity_predictions(layer.features, layer.brain, layer.config, rows)
            if layer.keep_predictions
            else {}
        )
        return LayerScores(rows=rows, predictions=predictions, unit_scores=units)


PREDICTIVITY = register_metric(Predictivity())
