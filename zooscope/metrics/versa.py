"""veRSA: a ridge encoding model per unit, and the RSM of its test predictions against the brain's.

Conwell et al. (2024): the layer's SRP features are standardised on the train images, one ridge
regression per unit (alpha by exact leave-one-out on the train images,
:class:`~zooscope.rsa.RidgeGCV`) predicts every unit, and each group's RSM of the predictions is
compared with its brain RSM (:func:`zooscope.rsa.versa`). Train scores come from the exact
leave-one-out predictions. Divided by GSN's RSA noise ceiling.

The ridge fit (:func:`ridge_fit`) is shared with ``encoding_r``: one fit per layer serves both.
"""

from __future__ import annotations

import functools

import numpy as np

from zooscope.benchmark import split_label
from zooscope.metrics.base import LayerContext, LayerScores, Metric, register_metric
from zooscope.metrics.ceilings import GSN_RSA
from zooscope.rsa import versa
from zooscope.rsa.encoding import ALL_UNITS, VersaResult

__all__ = ["VERSA", "ridge_fit", "ridge_scores"]


def ridge_fit(layer: LayerContext) -> VersaResult:
    """The layer's ridge fit and its veRSA and encoding scores, made once per layer.

    Predicted test RSMs are always kept (veRSA scores them anyway); per-unit test predictions
    only when the context keeps predictions.
    """
    brain, config, srp = layer.brain, layer.config, layer.features.srp
    return layer.share(
        "ridge_fit",
        lambda: versa(
            srp[brain.train],
            srp[brain.test],
            brain.Y_train,
            brain.Y_test,
            brain.groups,
            alphas=np.asarray(config.alphas),
            criterion=config.criterion,
            brain_rsms=brain.comparators,
            compare=config.compare,
            backend=layer.ridge_backend,
            return_rsms=True,
            train_predictions=config.train_predictions,
            return_predictions=layer.keep_predictions,
        ),
    )


def ridge_scores(metric: str, layer: LayerContext) -> LayerScores:
    """``metric``'s rows (``versa`` or ``encoding_r``) of the shared ridge fit, its kept
    predictions and the layer's alpha-edge diagnostic."""
    result = ridge_fit(layer)
    mine = result.scores[result.scores["metric"] == metric]
    out = LayerScores(
        diagnostics={"alpha_edge_fraction": float(result.alpha_edge_fraction[ALL_UNITS])}
    )
    for row in mine.itertuples(index=False):
        subject, roi = split_label(row.group)
        out.rows.append(
            {"subject": subject, "roi": roi, "metric": metric, "split": row.split,
             "score": float(row.score)}
        )  # fmt: skip
    if layer.keep_predictions:
        train = mine[mine["split"] == "train"].set_index("group")["score"]
        for label, idx in layer.brain.groups.items():
            # a callable: the group's columns are copied only if this layer is kept
            value = functools.partial(np.take, result.predictions, idx, axis=1)
            out.predictions[label] = (float(train[label]), value)
    return out


class VoxelEncodingRSA(Metric):
    """veRSA: the RSM of a ridge encoding model's test predictions against each group's brain RSM."""

    name = "versa"
    label = "veRSA (r)"
    description = "RSM of per-unit ridge predictions (SRP features) against the brain RSM"
    needs = frozenset({"srp", "responses", "brain_rsms", "splits"})
    stores = frozenset({"scores", "rsms", "unit_predictions"})
    ceiling = GSN_RSA
    default_on = frozenset({"fmri"})

    def score(self, layer: LayerContext) -> LayerScores:
        out = ridge_scores(self.name, layer)
        result = ridge_fit(layer)
        if result.rsms:
            scores = result.scores
            train = scores[(scores["metric"] == self.name) & (scores["split"] == "train")]
            train = train.set_index("group")["score"]
            for label, predicted in result.rsms.items():
                out.test_rsms[label] = (float(train[label]), predicted)
        return out


VERSA = register_metric(VoxelEncodingRSA())
