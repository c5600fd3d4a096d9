"""The names of what zooscope scores: metrics, splits and ceiling methods.

One place for the vocabulary, so scoring, storage, importers and reports agree on it (storage
depends on scoring's words, never the other way round).
"""

from __future__ import annotations

#: Scores a survey can compute for one layer: classical RSA, voxel-encoding RSA (veRSA), the
#: mean per-unit Pearson r of the encoding model, and Brain-Score's neural predictivity
#: (cross-validated regression, median per-neuron r; see :mod:`zooscope.rsa.predictivity`).
METRICS: tuple[str, ...] = ("crsa", "versa", "encoding_r", "predictivity")

#: What a survey scores when no metric is named: the published NSD set (Conwell et al. 2024).
#: ``predictivity`` is opt-in there, so an NSD survey's cost does not grow silently.
DEFAULT_METRICS: tuple[str, ...] = ("crsa", "versa", "encoding_r")

#: What a survey scores on a *neural* benchmark (one with time bins or ``kind: neural``) when no
#: metric is named: Brain-Score's neural predictivity.
NEURAL_METRICS: tuple[str, ...] = ("predictivity",)

#: Metrics that compare representational similarity matrices (ceiled by the RSA noise ceiling).
RSA_METRICS: tuple[str, ...] = ("crsa", "versa")

#: The two halves of the stimulus set: layer selection on ``train``, reporting on ``test``.
SPLITS: tuple[str, ...] = ("train", "test")

#: The noise-ceiling method that matches the RSA metrics (GSN, split-half RSA of the denoised signal).
RSA_CEILING_METHOD = "gsn_rsa"

#: Brain-Score's split-half (over repetitions), Spearman-Brown corrected per-neuron consistency.
PREDICTIVITY_CEILING_METHOD = "internal_consistency"

#: The ceiling method of each ceiled metric, and how a score is ceiled: RSA scores as
#: ``score**2 / ceiling**2``, predictivity as Brain-Score's explained variance ``r**2 / ceiling``.
CEILING_METHODS: dict[str, str] = {
    "crsa": RSA_CEILING_METHOD,
    "versa": RSA_CEILING_METHOD,
    "predictivity": PREDICTIVITY_CEILING_METHOD,
}
