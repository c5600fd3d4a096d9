"""Score one model against a benchmark: every layer, cRSA + veRSA + encoding r, per subject x ROI.

cRSA on full-feature RSMs; veRSA on sparse random projections (eps=0.1, seed 0) with per-voxel
ridge over logspace(-1, 5, 7) chosen by exact leave-one-out Pearson r on the training images;
best layer chosen by its train score. The defaults differ from the published procedure of Conwell
et al. (2024) in a few documented settings; ``ScoringConfig.conwell2024()`` is that procedure
step for step (:mod:`zooscope.pipeline.profiles`, ``docs/profiles.md``).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from zooscope._hashing import hash_json
from zooscope._timing import stage
from zooscope.benchmark import Benchmark
from zooscope.pipeline.predictions import BestPredictions, KeepBest
from zooscope.rsa import RSMComparator, crsa, rsm, upper_triangle, versa
from zooscope.rsa.encoding import ALL_UNITS, TRAIN_PREDICTIONS
from zooscope.rsa.vocabulary import DEFAULT_METRICS, METRICS
from zooscope.zoo.manifest import ModelEntry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoringConfig:
    """Everything that determines a model's scores (its hash keys the results).

    Execution settings that cannot change a number (device, batch size, memory budget) live in
    :class:`RunOptions` instead, so a rerun on another machine resumes the same results.
    """

    metrics: tuple[str, ...] = DEFAULT_METRICS
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
    # Settings a profile names (zooscope.pipeline.profiles); the defaults are profile "default".
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
        from zooscope.feature_extraction.layers import LAYER_POLICIES
        from zooscope.pipeline.profiles import PROFILES
        from zooscope.rsa.predictivity import PREDICTIVITY_SPLITS, REGRESSIONS
        from zooscope.zoo.sources.base import PREPROCESSING

        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
        choices = {
            "profile": tuple(PROFILES),
            "preprocessing": PREPROCESSING,
            "layer_policy": tuple(LAYER_POLICIES),
            "srp_mode": ("fast", "sklearn"),
            "train_predictions": TRAIN_PREDICTIONS,
            "regression": REGRESSIONS,
            "predictivity_splits": PREDICTIVITY_SPLITS,
            "activations_dtype": ("float32", "float64"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        if self.profile == "brainscore" and tuple(self.metrics) != ("predictivity",):
            raise ValueError(
                f"profile brainscore scores predictivity only, got metrics {list(self.metrics)}"
            )
        if self.pca_components < 1:
            raise ValueError(f"pca_components must be >= 1, got {self.pca_components}")

    @classmethod
    def from_profile(cls, name: str, **overrides: Any) -> ScoringConfig:
        """The config of profile ``name`` (:data:`~zooscope.pipeline.profiles.PROFILES`).

        ``overrides`` set other fields (metrics, subjects, ROIs, a layer regex...); the profile's
        name stays on the config, and every setting enters its hash.
        """
        from zooscope.pipeline.profiles import get_profile

        return cls(**{**get_profile(name).settings, **overrides, "profile": name})

    @classmethod
    def conwell2024(cls, **overrides: Any) -> ScoringConfig:
        """The published procedure of Conwell et al. (2024), step for step (``docs/profiles.md``)."""
        return cls.from_profile("conwell2024", **overrides)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if "predictivity" not in self.metrics:
            # Settings that cannot change these numbers stay out of the hash, so configs (and
            # the results they key) from before predictivity existed keep their hash.
            del out["regression"], out["predictivity_splits"]
        from zooscope.neural.brainscore import BRAINSCORE_FIELDS, config_identity

        for name in BRAINSCORE_FIELDS:
            del out[name]
        if self.profile == "brainscore":
            out.update(config_identity(self))
        return out

    @property
    def hash(self) -> str:
        return hash_json(self.to_dict())


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


@dataclass
class BrainData:
    """The benchmark side of scoring, prepared once and reused for every layer and model.

    Attributes
    ----------
    train, test : ndarray of int
        Image positions of the two splits.
    Y_train, Y_test : ndarray, shapes [n_train, n_units] and [n_test, n_units]
        Repetition-averaged responses of the units in any group.
    groups : dict
        ``"subject|roi"`` -> column indices into ``Y_*``.
    comparators : dict
        ``label -> {"train": RSMComparator, "test": RSMComparator}`` of the brain RSMs.
    """

    train: np.ndarray
    test: np.ndarray
    Y_train: np.ndarray
    Y_test: np.ndarray
    groups: dict[str, np.ndarray]
    comparators: dict[str, dict[str, RSMComparator]] = field(repr=False)
    predictivity: Any = field(default=None, repr=False)  # pipeline.neural.PredictivityData

    @classmethod
    def from_benchmark(cls, benchmark: Benchmark, config: ScoringConfig) -> BrainData:
        """Read the responses once and build the brain RSMs of every group and split."""
        groups = benchmark.groups(
            subjects=_subjects(benchmark, config.subjects),
            rois=list(config.rois) if config.rois else None,
        )
        units = np.unique(np.concatenate(list(groups.values())))
        column = {u: i for i, u in enumerate(units)}
        groups = {label: np.array([column[u] for u in idx]) for label, idx in groups.items()}
        splits = benchmark.splits
        train, test = splits[config.train_split], splits[config.test_split]
        mean = benchmark.mean_responses(units)  # [units, images]
        if np.isnan(mean).any():
            raise ValueError(
                "some units have no repetition at all for some images; drop them when preparing the benchmark"
            )
        Y_train, Y_test = mean[:, train].T.copy(), mean[:, test].T.copy()
        comparators = {
            label: {
                "train": RSMComparator(rsm(Y_train[:, idx], dtype="float64"), config.compare),
                "test": RSMComparator(rsm(Y_test[:, idx], dtype="float64"), config.compare),
            }
            for label, idx in groups.items()
            if set(config.metrics) - {"predictivity"}  # brain RSMs only for the RSM-based metrics
        }
        prepared = None
        if "predictivity" in config.metrics:
            from zooscope.pipeline.neural import PredictivityData

            prepared = PredictivityData.from_benchmark(
                benchmark, {"train": train, "test": test}, units, config.predictivity_splits
            )
        return cls(train, test, Y_train, Y_test, groups, comparators, prepared)


def _subjects(benchmark: Benchmark, subjects: tuple[str, ...] | None) -> list[Any] | None:
    """Match subjects given as text (CLI, config) to the benchmark's own values."""
    if subjects is None:
        return None
    present = {str(s): s for s in benchmark.subjects}
    missing = [s for s in subjects if str(s) not in present]
    if missing:
        raise KeyError(f"unknown subject(s) {missing}; the benchmark has {list(present)}")
    return [present[str(s)] for s in subjects]


