"""Import Brain-Score data (a brainio NetCDF assembly + its stimulus set) into a Benchmark file.

A brainio assembly is an xarray DataArray saved as NetCDF4 (HDF5 underneath), dims
``presentation x neuroid [x time_bin]``: presentation coords ``stimulus_id``, ``repetition``
(often ``object_name``); neuroid coords ``neuroid_id``, ``region``, ``animal``; time-bin coords
``time_bin_start``/``time_bin_end`` (ms). The stimulus set is a CSV with ``stimulus_id`` (plus
metadata) and the images in a zip or folder. NetCDF4 is read here with h5py, so neither xarray nor
brainio is needed.

Mapping onto the Benchmark (format 2)
-------------------------------------
- images: the assembly's stimulus ids, sorted (the order Brain-Score's ``average_repetition``
  gives them), resized to ``image_size`` (or kept at their own size); ``stimulus_id`` and the
  stimulus set's metadata (``object_name``, ``degrees``, ...) go to the image table.
- repetitions: the rep axis, by sorted ``repetition`` value (occurrence order without the coord);
  NaN where a repetition is missing.
- units: one row per (neuroid, time bin); ``region`` -> one boolean ROI column per region,
  ``animal`` -> ``subject``, ``time_bin`` = ``"<start>-<end>"``; other neuroid coords are kept.
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zooscope.benchmark import Benchmark
from zooscope.pixels import PixelRule, read_image

logger = logging.getLogger(__name__)

__all__ = ["Assembly", "import_brainio", "read_assembly", "read_stimulus_set", "write_assembly"]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class Assembly:
    """A brainio assembly as plain arrays.

    Attributes
    ----------
    values : ndarray, shape (n_presentations, n_neuroids, n_time_bins)
        A 2-D assembly gets a time-bin axis of length 1.
    presentation, neuroid, time_bin : DataFrame
        The coords of each dim (``time_bin`` has no columns for a 2-D assembly).
    attrs : dict
        Text attributes of the file (e.g. :data:`SYNTHETIC_ATTR`).
    """

    values: np.ndarray
    presentation: pd.DataFrame
    neuroid: pd.DataFrame
    time_bin: pd.DataFrame
    attrs: dict[str, str] = field(default_factory=dict)


#: File attribute that marks an assembly as synthetic (its value says what wrote it); the
#: importer records it as the benchmark's ``source``.
SYNTHETIC_ATTR = "zooscope_synthetic"


def _decode(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "S" and values.ndim == 2:  # NetCDF char array [n, strlen]
        return np.array([b"".join(row).decode() for row in values])
    if values.dtype.kind in "SO":
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values])
    return values


def read_assembly(path: str | os.PathLike) -> Assembly:
    """Read a brainio NetCDF4 assembly with h5py.

    Parameters
    ----------
    path : str or Path
        The ``.nc`` file (``brainio.packaging.write_netcdf`` output).

    Returns
    -------
    Assembly
    """
    import h5py

    path = Path(path)
    with h5py.File(path, "r") as f:
        attrs = {
            k: str(_decode(np.array([v]))[0]) for k, v in f.attrs.items() if not k.startswith("_")
        }
        dim_names: dict[int, str] = {}
        variables: dict[str, Any] = {}
        for name, ds in f.items():
            if not isinstance(ds, h5py.Dataset):
                continue
            if ds.attrs.get("CLASS") == b"DIMENSION_SCALE" and "_Netcdf4Dimid" in ds.attrs:
                dim_names[int(ds.attrs["_Netcdf4Dimid"])] = name
            if "_Netcdf4Coordinates" in ds.attrs:
                variables[name] = ds
        listed: set[str] = set()
        for ds in variables.values():
            listed.update(_decode(np.array([ds.attrs.get("coordinates", b"")]))[0].split())
        candidates = [n for n, ds in variables.items() if n not in listed and n not in dim_names]
        if len(candidates) != 1:
            raise ValueError(
                f"{path}: expected one data variable besides the coords, found {candidates}; "
                "is this a brainio assembly (written by brainio.packaging.write_netcdf)?"
            )
        data = variables[candidates[0]]
        dims = [dim_names[int(i)] for i in data.attrs["_Netcdf4Coordinates"]]
        if dims[:2] != ["presentation", "neuroid"] or len(dims) > 3:
            raise ValueError(f"{path}: dims {dims}; expected presentation x neuroid [x time_bin]")
        values = np.asarray(data[()], dtype=np.float32)
        if values.ndim == 2:
            values = values[:, :, None]
        tables: dict[str, dict[str, np.ndarray]] = {
            d: {} for d in ("presentation", "neuroid", "time_bin")
        }
        for name in listed:
            if name not in variables:
                continue
            ds = variables[name]
            coord_dims = [dim_names[int(i)] for i in ds.attrs["_Netcdf4Coordinates"]]
            dim = coord_dims[0]
            if dim in tables:
                tables[dim][name] = _decode(ds[()])
    if values.shape[2] > 1 and not tables["time_bin"]:
        raise ValueError(f"{path}: time_bin dim without time_bin_start/time_bin_end coords")
    return Assembly(
        values=values,
        presentation=pd.DataFrame(tables["presentation"]).sort_index(axis=1),
        neuroid=pd.DataFrame(tables["neuroid"]).sort_index(axis=1),
        time_bin=pd.DataFrame(tables["time_bin"], index=pd.RangeIndex(values.shape[2])),
        attrs=attrs,
    )


def _image_sources(images: str | os.PathLike) -> tuple[Any, dict[str, str]]:
    """An opener and ``stem -> member`` for the images in a zip or folder."""
    root = Path(images)
    if root.is_dir():
        files = {p.stem: str(p) for p in root.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES}
        return (lambda member: (member, member)), files
    if zipfile.is_zipfile(root):
        archive = zipfile.ZipFile(root)
        names = [n for n in archive.namelist() if Path(n).suffix.lower() in _IMAGE_SUFFIXES]

        def opener(member: str) -> tuple[Any, str]:
            return io.BytesIO(archive.read(member)), f"{root} (member {member})"

        return opener, {Path(n).stem: n for n in names}
    raise ValueError(f"--images must be a folder or a zip file of images, got {root}")


def read_stimulus_set(
    csv: str | os.PathLike,
    images: str | os.PathLike,
    stimulus_ids: Sequence[str],
    image_size: int | None = 224,
    rule: PixelRule | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Read the rows and images of ``stimulus_ids`` from a brainio stimulus set.

    Parameters
    ----------
    csv : path
        Stimulus-set CSV with a ``stimulus_id`` column (``image_id`` in old sets).
    images : path
        Folder or zip holding one image per stimulus, named by ``filename``,
        ``stimulus_path_within_store`` or the stimulus id.
    stimulus_ids : sequence of str
        The stimuli to read, in this order.
    image_size : int or None
        Images are resized (bilinear) to ``image_size x image_size`` RGB; None keeps their own
        size (every image must have the same).
    rule : PixelRule, optional
        How each file becomes 8-bit RGB (:mod:`zooscope.pixels`; background of translucent
        images, pixel limit); a file it refuses stops the import with a message naming it.

    Returns
    -------
    table : DataFrame, len(stimulus_ids) rows
        The CSV's rows of these stimuli.
    pixels : ndarray of uint8, shape (n, H, W, 3)
        ``H = W = image_size`` unless it is None.
    """
    from PIL import Image

    table = pd.read_csv(csv)
    if "stimulus_id" not in table.columns and "image_id" in table.columns:
        table = table.rename(columns={"image_id": "stimulus_id"})
    if "stimulus_id" not in table.columns:
        raise ValueError(f"{csv} has no stimulus_id column; columns: {list(table.columns)}")
    table["stimulus_id"] = table["stimulus_id"].astype(str)
    table = table.drop_duplicates("stimulus_id").set_index("stimulus_id", drop=False)
    missing = [s for s in stimulus_ids if s not in table.index]
    if missing:
        raise ValueError(
            f"{len(missing)} stimuli of the assembly are not in {csv}, e.g. {missing[:3]}"
        )
    table = table.loc[list(stimulus_ids)].reset_index(drop=True)
    opener, members = _image_sources(images)
    name_column = next(
        (c for c in ("filename", "stimulus_path_within_store") if c in table.columns), None
    )
    pixels: np.ndarray | None = None
    for k, row in enumerate(table.itertuples(index=False)):
        key = Path(str(getattr(row, name_column))).stem if name_column else row.stimulus_id
        if key not in members:
            raise ValueError(
                f"no image for stimulus {row.stimulus_id!r} (looked for {key!r}) in {images}"
            )
        source, name = opener(members[key])
        image = Image.fromarray(read_image(source, name, rule), mode="RGB")
        if image_size is not None:
            image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
        if pixels is None:
            pixels = np.empty((len(table), *array.shape), dtype=np.uint8)
        if array.shape != pixels.shape[1:]:
            raise ValueError(
                f"stimulus {row.stimulus_id!r} is {array.shape[1]}x{array.shape[0]} pixels, the "
                f"first {pixels.shape[2]}x{pixels.shape[1]}; keeping their own size needs one size "
                "for all (give an image size to resize them)"
            )
        pixels[k] = array
    if pixels is None:
        pixels = np.empty((0, image_size or 0, image_size or 0, 3), dtype=np.uint8)
    return table, pixels


