"""What scoring a model will cost on this machine, known before it runs.

Two measurements, then arithmetic.

* **Rates** (:func:`calibrate`), once per machine, device, thread count, benchmark and config:
  the chosen metrics' own scoring of one layer (:func:`~zooscope.pipeline.scoring.score_metrics`:
  ridge, RSA, cRSA, predictivity, whatever the config names) timed on the benchmark's real brain
  data with synthetic layer features of the right shape; the effective dimensionality of a
  layer; the exact-RSM fold of a block of feature columns (buffer copy, centring, Gram product);
  the SRP kernel on a batch and the drawing of its matrix. A few seconds; cached as JSON in
  ``~/.cache/zooscope/cost/`` (``ZOOSCOPE_CACHE``), keyed by all of the above, the process
  settings that change speed (:func:`zooscope.runtime.speed_settings`), the zooscope version
  and :data:`RATES_REVISION`.
* **A probe of the model** (:func:`probe_model`): the architecture at random init (the same cost
  as the trained weights, and no download), its layers on the first images of the benchmark, one
  batch through the network with a clock on every module (the share of the forward pass done
  when each layer is ready), the time to read and preprocess a batch, and the pass and replay
  plans the extraction will use (:func:`~zooscope.feature_extraction.plan_extraction`).

From these, per stage of :mod:`zooscope._timing` (CPU seconds; wall seconds alike)::

    forward = batches * (t_batch_input * passes from the images
                         + t_batch_forward * sum over passes of (F(last layer) - F(cut)))
              + the replay checks on the probe
    srp     = sum over projected layers of (n k sqrt(p) * c_apply + k sqrt(p) * c_draw)
    gram    = sum over layers of p * c_column                 (exact RSMs, CKA Grams)
    rsa     = layers * (c_score + c_effective_dimensionality)  (ridge included)

where ``F`` is the share of a batch's forward pass done when a layer (or the cut a pass replays)
is ready, ``k`` the SRP dimension and ``p`` a layer's feature count; and the peak resident
memory = the process's baseline + the model + the brain data + the planned extraction peak +
the scoring working set. ``benchmarks/estimate.py`` checks the prediction against measured runs.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zooscope import __version__
from zooscope._backend import resolve_device
from zooscope._hashing import hash_json
from zooscope.benchmark import Benchmark
from zooscope.config import RunOptions, ScoringConfig
from zooscope.feature_extraction import LayerFeatures, plan_extraction
from zooscope.feature_extraction.cka_consumer import CKAGramConsumer
from zooscope.feature_extraction.cka_gram import CentredGramAccumulator
from zooscope.feature_extraction.consumers import Placement
from zooscope.feature_extraction.gram import GramAccumulator
from zooscope.feature_extraction.images import ImageSet, PreprocessedImages
from zooscope.feature_extraction.layers import discover_layers
from zooscope.feature_extraction.projection import SparseRandomProjector
from zooscope.metrics import LayerContext
from zooscope.pipeline.brain import BrainData
from zooscope.pipeline.scoring import extraction_settings, ridge_backend, score_metrics
from zooscope.rsa.dimensionality import effective_dimensionality
from zooscope.runtime import speed_settings
from zooscope.zoo import load_model
from zooscope.zoo.manifest import ModelEntry

logger = logging.getLogger(__name__)

__all__ = ["ModelCost", "Rates", "calibrate", "estimate_model", "probe_model"]

#: Raised when the code a probe times gets faster or slower, so cached rates are measured again
#: (2: Gram products split by columns over threads, RidgeGCV's compiled gathers).
RATES_REVISION = 2

#: The stages a prediction covers (those of benchmarks/survey.py's table).
STAGES = ("load", "forward", "srp", "gram", "rsa")


def _cache_dir() -> Path:
    root = os.environ.get("ZOOSCOPE_CACHE") or Path.home() / ".cache" / "zooscope"
    return Path(root) / "cost"


@contextmanager
def _clock() -> Iterator[dict[str, float]]:
    """Wall and CPU seconds of a block: ``{"wall": ..., "cpu": ...}`` once it ends."""
    out: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    yield out
    out["wall"], out["cpu"] = time.perf_counter() - wall, time.process_time() - cpu


def _best_of(times: list[dict[str, float]]) -> dict[str, float]:
    return {"wall": min(t["wall"] for t in times), "cpu": min(t["cpu"] for t in times)}


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


@dataclass
class Rates:
    """Seconds per unit of work on this machine for one benchmark and config (wall and CPU).

    Attributes
    ----------
    score : dict
        Scoring one layer with every chosen metric (ridge and RSA included).
    effective_dim : dict
        The effective dimensionality of one layer's SRP features.
    gram_column : dict
        Folding one feature column of ``n_images`` values into the exact RSM's Gram (and, when
        Grams are kept, the CKA Gram): buffer copy, centring, product.
    srp_apply : dict
        Projecting one image's activations, per non-zero of the projection matrix.
    srp_draw : dict
        Drawing the projection matrix, per non-zero.
    score_bytes : int
        Peak memory the scoring of one layer allocates (NumPy, traced).
    brain_bytes : int
        Resident memory the brain data adds.
    baseline_bytes : int
        Resident memory of a process that has imported zooscope and torch.
    """

    score: dict[str, float]
    effective_dim: dict[str, float]
    gram_column: dict[str, float]
    srp_apply: dict[str, float]
    srp_draw: dict[str, float]
    score_bytes: int
    brain_bytes: int
    baseline_bytes: int
    key: dict[str, Any] = field(default_factory=dict)


def _baseline_rss() -> int:
    """Resident memory of a fresh process after importing what a survey imports."""
    code = (
        "import psutil, torch, zooscope.pipeline, zooscope.feature_extraction;"
        "print(psutil.Process().memory_info().rss)"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
        )
        return int(done.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return _rss()


def calibrate(
    benchmark: Benchmark,
    config: ScoringConfig,
    options: RunOptions,
    brain: BrainData | None = None,
    cache: bool = True,
) -> Rates:
    """Measure (or read from the cache) this machine's rates for ``benchmark`` and ``config``.

    Parameters
    ----------
    benchmark : Benchmark
    config : ScoringConfig
    options : RunOptions
        Its device and the ridge backend it implies; torch's thread count is part of the key.
    brain : BrainData, optional
        The prepared brain data (built here when not given).
    cache : bool
        Read and write the JSON cache.
    """
    device = Placement.of(_device(options)).device
    settings = extraction_settings(config, options)
    n = benchmark.n_images
    key = _rates_key(benchmark, config, options)
    path = _rates_path(key)
    if cache and path.exists():
        try:
            return Rates(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            logger.debug("cost: unreadable rates cache %s; measuring again", path)
    started = time.perf_counter()
    before = _rss()
    if brain is None:
        brain = BrainData.from_benchmark(benchmark, config)
    brain_bytes = max(0, _rss() - before)
    k = settings.components(n)
    rng = np.random.default_rng(0)
    srp = rng.standard_normal((n, k), dtype=np.float32) if settings.srp else None
    rsm = None
    if settings.rsm:
        rsm = np.corrcoef(rng.standard_normal((n, 64), dtype=np.float32)).astype(np.float32)
    features = LayerFeatures("calibration", 1, "Conv2d", k, srp, rsm)
    backend = ridge_backend(options, str(device))
    layer = LayerContext(features, brain, config, backend, options.keep_predictions)
    tracemalloc.start()  # the first run, which also warms up caches and thread pools
    score_metrics(layer)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    score_times = []
    for _ in range(3):  # timed without tracemalloc, which slows Python code down
        layer.shared.clear()
        with _clock() as t:
            score_metrics(layer)
        score_times.append(t)
    effective = []
    if srp is not None:
        for _ in range(3):
            with _clock() as t:
                effective_dimensionality(srp)
            effective.append(t)
    srp_apply, srp_draw = _srp_rate(settings.batch_size, k) if settings.srp else (_zero(), _zero())
    rates = Rates(
        score=_best_of(score_times),
        effective_dim=_best_of(effective[1:]) if effective else {"wall": 0.0, "cpu": 0.0},
        gram_column=_gram_rate(n, settings.rsm, options.keep_grams, settings.batch_size),
        srp_apply=srp_apply,
        srp_draw=srp_draw,
        score_bytes=int(peak),
        brain_bytes=int(brain_bytes),
        baseline_bytes=_baseline_rss(),
        key=key,
    )
    logger.info(
        "cost: calibrated this machine for %s in %.0fs",
        benchmark.path.name,
        time.perf_counter() - started,
    )
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(rates), indent=1))
    return rates


def _rates_key(benchmark: Benchmark, config: ScoringConfig, options: RunOptions) -> dict[str, Any]:
    """What the measured rates depend on: the machine, its settings, the data and the config."""
    device = _device(options)
    return {
        "host": platform.node(),
        "machine": platform.machine(),
        "device": device,
        "threads": torch.get_num_threads(),
        "benchmark": benchmark.content_hash,
        "config": config.hash,
        "keep_grams": options.keep_grams,
        "keep_predictions": options.keep_predictions,
        "ridge_backend": ridge_backend(options, device),
        "version": __version__,
        "revision": RATES_REVISION,
        "settings": speed_settings(),
    }


def _rates_path(key: dict[str, Any]) -> Path:
    return _cache_dir() / f"rates-{hash_json(key)}.json"


def _zero() -> dict[str, float]:
    return {"wall": 0.0, "cpu": 0.0}


def _per(t: dict[str, float], units: float) -> dict[str, float]:
    return {clock: seconds / units for clock, seconds in t.items()}


def _gram_rate(n: int, rsm: bool, cka: bool, batch_size: int) -> dict[str, float]:
    """Seconds per feature column of the buffered Gram consumers (copy, centring, product)."""
    if not (rsm or cka):
        return _zero()
    columns = max(4096, 2**22 // n)  # enough work per fold that its fixed overhead is small
    rng = np.random.default_rng(1)
    source = rng.standard_normal((batch_size, columns), dtype=np.float32)
    times = []
    for _ in range(5):  # BLAS warms up over the first folds (measured: 1.0, 0.13, 0.03 s)
        buffer = np.empty((n, columns), np.float32)
        with _clock() as t:
            for start in range(0, n, batch_size):
                rows = slice(start, min(start + batch_size, n))
                buffer[rows] = source[: rows.stop - rows.start]
            if cka:
                CentredGramAccumulator(n, columns, product="float32").add(buffer)
            if rsm:
                GramAccumulator(n, columns).add(buffer, overwrite=True)
        times.append(t)
    return _per(_best_of(times), columns)


def _srp_rate(batch_size: int, k: int) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per (image x non-zero) to apply a projection, and per non-zero to draw one."""
    p = 100_000
    draws, applies = [], []
    batch = np.random.default_rng(2).standard_normal((batch_size, p), dtype=np.float32)
    for repeat in range(3):
        with _clock() as t:
            projector = SparseRandomProjector(p, k, 0, f"calibration{repeat}")
        draws.append(t)
        with _clock() as t:
            projector.transform(batch)
        applies.append(t)
    nnz = projector.signs.rows.size if projector.signs is not None else p * k
    return _per(_best_of(applies[1:]), batch_size * nnz), _per(_best_of(draws[1:]), nnz)