def split_label(label: str) -> tuple[str, str]:
    """``"1|OTC"`` -> ``("1", "OTC")``."""
    subject, roi = label.split("|", 1)
    return subject, roi


@dataclass
class ModelScores:
    """Every row one model contributes to the results database."""

    model: dict[str, Any]
    layers: pd.DataFrame
    scores: pd.DataFrame
    rsms: pd.DataFrame
    seconds: float
    predictions: pd.DataFrame | None = None
    unit_scores: pd.DataFrame | None = None  # per-neuron predictivity of every layer
    grams: list[tuple[int, str, np.ndarray]] | None = None  # keep_grams: packed, per layer

    def best(self) -> dict[str, float]:
        """Mean over groups of the best-train-layer test score per metric (for log lines)."""
        from zooscope.rsa.selection import select_best_layers

        if self.scores.empty:
            return {}
        columns = ["subject", "roi", "metric", "layer_index", "layer_name", "split", "score"]
        best = select_best_layers(self.scores[columns], ["subject", "roi", "metric"])
        return best.groupby("metric")["test_score"].mean().to_dict()


class ScoringError(RuntimeError):
    """A model failed while being scored; ``stage`` says where (load, extract, score)."""

    def __init__(self, stage: str, error: BaseException) -> None:
        self.stage = stage
        self.error = error
        super().__init__(f"{stage}: {type(error).__name__}: {error}")


class _BestRSMs(KeepBest):
    """Keep, per (metric, group), the test RSM of the layer with the best train score so far."""

    def __init__(self) -> None:
        # The matrix is materialised only when it becomes the best (a callable defers it).
        super().__init__(lambda matrix: upper_triangle(matrix).astype(np.float32))

    def frame(self) -> pd.DataFrame:
        rows = []
        for (metric, group), (_score, layer, tri) in self.best.items():
            subject, roi = split_label(group)
            rows.append(
                {
                    "metric": metric,
                    "subject": subject,
                    "roi": roi,
                    "layer_name": layer,
                    "split": "test",
                    "rsm": tri,
                }
            )
        return pd.DataFrame(
            rows, columns=["metric", "subject", "roi", "layer_name", "split", "rsm"]
        )


