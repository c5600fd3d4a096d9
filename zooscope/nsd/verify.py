"""Open NSD files to prove they are readable (``zooscope nsd info --verify``).

A file that exists can still be truncated (an interrupted download) or damaged; ``nsd prepare``
would find out an hour in. Each check reads as much as needed to be sure: gzip files (NIfTI
volumes) are decompressed to the end, which also checks their CRC; HDF5 files are opened and their
expected dataset's shape read; MATLAB and CSV files are parsed.
"""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

from zooscope.errors import InputFileError, reading

logger = logging.getLogger(__name__)

__all__ = ["check_file"]

_CHUNK = 8 << 20


def _check(path: Path) -> None:
    name = path.name
    if name.endswith(".gz"):
        with gzip.open(path, "rb") as stream:
            while stream.read(_CHUNK):
                pass
        if name.endswith(".nii.gz"):
            import nibabel as nib

            nib.load(path).header  # noqa: B018 -- parses the header
    elif name.endswith((".hdf5", ".h5")):
        import h5py

        with h5py.File(path, "r") as f:
            for dataset in f.values():
                _ = dataset.shape
    elif name.endswith(".mat"):
        from scipy.io import loadmat

        loadmat(path)
    elif name.endswith((".csv", ".tsv")):
        import pandas as pd

        pd.read_csv(path, sep="\t" if name.endswith(".tsv") else ",", nrows=None)
    else:
        with open(path, "rb") as stream:
            stream.read(1)


def check_file(path: str | os.PathLike[str]) -> str | None:
    """Read ``path`` as its suffix says; None when readable, else the reason it is not.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    str or None
        ``"missing"``, or the decoding error (e.g. a truncated gzip stream).
    """
    path = Path(path)
    if not path.exists():
        return "missing"
    try:
        with reading(path, "an NSD file"):
            _check(path)
    except InputFileError as error:
        return error.reason
    except (ValueError, KeyError) as error:  # parsers' content errors (bad CSV, ...)
        return f"{type(error).__name__}: {error}"
    return None
