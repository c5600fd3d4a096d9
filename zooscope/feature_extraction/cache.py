"""On-disk store of finished layers, so a killed extraction resumes where it stopped.

One HDF5 file per layer, named by a content hash of everything that determines its features
(model uid, weights identity, preprocessing, image set, layer, projection and RSM parameters).
Files are written to a temporary name and renamed into place, so a file that exists is complete
unless something outside zooscope damaged it: :meth:`FeatureCache.get` discards an unreadable
entry (zero bytes, truncated, not HDF5) with a warning, so the layer is simply recomputed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from zooscope._files import remove_stale_temporaries, temporary_path
from zooscope._hashing import hash_json

logger = logging.getLogger(__name__)


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
        for folder in self.root.iterdir():  # temporaries of killed extractions
            if folder.is_dir():
                remove_stale_temporaries(folder)

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
            out.update(
                {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
            )
        return out

    def get(self, key: str) -> dict[str, Any] | None:
        """Like :meth:`load`, but None for a missing entry; an unreadable one is deleted (warning)."""
        path = self.path(key)
        if not path.exists():
            return None
        try:
            return self.load(key)
        except (OSError, KeyError, ValueError) as error:
            # Self-healing: the entry is recomputed, so nothing for the user to do.
            logger.info(
                "discarding unreadable feature-cache entry %s (%s); recomputing it", path, error
            )
            path.unlink(missing_ok=True)
            return None

    def save(self, key: str, arrays: dict[str, np.ndarray | None], attrs: dict[str, Any]) -> Path:
        """Store a layer atomically (temporary file + rename)."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(target.parent, target.name)
        try:
            with h5py.File(tmp, "w") as f:
                for name, array in arrays.items():
                    if array is not None:
                        f.create_dataset(name, data=array)
                for name, value in attrs.items():
                    f.attrs[name] = value
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return target