def _device(options: RunOptions) -> str:
    return resolve_device(options.device)


@dataclass
class ModelProbe:
    """What one model's extraction will do, measured on a probe batch.

    Attributes
    ----------
    model_uid : str
    layers : list of (name, n_features)
    passes : int
    from_images : int
        Passes that read the images (the others replay a cut).
    forward_share : float
        Sum over passes of the share of a forward pass each runs (1.0 = one full pass).
    batch_input, batch_forward : dict
        Seconds to read and preprocess one batch, and to run it through the network.
    plan : dict
        Seconds spent planning (the replay checks on the probe).
    load : dict
        Seconds to build the model.
    model_bytes : int
        Parameters and buffers.
    extraction_bytes : int
        The planned extraction peak (buffers and the forward pass's reserve).
    budget : int
    budget_source : str
    """

    model_uid: str
    layers: list[tuple[str, int]]
    passes: int
    from_images: int
    forward_share: float
    batch_input: dict[str, float]
    batch_forward: dict[str, float]
    plan: dict[str, float]
    load: dict[str, float]
    model_bytes: int
    extraction_bytes: int
    budget: int
    budget_source: str


def _forward_clock(module: torch.nn.Module, batch: torch.Tensor) -> dict[tuple[str, int], float]:
    """Seconds from the start of a forward pass to the return of each module call."""
    ready: dict[tuple[str, int], float] = {}
    calls: dict[str, int] = {}
    sync = torch.cuda.synchronize if batch.device.type == "cuda" else (lambda: None)

    def post(path: str):
        def hook(*_: Any) -> None:
            sync()
            call = calls.get(path, 0)
            calls[path] = call + 1
            ready[(path, call)] = time.perf_counter() - start

        return hook

    handles = [m.register_forward_hook(post(p)) for p, m in module.named_modules()]
    try:
        with torch.no_grad():
            start = time.perf_counter()
            module(batch)
            sync()
    finally:
        for handle in handles:
            handle.remove()
    return ready


