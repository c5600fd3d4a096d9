"""``--profile brainscore``: Brain-Score's benchmark number, as brainscore-vision 2.4.2 computes it.

A survey of a neural benchmark under this profile does, per model, what Brain-Score's
``ModelCommitment`` and ``NeuralBenchmark`` do (written from their behaviour, not their code;
``docs/profiles.md`` compares each step with zooscope's default):

1. **Commitment** (``LayerSelection``): each region's layer is chosen on a *commitment benchmark*
   (``--commit-on``: one Benchmark file per region, or one with several regions; Brain-Score's
   standard ones are FreemanZiemba2013 V1/V2 and MajajHong2015 V4/IT). Every candidate layer is
   scored on it (step 4, all of its images) with its activations reduced by ``LayerPCA``:
   a PCA with ``pca_components`` (1,000) components fitted on the activations of the PCA image
   set (``--pca-images``; Brain-Score: 1,000 ImageNet validation images, not placed on screen);
   a layer with at most ``pca_components`` features is left as it is. The layer with the highest
   *ceiled* commitment score wins (ties: the earlier layer; :func:`zooscope.rsa.selection.layer_rank`).
2. **Screen placement** (:func:`zooscope.neural.screen.place_on_screen`) of every stimulus from
   its benchmark's visual degrees to the model's (the row's ``visual_degrees``, default 8).
3. **Preprocessing**: Brain-Score's resize to the row's ``image_size`` and ImageNet normalisation
   (``preprocessing="brainscore"``, :func:`zooscope.neural.screen.brainscore_transform`).
4. **Scoring** (``NeuralBenchmark``): per target region and time bin, the committed layer's full
   activations (no PCA) on **all** images of the benchmark; PLS (25 components) over 10
   stratified 90/10 splits by ``object_name`` (:func:`zooscope.rsa.predictivity.predictivity`);
   Pearson r per neuroid, median over the region's neuroids **of all animals together**, mean over
   splits (the raw score); its ``error`` is the standard error of the per-split medians
   (``std(ddof=0) / sqrt(n_splits)``). The ceiling is the internal consistency of the same neuroids
   over repetitions on all images; the ceiled score is ``raw**2 / ceiling``.

Results are stored as any predictivity survey's, under subject :data:`POOLED`: the ``train`` row
of each candidate layer holds its *ceiled commitment score* (the quantity step 1 maximises, so the
database's best-train-layer rule commits the same layer), the ``test`` row of the committed layer
its raw target score with its ``error``; the pooled ceilings go to the ``ceilings`` table.

Activations are computed in ``activations_dtype``: ``float32`` as Brain-Score runs its models,
``float64`` for the parity fixture (``scripts/brainscore_fixture.py``). Each is read inside its
forward hook (Brain-Score keeps a reference to the output tensor, which a later in-place operation
could change).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zooscope._timing import stage
from zooscope.benchmark import Benchmark
from zooscope.errors import ScoringError
from zooscope.feature_extraction import LayerSelection
from zooscope.feature_extraction.consumers import Placement
from zooscope.feature_extraction.images import IMAGE_SUFFIXES, ImageSet
from zooscope.feature_extraction.layers import HookSet, discover_layers, hookable_modules
from zooscope.neural.screen import place_on_screen
from zooscope.rsa.predictivity import (
    cross_validation_splits,
    group_medians,
    internal_consistency,
    predictivity,
)
from zooscope.rsa.selection import layer_rank
from zooscope.runtime import parse_bytes
from zooscope.zoo import load_model

logger = logging.getLogger(__name__)

__all__ = [
    "BRAINSCORE_FIELDS",
    "DEFAULT_VISUAL_DEGREES",
    "POOLED",
    "LayerPCA",
    "ceiling_groups",
    "check_inputs",
    "config_identity",
    "score_model",
]

#: Subject label of scores and ceilings pooled over animals (Brain-Score scores all neuroids of a
#: region together).
POOLED = "pooled"
#: The field of view Brain-Score's ``ModelCommitment`` gives a model (``visual_degrees=8``).
DEFAULT_VISUAL_DEGREES = 8.0
#: ``ScoringConfig`` fields of this profile only (kept out of other profiles' config hashes).
BRAINSCORE_FIELDS = (
    "commit_on",
    "pca_images",
    "pca_components",
    "commit_time_bin",
    "activations_dtype",
)
ACTIVATION_DTYPES = ("float32", "float64")
_N_SPLITS = 10


# -- inputs ---------------------------------------------------------------------------------------
def _image_files(folder: str | Path) -> list[Path]:

    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


@functools.lru_cache(maxsize=8)
def _folder_hash(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    h = hashlib.sha256()
    for name, _size, _mtime in stamp:
        h.update(name.encode())
        h.update((Path(folder) / name).read_bytes())
    return h.hexdigest()[:16]


def image_folder_hash(folder: str | Path) -> str:
    """Content hash of a folder's images (names and bytes); recomputed only when a file changes."""
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in _image_files(folder))
    return _folder_hash(str(Path(folder).resolve()), stamp)


