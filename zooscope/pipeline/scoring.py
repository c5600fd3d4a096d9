"""Score one model against a benchmark: every layer, every chosen metric, per subject x ROI.

The metrics are plugins (:mod:`zooscope.metrics`): the scorer asks the chosen ones what to extract
(the exact RSM, the sparse random projection), hands each layer to each of them, and keeps what
each declares it stores: tidy scores of every layer, and per (metric, group) the test RSM and the
per-unit test predictions of the layer with the best train score. By default (cRSA, veRSA,
encoding r) cRSA runs on full-feature RSMs, veRSA on sparse random projections (eps=0.1, seed 0)
with per-voxel ridge over logspace(-1, 5, 7) chosen by exact leave-one-out Pearson r on the
training images. The defaults differ from the published procedure of Conwell et al. (2024) in a
few documented settings; ``ScoringConfig.conwell2024()`` is that procedure step for step
(:mod:`zooscope.profiles`, ``docs/profiles.md``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from zooscope._timing import stage
from zooscope.benchmark import Benchmark, split_label
from zooscope.config import RunOptions, ScoringConfig
from zooscope.errors import ScoringError
from zooscope.feature_extraction import ExtractionSettings, LayerSelection, extract
from zooscope.feature_extraction.cka_consumer import CKAGramConsumer
from zooscope.feature_extraction.cka_gram import pack_gram
from zooscope.metrics import LayerContext, get_metric, metric_names, needed
from zooscope.neural import brainscore
from zooscope.pipeline.brain import BrainData
from zooscope.pipeline.predictions import BestPredictions, KeepBest
from zooscope.pipeline.progress import ProgressCallback, Reporter
from zooscope.rsa import upper_triangle
from zooscope.rsa.dimensionality import effective_dimensionality
from zooscope.rsa.selection import select_best_layers
from zooscope.zoo import load_model
from zooscope.zoo.manifest import ModelEntry

logger = logging.getLogger(__name__)


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
    passes: int = 0  # passes over the images the extraction planned (0: all layers cached)
    stage_seconds: dict[str, dict[str, float]] | None = None  # measured: stage -> {wall, cpu}

    def best(self) -> dict[tuple[str, str], float]:
        """``(roi, metric) -> `` best-train-layer test score, mean over subjects (for log lines).

        Each ROI (region and time bin) keeps its own value: regions are never averaged.
        """
        if self.scores.empty:
            return {}
        columns = ["subject", "roi", "metric", "layer_index", "layer_name", "split", "score"]
        best = select_best_layers(self.scores[columns], ["subject", "roi", "metric"])
        return best.groupby(["roi", "metric"])["test_score"].mean().to_dict()


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


@dataclass
class LayerOutcome:
    """What every chosen metric made of one layer, keyed ``(metric, group)`` where it matters.

    Only what a metric declares it stores (:attr:`Metric.stores <zooscope.metrics.Metric.stores>`)
    is kept: ``test_rsms`` (``rsms``), ``predictions`` (``unit_predictions``) and
    ``unit_scores`` frames (``unit_scores``).
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    test_rsms: dict[tuple[str, str], tuple[float, Any]] = field(default_factory=dict)
    predictions: dict[tuple[str, str], tuple[float, Any]] = field(default_factory=dict)
    unit_scores: list[pd.DataFrame] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)


def score_metrics(layer: LayerContext) -> LayerOutcome:
    """Every chosen metric of ``layer.config`` on one layer, in the registry's order."""
    out = LayerOutcome()
    chosen = set(layer.config.metrics)
    for name in (n for n in metric_names() if n in chosen):
        metric = get_metric(name)
        scored = metric.score(layer)
        out.rows += scored.rows
        out.diagnostics.update(scored.diagnostics)
        if "rsms" in metric.stores:
            out.test_rsms.update({(name, g): v for g, v in scored.test_rsms.items()})
        if layer.keep_predictions and "unit_predictions" in metric.stores:
            out.predictions.update({(name, g): v for g, v in scored.predictions.items()})
        if "unit_scores" in metric.stores and scored.unit_scores is not None:
            out.unit_scores.append(scored.unit_scores)
    return out


