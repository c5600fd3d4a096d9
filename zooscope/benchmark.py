"""The Benchmark file: responses + stimuli + unit table + splits, in one HDF5 file.

This is the single interface between brain (or neural) data and scoring. It is dataset-agnostic:
NSD voxels, macaque IT neurons or any other set of units measured on a set of images fit it.

File layout (HDF5)
------------------
``/responses``
    float32 [n_units, n_images, n_reps], ``NaN`` where a repetition is missing. Chunked by units
    so that reading a subset of units touches only their rows.
``/stimuli``
    uint8 [n_images, H, W, 3], chunked one image per chunk.
``/image_ids``
    int64 [n_images], dataset image identifiers (NSD: 0-based 73k ids).
``/units/<column>``
    One dataset per unit-table column, [n_units]; the column order is the attribute
    ``columns`` of the group. Boolean columns are ROI (unit-group) flags. A text column
    ``time_bin`` (format 2) makes time bins first-class: the same neuron appears once per bin,
    as one unit row per (neuron, bin), e.g. ``"70-170"`` (ms; ``time_bin_start`` and
    ``time_bin_end`` columns may hold the numbers).
``/images/<column>`` (format 2, optional)
    Per-image metadata, [n_images] each (e.g. ``stimulus_id``, ``object_name``); the column
    order is the attribute ``columns``. ``object_name`` stratifies Brain-Score's splits.
``/splits/<name>``
    int64 positions into the image axis (default ``train`` = even positions, ``test`` = odd).
file attributes
    ``attrs_json`` (JSON of the provenance dictionary), ``content_hash``, ``format_version``.

Format 1 files (no time bins, no image table) open unchanged; they keep their content hash.

Group labels
------------
:meth:`Benchmark.groups` labels a group ``"<subject>|<roi>"``, e.g. ``"1|OTC"``, and, when the
unit table has a ``time_bin`` column, ``"<subject>|<roi>|<time_bin>"``, e.g. ``"m1|IT|70-170"``.
Without a ``subject`` column the subject part is ``"all"``; without ROI columns the ROI part is
``"all"``. ROI names and time bins may therefore not contain ``"|"``. Scores and ceilings keep
the subject in their ``subject`` column and the rest (``"IT"`` or ``"IT|70-170"``) in ``roi``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from zooscope import __version__
from zooscope._files import remove_stale_temporaries, temporary_path
from zooscope._hashing import hash_array
from zooscope.errors import corrupt_file, reading

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT_VERSION",
    "Benchmark",
    "BenchmarkWriter",
    "default_splits",
    "read_rows",
    "split_label",
    "split_region",
]

FORMAT_VERSION = 2
#: Unit-table column holding each unit's time bin (format 2).
TIME_BIN = "time_bin"


def split_region(roi: str) -> tuple[str, str | None]:
    """``"IT|70-170"`` -> ``("IT", "70-170")``; ``"OTC"`` -> ``("OTC", None)``."""
    region, _, time_bin = roi.partition("|")
    return region, (time_bin or None)


def split_label(label: str) -> tuple[str, str]:
    """A group label of :meth:`Benchmark.groups` -> ``(subject, roi)``: ``"1|OTC"`` -> ``("1", "OTC")``.

    A time bin stays with the ROI: ``"m1|IT|70-170"`` -> ``("m1", "IT|70-170")``.
    """
    subject, roi = label.split("|", 1)
    return subject, roi


_STIMULI_BATCH = 64
_WHAT = "a zooscope Benchmark file (HDF5)"


def default_splits(n_images: int) -> dict[str, np.ndarray]:
    """Default splits of Conwell et al. (2024): ``train`` = even positions, ``test`` = odd.

    Parameters
    ----------
    n_images : int
        Number of images.

    Returns
    -------
    dict
        ``{"train": int64 [ceil(n/2)], "test": int64 [floor(n/2)]}`` positions.
    """
    positions = np.arange(n_images, dtype=np.int64)
    return {"train": positions[0::2], "test": positions[1::2]}


def _content_hash(
    responses: Any,
    stimuli: Any,
    units: pd.DataFrame,
    image_ids: np.ndarray,
    splits: Mapping[str, np.ndarray],
    images: pd.DataFrame | None = None,
) -> str:
    """sha256 over responses, stimuli, units, image ids, splits and the image table (if any)."""
    h = hash_array(np.asarray(image_ids, dtype=np.int64))
    for start in range(0, responses.shape[0], 1024):
        hash_array(np.asarray(responses[start : start + 1024], dtype=np.float32), h)
    for start in range(0, stimuli.shape[0], _STIMULI_BATCH):
        hash_array(np.asarray(stimuli[start : start + _STIMULI_BATCH], dtype=np.uint8), h)
    _hash_table(units, h)
    for name in sorted(splits):
        h.update(name.encode())
        hash_array(np.asarray(splits[name], dtype=np.int64), h)
    if images is not None and len(images.columns):  # absent in format 1: its hashes stay valid
        h.update(b"images")
        _hash_table(images, h)
    return h.hexdigest()[:16]


def _hash_table(table: pd.DataFrame, h: Any) -> None:
    for column in table.columns:
        h.update(str(column).encode())
        values = table[column].to_numpy()
        if values.dtype == object or values.dtype.kind == "U":
            h.update(json.dumps([str(v) for v in values]).encode())
        else:
            hash_array(values, h)


#: The fewest images a split may have: RSMs of fewer images have no pair of pairs to correlate.
MIN_SPLIT_IMAGES = 3


def _validate(
    responses: np.ndarray,
    stimuli: Any,
    units: pd.DataFrame,
    image_ids: np.ndarray,
    splits: Mapping[str, np.ndarray],
    images: pd.DataFrame | None = None,
) -> None:
    if responses.ndim == 2:
        raise ValueError(
            "responses must be 3-D [units, images, reps]; for a single repetition pass "
            "responses[..., None]"
        )
    if responses.ndim != 3:
        raise ValueError(
            f"responses must be 3-D [units, images, reps], got shape {responses.shape}"
        )
    n_units, n_images, _ = responses.shape
    if np.isinf(responses).any():
        raise ValueError("responses contain +/-inf; mark missing repetitions with NaN")
    if len(stimuli.shape) != 4 or stimuli.shape[3] != 3:
        raise ValueError(f"stimuli must be uint8 [n_images, H, W, 3], got shape {stimuli.shape}")
    if stimuli.shape[0] != n_images:
        raise ValueError(
            f"stimuli has {stimuli.shape[0]} images but responses has {n_images} (axis 1)"
        )
    if np.dtype(stimuli.dtype) != np.uint8:
        raise ValueError(f"stimuli must be uint8, got {stimuli.dtype}")
    if len(units) != n_units:
        raise ValueError(f"units has {len(units)} rows but responses has {n_units} units (axis 0)")
    if image_ids.shape != (n_images,):
        raise ValueError(f"image_ids must have shape ({n_images},), got {image_ids.shape}")
    if len(np.unique(image_ids)) != n_images:
        raise ValueError("image_ids must be unique")
    if n_units < 1 or responses.shape[2] < 1:
        raise ValueError(f"responses {responses.shape} hold no unit or no repetition")
    for name, positions in splits.items():
        if positions.ndim != 1 or (
            positions.size and (positions.min() < 0 or positions.max() >= n_images)
        ):
            raise ValueError(f"split {name!r} must hold 1-D positions in [0, {n_images})")
    for name in ("train", "test"):
        if name in splits and splits[name].size < MIN_SPLIT_IMAGES:
            raise ValueError(
                f"{n_images} image(s) give the {name!r} split {splits[name].size}; an RSM "
                f"comparison needs at least {MIN_SPLIT_IMAGES} images per split "
                f"(at least {2 * MIN_SPLIT_IMAGES} images with the default even/odd splits)"
            )
    for column in units.columns:
        if not isinstance(column, str) or "/" in column:
            raise ValueError(f"unit-table column names must be strings without '/', got {column!r}")
        if units[column].dtype == bool and "|" in column:
            raise ValueError(f"ROI column {column!r} may not contain '|' (used in group labels)")
    if TIME_BIN in units.columns:
        bins = units[TIME_BIN].astype(str)
        if bins.str.contains("|", regex=False).any() or (bins == "").any():
            raise ValueError(f"{TIME_BIN!r} values must be non-empty and may not contain '|'")
    if images is not None:
        if len(images) != n_images:
            raise ValueError(f"image table has {len(images)} rows for {n_images} images")
        for column in images.columns:
            if not isinstance(column, str) or "/" in column:
                raise ValueError(
                    f"image-table column names must be strings without '/', got {column!r}"
                )


class Benchmark:
    """A Benchmark file opened for reading (lazily: datasets are read on demand).

    Parameters
    ----------
    path : str or Path
        Path of an existing Benchmark HDF5 file. Prefer :meth:`open`.

    Notes
    -----
    The object pickles as its path, so Dask workers reopen the file themselves. Use it as a
    context manager (or call :meth:`close`) to release the HDF5 handle.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self._path = Path(path)
        self._file: Any = None
        self._units: pd.DataFrame | None = None
        self._images: pd.DataFrame | None = None
        if not self._path.is_file():
            raise FileNotFoundError(f"benchmark file not found: {self._path}")
        f = self._h5()
        missing = [
            k for k in ("responses", "stimuli", "image_ids", "units", "splits") if k not in f
        ]
        if missing:
            raise ValueError(
                f"{self._path} is not a zooscope Benchmark file (missing {missing}); write one "
                "with Benchmark.from_arrays or `zooscope nsd prepare`"
            )

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike) -> Benchmark:
        """Open an existing Benchmark file (lazy)."""
        return cls(path)

    @classmethod
    def from_arrays(
        cls,
        path: str | os.PathLike,
        responses: ArrayLike,
        stimuli: ArrayLike,
        units: pd.DataFrame | Mapping[str, ArrayLike],
        image_ids: ArrayLike | None = None,
        splits: Mapping[str, ArrayLike] | None = None,
        attrs: Mapping[str, Any] | None = None,
        images: pd.DataFrame | Mapping[str, ArrayLike] | None = None,
    ) -> Benchmark:
        """Write a Benchmark file from in-memory arrays (atomically) and open it.

        This is the documented path for any lab's recordings. Neurons measured in several time
        bins get one unit row per (neuron, bin) and a text column ``time_bin`` (e.g.
        ``"70-170"``); every score and ceiling is then reported per time bin.

        Parameters
        ----------
        path : str or Path
            Output file; written to a temporary file in the same folder, then renamed.
        responses : array_like, shape (n_units, n_images, n_reps)
            Single-repetition responses; ``NaN`` where a repetition is missing.
        stimuli : array_like of uint8, shape (n_images, H, W, 3)
            The images, in the order of the image axis. May be an h5py dataset (copied in blocks).
        units : DataFrame or mapping, n_units rows
            Unit table, e.g. columns ``subject``, ``x``, ``y``, ``z``, ``ncsnr`` and one boolean
            column per ROI (every boolean column is an ROI flag); optionally ``time_bin``
            (text), ``neuroid_id`` and any other per-unit column.
        image_ids : array_like of int, shape (n_images,), optional
            Dataset image ids; default ``arange(n_images)``.
        splits : mapping of str to array_like of int, optional
            Named image positions; default :func:`default_splits`.
        attrs : mapping, optional
            JSON-serialisable provenance (source, thresholds, ...).
        images : DataFrame or mapping, n_images rows, optional
            Per-image metadata, e.g. ``stimulus_id`` and ``object_name`` (which stratifies the
            ``predictivity`` metric's Brain-Score splits).

        Returns
        -------
        Benchmark

        Examples
        --------
        >>> import numpy as np
        >>> rates = np.random.rand(2 * 40, 100, 5)  # 40 neurons x 2 bins, 100 images, 5 reps
        >>> units = {"neuroid_id": np.tile(np.arange(40), 2), "subject": "m1",
        ...          "IT": np.ones(80, bool), "time_bin": np.repeat(["70-170", "170-270"], 40)}
        >>> Benchmark.from_arrays("it.h5", rates, stimuli, units,  # doctest: +SKIP
        ...                       images={"object_name": labels})
        """
        import pandas as pd

        responses = np.asarray(responses, dtype=np.float32)
        if not hasattr(stimuli, "shape") or not hasattr(stimuli, "dtype"):
            stimuli = np.asarray(stimuli)
        units_df = pd.DataFrame(units).reset_index(drop=True)
        n_images = responses.shape[1] if responses.ndim >= 2 else 0
        ids = (
            np.arange(n_images, dtype=np.int64)
            if image_ids is None
            else np.asarray(image_ids, dtype=np.int64)
        )
        split_arrays = {
            str(k): np.asarray(v, dtype=np.int64)
            for k, v in (default_splits(n_images) if splits is None else splits).items()
        }
        images_df = None if images is None else pd.DataFrame(images).reset_index(drop=True)
        try:
            _validate(responses, stimuli, units_df, ids, split_arrays, images_df)
        except ValueError as error:  # name the file: the error may surface far from here
            raise ValueError(f"{path}: cannot write a Benchmark: {error}") from None
        with BenchmarkWriter(
            path, n_images, responses.shape[2], stimuli.shape, ids, split_arrays, attrs
        ) as writer:
            writer.append_responses(responses)
            writer.units = units_df
            writer.images = images_df
            for start in range(0, stimuli.shape[0], _STIMULI_BATCH):
                writer.write_stimuli(start, np.asarray(stimuli[start : start + _STIMULI_BATCH]))
        return cls(path)

    # -- file handle / pickling ---------------------------------------------------------------
    def _h5(self) -> Any:
        if self._file is None or not self._file.id.valid:
            import h5py

            try:
                self._file = h5py.File(self._path, "r")
            except OSError as error:  # h5py's message names no file
                raise corrupt_file(self._path, _WHAT, error) from error
        return self._file

    def close(self) -> None:
        """Close the HDF5 handle (reopened automatically on the next access)."""
        if self._file is not None and self._file.id.valid:
            self._file.close()
        self._file = None

    def __enter__(self) -> Benchmark:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (type(self), (str(self._path),))

    def __repr__(self) -> str:
        return (
            f"Benchmark({str(self._path)!r}, units={self.n_units}, images={self.n_images}, "
            f"reps={self.n_reps}, hash={self.content_hash})"
        )

    # -- metadata -----------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """Path of the file."""
        return self._path

    @property
    def content_hash(self) -> str:
        """Hash of responses, stimuli, units, image ids and splits (not of creation time)."""
        return str(self._h5().attrs["content_hash"])

    @property
    def attrs(self) -> dict[str, Any]:
        """Provenance attributes given at creation (plus ``created`` and ``zooscope_version``)."""
        return json.loads(self._h5().attrs["attrs_json"])

    @property
    def format_version(self) -> int:
        """Format version the file was written with (1 or 2)."""
        return int(self._h5().attrs.get("format_version", 1))

    @property
    def n_units(self) -> int:
        return int(self._h5()["responses"].shape[0])

    @property
    def n_images(self) -> int:
        return int(self._h5()["responses"].shape[1])

    @property
    def n_reps(self) -> int:
        return int(self._h5()["responses"].shape[2])

    @property
    def image_ids(self) -> np.ndarray:
        """int64 [n_images] dataset image ids (NSD: 0-based 73k ids)."""
        return self._h5()["image_ids"][()]

    @property
    def splits(self) -> dict[str, np.ndarray]:
        """Split name -> int64 positions along the image axis."""
        group = self._h5()["splits"]
        return {name: group[name][()] for name in group}

    @property
    def units(self) -> pd.DataFrame:
        """Unit table, n_units rows (cached after the first read)."""
        if self._units is None:
            self._units = _read_table(self._h5()["units"])
        return self._units.copy()

    @property
    def image_table(self) -> pd.DataFrame:
        """Per-image metadata, n_images rows (no columns for format-1 files)."""
        if self._images is None:
            import pandas as pd

            f = self._h5()
            self._images = (
                _read_table(f["images"])
                if "images" in f
                else pd.DataFrame(index=pd.RangeIndex(self.n_images))
            )
        return self._images.copy()

    @property
    def time_bins(self) -> list[str]:
        """Time bins in order of first appearance in the unit table (``[]`` without any)."""
        units = self.units
        if TIME_BIN not in units.columns:
            return []
        return list(dict.fromkeys(units[TIME_BIN].astype(str)))

    @property
    def roi_names(self) -> list[str]:
        """Names of the boolean (ROI) columns of the unit table."""
        units = self.units
        return [c for c in units.columns if units[c].dtype == bool]

    @property
    def subjects(self) -> list[Any]:
        """Sorted unique values of the ``subject`` column (``[]`` without one)."""
        units = self.units
        if "subject" not in units.columns:
            return []
        return sorted(units["subject"].unique().tolist())

    @property
    def stimuli(self) -> Any:
        """Lazy uint8 [n_images, H, W, 3] h5py dataset (slice it to read)."""
        return self._h5()["stimuli"]

    # -- data ---------------------------------------------------------------------------------
    def responses(
        self, units: ArrayLike | None = None, images: ArrayLike | None = None
    ) -> np.ndarray:
        """Single-repetition responses.

        Parameters
        ----------
        units : array_like of int or bool, optional
            Unit indices (any order) or a boolean mask over units; default all.
        images : array_like of int or bool, optional
            Image positions or mask; default all.

        Returns
        -------
        ndarray of float32, shape (n_selected_units, n_selected_images, n_reps)
            ``NaN`` where a repetition is missing.
        """
        ds = self._h5()["responses"]
        u = self._index(units, ds.shape[0], "units")
        try:
            data = ds[()] if u is None else read_rows(ds, u)
        except OSError as error:  # a truncated or damaged file fails only when read
            raise corrupt_file(self._path, f"{_WHAT}, dataset /responses", error) from error
        i = self._index(images, ds.shape[1], "images")
        if i is not None:
            data = data[:, i]
        return np.asarray(data, dtype=np.float32)

    def mean_responses(
        self, units: ArrayLike | None = None, images: ArrayLike | None = None
    ) -> np.ndarray:
        """Responses averaged over repetitions (``nanmean``).

        Returns
        -------
        ndarray of float32, shape (n_selected_units, n_selected_images)
            ``NaN`` only where every repetition is missing.
        """
        data = self.responses(units, images)
        present = ~np.isnan(data)
        n = present.sum(axis=2)
        total = np.where(present, data, 0.0).sum(axis=2, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (total / n).astype(np.float32)

    def match_subjects(self, subjects: Sequence[str]) -> list[Any]:
        """The benchmark's own subject values of subjects given as text (CLI, config).

        Raises
        ------
        KeyError
            Naming the subjects the benchmark does not have.
        """
        present = {str(s): s for s in self.subjects}
        missing = [s for s in subjects if str(s) not in present]
        if missing:
            raise KeyError(f"unknown subject(s) {missing}; the benchmark has {list(present)}")
        return [present[str(s)] for s in subjects]

    def groups(
        self,
        subjects: Sequence[Any] | None = None,
        rois: Sequence[str] | None = None,
        time_bins: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Unit indices of each (subject, ROI[, time bin]) group.

        Parameters
        ----------
        subjects : sequence, optional
            Subjects to include (values of the ``subject`` column); default all.
        rois : sequence of str, optional
            ROI (boolean) columns to include; default all.
        time_bins : sequence of str, optional
            Time bins to include (values of the ``time_bin`` column); default all.

        Returns
        -------
        dict of str to ndarray of int64
            ``"<subject>|<roi>"`` (e.g. ``"1|OTC"``), or ``"<subject>|<roi>|<time_bin>"`` when
            the benchmark has time bins, -> sorted unit indices. Empty groups are left out.
            ``"all"`` stands for a missing subject column or no ROI columns.
        """
        units = self.units
        all_rois = self.roi_names
        if rois is None:
            rois = all_rois
        unknown = [r for r in rois if r not in all_rois]
        if unknown:
            raise KeyError(f"unknown ROI(s) {unknown}; this benchmark has {all_rois}")
        if "subject" in units.columns:
            present = self.subjects
            subjects = present if subjects is None else list(subjects)
            missing = [s for s in subjects if s not in present]
            if missing:
                raise KeyError(f"unknown subject(s) {missing}; this benchmark has {present}")
            subject_masks = {str(s): (units["subject"] == s).to_numpy() for s in subjects}
        else:
            if subjects is not None:
                raise KeyError("this benchmark has no 'subject' column; pass subjects=None")
            subject_masks = {"all": np.ones(len(units), dtype=bool)}
        roi_masks = (
            {r: units[r].to_numpy(dtype=bool) for r in rois}
            if all_rois
            else {"all": np.ones(len(units), dtype=bool)}
        )
        present_bins = self.time_bins
        if present_bins:
            chosen = present_bins if time_bins is None else [str(t) for t in time_bins]
            missing = [t for t in chosen if t not in present_bins]
            if missing:
                raise KeyError(f"unknown time bin(s) {missing}; this benchmark has {present_bins}")
            bin_column = units[TIME_BIN].astype(str).to_numpy()
            bin_masks = {f"|{t}": bin_column == t for t in chosen}
        elif time_bins is not None:
            raise KeyError("this benchmark has no time bins; pass time_bins=None")
        else:
            bin_masks = {"": np.ones(len(units), dtype=bool)}
        out = {}
        for s_label, s_mask in subject_masks.items():
            for r_label, r_mask in roi_masks.items():
                for t_label, t_mask in bin_masks.items():
                    idx = np.flatnonzero(s_mask & r_mask & t_mask).astype(np.int64)
                    if idx.size:
                        out[f"{s_label}|{r_label}{t_label}"] = idx
        return out

    def verify(self) -> bool:
        """Recompute the content hash from the stored data and compare with the stored one."""
        f = self._h5()
        images = self.image_table if "images" in f else None
        with reading(self._path, _WHAT):  # a damaged dataset fails only when read
            actual = _content_hash(
                f["responses"], f["stimuli"], self.units, self.image_ids, self.splits, images
            )
        return actual == self.content_hash

    @staticmethod
    def _index(sel: ArrayLike | None, n: int, what: str) -> np.ndarray | None:
        if sel is None:
            return None
        arr = np.asarray(sel)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise ValueError(f"boolean {what} mask must have shape ({n},), got {arr.shape}")
            return np.flatnonzero(arr)
        arr = arr.astype(np.int64).ravel()
        if arr.size and (arr.min() < -n or arr.max() >= n):
            raise IndexError(f"{what} index out of range for {n} {what}")
        return np.where(arr < 0, arr + n, arr)


def _read_table(group: Any) -> pd.DataFrame:
    """A table stored as one dataset per column (column order in the ``columns`` attribute)."""
    import pandas as pd

    columns = [str(c) for c in json.loads(group.attrs["columns"])]
    data = {}
    for column in columns:
        values = group[column][()]
        if values.dtype.kind in "SO":
            values = np.array([v.decode() if isinstance(v, bytes) else v for v in values])
        data[column] = values
    return pd.DataFrame(data, columns=columns)


def read_rows(ds: Any, rows: np.ndarray) -> np.ndarray:
    """Read rows (any order, repeats allowed) of an h5py dataset; h5py needs sorted unique."""
    if rows.size == 0:
        return np.empty((0, *ds.shape[1:]), dtype=ds.dtype)
    unique, inverse = np.unique(rows, return_inverse=True)
    if unique.size == unique[-1] - unique[0] + 1:  # contiguous: one hyperslab
        block = ds[int(unique[0]) : int(unique[-1]) + 1]
    else:
        block = ds[unique]
    return block[inverse]


class BenchmarkWriter:
    """Create a Benchmark file in a temp file, fill it in blocks, hash it, rename on success.

    Used by :meth:`Benchmark.from_arrays` and by ``zooscope.nsd.prepare``, which appends the
    responses of one subject at a time and sets the unit table once all units are known.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        n_images: int,
        n_reps: int,
        stimuli_shape: tuple[int, ...],
        image_ids: np.ndarray,
        splits: Mapping[str, np.ndarray],
        attrs: Mapping[str, Any] | None,
    ) -> None:
        self.path = Path(path)
        self.n_images = int(n_images)
        self.n_reps = int(n_reps)
        self.stimuli_shape = tuple(int(s) for s in stimuli_shape)
        self.image_ids = np.asarray(image_ids, dtype=np.int64)
        self.splits = splits
        self.attrs = dict(attrs or {})
        self.units: pd.DataFrame | None = None
        self.images: pd.DataFrame | None = None
        self._tmp: Path | None = None
        self._file: Any = None

    def __enter__(self) -> BenchmarkWriter:
        import h5py

        try:
            json.dumps(self.attrs)
        except TypeError as err:
            raise ValueError(f"attrs must be JSON-serialisable: {err}") from err
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.path.parent, self.path.name)  # left by a killed writer
        self._tmp = temporary_path(self.path.parent, self.path.name)
        f = self._file = h5py.File(self._tmp, "w")
        row_bytes = max(1, self.n_images * self.n_reps * 4)
        row_chunk = max(1, (1 << 20) // row_bytes)
        f.create_dataset(
            "responses",
            shape=(0, self.n_images, self.n_reps),
            maxshape=(None, self.n_images, self.n_reps),
            dtype="f4",
            chunks=(row_chunk, max(1, self.n_images), max(1, self.n_reps)),
            fillvalue=np.nan,
        )
        f.create_dataset(
            "stimuli",
            shape=self.stimuli_shape,
            dtype="u1",
            chunks=(1, *self.stimuli_shape[1:]) if self.stimuli_shape[0] else None,
        )
        f.create_dataset("image_ids", data=self.image_ids)
        group = f.create_group("splits")
        for name, positions in self.splits.items():
            group.create_dataset(name, data=np.asarray(positions, dtype=np.int64))
        return self

    def append_responses(self, block: np.ndarray) -> None:
        """Append ``block`` [n, n_images, n_reps] as the next ``n`` unit rows."""
        ds = self._file["responses"]
        start = ds.shape[0]
        ds.resize(start + block.shape[0], axis=0)
        ds[start:] = np.asarray(block, dtype=np.float32)

    def write_stimuli(self, start: int, block: np.ndarray) -> None:
        """Write ``block`` uint8 [n, H, W, 3] at image positions ``start:start+n``."""
        self._file["stimuli"][start : start + block.shape[0]] = block

    def _write_units(self, group: Any, units: pd.DataFrame) -> None:
        import h5py

        for column in units.columns:
            values = units[column].to_numpy()
            if values.dtype == object or values.dtype.kind == "U":
                group.create_dataset(
                    column, data=values.astype(str).astype(object), dtype=h5py.string_dtype()
                )
            else:
                group.create_dataset(column, data=values)
        group.attrs["columns"] = json.dumps(list(units.columns))

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        from datetime import UTC, datetime

        f = self._file
        try:
            if exc_type is None:
                if self.units is None:
                    raise RuntimeError("set the unit table (writer.units) before closing")
                n_rows = f["responses"].shape[0]
                if len(self.units) != n_rows:
                    raise ValueError(
                        f"unit table has {len(self.units)} rows for {n_rows} response rows"
                    )
                self._write_units(f.create_group("units"), self.units)
                if self.images is not None:
                    if len(self.images) != self.n_images:
                        raise ValueError(
                            f"image table has {len(self.images)} rows for {self.n_images} images"
                        )
                    self._write_units(f.create_group("images"), self.images)
                f.flush()
                digest = _content_hash(
                    f["responses"],
                    f["stimuli"],
                    self.units,
                    self.image_ids,
                    self.splits,
                    self.images,
                )
                attrs = dict(self.attrs)
                attrs.setdefault("created", datetime.now(UTC).isoformat())
                attrs.setdefault("zooscope_version", __version__)
                attrs["content_hash"] = digest
                f.attrs["attrs_json"] = json.dumps(attrs, sort_keys=True)
                f.attrs["content_hash"] = digest
                f.attrs["format_version"] = FORMAT_VERSION
                f.close()
                os.replace(self._tmp, self.path)
                logger.debug("wrote benchmark %s (hash %s)", self.path, digest)
        finally:
            if f.id.valid:
                f.close()
            if self._tmp is not None and self._tmp.exists():
                self._tmp.unlink()