def config_identity(config: Any) -> dict[str, Any]:
    """This profile's fields as they enter the config hash: file contents, not paths."""
    return {
        "commit_on": sorted(Benchmark.open(p).content_hash for p in config.commit_on),
        "pca_images": image_folder_hash(config.pca_images) if config.pca_images else None,
        "pca_components": config.pca_components,
        "commit_time_bin": config.commit_time_bin,
        "activations_dtype": config.activations_dtype,
    }


def check_inputs(benchmark: Benchmark, config: Any) -> None:
    """Refuse, before any model, what every model would fail on (``ValueError`` saying what to do)."""
    if not config.commit_on:
        raise ValueError(
            "--profile brainscore needs --commit-on: the commitment benchmark(s) that choose "
            "each region's layer (Brain-Score: FreemanZiemba2013 V1/V2, MajajHong2015 V4/IT)"
        )
    if not config.pca_images:
        raise ValueError(
            "--profile brainscore needs --pca-images: a folder of the images its layer PCA is "
            "fitted on (Brain-Score: 1,000 ImageNet validation images)"
        )
    folder = Path(config.pca_images)
    n = len(_image_files(folder)) if folder.is_dir() else 0
    if n < config.pca_components:
        raise ValueError(
            f"--pca-images {folder} holds {n} images; a PCA with {config.pca_components} "
            "components needs at least as many (Brain-Score fits 1,000 components on 1,000 "
            "ImageNet validation images; --pca-components sets fewer)"
        )
    targets = _regions(benchmark, config)
    commitments = {}
    for path in config.commit_on:
        for region in _regions(Benchmark.open(path), None):
            if region in commitments:
                raise ValueError(
                    f"region {region} is in two commitment files: {commitments[region]} and {path}"
                )
            commitments[region] = path
        _commit_time_bin(Benchmark.open(path), config.commit_time_bin)
    missing = [r for r in targets if r not in commitments]
    if missing:
        raise ValueError(
            f"no commitment benchmark for region(s) {missing} (the commitment files hold "
            f"{sorted(commitments) or 'none'}); add one with --commit-on"
        )
    for bench in (benchmark, *(Benchmark.open(p) for p in config.commit_on)):
        image_degrees(bench)


def image_degrees(benchmark: Benchmark) -> np.ndarray:
    """Visual degrees of every image: the image table's ``degrees``, else the file's attribute."""
    table = benchmark.image_table
    if "degrees" in table.columns:
        return table["degrees"].astype(float).to_numpy()
    if "degrees" in benchmark.attrs:
        return np.full(benchmark.n_images, float(benchmark.attrs["degrees"]))
    raise ValueError(
        f"{benchmark.path} does not say at how many visual degrees its stimuli were shown; "
        "import it again with --degrees (MajajHong2015: 8, FreemanZiemba2013: 4)"
    )


