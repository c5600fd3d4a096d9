"""Read selected voxels of NSD single-trial beta files, and z-score them per session.

NSD stores betas as int16 percent signal change times 300, one file per session:
``betas_sessionNN.nii.gz`` with shape (X, Y, Z, T) and ``betas_sessionNN.hdf5`` with dataset
``betas`` that h5py reads with the axes reversed, (T, Z, Y, X). Only the bounding box of the
wanted voxels is read, in blocks of trials, so memory stays at one block of that box plus the
selected voxels of one session.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from zooscope.errors import reading

__all__ = ["BETA_SCALE", "beta_file_shape", "read_session_betas", "zscore_session"]

logger = logging.getLogger(__name__)

#: NSD betas are percent signal change multiplied by this factor and stored as int16.
BETA_SCALE = 300.0
_BLOCK_BYTES = 64 << 20


def _what(path: Path) -> str:
    return f"an NSD beta file ({'HDF5' if path.name.endswith('.hdf5') else 'gzip NIfTI'})"


def beta_file_shape(path: str | os.PathLike) -> tuple[int, int, int, int]:
    """(X, Y, Z, T) of a beta file (``.hdf5`` or ``.nii.gz``), read from its header."""
    path = Path(path)
    with reading(path, _what(path)):
        return _beta_file_shape(path)


def _beta_file_shape(path: Path) -> tuple[int, int, int, int]:
    if path.name.endswith(".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            _check_hdf5(f, path)
            t, z, y, x = f["betas"].shape
        return int(x), int(y), int(z), int(t)
    import nibabel as nib

    shape = nib.load(path).shape
    if len(shape) != 4:
        raise ValueError(f"{path}: expected a 4-D (X, Y, Z, trials) volume, got shape {shape}")
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def _check_hdf5(f: object, path: Path) -> None:
    if "betas" not in f:  # type: ignore[operator]
        raise ValueError(f"{path}: no dataset 'betas' (expected NSD betas_sessionNN.hdf5)")
    if len(f["betas"].shape) != 4:  # type: ignore[index]
        raise ValueError(f"{path}: dataset 'betas' must be 4-D (trials, Z, Y, X)")


def read_session_betas(
    path: str | os.PathLike, voxels: ArrayLike, block_trials: int | None = None
) -> np.ndarray:
    """Betas of selected voxels on all trials of one session, in percent signal change.

    Parameters
    ----------
    path : str or Path
        ``betas_sessionNN.hdf5`` or ``betas_sessionNN.nii.gz``.
    voxels : array_like of int, shape (n_voxels, 3)
        0-based (x, y, z) voxel coordinates in NIfTI axis order.
    block_trials : int, optional
        Trials read per block; default keeps a block of the voxels' bounding box near 64 MiB.

    Returns
    -------
    ndarray of float32, shape (n_voxels, n_trials)
        ``int16 / 300``.
    """
    path = Path(path)
    with reading(path, _what(path)):
        return _read_session_betas(path, voxels, block_trials)


def _read_session_betas(path: Path, voxels: ArrayLike, block_trials: int | None) -> np.ndarray:
    xyz = np.asarray(voxels, dtype=np.int64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"voxels must be [n_voxels, 3] (x, y, z), got shape {xyz.shape}")
    shape = beta_file_shape(path)
    if xyz.size and ((xyz < 0).any() or (xyz >= np.array(shape[:3])).any()):
        raise ValueError(f"voxel coordinates outside the {shape[:3]} grid of {path}")
    n_trials = shape[3]
    out = np.empty((xyz.shape[0], n_trials), dtype=np.float32)
    if xyz.shape[0] == 0:
        return out
    lo = xyz.min(axis=0)
    hi = xyz.max(axis=0) + 1
    local = xyz - lo
    box = int(np.prod(hi - lo))
    if block_trials is None:
        block_trials = max(1, min(n_trials, _BLOCK_BYTES // (2 * box)))
    if path.name.endswith(".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            _check_hdf5(f, path)
            ds = f["betas"]
            for t0 in range(0, n_trials, block_trials):
                t1 = min(n_trials, t0 + block_trials)
                # h5py axes are reversed: (T, Z, Y, X).
                block = ds[t0:t1, lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]]
                out[:, t0:t1] = block[:, local[:, 2], local[:, 1], local[:, 0]].T
    else:
        import nibabel as nib

        # keep_file_open lets sequential trial blocks continue the gzip stream instead of
        # decompressing from the start for every block.
        img = nib.load(path, keep_file_open=True)
        try:
            proxy = img.dataobj
            for t0 in range(0, n_trials, block_trials):
                t1 = min(n_trials, t0 + block_trials)
                block = np.asarray(proxy[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2], t0:t1])
                out[:, t0:t1] = block[local[:, 0], local[:, 1], local[:, 2], :]
        finally:
            img.uncache()
            if hasattr(proxy, "_opener") and proxy._opener is not None:  # pragma: no cover
                proxy._opener.close_if_mine()
    out /= BETA_SCALE
    return out


def zscore_session(betas: np.ndarray) -> np.ndarray:
    """z-score each voxel across the trials of one session (population sd, ``ddof=0``).

    Parameters
    ----------
    betas : ndarray, shape (n_voxels, n_trials)

    Returns
    -------
    ndarray of float32, shape (n_voxels, n_trials)
        :math:`(b - \\bar b) / \\operatorname{sd}(b)`; rows with zero variance are all ``NaN``
        (as ``scipy.stats.zscore`` gives), to be dropped by the caller.
    """
    x = np.asarray(betas, dtype=np.float64)
    mean = x.mean(axis=1, keepdims=True)
    sd = x.std(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (x - mean) / np.where(sd > 0, sd, np.nan)
    return z.astype(np.float32)
