"""cRSA: the layer's exact RSM against each group's brain RSM, on the train and the test images.

Conwell et al. (2024): the Pearson RSM of the full activations (``rsm_from="full"``, or of the
SRP features with ``rsm_from="srp"``) compared with the group's brain RSM (``compare``, Pearson by
default) over the image pairs of each split. Divided by GSN's RSA noise ceiling.
"""

from __future__ import annotations

import numpy as np

from zooscope.benchmark import split_label
from zooscope.metrics.base import LayerContext, LayerScores, Metric, register_metric
from zooscope.metrics.ceilings import GSN_RSA
from zooscope.rsa import crsa

__all__ = ["CRSA"]


class ClassicalRSA(Metric):
    """Classical RSA of the layer's RSM with each group's brain RSM."""

    name = "crsa"
    label = "cRSA (r)"
    description = "the layer's exact RSM against the brain RSM of each group"
    needs = frozenset({"rsm", "brain_rsms", "splits"})
    stores = frozenset({"scores", "rsms"})
    ceiling = GSN_RSA
    default_on = frozenset({"fmri"})

    def score(self, layer: LayerContext) -> LayerScores:
        brain, out = layer.brain, LayerScores()
        model_train = layer.features.rsm[np.ix_(brain.train, brain.train)]
        model_test = layer.features.rsm[np.ix_(brain.test, brain.test)]
        for label, comparator in brain.comparators.items():
            subject, roi = split_label(label)
            scores = {
                "train": crsa(model_train, comparator["train"]),
                "test": crsa(model_test, comparator["test"]),
            }
            out.rows += [
                {"subject": subject, "roi": roi, "metric": self.name, "split": s, "score": v}
                for s, v in scores.items()
            ]
            out.test_rsms[label] = (scores["train"], model_test)
        return out


CRSA = register_metric(ClassicalRSA())