def _regions(benchmark: Benchmark, config: Any) -> list[str]:
    rois = list(config.rois) if config is not None and config.rois else benchmark.roi_names
    return [r for r in benchmark.roi_names if r in rois]


def _commit_time_bin(benchmark: Benchmark, chosen: str | None) -> str | None:
    bins = benchmark.time_bins
    if not bins:
        return None
    if chosen is not None:
        if chosen not in bins:
            raise ValueError(f"{benchmark.path} has no time bin {chosen!r}; it has {bins}")
        return chosen
    if len(bins) > 1:
        raise ValueError(
            f"{benchmark.path} has time bins {bins}; choose the one that commits layers with "
            "--commit-time-bin (Brain-Score's MajajHong2015 commitment uses 70-170)"
        )
    return bins[0]


def pooled_groups(
    benchmark: Benchmark, regions: Sequence[str], time_bins: Sequence[str | None]
) -> dict[str, np.ndarray]:
    """``"pooled|region[|time_bin]"`` -> the units of every subject in that region and bin."""
    units = benchmark.units
    out = {}
    for region in regions:
        for time_bin in time_bins:
            mask = units[region].to_numpy(dtype=bool).copy()
            if time_bin is not None:
                mask &= units["time_bin"].astype(str).to_numpy() == time_bin
            label = f"{POOLED}|{region}" + (f"|{time_bin}" if time_bin is not None else "")
            if mask.any():
                out[label] = np.flatnonzero(mask).astype(np.int64)
    return out


