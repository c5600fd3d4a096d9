"""Build a Benchmark file from an NSD tree: select voxels, z-score per session, group repetitions.

For each subject: evaluate the requested ROIs on the subject's grid, take the union of their
voxels, then read the beta files session by session (only the bounding box of those voxels, see
:func:`zooscope.nsd.betas.read_session_betas`), divide by 300, z-score each voxel across the
session's trials, and copy the trials of the requested images into
``responses[voxel, image, repetition]`` (repetitions in chronological order). Only one session's
selected voxels are held at a time, plus the subject's output block.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from zooscope.benchmark import Benchmark, BenchmarkWriter, default_splits, read_rows
from zooscope.errors import reading
from zooscope.nsd.betas import BETA_SCALE, beta_file_shape, read_session_betas, zscore_session
from zooscope.nsd.design import NSDDesign, repetition_index
from zooscope.nsd.layout import BETA_FORMATS, NSDLayout
from zooscope.nsd.rois import ROIVolumes, parse_roi_spec, roi_mask
from zooscope.nsd.synthetic import TRUTH_JSON

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SubjectSessions", "find_sessions", "prepare", "select_voxels"]

logger = logging.getLogger(__name__)
_STIM_BATCH = 32


@dataclass(frozen=True)
class SubjectSessions:
    """Beta files of one subject that are on disk.

    Attributes
    ----------
    fmt : str
        ``"hdf5"`` or ``"nii.gz"``.
    sessions : list of int
        1-based sessions ``1..n`` (contiguous).
    grid : tuple of int
        (X, Y, Z) of the beta volumes.
    trials_per_session : int
        Columns per beta file (750 in NSD).
    """

    fmt: str
    sessions: list[int]
    grid: tuple[int, int, int]
    trials_per_session: int


def _source(root: Path) -> str:
    """The benchmark's ``source``: the NSD release, or the synthetic tree that imitates it."""
    if (Path(root) / TRUTH_JSON).exists():
        return (
            f"synthetic NSD written by zooscope.nsd.synthetic (planted truth in {TRUTH_JSON}; "
            "the layout of the Natural Scenes Dataset, not its data)"
        )
    return "Natural Scenes Dataset (Allen et al. 2022)"


def find_sessions(layout: NSDLayout, subject: int, fmt: str = "auto") -> SubjectSessions:
    """Sessions of ``subject`` on disk, in format ``fmt`` (``auto``: HDF5 if present).

    Raises
    ------
    FileNotFoundError
        No beta file in the requested format.
    ValueError
        Sessions not contiguous from 1, or beta files of different shapes.
    """
    present = layout.sessions(subject)
    if fmt == "auto":
        fmt = next((f for f in BETA_FORMATS if present[f]), BETA_FORMATS[0])
    if fmt not in BETA_FORMATS:
        raise ValueError(f"beta format must be 'auto' or one of {BETA_FORMATS}, got {fmt!r}")
    sessions = present[fmt]
    if not sessions:
        layout.require(layout.betas(subject, 1, fmt), f"single-trial betas of subject {subject}")
    expected = list(range(1, len(sessions) + 1))
    if sessions != expected:
        missing = sorted(set(range(1, max(sessions) + 1)) - set(sessions))
        paths = ", ".join(str(layout.betas(subject, m, fmt)) for m in missing[:3])
        raise ValueError(
            f"subject {subject}: sessions {missing} are missing ({paths}{', ...' if len(missing) > 3 else ''}) "
            f"while later ones exist; trial-to-session mapping needs every session from 1 "
            "(remove the later sessions to use the first ones only)"
        )
    shapes = {s: beta_file_shape(layout.betas(subject, s, fmt)) for s in sessions}
    distinct = set(shapes.values())
    if len(distinct) != 1:
        raise ValueError(f"subject {subject}: beta files differ in shape: {shapes}")
    x, y, z, t = distinct.pop()
    return SubjectSessions(fmt, sessions, (x, y, z), t)