def _time_bin_labels(assembly: Assembly) -> list[str]:
    bins = assembly.time_bin
    if {"time_bin_start", "time_bin_end"} <= set(bins.columns):
        return [
            f"{_number(s)}-{_number(e)}"
            for s, e in zip(bins["time_bin_start"], bins["time_bin_end"], strict=True)
        ]
    return [str(k) for k in range(assembly.values.shape[2])]


def _number(value: Any) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def import_brainio(
    assembly: str | os.PathLike,
    stimuli: str | os.PathLike,
    images: str | os.PathLike,
    out: str | os.PathLike,
    time_bins: Sequence[str] | None = None,
    image_size: int | None = 224,
    degrees: float | None = None,
    rule: PixelRule | None = None,
) -> Benchmark:
    """Convert a brainio assembly + stimulus set into a Benchmark file (format 2).

    Parameters
    ----------
    assembly : path
        The NetCDF assembly.
    stimuli : path
        The stimulus-set CSV.
    images : path
        Folder or zip of the stimulus images.
    out : path
        The Benchmark ``.h5`` to write.
    time_bins : sequence of str, optional
        Keep only these bins (``"70-170"`` labels, ms); default all.
    image_size : int or None
        Side of the stored (square, RGB) images; None keeps the images' own size (one for all),
        which ``--profile brainscore`` needs to place them on screen as Brain-Score does.
    degrees : float, optional
        Visual degrees the stimuli spanned, stored in the image table's ``degrees`` column;
        default: the stimulus set's own ``degrees`` column, if it has one (a different value
        there is an error).
    rule : PixelRule, optional
        How each image file becomes 8-bit RGB (:mod:`zooscope.pixels`).

    Returns
    -------
    Benchmark
    """
    data = read_assembly(assembly)
    pres = data.presentation
    if "stimulus_id" not in pres.columns and "image_id" in pres.columns:
        pres = pres.rename(columns={"image_id": "stimulus_id"})
    if "stimulus_id" not in pres.columns:
        raise ValueError(f"{assembly}: presentations have no stimulus_id coord")
    stim = pres["stimulus_id"].astype(str).to_numpy()
    if "repetition" in pres.columns:
        rep_values, rep = np.unique(pres["repetition"].to_numpy(), return_inverse=True)
        n_reps = rep_values.size
    else:
        rep = pres.groupby(stim).cumcount().to_numpy()
        n_reps = int(rep.max()) + 1
    image_order = np.unique(stim)  # sorted, as average_repetition orders them
    image_pos = np.searchsorted(image_order, stim)
    slot = image_pos * n_reps + rep
    if np.unique(slot).size != slot.size:
        raise ValueError(f"{assembly}: a (stimulus_id, repetition) pair occurs twice")
    labels = _time_bin_labels(data)
    chosen = list(range(len(labels)))
    if time_bins is not None:
        unknown = [t for t in time_bins if t not in labels]
        if unknown:
            raise KeyError(f"unknown time bin(s) {unknown}; the assembly has {labels}")
        chosen = [labels.index(t) for t in time_bins]
    n_neuroids = data.values.shape[1]
    responses = np.full((len(chosen) * n_neuroids, image_order.size, n_reps), np.nan, np.float32)
    unit_blocks = []
    neuroid = data.neuroid
    regions = neuroid["region"].astype(str).to_numpy() if "region" in neuroid.columns else None
    for b, t in enumerate(chosen):
        block = responses[b * n_neuroids : (b + 1) * n_neuroids]
        block[:, image_pos, rep] = data.values[:, :, t].T
        unit_blocks.append(_unit_table(data, regions, labels, t))
    table, pixels = read_stimulus_set(
        stimuli, images, list(image_order), image_size=image_size, rule=rule
    )
    table = _with_presentation_columns(table, pres, stim, image_order, stimuli, degrees)
    bench = Benchmark.from_arrays(
        out,
        responses,
        pixels,
        pd.concat(unit_blocks, ignore_index=True),
        images=table,
        attrs={
            "source": data.attrs.get(SYNTHETIC_ATTR) or "brainio",
            "kind": "neural",
            "assembly": Path(assembly).name,
            "stimulus_set": Path(stimuli).name,
            "time_bins": [labels[t] for t in chosen],
            "image_size": image_size if image_size is not None else "native",
            **({"degrees": float(degrees)} if degrees is not None else {}),
        },
    )
    logger.info(
        "imported %s: %d neuroids x %d bins, %d images, %d reps -> %s",
        Path(assembly).name, n_neuroids, len(chosen), image_order.size, n_reps, out,
    )  # fmt: skip
    return bench


