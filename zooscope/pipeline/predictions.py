"""Keep each model's best-layer per-unit test predictions for cross-model analyses.

Metrics that predict units (veRSA's ridge and its encoding r; Brain-Score-style predictivity)
produce, at every layer, predicted test responses ``[n_test, n_units]`` of each unit group. Scoring
keeps, per (metric, group), those of the layer with the best *train* score (the layer
:meth:`~zooscope.results.db.ResultsDB.best_layer_scores` selects), and the survey stores them with
the measured test responses, so unique-variance analyses (:mod:`zooscope.analyses.unique_variance`)
need no re-extraction. Stored in float64: recomputing a veRSA or encoding score from them gives the
stored score. ``predictivity`` predictions are fit on the commitment (``train``) images and predict
the held-out images, while its score cross-validates within each split
(:func:`zooscope.metrics.predictivity.predictivity_predictions`), so they do not reproduce the score.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from zooscope.benchmark import split_label
from zooscope.pipeline.brain import BrainData
from zooscope.rsa.selection import better_layer

__all__ = ["BestPredictions", "KeepBest", "observed_responses"]


class KeepBest:
    """Keep, per (metric, group), a value of the layer with the best train score so far.

    Layers are offered in layer order; :func:`zooscope.rsa.selection.better_layer` (the one
    best-layer rule) decides whether a layer replaces the kept one.

    Parameters
    ----------
    prepare : callable
        Turns an offered value into the kept one (a copy, a triangle, ...); called only for a
        new best, after resolving a callable value (which defers computing it).
    """

    def __init__(self, prepare: Callable[[Any], Any]) -> None:
        self.prepare = prepare
        self.best: dict[tuple[str, str], tuple[float, str, Any]] = {}

    def offer(self, metric: str, group: str, train_score: float, layer: str, value: Any) -> None:
        current = self.best.get((metric, group))
        if better_layer(train_score, None if current is None else current[0]):
            value = value() if callable(value) else value
            self.best[(metric, group)] = (train_score, layer, self.prepare(value))


class BestPredictions(KeepBest):
    """The best layer's predicted test responses ``[n_test, n_units]`` per (metric, group)."""

    def __init__(self) -> None:
        super().__init__(lambda value: np.array(value, dtype=np.float64))

    def frame(self) -> pd.DataFrame:
        """``metric, subject, roi, layer_name, split, prediction`` (ResultsDB.write_model's input)."""
        rows = []
        for (metric, group), (_score, layer, prediction) in self.best.items():
            subject, roi = split_label(group)
            rows.append((metric, subject, roi, layer, "test", prediction))
        return pd.DataFrame(
            rows, columns=["metric", "subject", "roi", "layer_name", "split", "prediction"]
        )


def observed_responses(brain: BrainData) -> pd.DataFrame:
    """The measured test responses of every group, as the predictions are scored against them.

    Returns
    -------
    DataFrame
        ``subject, roi, split, response``; ``response`` is ``[n_test, n_units]`` (float32) with the
        units in the group's order (:meth:`ResultsDB.write_responses`'s input).
    """
    rows = []
    for label, idx in brain.groups.items():
        subject, roi = split_label(label)
        rows.append((subject, roi, "test", brain.Y_test[:, idx]))
    return pd.DataFrame(rows, columns=["subject", "roi", "split", "response"])
