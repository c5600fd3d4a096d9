"""The names of what zooscope scores: metrics, splits and ceiling methods.

One place for the vocabulary, so scoring, storage, importers and reports agree on it (storage
depends on scoring's words, never the other way round).
"""

from __future__ import annotations

#: Scores a survey can compute for one layer: classical RSA, voxel-encoding RSA (veRSA) and the
#: mean per-unit Pearson r of the encoding model.
METRICS: tuple[str, ...] = ("crsa", "versa", "encoding_r")

#: Metrics that compare representational similarity matrices (ceiled by the RSA noise ceiling).
RSA_METRICS: tuple[str, ...] = ("crsa", "versa")

#: The two halves of the stimulus set: layer selection on ``train``, reporting on ``test``.
SPLITS: tuple[str, ...] = ("train", "test")

#: The noise-ceiling method that matches the RSA metrics (GSN, split-half RSA of the denoised signal).
RSA_CEILING_METHOD = "gsn_rsa"