def score_layer(
    features: Any,
    brain: BrainData,
    config: ScoringConfig,
    ridge_backend: str = "numpy",
    predictions: dict[tuple[str, str], Any] | None = None,
    diagnostics: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], Any]]:
    """Score one layer (a :class:`~zooscope.feature_extraction.LayerFeatures`) on every chosen metric.

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
    layer = LayerContext(features, brain, config, ridge_backend, predictions is not None)
    outcome = score_metrics(layer)
    if predictions is not None:
        predictions.update(outcome.predictions)
    if diagnostics is not None:
        diagnostics.update(outcome.diagnostics)
    return outcome.rows, outcome.test_rsms


_LAYER_COLUMNS = ("layer_index", "layer_name", "module_type", "n_features", "effective_dim",
                  "alpha_edge_fraction")  # fmt: skip
_SCORE_COLUMNS = ("layer_index", "layer_name", "subject", "roi", "metric", "split", "score")


class _ModelKeeper:
    """What scoring keeps of a model while its layers stream past: one layer's features at a time."""

    def __init__(self, options: RunOptions) -> None:
        self.layers: list[dict[str, Any]] = []
        self.scores: list[dict[str, Any]] = []
        self.unit_scores: list[pd.DataFrame] = []
        self.rsms = _BestRSMs()
        self.predictions = BestPredictions() if options.keep_predictions else None
        self.grams: list[tuple[int, str, np.ndarray]] | None = [] if options.keep_grams else None

    def add(self, features: Any, outcome: LayerOutcome) -> None:
        """Keep one scored layer's rows, and its RSMs and predictions where it is the best so far."""
        with stage("keep"):
            self._keep(features, outcome)
        srp = features.srp
        with stage("layer_stats"):
            effective_dim = effective_dimensionality(srp) if srp is not None else None
        self.layers.append(
            {
                "layer_index": features.index,
                "layer_name": features.name,
                "module_type": features.module_type,
                "n_features": features.n_features,
                "effective_dim": effective_dim,
                "alpha_edge_fraction": outcome.diagnostics.get("alpha_edge_fraction", np.nan),
            }
        )

    def _keep(self, features: Any, outcome: LayerOutcome) -> None:
        where = {"layer_index": features.index, "layer_name": features.name}
        self.scores += [{**where, **row} for row in outcome.rows]
        self.unit_scores += [frame.assign(**where) for frame in outcome.unit_scores]
        for (metric, label), (train_score, matrix) in outcome.test_rsms.items():
            self.rsms.offer(metric, label, train_score, features.name, matrix)
        if self.predictions is not None:
            for (metric, label), (train_score, predicted) in outcome.predictions.items():
                self.predictions.offer(metric, label, train_score, features.name, predicted)
        if self.grams is not None:
            # packed at once: the model holds n (n + 1) / 2 float64 per layer until it is stored
            gram = pack_gram(features.outputs.pop("cka_gram"))
            self.grams.append((features.index, features.name, gram))

    def model_scores(self, model: dict[str, Any], seconds: float) -> ModelScores:
        return ModelScores(
            model=model,
            layers=pd.DataFrame(self.layers, columns=list(_LAYER_COLUMNS)),
            scores=pd.DataFrame(self.scores, columns=list(_SCORE_COLUMNS)),
            rsms=self.rsms.frame(),
            seconds=seconds,
            predictions=None if self.predictions is None else self.predictions.frame(),
            unit_scores=pd.concat(self.unit_scores, ignore_index=True)
            if self.unit_scores
            else None,
            grams=None if self.grams is None else sorted(self.grams, key=lambda g: g[0]),
        )


def _load(entry: ModelEntry, config: ScoringConfig, options: RunOptions) -> Any:
    try:
        with stage("load"):
            return load_model(entry, device=options.device, preprocessing=config.preprocessing)
    except Exception as error:
        raise ScoringError("load", error) from error


def extraction_settings(config: ScoringConfig, options: RunOptions) -> ExtractionSettings:
    """What a survey extracts from a model: what the chosen metrics need, within the budget."""
    return ExtractionSettings(
        layers=LayerSelection(include=config.layers) if config.layers else None,
        eps=config.eps,
        n_components=config.n_components,
        seed=config.srp_seed,
        srp=needed(config.metrics, "srp"),
        rsm=needed(config.metrics, "rsm"),
        rsm_from=config.rsm_from,  # type: ignore[arg-type]
        upsample=config.srp_upsample,
        srp_mode=config.srp_mode,  # type: ignore[arg-type]
        layer_policy=config.layer_policy,
        profile=config.profile,
        memory_budget=options.memory_budget,
        batch_size=options.batch_size,
        num_workers=options.num_workers,
        replay=options.replay,
    )


