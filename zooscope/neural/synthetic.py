"""A small synthetic macaque-style Brain-Score dataset with known layer-to-region ground truth.

Writes, in the real brainio layout, an assembly (``presentation x neuroid x time_bin``; V1, V4
and IT neurons of two animals; two time bins; repetitions, a few missing; object labels) and its
stimulus set (CSV + zip of PNGs). Each neuron is a random linear read-out of the pooled activations
of one layer of the ImageNet-trained EfficientNet-Lite0 plus trial noise. The planted layer deepens
along the hierarchy (:data:`PLANTED_LAYERS`), early layers are pooled on a coarse spatial grid
(:data:`PLANTED_GRID`), and IT's late bin reads a deeper layer than its early bin, so a survey
should commit V1 < V4 < IT and IT late >= IT early, and the trained model should beat its random
twin everywhere.
"""

from __future__ import annotations

import logging
import os
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd

from zooscope.neural.brainio import SYNTHETIC_ATTR, write_assembly
from zooscope.nsd.synthetic import effnet_lite0_layer_features, natural_images

logger = logging.getLogger(__name__)

__all__ = [
    "PLANTED_GRID", "PLANTED_LAYERS", "SYNTHETIC_SOURCE", "TIME_BINS", "write_synthetic_assembly",
]  # fmt: skip

#: Time bins (ms) of the synthetic recordings.
TIME_BINS: tuple[tuple[int, int], ...] = ((70, 170), (170, 270))
#: (region, time bin index) -> EfficientNet-Lite0 module whose pooled output drives the neurons.
PLANTED_LAYERS: dict[tuple[str, int], str] = {
    ("V1", 0): "blocks.1",
    ("V1", 1): "blocks.1",
    ("V4", 0): "blocks.3",
    ("V4", 1): "blocks.3",
    ("IT", 0): "blocks.5",
    ("IT", 1): "conv_head",
}
#: Spatial grid of the pooling per planted layer: early regions keep coarse retinotopy, which
#: deeper (more invariant) layers lose, so the planted layer is the best linear predictor.
PLANTED_GRID: dict[str, int] = {"blocks.1": 4, "blocks.3": 2}
#: The ``source`` a benchmark imported from the synthetic assembly records.
SYNTHETIC_SOURCE = (
    "synthetic macaque-style assembly written by zooscope.neural.synthetic (brainio format; "
    "neurons read out pooled EfficientNet-Lite0 layers; not recorded data)"
)
_NEURONS = {"V1": 16, "V4": 16, "IT": 24}
_ANIMALS = ("m1", "m2")
_OBJECTS = ("animal", "car", "face", "fruit", "house", "plane", "tree", "boat")


def _standardise(a: np.ndarray) -> np.ndarray:
    sd = a.std(axis=0, keepdims=True)
    return (a - a.mean(axis=0, keepdims=True)) / np.where(sd > 0, sd, 1.0)


def write_synthetic_assembly(
    out: str | os.PathLike,
    n_images: int = 200,
    n_reps: int = 6,
    image_size: int = 224,
    noise: float = 0.7,
    seed: int = 0,
) -> dict[str, Path]:
    """Write ``assembly.nc``, ``stimuli.csv`` and ``stimuli.zip`` to ``out``.

    Parameters
    ----------
    out : path
        Folder (created).
    n_images : int
        Stimuli (split half commitment, half held out by the importer's default splits).
    n_reps : int
        Repetitions per stimulus; about 3 % of the presentations are dropped (missing reps).
    image_size : int
        Side of the PNG stimuli.
    noise : float
        Trial-noise SD relative to the unit-variance signal.
    seed : int

    Returns
    -------
    dict
        ``{"assembly": ..., "stimuli": ..., "images": ...}`` paths, the arguments of
        :func:`zooscope.neural.brainio.import_brainio`.
    """
    from PIL import Image

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = natural_images(n_images, image_size=image_size, seed=seed)
    stimulus_ids = [f"synth{k:04d}" for k in range(n_images)]
    objects = np.array(_OBJECTS)[np.arange(n_images) % len(_OBJECTS)]
    features = effnet_lite0_layer_features(
        pixels, sorted(set(PLANTED_LAYERS.values())), grid=PLANTED_GRID
    )
    features = {layer: _standardise(np.asarray(f, np.float64)) for layer, f in features.items()}

    neuroids = []
    for region, count in _NEURONS.items():
        for k in range(count):
            neuroids.append(
                {"neuroid_id": f"{region}_{k:02d}", "region": region, "animal": _ANIMALS[k % 2]}
            )
    neuroid = pd.DataFrame(neuroids)
    signal = np.empty((n_images, len(neuroid), len(TIME_BINS)))
    for t in range(len(TIME_BINS)):
        for region in _NEURONS:
            columns = np.flatnonzero(neuroid["region"] == region)
            F = features[PLANTED_LAYERS[(region, t)]]
            weights = rng.normal(size=(F.shape[1], columns.size))
            signal[:, columns, t] = _standardise(F @ weights)
    present = [(i, r) for i in range(n_images) for r in range(n_reps) if rng.random() > 0.03]
    order = rng.permutation(len(present))
    image = np.array([present[j][0] for j in order])
    rep = np.array([present[j][1] for j in order])
    values = signal[image] + noise * rng.normal(size=(len(image), len(neuroid), len(TIME_BINS)))
    presentation = pd.DataFrame(
        {
            "stimulus_id": np.array(stimulus_ids)[image],
            "repetition": rep,
            "object_name": objects[image],
        }
    )
    time_bin = pd.DataFrame(
        {"time_bin_start": [s for s, _ in TIME_BINS], "time_bin_end": [e for _, e in TIME_BINS]}
    )
    paths = {
        "assembly": write_assembly(
            out / "assembly.nc",
            values,
            presentation,
            neuroid,
            time_bin,
            attrs={SYNTHETIC_ATTR: SYNTHETIC_SOURCE},
        ),
        "stimuli": out / "stimuli.csv",
        "images": out / "stimuli.zip",
    }
    pd.DataFrame({"stimulus_id": stimulus_ids, "object_name": objects}).to_csv(
        paths["stimuli"], index=False
    )
    with zipfile.ZipFile(paths["images"], "w") as archive:
        for sid, im in zip(stimulus_ids, pixels, strict=True):
            buffer = BytesIO()
            Image.fromarray(im).save(buffer, format="PNG")
            archive.writestr(f"{sid}.png", buffer.getvalue())
    logger.info(
        "wrote a synthetic assembly (%d neuroids, %d presentations) to %s",
        len(neuroid),
        len(image),
        out,
    )
    return paths
