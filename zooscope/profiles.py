"""Named scoring profiles: every setting that changes a number, under one name.

A profile is a set of :class:`~zooscope.pipeline.scoring.ScoringConfig` fields. Its name and
settings are part of the config (and so of the config hash that keys the results database and of
the feature-cache keys), so results of different profiles never mix and can share one database.

``default``
    zooscope's own choices: each library's own test-time transform (centre crop included), every
    distinct layer, the fast seeded projection (layers with ``p <= k`` kept as they are), honest
    leave-one-out train predictions (voxel mean included), best train layer over all rows.
``conwell2024``
    The published procedure of Conwell et al. (2024), step for step (see ``docs/profiles.md``):

    1. preprocessing without a centre crop, per source (:meth:`Source.conwell2024_transform
       <zooscope.zoo.sources.base.Source.conwell2024_transform>`);
    2. hooks on every non-container module, the root included, duplicates dropped by flattened
       values, only the second half of the layers scored
       (:data:`~zooscope.feature_extraction.layers.LAYER_POLICIES`);
    3. scikit-learn's ``SparseRandomProjection(k, random_state=0)`` for every layer, small ones
       projected up;
    4. train predictions are the leave-one-out predictions in the centred frame;
    5. cRSA on full features (as the default);
    6. before the best train layer is chosen, rows whose z-scored test - train difference
       (within a metric) is below -3.291 are dropped (:func:`zooscope.analyses.degenerate.best_layers`).
``brainscore``
    Brain-Score's benchmark number (brainscore-vision 2.4.2): each region's layer committed on a
    commitment benchmark with a 1,000-component layer PCA, stimuli placed on the model's screen,
    Brain-Score's preprocessing, PLS predictivity on all of the target's images, pooled over
    animals, internal-consistency ceiling (:mod:`zooscope.neural.brainscore`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

#: The z threshold of Conwell et al.'s degenerate-row filter (two-sided p < 0.001).
CONWELL_DEGENERATE_Z = -3.291


@dataclass(frozen=True)
class Profile:
    """A named set of scoring settings.

    Attributes
    ----------
    name : str
    description : str
    settings : mapping
        ``ScoringConfig`` field -> value; fields not named keep the config's defaults.
    """

    name: str
    description: str
    settings: Mapping[str, Any] = field(default_factory=dict)


PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        "default": Profile(
            "default",
            "zooscope's defaults: library transforms, every layer, fast SRP, honest LOO train predictions",
        ),
        "conwell2024": Profile(
            "conwell2024",
            "the published procedure of Conwell et al. (2024), step for step",
            MappingProxyType(
                {
                    "preprocessing": "conwell2024",
                    "layer_policy": "conwell2024",
                    "srp_mode": "sklearn",
                    "srp_upsample": True,
                    "train_predictions": "loo_centred",
                    "degenerate_z": CONWELL_DEGENERATE_Z,
                }
            ),
        ),
        "brainscore": Profile(
            "brainscore",
            "Brain-Score's benchmark number: layer commitment, screen placement, all images scored",
            MappingProxyType(
                {"metrics": ("predictivity",), "regression": "pls", "preprocessing": "brainscore"}
            ),
        ),
    }
)


def get_profile(name: str) -> Profile:
    """The profile called ``name`` (``KeyError`` naming the choices otherwise)."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}") from None