def score_layer(
    features: Any,
    brain: BrainData,
    config: ScoringConfig,
    ridge_backend: str = "numpy",
    predictions: dict[tuple[str, str], Any] | None = None,
    diagnostics: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], Any]]:
    """Score one layer (a :class:`~zooscope.feature_extraction.LayerFeatures`).

    ``predictions``, when given, receives ``(metric, group) -> (train score, predicted test
    responses [n_test, n_units of the group])`` for the unit-predicting metrics.
    ``diagnostics``, when given, receives ``alpha_edge_fraction``: the fraction of all units
    whose ridge alpha is at an edge of the grid (veRSA/encoding only; NaN for a layer constant
    on the training images).

    Returns
    -------
    rows : list of dict
        ``subject, roi, metric, split, score`` rows.
    test_rsms : dict
        ``(metric, group) -> (train score, test RSM or a callable returning it)``.
    """
    rows: list[dict[str, Any]] = []
    test_rsms: dict[tuple[str, str], Any] = {}
    train, test = brain.train, brain.test
    if "crsa" in config.metrics:
        model_train = features.rsm[np.ix_(train, train)]
        model_test = features.rsm[np.ix_(test, test)]
        for label, comparator in brain.comparators.items():
            subject, roi = split_label(label)
            scores = {
                "train": crsa(model_train, comparator["train"]),
                "test": crsa(model_test, comparator["test"]),
            }
            rows += [
                {"subject": subject, "roi": roi, "metric": "crsa", "split": s, "score": v}
                for s, v in scores.items()
            ]
            test_rsms[("crsa", label)] = (scores["train"], model_test)
    if {"versa", "encoding_r"} & set(config.metrics):
        result = versa(
            features.srp[train],
            features.srp[test],
            brain.Y_train,
            brain.Y_test,
            brain.groups,
            alphas=np.asarray(config.alphas),
            criterion=config.criterion,
            brain_rsms=brain.comparators,
            compare=config.compare,
            backend=ridge_backend,
            return_rsms="versa" in config.metrics,
            train_predictions=config.train_predictions,
            return_predictions=predictions is not None,
        )
        if diagnostics is not None:
            diagnostics["alpha_edge_fraction"] = float(result.alpha_edge_fraction[ALL_UNITS])
        for row in result.scores.itertuples(index=False):
            if row.metric not in config.metrics:
                continue
            subject, roi = split_label(row.group)
            rows.append(
                {
                    "subject": subject,
                    "roi": roi,
                    "metric": row.metric,
                    "split": row.split,
                    "score": float(row.score),
                }
            )
        if result.rsms:
            train_scores = result.scores.query("metric == 'versa' and split == 'train'").set_index(
                "group"
            )["score"]
            for label, predicted in result.rsms.items():
                test_rsms[("versa", label)] = (float(train_scores[label]), predicted)
        if predictions is not None:
            train = result.scores[result.scores["split"] == "train"]
            train = train.set_index(["metric", "group"])["score"]
            for metric in {"versa", "encoding_r"} & set(config.metrics):
                for label, idx in brain.groups.items():
                    # a callable: the group's columns are copied only if this layer is kept
                    value = functools.partial(np.take, result.predictions, idx, axis=1)
                    predictions[(metric, label)] = (float(train[(metric, label)]), value)
    return rows, test_rsms