def probe_model(
    entry: ModelEntry, benchmark: Benchmark, config: ScoringConfig, options: RunOptions
) -> ModelProbe:
    """Probe one model's extraction on this machine (see the module docstring)."""
    settings = extraction_settings(config, options)
    device = _device(options)
    with _clock() as load:
        loaded = load_model(
            entry, device=device, weights="random", preprocessing=config.preprocessing
        )
    module = loaded.module
    place = Placement.of(loaded.device)
    n = benchmark.n_images
    dataset = PreprocessedImages(ImageSet(benchmark.stimuli), loaded.preprocess)
    size = min(settings.batch_size, n)
    inputs = []
    for _ in range(2):
        with _clock() as t:
            batch = torch.stack([dataset[i] for i in range(size)]).to(place.device)
        inputs.append(t)
    probe = batch[: min(3, size)]
    with torch.autocast(place.device.type, enabled=settings.amp):
        layers = discover_layers(module, probe, settings.layers, policy=settings.layer_policy)
    consumers = settings.consumers(n, [CKAGramConsumer()] if options.keep_grams else ())
    with _clock() as planning:
        plan = plan_extraction(loaded, probe, layers, n, settings, consumers)
    forwards = []
    for _ in range(2):  # the first pass warms up the kernels
        with _clock() as t:
            ready = _forward_clock(module, batch)
        forwards.append(t)
    total = max(ready.values())
    share = 0.0
    for pieces, cut in zip(plan.passes, plan.cuts, strict=True):
        end = max(ready[(p.layer.module_path, p.layer.call)] for p in pieces)
        begin = ready[(cut.path, 0)] if cut is not None else 0.0
        share += max(0.0, end - begin) / total
    model_bytes = sum(
        t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers())
    )
    return ModelProbe(
        model_uid=entry.model_uid,
        layers=[(layer.name, layer.n_features) for layer in layers],
        passes=len(plan.passes),
        from_images=sum(cut is None for cut in plan.cuts),
        forward_share=share,
        batch_input=_per(_best_of(inputs), size / settings.batch_size),
        batch_forward=_per(_best_of(forwards[1:]), size / settings.batch_size),
        plan=planning,
        load=load,
        model_bytes=int(model_bytes),
        extraction_bytes=plan.peak_nbytes,
        budget=plan.budget,
        budget_source=plan.budget_source,
    )


