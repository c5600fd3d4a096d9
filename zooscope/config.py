"""The run's vocabulary: what determines a model's scores (hashed) and how to run (never hashed).

:class:`ScoringConfig` names every setting that changes a number; its hash keys the results
database and, with the profile, the feature cache. :class:`RunOptions` holds what never does
(device, batch size, memory budget), so a rerun on another machine resumes the same results.
Both sit above the libraries (``rsa``, ``zoo``, ``feature_extraction``, ``benchmark``), whose
choice lists they validate against, and below everything that runs, stores or reads a survey.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from zooscope._hashing import hash_json
from zooscope.benchmark import Benchmark
from zooscope.feature_extraction.layers import LAYER_POLICIES
from zooscope.metrics import default_metrics, metric_names, registered
from zooscope.neural.brainscore import ACTIVATION_DTYPES, BRAINSCORE_FIELDS, config_identity
from zooscope.profiles import PROFILES, get_profile
from zooscope.rsa.encoding import TRAIN_PREDICTIONS
from zooscope.rsa.predictivity import PREDICTIVITY_SPLITS, REGRESSIONS
from zooscope.zoo.sources.base import PREPROCESSING


@dataclass(frozen=True)
class ScoringConfig:
    """Everything that determines a model's scores (its hash keys the results).

    Execution settings that cannot change a number (device, batch size, memory budget) live in
    :class:`RunOptions` instead, so a rerun on another machine resumes the same results.
    """

    metrics: tuple[str, ...] = default_metrics()  # zooscope.metrics: cRSA, veRSA, encoding r
    subjects: tuple[str, ...] | None = None
    rois: tuple[str, ...] | None = None
    eps: float = 0.1
    n_components: int | None = None
    srp_seed: int = 0
    alphas: tuple[float, ...] = tuple(np.logspace(-1, 5, 7).tolist())
    criterion: str = "pearson"
    compare: str = "pearson"
    rsm_from: str = "full"
    layers: str | None = None  # regex: score only matching layer names (None: every layer)
    train_split: str = "train"
    test_split: str = "test"
    # Settings a profile names (zooscope.profiles); the defaults are profile "default".
    profile: str = "default"
    preprocessing: str = "library"  # zoo.sources.base.PREPROCESSING
    layer_policy: str = "all"  # feature_extraction.layers.LAYER_POLICIES
    srp_mode: str = "fast"  # "sklearn": SparseRandomProjection(k, random_state=srp_seed) per layer
    srp_upsample: bool = False  # project layers with p <= k too
    train_predictions: str = "loo"  # "loo_centred": LOO predictions without the voxel mean
    degenerate_z: float | None = None  # best-layer selection drops rows with z(test - train) below

    regression: str = (
        "ridge"  # predictivity only: ridge (exact, fast), pls or ridgecv (Brain-Score's)
    )
    predictivity_splits: str = "brainscore"  # predictivity only: brainscore or even-odd
    # Profile "brainscore" only (zooscope.neural.brainscore; kept out of other profiles' hashes).
    commit_on: tuple[str, ...] = ()  # commitment Benchmark files (their content enters the hash)
    pca_images: str | None = None  # folder of the layer-PCA images (its content enters the hash)
    pca_components: int = 1000
    commit_time_bin: str | None = None  # the commitment files' time bin (default: their only one)
    activations_dtype: str = "float32"  # float64: the parity fixture's

    def __post_init__(self) -> None:
        names = metric_names()
        unknown = [m for m in self.metrics if m not in names]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(names)}")
        choices = {
            "profile": tuple(PROFILES),
            "preprocessing": PREPROCESSING,
            "layer_policy": tuple(LAYER_POLICIES),
            "srp_mode": ("fast", "sklearn"),
            "train_predictions": TRAIN_PREDICTIONS,
            "regression": REGRESSIONS,
            "predictivity_splits": PREDICTIVITY_SPLITS,
            "activations_dtype": ACTIVATION_DTYPES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        fixed = get_profile(self.profile).settings.get("metrics")
        if self.profile == "brainscore" and tuple(self.metrics) != tuple(fixed):
            raise ValueError(
                f"profile brainscore scores {', '.join(fixed)} only, got metrics {list(self.metrics)}"
            )
        if self.pca_components < 1:
            raise ValueError(f"pca_components must be >= 1, got {self.pca_components}")

    @classmethod
    def from_profile(cls, name: str, **overrides: Any) -> ScoringConfig:
        """The config of profile ``name`` (:data:`~zooscope.profiles.PROFILES`).

        ``overrides`` set other fields (metrics, subjects, ROIs, a layer regex...); the profile's
        name stays on the config, and every setting enters its hash.
        """
        return cls(**{**get_profile(name).settings, **overrides, "profile": name})

    @classmethod
    def conwell2024(cls, **overrides: Any) -> ScoringConfig:
        """The published procedure of Conwell et al. (2024), step for step (``docs/profiles.md``)."""
        return cls.from_profile("conwell2024", **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Every field; a metric's own settings (:attr:`Metric.settings
        <zooscope.metrics.Metric.settings>`) only when it is scored, so configs (and the results
        they key) from before that metric existed keep their hash; the brainscore profile's
        settings only under that profile, as the identity of its files
        (:func:`zooscope.neural.brainscore.config_identity`: content hashes, not paths)."""
        out = asdict(self)
        for metric in registered():
            if metric.name not in self.metrics:
                for setting in metric.settings:
                    del out[setting]
        for name in BRAINSCORE_FIELDS:
            del out[name]
        if self.profile == "brainscore":
            out.update(config_identity(self))
        return out

    @property
    def hash(self) -> str:
        return hash_json(self.to_dict())

    def groups(self, benchmark: Benchmark) -> dict[str, np.ndarray]:
        """The benchmark's unit groups this config scores (its subjects and ROIs; all if None).

        Returns
        -------
        dict of str to ndarray of int64
            ``"<subject>|<roi>[|<time_bin>]"`` -> unit indices (:meth:`Benchmark.groups`).
        """
        subjects = None if self.subjects is None else benchmark.match_subjects(self.subjects)
        return benchmark.groups(subjects=subjects, rois=list(self.rois) if self.rois else None)


@dataclass(frozen=True)
class RunOptions:
    """How to run (never changes the numbers)."""

    device: str = "auto"
    batch_size: int = 32
    num_workers: int = 0
    memory_budget: int | str | None = None
    ridge_backend: str = "auto"
    progress: bool = True
    keep_predictions: bool = True  # store the best layer's per-unit test predictions
    # Keep every scored layer's feature-centred Gram matrix (layer CKA; results/grams.py). The
    # extraction counts each layer's n x n float64 in memory_budget while it accumulates; the
    # model then holds n (n + 1) / 2 float64 per scored layer until the client stores them.
    keep_grams: bool = False
    # Start each extraction pass after the first from a recorded block output where that is
    # bit-identical (feature_extraction/replay.py); off only to measure what it saves.
    replay: bool = True