def _unit_table(data: Any, regions: np.ndarray | None, labels: list[str], t: int) -> pd.DataFrame:
    """The unit rows of time bin ``t``: the neuroid coords, ``subject``, region flags, time bin."""
    neuroid = data.neuroid
    n_neuroids = data.values.shape[1]
    units = {}
    for column in neuroid.columns:
        if column in ("region", "animal"):
            continue
        values = neuroid[column].to_numpy()
        units[column] = values.astype(str) if values.dtype == bool else values
    if "animal" in neuroid.columns:
        units["subject"] = neuroid["animal"].astype(str).to_numpy()
    if regions is not None:
        for region in dict.fromkeys(regions):
            units[region] = regions == region
    if data.time_bin.shape[1]:
        units["time_bin"] = np.full(n_neuroids, labels[t])
        for column in data.time_bin.columns:
            units[column] = np.full(n_neuroids, data.time_bin[column].iloc[t])
    return pd.DataFrame(units)


def _with_presentation_columns(
    table: pd.DataFrame,
    pres: pd.DataFrame,
    stim: np.ndarray,
    image_order: np.ndarray,
    stimuli: Any = None,
    degrees: float | None = None,
) -> pd.DataFrame:
    """The image table plus the presentation metadata that is constant per stimulus
    (``object_name``, ...) and the stimuli's visual ``degrees`` when given (checked against the
    stimulus set's own column, ``stimuli`` naming it); boolean and object columns as text."""
    for column in pres.columns:
        if column in ("stimulus_id", "repetition") or column in table.columns:
            continue
        per_stimulus = pd.Series(pres[column].to_numpy(), index=stim).groupby(level=0)
        if (per_stimulus.nunique() <= 1).all():
            table[column] = per_stimulus.first().loc[image_order].to_numpy()
    if degrees is not None:
        if "degrees" in table.columns and not np.allclose(table["degrees"].astype(float), degrees):
            raise ValueError(
                f"{stimuli} gives the stimuli's degrees ({sorted(set(table['degrees']))[:3]}), "
                f"which differ from degrees={degrees}; leave --degrees out to keep the set's"
            )
        table["degrees"] = float(degrees)
    for column in table.columns:
        if table[column].dtype == bool or table[column].dtype == object:
            table[column] = table[column].astype(str)
    return table