@dataclass
class ModelCost:
    """A model's predicted cost on this machine.

    Attributes
    ----------
    model_uid : str
    n_layers, passes, from_images : int
    forward_passes : float
        The forward work of all passes, in full forward passes over the images.
    stages : dict
        Stage -> ``{"wall": s, "cpu": s}`` (:data:`STAGES`).
    layer_seconds : list of float
        Predicted wall seconds of each layer, in execution order (forward share included):
        the weights of a per-layer progress bar.
    peak_bytes : int
        Predicted peak resident memory of the process scoring it.
    budget, budget_source
        The memory budget in force and where it came from.
    """

    model_uid: str
    n_layers: int
    passes: int
    from_images: int
    forward_passes: float
    stages: dict[str, dict[str, float]]
    layer_seconds: list[float]
    peak_bytes: int
    budget: int
    budget_source: str

    def total(self, clock: str = "cpu") -> float:
        """Predicted seconds of all stages, by ``"cpu"`` or ``"wall"`` clock."""
        return sum(stage[clock] for stage in self.stages.values())


def predict(
    probe: ModelProbe, rates: Rates, n_images: int, config: ScoringConfig, options: RunOptions
) -> ModelCost:
    """Combine a model probe and the machine's rates into the model's predicted cost."""
    settings = extraction_settings(config, options)
    k = settings.components(n_images)
    batches = -(-n_images // settings.batch_size)
    stages: dict[str, dict[str, float]] = {}
    for clock in ("wall", "cpu"):
        forward = (
            batches
            * (
                probe.batch_input[clock] * probe.from_images
                + probe.batch_forward[clock] * probe.forward_share
            )
            + probe.plan[clock]
        )
        srp = gram = 0.0
        for _name, p in probe.layers:
            if settings.srp and (p > k or settings.upsample):
                nnz = k * np.sqrt(p)
                srp += nnz * (n_images * rates.srp_apply[clock] + rates.srp_draw[clock])
            gram += p * rates.gram_column[clock]
        per_layer = rates.score[clock] + rates.effective_dim[clock]
        values = {
            "load": probe.load[clock],
            "forward": forward,
            "srp": srp,
            "gram": gram,
            "rsa": per_layer * len(probe.layers),
        }
        for stage, seconds in values.items():
            stages.setdefault(stage, {})[clock] = float(seconds)
    # per layer: its own projection, Gram and scoring, and the forward work spread evenly
    forward_each = (stages["forward"]["wall"] + stages["load"]["wall"]) / max(1, len(probe.layers))
    layer_seconds = []
    for _name, p in probe.layers:
        own = p * rates.gram_column["wall"] + rates.score["wall"] + rates.effective_dim["wall"]
        if settings.srp and (p > k or settings.upsample):
            own += k * np.sqrt(p) * (n_images * rates.srp_apply["wall"] + rates.srp_draw["wall"])
        layer_seconds.append(float(own + forward_each))
    peak = (
        rates.baseline_bytes
        + probe.model_bytes
        + rates.brain_bytes
        + probe.extraction_bytes
        + rates.score_bytes
    )
    return ModelCost(
        model_uid=probe.model_uid,
        n_layers=len(probe.layers),
        passes=probe.passes,
        from_images=probe.from_images,
        forward_passes=probe.forward_share + 0.0,
        stages=stages,
        layer_seconds=layer_seconds,
        peak_bytes=int(peak),
        budget=probe.budget,
        budget_source=probe.budget_source,
    )


def estimate_model(
    entry: ModelEntry,
    benchmark: Benchmark,
    config: ScoringConfig,
    options: RunOptions,
    rates: Rates,
) -> ModelCost:
    """Probe ``entry`` and predict its cost with ``rates`` (:func:`calibrate`)."""
    probe = probe_model(entry, benchmark, config, options)
    return predict(probe, rates, benchmark.n_images, config, options)


@dataclass
class SurveyEstimate:
    """The predicted cost of the models a survey would score.

    Attributes
    ----------
    models : list of ModelCost
    unprobed : dict
        Model uid -> why it could not be probed (e.g. its code is not installed).
    rates : Rates
    """

    models: list[ModelCost]
    unprobed: dict[str, str]
    rates: Rates

    def total(self, clock: str = "cpu") -> float:
        return sum(model.total(clock) for model in self.models)


def _model_key(entry: ModelEntry, rates: Rates, config: ScoringConfig, options: RunOptions) -> str:
    return hash_json(
        {
            "entry": {k: str(v) for k, v in entry.to_record().items()},
            "rates": rates.key,
            "batch_size": options.batch_size,
            "memory_budget": str(options.memory_budget),
            "config": config.hash,
        }
    )


def cached_cost(
    entry: ModelEntry, rates: Rates, config: ScoringConfig, options: RunOptions
) -> ModelCost | None:
    """The prediction an earlier estimate stored for ``entry`` under these settings, if any."""
    path = _cache_dir() / f"model-{_model_key(entry, rates, config, options)}.json"
    try:
        return ModelCost(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def cached_costs(
    entries: list[ModelEntry], benchmark: Benchmark, config: ScoringConfig, options: RunOptions
) -> dict[str, ModelCost]:
    """Predictions an earlier ``--estimate`` cached for these models and settings (no probing)."""
    try:
        rates = Rates(**json.loads(_rates_path(_rates_key(benchmark, config, options)).read_text()))
    except (OSError, ValueError, TypeError):
        return {}
    found = {entry.model_uid: cached_cost(entry, rates, config, options) for entry in entries}
    return {uid: cost for uid, cost in found.items() if cost is not None}


def estimate_survey(
    entries: list[ModelEntry],
    benchmark: Benchmark,
    config: ScoringConfig,
    options: RunOptions,
    progress: bool = True,
) -> SurveyEstimate:
    """Predict each model's cost (:func:`estimate_model`), caching every prediction.

    The cache lets a survey started later show an ETA from its first model on.
    """
    from tqdm.auto import tqdm

    rates = calibrate(benchmark, config, options)
    costs, unprobed = [], {}
    for entry in tqdm(entries, desc="estimate", unit="model", disable=not progress, leave=False):
        try:
            cost = estimate_model(entry, benchmark, config, options, rates)
        except Exception as error:  # one model that cannot be built must not stop the others
            unprobed[entry.model_uid] = f"{type(error).__name__}: {error}"
            continue
        costs.append(cost)
        path = _cache_dir() / f"model-{_model_key(entry, rates, config, options)}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(cost)))
    return SurveyEstimate(costs, unprobed, rates)


def estimate_lines(estimate: SurveyEstimate, device: str) -> list[str]:
    """The table ``zooscope survey --estimate`` prints (fits 80 columns)."""
    clock = "CPU" if device == "cpu" else "wall"
    width = max([len(m.model_uid) for m in estimate.models] + [18])
    lines = [
        f"{'model':<{width}} {'layers':>6} {'passes':>6} {'fwd x':>6} {clock + ' min':>8} "
        f"{'wall min':>8} {'peak GB':>7}"
    ]
    for m in estimate.models:
        lines.append(
            f"{m.model_uid:<{width}} {m.n_layers:>6} {m.passes:>6} {m.forward_passes:>6.1f} "
            f"{m.total(clock.lower()) / 60:>8.1f} {m.total('wall') / 60:>8.1f} "
            f"{m.peak_bytes / 1e9:>7.1f}"
        )
    if estimate.models:
        peak = max(m.peak_bytes for m in estimate.models)
        lines.append(
            f"{'total (' + str(len(estimate.models)) + ' models)':<{width}} {'':>6} {'':>6} {'':>6} "
            f"{estimate.total(clock.lower()) / 60:>8.1f} {estimate.total('wall') / 60:>8.1f} "
            f"{peak / 1e9:>7.1f}"
        )
        first = estimate.models[0]
        lines.append(
            f"memory budget {first.budget / 1e9:.2f} GB ({first.budget_source}); 'fwd x': the "
            "forward work of all passes in full passes over the images"
        )
    for uid, why in estimate.unprobed.items():
        lines.append(f"  not estimated: {uid}: {why.splitlines()[0]}")
    return lines


def cost_line(measured: dict[str, dict[str, float]], predicted: ModelCost | None) -> str:
    """One log line: a model's measured CPU seconds per stage, and the prediction if there was one."""
    parts = [f"{name} {t['cpu']:.1f}" for name, t in sorted(measured.items()) if t["cpu"] >= 0.05]
    total = sum(t["cpu"] for t in measured.values())
    line = f"measured CPU s: {', '.join(parts)}; total {total:.1f}"
    if predicted is not None:
        line += (
            f"; predicted {predicted.total('cpu'):.1f} "
            f"({100 * (total / max(predicted.total('cpu'), 1e-9) - 1):+.0f}%)"
        )
    return line
