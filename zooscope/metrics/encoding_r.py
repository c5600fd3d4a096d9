"""Encoding r: the mean per-unit Pearson r of veRSA's ridge predictions with the responses.

The same ridge fit as veRSA (:func:`zooscope.metrics.versa.ridge_fit`, one fit per layer for both);
NaN units (constant predictions) are skipped in the mean. Not ceiled.
"""

from __future__ import annotations

from zooscope.metrics.base import LayerContext, LayerScores, Metric, register_metric
from zooscope.metrics.versa import ridge_scores

__all__ = ["ENCODING_R"]


class EncodingR(Metric):
    """Mean per-unit Pearson r of the ridge encoding model (train: leave-one-out predictions)."""

    name = "encoding_r"
    label = "encoding r"
    description = "mean per-unit Pearson r of the ridge predictions (SRP features)"
    # brain_rsms: the shared ridge fit scores veRSA on the prepared brain RSMs too
    needs = frozenset({"srp", "responses", "brain_rsms", "splits"})
    stores = frozenset({"scores", "unit_predictions"})
    default_on = frozenset({"fmri"})

    def score(self, layer: LayerContext) -> LayerScores:
        return ridge_scores(self.name, layer)


ENCODING_R = register_metric(EncodingR())