def write_assembly(
    path: str | os.PathLike,
    values: np.ndarray,
    presentation: pd.DataFrame,
    neuroid: pd.DataFrame,
    time_bin: pd.DataFrame,
    attrs: dict[str, str] | None = None,
) -> Path:
    """Write an assembly in brainio's NetCDF4 layout with h5py (no xarray or brainio needed).

    The file has what ``brainio.packaging.write_netcdf`` writes: a ``data`` variable over
    ``presentation x neuroid x time_bin`` (netCDF dimension scales) and one coordinate variable
    per column of the three tables, listed in the variable's ``coordinates`` attribute, so
    ``xarray.open_dataarray`` and brainio's assembly loaders read it.

    Parameters
    ----------
    path : path
    values : ndarray, shape (n_presentations, n_neuroids, n_time_bins)
    presentation, neuroid, time_bin : DataFrame
        Coords per dim (text columns are stored as variable-length UTF-8 strings).
    attrs : dict, optional
        Text attributes of the file (global netCDF attributes).

    Returns
    -------
    Path
    """
    import h5py

    path = Path(path)
    values = np.asarray(values, dtype=np.float32)
    dims = {"presentation": presentation, "neuroid": neuroid, "time_bin": time_bin}
    if values.shape != tuple(len(t) for t in dims.values()):
        raise ValueError(f"values {values.shape} do not match the coordinate tables")
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", track_order=True) as f:
        for key, text in (attrs or {}).items():
            f.attrs[key] = text
        scales = {}
        for dim_id, (dim, table) in enumerate(dims.items()):
            scale = f.create_dataset(dim, shape=(len(table),), dtype="f4")
            scale.make_scale(
                f"This is a netCDF dimension but not a netCDF variable. {len(table):9d}"
            )
            scale.attrs["_Netcdf4Dimid"] = np.int32(dim_id)
            scales[dim] = (dim_id, scale)
        data = f.create_dataset("data", data=values, fillvalue=np.float32(np.nan))
        coordinates = []
        for dim, table in dims.items():
            dim_id, scale = scales[dim]
            for column in table.columns:
                column_values = table[column].to_numpy()
                if column_values.dtype == object or column_values.dtype.kind == "U":
                    ds = f.create_dataset(
                        column, data=column_values.astype(str).astype(object),
                        dtype=h5py.string_dtype(),
                    )  # fmt: skip
                else:
                    ds = f.create_dataset(column, data=column_values)
                ds.dims[0].attach_scale(scale)
                ds.attrs["_Netcdf4Coordinates"] = np.array([dim_id], dtype=np.int32)
                coordinates.append(column)
        for axis, dim in enumerate(dims):
            data.dims[axis].attach_scale(scales[dim][1])
        data.attrs["_Netcdf4Coordinates"] = np.arange(3, dtype=np.int32)
        data.attrs["coordinates"] = np.bytes_(" ".join(coordinates))
    return path
