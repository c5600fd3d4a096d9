"""Image sets for extraction: an array, a lazily read HDF5 dataset, a folder or zip of files.

Image files become 8-bit RGB by zooscope's per-mode rule (:mod:`zooscope.pixels`): exact, or
refused with a message naming the file (and zip member).
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from zooscope.pixels import PixelRule, read_image, to_rgb
from zooscope.zoo.preprocess import Preprocess

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm",
                  ".ppm", ".pbm", ".pnm")  # fmt: skip
#: Images with a side shorter than this are upsampled a lot by any model's resize: say so.
TINY_SIDE = 16


def zip_members(path: str | os.PathLike[str]) -> list[str]:
    """The image members of a zip file (by suffix, any folder inside it), sorted by name."""
    with zipfile.ZipFile(path) as archive:
        return sorted(
            info.filename
            for info in archive.infolist()
            if not info.is_dir()
            and not _hidden(info.filename)
            and Path(info.filename).suffix.lower() in IMAGE_SUFFIXES
        )


def _hidden(name: str) -> bool:
    """A hidden file or folder part (``.DS_Store``, ``__MACOSX/``): never a stimulus."""
    return any(part.startswith((".", "__MACOSX")) for part in Path(name).parts)


def _warn_skipped(source: Any, names: list[str]) -> None:
    """Say which files of an image folder or zip are not read (a stimulus must not go missing)."""
    if names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        logger.warning(
            "%s: %d file(s) without an image suffix (%s) are not read: %s",
            source, len(names), " ".join(IMAGE_SUFFIXES), shown,
        )  # fmt: skip


class ImageSet:
    """An ordered, indexable set of RGB images.

    Parameters
    ----------
    images : array [n, H, W, 3] uint8, h5py.Dataset, folder or zip path, sequence of PIL images,
        or an ImageSet (copied; e.g. one made with a :class:`~zooscope.pixels.PixelRule`)
        HDF5 datasets are re-opened by file name in each DataLoader worker (h5py handles must
        not cross processes) and read one image at a time, never whole. A folder's image files
        (by suffix, not its subfolders) and a zip's image members are taken in name order.
    rule : PixelRule, optional
        How image files and PIL images become 8-bit RGB (background of translucent images, the
        pixel limit); default: refuse translucent images, the environment's pixel limit.
    """

    def __init__(self, images: Any, rule: PixelRule | None = None) -> None:
        if isinstance(images, ImageSet):  # a copy that remembers what was already noted
            self.__dict__.update({**images.__dict__, "_handle": None, "_noted": images._noted})
            if rule is not None:
                self.rule = rule
            return
        self.rule = rule or PixelRule()
        self._files: list[Path] | None = None
        self._zip: tuple[str, list[str]] | None = None
        self._h5: tuple[str, str] | None = None
        self._array: Any = None
        if isinstance(images, str | os.PathLike) and Path(images).is_dir():
            files = sorted(p for p in Path(images).iterdir() if not p.name.startswith("."))
            self._files = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            if not self._files:
                raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {images}")
            _warn_skipped(images, [p.name for p in files if p.is_file() and p not in self._files])
        elif isinstance(images, str | os.PathLike) and zipfile.is_zipfile(images):
            members = zip_members(images)
            with zipfile.ZipFile(images) as archive:
                others = [i.filename for i in archive.infolist() if not i.is_dir()]
            _warn_skipped(images, [m for m in others if m not in members and not _hidden(m)])
            if not members:
                raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {images}")
            self._zip = (str(images), members)
        elif type(images).__module__.startswith("h5py"):
            self._h5 = (images.file.filename, images.name)
            self._length = len(images)
        elif isinstance(images, np.ndarray):
            if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
                raise ValueError(
                    f"expected uint8 images [n, H, W, 3], got {images.dtype} {images.shape}"
                )
            self._array = images
        elif isinstance(images, Sequence):
            self._array = list(images)
        else:
            raise TypeError(f"cannot read images from a {type(images).__name__}")
        self._handle: Any = None
        self._noted: set[str] = set()

    def _note(self, kind: str, message: str, *args: Any) -> None:
        """Log a conversion once per image set (and kind), not once per image."""
        if kind not in self._noted:
            self._noted.add(kind)
            logger.info(message + " (logged once per image set)", *args)

    def _from_file(self, source: Any, name: str) -> np.ndarray:
        pixels = read_image(source, name, self.rule, lambda mode: self._noted_mode(mode, name))
        if min(pixels.shape[:2]) < TINY_SIDE:
            self._note(
                "tiny",
                "%s: only %dx%d pixels, upsampled by the model's resize",
                name,
                pixels.shape[1],
                pixels.shape[0],
            )
        return pixels

    def _noted_mode(self, mode: str, name: str) -> None:
        if mode != "RGB":
            self._note(f"mode {mode}", "%s: %s image converted to RGB by zooscope's rule "
                       "(zooscope.pixels)", name, mode)  # fmt: skip

    def __len__(self) -> int:
        if self._files is not None:
            return len(self._files)
        if self._zip is not None:
            return len(self._zip[1])
        if self._h5 is not None:
            return self._length
        return len(self._array)

    def __getitem__(self, index: int) -> Image.Image | np.ndarray:
        if self._files is not None:
            return self._from_file(self._files[index], str(self._files[index]))
        if self._zip is not None:
            if self._handle is None:
                self._handle = zipfile.ZipFile(self._zip[0])
            member = self._zip[1][index]
            name = f"{self._zip[0]} (member {member})"
            with self._handle.open(member) as handle:
                return self._from_file(handle, name)
        if self._h5 is not None:
            if self._handle is None:
                import h5py

                self._handle = h5py.File(self._h5[0], "r")[self._h5[1]]
            return np.asarray(self._handle[index])
        item = self._array[index]
        if isinstance(item, Image.Image):
            self._noted_mode(item.mode, f"image {index}")
            try:
                item = to_rgb(item, self.rule.background)
            except ValueError as error:
                raise ValueError(f"image {index} of the sequence: {error}") from None
        return item

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handle": None, "_noted": set()}

    def content_hash(self) -> str:
        """sha256 of every image's pixels, in order (keys the feature cache)."""
        h = hashlib.sha256()
        for i in range(len(self)):
            pixels = np.asarray(self[i])
            h.update(str(pixels.shape).encode())
            h.update(np.ascontiguousarray(pixels).tobytes())
        return h.hexdigest()[:16]


class PreprocessedImages(torch.utils.data.Dataset):
    """``ImageSet`` + a model's preprocessing, as a torch Dataset of ``[3, H, W]`` tensors."""

    def __init__(self, images: ImageSet, preprocess: Preprocess) -> None:
        self.images = images
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.preprocess(self.images[index])