def select_voxels(
    rois: ROIVolumes, specs: Sequence[str], ncsnr_threshold: float = 0.2
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Voxels in the union of ROIs, and each ROI's membership.

    Parameters
    ----------
    rois : ROIVolumes
    specs : sequence of str
        Named ROIs (``OTC``, ``EVC``), expressions, or ``name=expression``.
    ncsnr_threshold : float
        ncsnr threshold of the named ``OTC`` ROI.

    Returns
    -------
    xyz : ndarray of int64, shape (n_voxels, 3)
        0-based (x, y, z), in C order of the volume.
    flags : dict of str to ndarray of bool, shape (n_voxels,)
        ROI name -> membership of each selected voxel.
    """
    masks = {}
    for spec in specs:
        name, expr = parse_roi_spec(spec)
        if name in masks:
            raise ValueError(f"ROI {name!r} given twice")
        masks[name] = roi_mask(rois, expr, ncsnr_threshold)
    union = np.zeros(rois.shape, dtype=bool) if masks else None
    for mask in masks.values():
        union |= mask
    xyz = np.argwhere(union).astype(np.int64)
    flags = {name: mask[tuple(xyz.T)] for name, mask in masks.items()}
    return xyz, flags


def _image_ids(design: NSDDesign, images: str | ArrayLike) -> np.ndarray:
    if isinstance(images, str):
        if images != "shared1000":
            raise ValueError(f"images must be 'shared1000' or an array of 73k ids, got {images!r}")
        return design.shared_image_ids()
    ids = np.asarray(images, dtype=np.int64).ravel()
    if ids.size == 0 or len(np.unique(ids)) != ids.size:
        raise ValueError("images must be a non-empty array of unique 0-based 73k ids")
    return ids


def _subject_block(
    layout: NSDLayout,
    subject: int,
    sessions: SubjectSessions,
    xyz: np.ndarray,
    trials: pd.DataFrame,
    reps: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Responses [n_voxels, n_images, n_reps] of one subject, and a per-voxel 'dead' flag."""
    from tqdm.auto import tqdm

    n_images, n_reps = reps.shape
    out = np.full((xyz.shape[0], n_images, n_reps), np.nan, dtype=np.float32)
    dead = np.zeros(xyz.shape[0], dtype=bool)
    img_idx, rep_idx = np.nonzero(reps >= 0)
    trial_pos = reps[img_idx, rep_idx]
    session_of = trials["session"].to_numpy()[trial_pos]
    column_of = trials["column"].to_numpy()[trial_pos]
    for session in tqdm(sessions.sessions, desc=f"subj{subject:02d} sessions", leave=False):
        path = layout.betas(subject, session, sessions.fmt)
        z = zscore_session(read_session_betas(path, xyz))
        dead |= np.isnan(z).any(axis=1)
        here = session_of == session
        out[:, img_idx[here], rep_idx[here]] = z[:, column_of[here]]
    return out, dead


def prepare(
    root: str | os.PathLike,
    out: str | os.PathLike,
    subjects: Sequence[int] = (1, 2, 5, 7),
    images: str | ArrayLike = "shared1000",
    rois: Sequence[str] = ("OTC", "EVC"),
    ncsnr_threshold: float = 0.2,
    *,
    beta_version: str = "betas_fithrf_GLMdenoise_RR",
    space: str = "func1pt8mm",
    beta_format: str = "auto",
    min_reps: int = 1,
) -> Benchmark:
    """Write the Benchmark file of NSD subjects, images and ROIs.

    Parameters
    ----------
    root : str or Path
        NSD root (holding ``nsddata/``, ``nsddata_betas/``, ``nsddata_stimuli/``).
    out : str or Path
        Output ``.h5`` file (written atomically).
    subjects : sequence of int, default=(1, 2, 5, 7)
        1-based subjects (Conwell et al. 2024 use the four who completed all sessions).
    images : "shared1000" or array_like of int
        Images (0-based 73k ids); ``"shared1000"`` = the shared images, ascending id.
    rois : sequence of str, default=("OTC", "EVC")
        Named ROIs, ROI expressions or ``name=expression`` (see :mod:`zooscope.nsd.rois`).
    ncsnr_threshold : float, default=0.2
        ncsnr threshold of ``OTC``.
    beta_version, space : str
        Beta folder and volume space.
    beta_format : {"auto", "hdf5", "nii.gz"}
        Beta files to read; ``auto`` prefers HDF5.
    min_reps : int, default=1
        Every image must have at least this many repetitions in every subject (on the
        sessions present), else ValueError. Images with fewer than the most repetitions get
        ``NaN`` there (logged).

    Returns
    -------
    Benchmark
        The written file; ``responses`` float32 [n_voxels, n_images, n_reps] of z-scored betas.

    Notes
    -----
    Voxels with zero variance in any session (edge voxels) cannot be z-scored and are dropped
    (logged per subject).
    """
    import pandas as pd

    layout = NSDLayout(root, beta_version=beta_version, space=space)
    subjects = [int(s) for s in subjects]
    if not subjects or len(set(subjects)) != len(subjects):
        raise ValueError(f"subjects must be a non-empty list of distinct subjects, got {subjects}")
    if not rois:
        raise ValueError("give at least one ROI")
    design = NSDDesign.load(layout)
    image_ids = _image_ids(design, images)
    stim_path = layout.require(layout.stimuli, "the stimuli stored in the benchmark")

    # Plan every subject before reading betas, so that bad input fails fast.
    plans, n_reps = _plan_subjects(layout, design, subjects, beta_format, image_ids, min_reps)

    import h5py

    with reading(stim_path, "nsd_stimuli.hdf5 (HDF5)"):
        stim_file = h5py.File(stim_path, "r")  # only the opening: later errors are not its fault
    with stim_file:
        if "imgBrick" not in stim_file:
            raise ValueError(f"{stim_path} has no dataset 'imgBrick'")
        brick = stim_file["imgBrick"]
        if image_ids.max() >= brick.shape[0]:
            raise ValueError(f"image id {image_ids.max()} beyond {brick.shape[0]} stimuli")
        specs = dict(parse_roi_spec(spec) for spec in rois)
        attrs: dict[str, Any] = {
            "source": _source(layout.root),
            "nsd_root": str(layout.root),
            "beta_version": beta_version,
            "space": space,
            "beta_scale": f"int16 / {BETA_SCALE:g} (percent signal change)",
            "zscore": "per voxel, across all trials of each session",
            "rois": specs,
            "ncsnr_threshold": ncsnr_threshold,
            "fLoc_t_threshold": 1.0,
            "subjects": subjects,
            "images": images if isinstance(images, str) else "custom",
            "repetitions": "chronological order of presentation",
            "splits": "train = even image positions, test = odd",
            "unit_coordinates": "0-based (x, y, z) voxel indices of the NIfTI grid",
            "subject_info": {},
        }
        splits = default_splits(image_ids.size)
        stim_shape = (image_ids.size, *brick.shape[1:])
        with BenchmarkWriter(
            out, image_ids.size, n_reps, stim_shape, image_ids, splits, attrs
        ) as writer:
            unit_tables = []
            for subject in subjects:
                table, info = _write_subject(
                    writer, layout, subject, plans[subject], n_reps, rois, ncsnr_threshold, space
                )
                unit_tables.append(table)
                attrs["subject_info"][str(subject)] = info
            writer.units = pd.concat(unit_tables, ignore_index=True)
            writer.attrs = attrs
            for start in range(0, image_ids.size, _STIM_BATCH):
                ids = image_ids[start : start + _STIM_BATCH]
                writer.write_stimuli(start, read_rows(brick, ids))
    logger.debug("wrote %s", Path(out))
    return Benchmark.open(out)


def _plan_subjects(
    layout: NSDLayout,
    design: NSDDesign,
    subjects: list[int],
    beta_format: str,
    image_ids: np.ndarray,
    min_reps: int,
) -> tuple[dict[int, tuple[Any, Any, np.ndarray, np.ndarray]], int]:
    """Each subject's sessions, trials, repetition index and counts, and the most repetitions.

    ``ValueError`` when an image has fewer than ``min_reps`` repetitions for some subject;
    images with fewer than the most repetitions are logged (they get NaN there).
    """
    plans = {}
    for subject in subjects:
        sessions = find_sessions(layout, subject, beta_format)
        trials = design.trials(subject, sessions.trials_per_session, len(sessions.sessions))
        reps = repetition_index(trials["image_id"].to_numpy(), image_ids)
        counts = (reps >= 0).sum(axis=1)
        too_few = int((counts < min_reps).sum())
        if too_few:
            raise ValueError(
                f"subject {subject}: {too_few} of {image_ids.size} images have fewer than "
                f"{min_reps} repetition(s) in sessions {sessions.sessions[0]}-"
                f"{sessions.sessions[-1]} ({sessions.fmt}); choose subjects who saw every "
                "image (NSD: 1, 2, 5, 7 for shared1000) or lower min_reps"
            )
        plans[subject] = (sessions, trials, reps, counts)
    n_reps = max(reps.shape[1] for _, _, reps, _ in plans.values())
    for subject, (sessions, _, _, counts) in plans.items():
        short = int((counts < n_reps).sum())
        if short:
            logger.warning(
                "subject %d: %d of %d images have fewer than %d repetitions (NaN there); "
                "%d sessions present",
                subject, short, image_ids.size, n_reps, len(sessions.sessions),
            )  # fmt: skip
    return plans, n_reps


def _write_subject(
    writer: BenchmarkWriter,
    layout: NSDLayout,
    subject: int,
    plan: tuple[Any, Any, np.ndarray, np.ndarray],
    n_reps: int,
    rois: Sequence[str],
    ncsnr_threshold: float,
    space: str,
) -> tuple[Any, dict[str, Any]]:
    """Append one subject's z-scored responses; its unit table and its ``subject_info``."""
    import pandas as pd

    sessions, trials, reps, _ = plan
    if reps.shape[1] < n_reps:
        reps = np.pad(reps, ((0, 0), (0, n_reps - reps.shape[1])), constant_values=-1)
    volumes = ROIVolumes(layout, subject)
    xyz, flags = select_voxels(volumes, rois, ncsnr_threshold)
    if volumes.shape != sessions.grid:
        raise ValueError(
            f"subject {subject}: ROI grid {volumes.shape} differs from the beta "
            f"grid {sessions.grid}; use ROIs of space {space!r}"
        )
    logger.debug(
        "subject %d: %d voxels (%s), %d sessions (%s)",
        subject, len(xyz), {k: int(v.sum()) for k, v in flags.items()},
        len(sessions.sessions), sessions.fmt,
    )  # fmt: skip
    block, dead = _subject_block(layout, subject, sessions, xyz, trials, reps)
    if dead.any():
        logger.info(  # expected at the mask's edges; the count is in the log
            "subject %d: dropped %d voxel(s) with zero variance in at least one "
            "session (cannot be z-scored)",
            subject, int(dead.sum()),
        )  # fmt: skip
    keep = ~dead
    writer.append_responses(block[keep])
    del block
    ncsnr = volumes.ncsnr()[tuple(xyz[keep].T)]
    table = {
        "subject": np.full(int(keep.sum()), subject, dtype=np.int64),
        "x": xyz[keep, 0],
        "y": xyz[keep, 1],
        "z": xyz[keep, 2],
        "ncsnr": ncsnr.astype(np.float32),
    }
    table.update({name: flag[keep] for name, flag in flags.items()})
    info = {
        "sessions": len(sessions.sessions),
        "beta_format": sessions.fmt,
        "trials_per_session": sessions.trials_per_session,
        "n_voxels": int(keep.sum()),
        "n_dropped_zero_variance": int(dead.sum()),
        "roi_counts": {k: int(v[keep].sum()) for k, v in flags.items()},
    }
    return pd.DataFrame(table), info