def score_model(
    entry: ModelEntry,
    benchmark: Benchmark,
    config: ScoringConfig | None = None,
    options: RunOptions | None = None,
    brain: BrainData | None = None,
) -> ModelScores:
    """Score every layer of one model.

    Parameters
    ----------
    entry : ModelEntry
    benchmark : Benchmark
    config : ScoringConfig, optional
        Defaults reproduce Conwell et al. (2024).
    options : RunOptions, optional
    brain : BrainData, optional
        Prepared brain side (built from ``benchmark`` when not given; pass it to reuse it).

    Returns
    -------
    ModelScores
        Layers table, tidy score rows for every layer x group x metric x split, and the best
        layer's test RSM per metric and group. Layers are streamed: only one is held at a time.

    Raises
    ------
    ScoringError
        With ``stage`` in {"load", "extract", "score"}.
    """
    from zooscope.feature_extraction import extract
    from zooscope.stats.correlates import effective_dimensionality
    from zooscope.zoo import load_model

    config = config or ScoringConfig()
    options = options or RunOptions()
    if config.profile == "brainscore":  # commitment on other benchmarks, then all images scored
        from zooscope.neural import brainscore

        return brainscore.score_model(entry, benchmark, config, options)
    started = time.perf_counter()
    brain = brain or BrainData.from_benchmark(benchmark, config)
    try:
        with stage("load"):
            loaded = load_model(entry, device=options.device, preprocessing=config.preprocessing)
    except Exception as error:
        raise ScoringError("load", error) from error
    need_srp = bool({"versa", "encoding_r", "predictivity"} & set(config.metrics))
    unit_frames: list[pd.DataFrame] = []
    layer_rows: list[dict[str, Any]] = []
    score_rows: list[dict[str, Any]] = []
    best = _BestRSMs()
    kept = BestPredictions() if options.keep_predictions else None
    from zooscope.feature_extraction import LayerSelection
    from zooscope.feature_extraction.cka_consumer import CKAGramConsumer
    from zooscope.feature_extraction.cka_gram import pack_gram

    grams: list[tuple[int, str, np.ndarray]] | None = [] if options.keep_grams else None
    selection = LayerSelection(include=config.layers) if config.layers else None
    stream = extract(
        loaded,
        benchmark.stimuli,
        layers=selection,
        eps=config.eps,
        n_components=config.n_components,
        seed=config.srp_seed,
        srp_mode=config.srp_mode,  # type: ignore[arg-type]
        upsample=config.srp_upsample,
        layer_policy=config.layer_policy,
        profile=config.profile,
        srp=need_srp,
        rsm="crsa" in config.metrics,
        rsm_from=config.rsm_from,  # type: ignore[arg-type]
        memory_budget=options.memory_budget,
        batch_size=options.batch_size,
        num_workers=options.num_workers,
        image_set_id=benchmark.content_hash,
        progress=options.progress,
        # composed, not wired in: the planner counts its n x n float64 per layer in the budget
        consumers=[CKAGramConsumer()] if options.keep_grams else (),
    )
    ridge_backend = (
        "torch_cuda"
        if options.ridge_backend == "auto" and loaded.device.startswith("cuda")
        else ("numpy" if options.ridge_backend == "auto" else options.ridge_backend)
    )
    while True:
        try:
            with stage("forward"):  # the stream's own work; its SRP and Gram stages count apart
                features = next(stream)
        except StopIteration:
            break
        except Exception as error:
            raise ScoringError("extract", error) from error
        try:
            unit_predictions: dict[tuple[str, str], Any] | None = None if kept is None else {}
            diagnostics: dict[str, Any] = {}
            with stage("rsa"):  # ridge, inside it, counts apart
                rows, test_rsms = score_layer(
                    features,
                    brain,
                    config,
                    ridge_backend,
                    unit_predictions,
                    diagnostics=diagnostics,
                )
                if "predictivity" in config.metrics:
                    from zooscope.pipeline.neural import score_predictivity

                    neural_rows, units = score_predictivity(features, brain, config)
                    rows += neural_rows
                    unit_frames.append(
                        units.assign(layer_index=features.index, layer_name=features.name)
                    )
                    if unit_predictions is not None:
                        from zooscope.pipeline.neural import predictivity_predictions

                        unit_predictions.update(
                            predictivity_predictions(features, brain, config, neural_rows)
                        )
        except Exception as error:
            raise ScoringError("score", error) from error
        for row in rows:
            score_rows.append({"layer_index": features.index, "layer_name": features.name, **row})
        for (metric, label), (train_score, matrix) in test_rsms.items():
            best.offer(metric, label, train_score, features.name, matrix)
        for (metric, label), (train_score, predicted) in (unit_predictions or {}).items():
            kept.offer(metric, label, train_score, features.name, predicted)
        if grams is not None:
            # packed at once: the model holds n (n + 1) / 2 float64 per layer until it is stored
            gram = pack_gram(features.outputs.pop("cka_gram"))
            grams.append((features.index, features.name, gram))
        effective_dim = effective_dimensionality(features.srp) if features.srp is not None else None
        layer_rows.append(
            {
                "layer_index": features.index,
                "layer_name": features.name,
                "module_type": features.module_type,
                "n_features": features.n_features,
                "effective_dim": effective_dim,
                "alpha_edge_fraction": diagnostics.get("alpha_edge_fraction", np.nan),
            }
        )
        del features  # stream: only one layer's features are alive at a time
    if not layer_rows:
        # A model with no scored layer must not be recorded as complete: it would be skipped forever.
        what = f"matches the layer selection {config.layers!r}" if config.layers else "was found"
        raise ScoringError("extract", ValueError(f"no layer of {entry.model_uid} {what}"))
    model = {**entry.to_record(), "param_count": loaded.info.n_params}
    return ModelScores(
        model=model,
        layers=pd.DataFrame(
            layer_rows,
            columns=[
                "layer_index",
                "layer_name",
                "module_type",
                "n_features",
                "effective_dim",
                "alpha_edge_fraction",
            ],
        ),
        scores=pd.DataFrame(
            score_rows,
            columns=["layer_index", "layer_name", "subject", "roi", "metric", "split", "score"],
        ),
        rsms=best.frame(),
        seconds=time.perf_counter() - started,
        predictions=None if kept is None else kept.frame(),
        unit_scores=pd.concat(unit_frames, ignore_index=True) if unit_frames else None,
        grams=None if grams is None else sorted(grams, key=lambda g: g[0]),
    )
