"""On-disk store of finished layers, so a killed extraction resumes where it stopped.

One HDF5 file per layer, named by a content hash of everything that determines its features
(model uid, weights identity, preprocessing, image set, layer, projection and RSM parameters).
Files are written to a temporary name and renamed into place, so a file that exists is complete.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from zooscope._hashing import hash_json


class FeatureCache:
    """A folder of completed layers.

    Parameters
    ----------
    root : path-like
        Created if missing.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(**identity: Any) -> str:
        """Content hash of a layer's identity (any JSON-serialisable keyword arguments)."""
        return hash_json(identity, length=24)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.h5"

    def __contains__(self, key: str) -> bool:
        return self.path(key).exists()

    def load(self, key: str) -> dict[str, Any]:
        """Arrays and attributes of a stored layer (``srp``/``rsm`` absent when not stored)."""
        with h5py.File(self.path(key), "r") as f:
            out: dict[str, Any] = {name: f[name][()] for name in f}
            out.update({k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()})
        return out

    def save(self, key: str, arrays: dict[str, np.ndarray | None], attrs: dict[str, Any]) -> Path:
        """Store a layer atomically (temporary file + rename)."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        os.close(fd)
        try:
            with h5py.File(tmp, "w") as f:
                for name, array in arrays.items():
                    if array is not None:
                        f.create_dataset(name, data=array)
                for name, value in attrs.items():
                    f.attrs[name] = value
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target