def ceiling_groups(benchmark: Benchmark, config: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The groups and images of the target benchmark's ceilings (pooled, every image)."""
    bins: list[str | None] = list(benchmark.time_bins) or [None]
    groups = pooled_groups(benchmark, _regions(benchmark, config), bins)
    return groups, np.arange(benchmark.n_images)


# -- one benchmark as Brain-Score's NeuralBenchmark sees it ----------------------------------------
def _mean_responses(responses: np.ndarray) -> np.ndarray:
    """Repetition means in float64 ``[images, units]`` (the float32 store holds the exact values)."""
    with np.errstate(invalid="ignore"):
        return np.nanmean(np.asarray(responses, np.float64), axis=2).T


@dataclass
class _Region:
    """One (region, time bin) of a benchmark: repetition means, ceiling, units."""

    label: str  # "region|time_bin" (or "region")
    units: np.ndarray
    Y: np.ndarray  # [n_images, n_units] float64
    ceiling: float


@dataclass
class _Stimuli:
    """A benchmark's stimuli, their degrees and cross-validation splits."""

    path: str
    pixels: np.ndarray  # [n, H, W, 3] uint8
    degrees: np.ndarray
    splits: list[tuple[np.ndarray, np.ndarray]]

    def placed(self, target: float) -> list[np.ndarray]:

        return [
            place_on_screen(image, float(d), target)
            for image, d in zip(self.pixels, self.degrees, strict=True)
        ]


def _stimuli(benchmark: Benchmark) -> _Stimuli:

    table = benchmark.image_table
    labels = table["object_name"].astype(str).to_numpy() if "object_name" in table else None
    if labels is None:
        logger.info("%s has no object_name: unstratified splits", benchmark.path)
    if benchmark.attrs.get("image_size", "native") != "native":
        logger.info(
            "%s: stimuli were resized to %s px at import; Brain-Score places the original pixels "
            "on screen (import with --image-size 0 to keep them)",
            benchmark.path, benchmark.attrs["image_size"],
        )  # fmt: skip
    return _Stimuli(
        path=str(benchmark.path),
        pixels=np.asarray(benchmark.stimuli[()]),
        degrees=image_degrees(benchmark),
        splits=cross_validation_splits(benchmark.n_images, stratify=labels),
    )


def _region_data(benchmark: Benchmark, label: str, units: np.ndarray) -> _Region:

    responses = benchmark.responses(units)
    unit_r = internal_consistency(responses).unit_r
    ceiling = group_medians(unit_r, {label: np.arange(len(units))})[label]
    return _Region(label.split("|", 1)[1], units, _mean_responses(responses), ceiling)


@functools.lru_cache(maxsize=4)
def _commitments(
    paths: tuple[str, ...], hashes: tuple[str, ...], time_bin: str | None
) -> list[tuple[_Stimuli, dict[str, _Region]]]:
    """Each commitment benchmark's stimuli and region data (per process, once)."""
    out = []
    for path in paths:
        bench = Benchmark.open(path)
        chosen = _commit_time_bin(bench, time_bin)
        groups = pooled_groups(bench, _regions(bench, None), [chosen])
        regions = {}
        for label, units in groups.items():
            data = _region_data(bench, label, units)
            regions[data.label.split("|")[0]] = data
        out.append((_stimuli(bench), regions))
    return out


def _score(
    X: np.ndarray, region: _Region, splits: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[float, float, np.ndarray]:
    """Raw score, its error and the per-neuroid r ``[splits, units]`` of one layer on one region."""

    unit_r = predictivity(X, region.Y, splits, "pls")
    raw = group_medians(unit_r, {"g": np.arange(unit_r.shape[1])})["g"]
    with warnings.catch_warnings():  # an all-NaN split (a constant layer) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        medians = np.nanmedian(unit_r, axis=1)
        error = float(np.nanstd(medians) / np.sqrt(len(medians)))
    return raw, error, unit_r


# -- layer PCA -------------------------------------------------------------------------------------
class LayerPCA:
    """Brain-Score's ``LayerPCA`` on one layer: project onto the top principal components.

    Fitted on the PCA image set's activations ``A`` [m, p] (m images): the centred ``A`` gives
    the eigenvectors ``U`` of its Gram matrix ``A A^T``, and the components are ``A^T U / s`` —
    the right singular vectors, as scikit-learn's ``PCA(n_components, random_state=0)`` finds
    them by a full SVD (its solver for these shapes), up to sign. Only their span matters: the
    regression that follows is invariant to any rotation of its features. Components with zero
    variance on the PCA images (with m = n_components images, the last of them: centring leaves
    rank m - 1) are left out; their direction is arbitrary (LAPACK's rounding picks scikit-learn's).
    """

    def __init__(self, mean: np.ndarray, basis: np.ndarray) -> None:
        self.mean = mean
        self.basis = basis  # [p, k]

    @property
    def n_components(self) -> int:
        return self.basis.shape[1]

    @classmethod
    def fit(cls, activations: np.ndarray, n_components: int) -> LayerPCA | None:
        """The PCA of a layer, or None for a layer with ``p <= n_components`` (left as it is).

        Raises
        ------
        ValueError
            Fewer images than components (scikit-learn's PCA refuses too).
        """
        m, p = activations.shape
        if p <= n_components:
            return None
        if m < n_components:
            raise ValueError(
                f"a PCA with {n_components} components needs at least {n_components} images; "
                f"the PCA image set has {m}"
            )
        centred = np.asarray(activations, dtype=np.float64)
        mean = centred.mean(axis=0)
        centred = centred - mean
        w, U = np.linalg.eigh(centred @ centred.T)
        w, U = w[::-1], U[:, ::-1]
        rank = int((w > max(w[0], 0.0) * m * np.finfo(np.float64).eps).sum())
        k = min(n_components, rank)
        basis = centred.T @ (U[:, :k] / np.sqrt(w[:k]))
        if k < n_components:
            logger.debug("layer PCA: %d of %d components have variance", k, n_components)
        dtype = activations.dtype
        return cls(mean.astype(dtype), basis.astype(dtype))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return (batch - self.mean) @ self.basis


# -- activations -----------------------------------------------------------------------------------
class _Stop(Exception):
    """Raised by the last hook a pass needs: the rest of the forward pass is not run."""


def layer_activations(
    loaded: Any,
    images: Sequence[Any],
    specs: Sequence[Any],
    dtype: str,
    batch_size: int = 64,
    project: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None,
) -> dict[str, np.ndarray]:
    """Flattened activations ``[n, p]`` (or ``project``-ed ``[n, k]``) of ``specs`` on ``images``.

    Parameters
    ----------
    loaded : LoadedModel
        Its module already in ``dtype``.
    images : sequence of uint8 arrays [H, W, 3] or PIL images
        Sizes may differ (each is preprocessed on its own).
    specs : sequence of LayerSpec
        From :func:`zooscope.feature_extraction.list_layers`.
    dtype : {"float32", "float64"}
    batch_size : int
    project : dict, optional
        Layer name -> a function applied to each batch ``[b, p]`` (the layer PCA).
    """
    import torch

    project = project or {}
    by_key = {spec.key: spec for spec in specs}
    last = max(specs, key=lambda spec: spec.index).key
    out: dict[str, np.ndarray] = {}
    rows = slice(0, 0)

    def on_output(path: str, call: int, part: tuple[Any, ...], tensor: Any) -> None:
        spec = by_key.get((path, call, part))
        if spec is None:
            return
        flat = (
            tensor.detach().movedim(spec.batch_axis, 0).reshape(tensor.shape[spec.batch_axis], -1)
        )
        values = flat.cpu().numpy().astype(dtype, copy=True)
        if spec.name in project:
            values = project[spec.name](values)
        if spec.name not in out:
            out[spec.name] = np.empty((len(images), values.shape[1]), dtype=values.dtype)
        out[spec.name][rows] = values
        if (path, call, part) == last:
            raise _Stop

    torch_dtype = getattr(torch, dtype)
    paths = {spec.module_path for spec in specs}
    modules = [(p, m) for p, m in hookable_modules(loaded.module, include_root=True) if p in paths]
    with HookSet(modules, on_output) as hooks, torch.no_grad():
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            batch = torch.stack([loaded.preprocess(image) for image in chunk]).to(torch_dtype)
            rows = slice(start, start + len(chunk))
            hooks.new_forward()
            try:
                loaded.module(batch.to(loaded.device))
            except _Stop:
                pass
    return out


def _passes(specs: Sequence[Any], cost: Callable[[Any], int], budget: int) -> list[list[Any]]:
    """Consecutive layers packed into passes whose summed ``cost`` fits ``budget`` (at least one)."""
    passes: list[list[Any]] = []
    used = 0
    for spec in specs:
        if passes and used + cost(spec) <= budget:
            passes[-1].append(spec)
            used += cost(spec)
        else:
            passes.append([spec])
            used = cost(spec)
    return passes


def _commitment_scores(
    loaded: Any, specs: list[Any], commitments: list[Any], placed: list[Any],
    pca_images: list[Any], targets: list[str], config: Any, batch_size: int, budget: int,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Each target region's ceiled commitment score of every candidate layer, in budgeted passes.

    Per pass of layers: activations of the PCA images, the layer PCAs, the reduced activations
    of every commitment benchmark's placed stimuli, and the region's cross-validated score.
    """

    itemsize = np.dtype(config.activations_dtype).itemsize
    m, k = len(pca_images), config.pca_components
    n_commit = sum(len(p) for p in placed)

    def cost(spec: Any) -> int:
        p = spec.n_features
        return (m * p * (itemsize + 8) + p * k * itemsize if p > k else 0) + n_commit * min(
            p, k
        ) * itemsize

    # commitment scores: ceiled, per region and candidate layer
    ceiled: dict[str, np.ndarray] = {}
    region_sets = {
        r: (i, data) for i, (_, regions) in enumerate(commitments) for r, data in regions.items()
    }
    for region in targets:
        ceiled[region] = np.full(len(specs), np.nan)
    position = {spec.name: i for i, spec in enumerate(specs)}
    for group in _passes(specs, cost, budget):
        try:
            with stage("forward"):
                full = layer_activations(
                    loaded, pca_images, group, config.activations_dtype, batch_size
                )
            with stage("pca"):
                pcas = {}
                for spec in group:
                    pca = LayerPCA.fit(full.pop(spec.name), k)
                    if pca is not None:
                        pcas[spec.name] = pca
            with stage("forward"):
                reduced = [
                    layer_activations(
                        loaded, images, group, config.activations_dtype, batch_size, pcas
                    )
                    for images in placed
                ]
        except Exception as error:
            raise ScoringError("extract", error) from error
        try:
            with stage("rsa"):
                for region in targets:
                    index, data = region_sets[region]
                    splits = commitments[index][0].splits
                    for spec in group:
                        raw, _error, _ = _score(reduced[index][spec.name], data, splits)
                        ceiled[region][position[spec.name]] = raw**2 / data.ceiling
        except Exception as error:
            raise ScoringError("score", error) from error
        del full, reduced, pcas
    return ceiled


# -- the profile's scoring of one model ------------------------------------------------------------
def _load(entry: Any, config: Any, options: Any) -> Any:
    import torch

    loaded = load_model(entry, device=options.device, preprocessing="brainscore")
    loaded.module.to(getattr(torch, config.activations_dtype))
    return loaded


def _pca_images(folder: str) -> list[Any]:

    images = ImageSet(folder)
    return [images[i] for i in range(len(images))]


@dataclass
class BrainScoreResult:
    """One model scored under the profile (the survey stores it like any model's scores).

    Attributes
    ----------
    model : dict
        The manifest row and ``param_count``.
    layers : DataFrame, shape (n_layers, 4)
        ``layer_index, layer_name, module_type, n_features`` of the candidate layers.
    scores : DataFrame
        Tidy rows ``layer_index, layer_name, subject, roi, metric, split, score, error``.
    seconds : float
    unit_scores : DataFrame or None
        Each target neuroid's r of the committed layer (mean over splits).
    """

    model: dict[str, Any]
    layers: pd.DataFrame
    scores: pd.DataFrame
    seconds: float
    unit_scores: pd.DataFrame | None


def _target_scores(
    loaded: Any, benchmark: Benchmark, specs: list[Any], committed: dict[str, Any],
    ceiled: dict[str, np.ndarray], targets: list[str], degrees: float, config: Any,
    batch_size: int,
) -> tuple[list[dict[str, Any]], list[pd.DataFrame]]:  # fmt: skip
    """Score rows (every candidate layer's ``train`` row, the committed layer's ``test`` row) and
    per-neuroid r of each pooled target group, from the committed layers' activations."""
    target = _stimuli(benchmark)
    layers_needed = list({spec.name: spec for spec in committed.values()}.values())
    try:
        with stage("forward"):
            features = layer_activations(
                loaded, target.placed(degrees), sorted(layers_needed, key=lambda s: s.index),
                config.activations_dtype, batch_size,
            )  # fmt: skip
    except Exception as error:
        raise ScoringError("extract", error) from error
    rows: list[dict[str, Any]] = []
    units: list[pd.DataFrame] = []
    bins: list[str | None] = list(benchmark.time_bins) or [None]
    try:
        with stage("rsa"):
            for label, unit_index in pooled_groups(benchmark, targets, bins).items():
                _, roi = label.split("|", 1)
                region = roi.split("|")[0]
                spec = committed[region]
                responses = benchmark.responses(unit_index)
                data = _Region(roi, unit_index, _mean_responses(responses), float("nan"))
                raw, error, unit_r = _score(features[spec.name], data, target.splits)
                for i, layer in enumerate(specs):  # ceiled[region] is in the order of specs
                    rows.append(_row(layer, roi, "train", ceiled[region][i]))
                rows.append({**_row(spec, roi, "test", raw), "error": error})
                with warnings.catch_warnings():  # an all-NaN neuroid stays NaN
                    warnings.simplefilter("ignore", RuntimeWarning)
                    per_unit = np.nanmean(unit_r, axis=0)
                units.append(
                    pd.DataFrame(
                        {"layer_index": spec.index, "layer_name": spec.name, "subject": POOLED,
                         "roi": roi, "metric": "predictivity", "split": "test",
                         "unit": unit_index, "score": per_unit}
                    )
                )  # fmt: skip
    except Exception as error:
        raise ScoringError("score", error) from error
    return rows, units


def score_model(entry: Any, benchmark: Benchmark, config: Any, options: Any) -> BrainScoreResult:
    """Score one model under the brainscore profile (see the module docstring).

    Returns
    -------
    BrainScoreResult
        ``layers``: the candidate layers; ``scores``: a ``train`` row (ceiled commitment score)
        per candidate layer and target group, and a ``test`` row (raw score, ``error``) for the
        committed layer; ``unit_scores``: each target neuroid's r (mean over splits).

    Raises
    ------
    ScoringError
        With ``stage`` in {"load", "extract", "score"}.
    """

    started = time.perf_counter()
    try:
        with stage("load"):
            loaded = _load(entry, config, options)
    except Exception as error:
        raise ScoringError("load", error) from error
    degrees = float(entry.metadata.get("visual_degrees") or DEFAULT_VISUAL_DEGREES)
    hashes = tuple(Benchmark.open(p).content_hash for p in config.commit_on)
    commitments = _commitments(tuple(config.commit_on), hashes, config.commit_time_bin)
    placed = [stimuli.placed(degrees) for stimuli, _ in commitments]
    try:
        selection = LayerSelection(include=config.layers) if config.layers else None
        # discovered on the model's own dtype (the probe is cast like every batch)
        specs = _discover(loaded, placed[0], selection, config)
        if not specs:
            what = f"matches {config.layers!r}" if config.layers else "was found"
            raise ValueError(f"no layer of {entry.model_uid} {what}")
        pca_images = _pca_images(config.pca_images)
    except Exception as error:
        raise ScoringError("extract", error) from error

    budget = (
        parse_bytes(options.memory_budget)
        if options.memory_budget is not None
        else Placement.of(loaded.device).backend.free_memory_bytes() // 2
    )

    targets = _regions(benchmark, config)
    ceiled = _commitment_scores(loaded, specs, commitments, placed, pca_images, targets, config,
                                options.batch_size, budget)  # fmt: skip
    indices = np.array([spec.index for spec in specs])
    committed = {}
    for region in targets:
        order = np.lexsort(tuple(reversed(layer_rank(ceiled[region], indices))))
        committed[region] = specs[int(order[0])]
        logger.info(
            "%s: %s committed to %s (ceiled commitment score %.3f)",
            entry.model_uid, region, committed[region].name, ceiled[region][order[0]],
        )  # fmt: skip

    rows, units = _target_scores(loaded, benchmark, specs, committed, ceiled, targets, degrees,
                                 config, options.batch_size)  # fmt: skip
    layer_rows = pd.DataFrame(
        {
            "layer_index": [s.index for s in specs],
            "layer_name": [s.name for s in specs],
            "module_type": [s.module_type for s in specs],
            "n_features": [s.n_features for s in specs],
        }
    )
    return BrainScoreResult(
        model={**entry.to_record(), "param_count": loaded.info.n_params},
        layers=layer_rows,
        scores=pd.DataFrame(rows),
        seconds=time.perf_counter() - started,
        unit_scores=pd.concat(units, ignore_index=True) if units else None,
    )


def _row(spec: Any, roi: str, split: str, score: float) -> dict[str, Any]:
    return {"layer_index": spec.index, "layer_name": spec.name, "subject": POOLED, "roi": roi,
            "metric": "predictivity", "split": split, "score": float(score), "error": np.nan}  # fmt: skip


def _discover(loaded: Any, images: Iterable[Any], selection: Any, config: Any) -> list[Any]:
    """The candidate layers, found by a probe of three images in the model's dtype."""
    import torch

    probe = torch.stack([loaded.preprocess(image) for image in list(images)[:3]])
    probe = probe.to(getattr(torch, config.activations_dtype)).to(loaded.device)
    return discover_layers(loaded.module, probe, selection, policy=config.layer_policy)