def _layer_stream(
    loaded: Any,
    benchmark: Benchmark,
    config: ScoringConfig,
    options: RunOptions,
    reporter: Reporter,
) -> Any:
    """The extraction of what the chosen metrics need, one layer at a time."""

    def on_pass(number: int, plan: Any, cached: int) -> None:
        if number == 1:
            reporter.total, reporter.passes = cached + len(plan.layers), len(plan.passes)
            reporter.emit("planned")
        reporter.emit("pass", number=number)

    return extract(
        loaded,
        benchmark.stimuli,
        extraction_settings(config, options),
        image_set_id=benchmark.content_hash,
        # the survey shows a bar over layers instead of the extraction's bar over batches
        progress=options.progress and reporter.callback is None,
        on_pass=on_pass,
        # composed, not wired in: the planner counts its n x n float64 per layer in the budget
        consumers=[CKAGramConsumer()] if options.keep_grams else (),
    )


def _next_layer(stream: Any) -> Any:
    """The stream's next layer, or None at its end."""
    try:
        with stage("forward"):  # the stream's own work; its SRP and Gram stages count apart
            return next(stream)
    except StopIteration:
        return None
    except Exception as error:
        raise ScoringError("extract", error) from error


def ridge_backend(options: RunOptions, device: str) -> str:
    """The array backend of ridge fits on ``device`` (``options.ridge_backend``, or by device)."""
    if options.ridge_backend != "auto":
        return options.ridge_backend
    return "torch_cuda" if device.startswith("cuda") else "numpy"


def score_model(
    entry: ModelEntry,
    benchmark: Benchmark,
    config: ScoringConfig | None = None,
    options: RunOptions | None = None,
    brain: BrainData | None = None,
    on_progress: ProgressCallback | None = None,
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
    on_progress : callable, optional
        Called with a :class:`~zooscope.pipeline.progress.ProgressEvent` when the extraction is
        planned, when each pass starts, after each layer is scored and at the end.

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
    config = config or ScoringConfig()
    options = options or RunOptions()
    if config.profile == "brainscore":  # commitment on other benchmarks, then all images scored
        scored = brainscore.score_model(entry, benchmark, config, options)
        empty_rsms = pd.DataFrame(
            columns=["metric", "subject", "roi", "layer_name", "split", "rsm"]
        )
        return ModelScores(scored.model, scored.layers, scored.scores, empty_rsms, scored.seconds,
                           unit_scores=scored.unit_scores)  # fmt: skip
    started = time.perf_counter()
    brain = brain or BrainData.from_benchmark(benchmark, config)
    loaded = _load(entry, config, options)
    reporter = Reporter(entry.model_uid, on_progress)
    stream = _layer_stream(loaded, benchmark, config, options, reporter)
    backend = ridge_backend(options, loaded.device)
    kept = _ModelKeeper(options)
    while (features := _next_layer(stream)) is not None:
        layer = LayerContext(features, brain, config, backend, options.keep_predictions)
        try:
            with stage("rsa"):  # ridge, inside it, counts apart
                outcome = score_metrics(layer)
        except Exception as error:
            raise ScoringError("score", error) from error
        kept.add(features, outcome)
        reporter.done += 1
        reporter.total = max(reporter.total, reporter.done)  # all from the cache: no plan
        reporter.emit("layer", layer=features.name)
        del features, layer  # stream: only one layer's features are alive at a time
    if not kept.layers:
        # A model with no scored layer must not be recorded as complete: it would be skipped forever.
        what = f"matches the layer selection {config.layers!r}" if config.layers else "was found"
        raise ScoringError("extract", ValueError(f"no layer of {entry.model_uid} {what}"))
    model = {**entry.to_record(), "param_count": loaded.info.n_params}
    reporter.emit("done")
    scores = kept.model_scores(model, time.perf_counter() - started)
    scores.passes = reporter.passes
    return scores
