"""Image sets for extraction: an array, a lazily read HDF5 dataset, or a folder of files."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from zooscope.errors import corrupt_file
from zooscope.zoo.preprocess import Preprocess

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: Images with a side shorter than this are upsampled a lot by any model's resize: say so.
TINY_SIDE = 16


class ImageSet:
    """An ordered, indexable set of RGB images.

    Parameters
    ----------
    images : array [n, H, W, 3] uint8, h5py.Dataset, folder path, or sequence of PIL images
        HDF5 datasets are re-opened by file name in each DataLoader worker (h5py handles must
        not cross processes) and read one image at a time, never whole.
    """

    def __init__(self, images: Any) -> None:
        self._files: list[Path] | None = None
        self._h5: tuple[str, str] | None = None
        self._array: Any = None
        if isinstance(images, str | os.PathLike) and Path(images).is_dir():
            self._files = sorted(
                p for p in Path(images).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not self._files:
                raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {images}")
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
        """Log a silent conversion once per image set (and kind), not once per image."""
        if kind not in self._noted:
            self._noted.add(kind)
            logger.info(message + " (logged once per image set)", *args)

    def _from_file(self, path: Path) -> Image.Image:
        try:
            with Image.open(path) as image:
                if image.mode != "RGB":
                    self._note(
                        f"mode {image.mode}", "%s: %s image converted to RGB", path, image.mode
                    )
                if min(image.size) < TINY_SIDE:
                    self._note(
                        "tiny",
                        "%s: only %dx%d pixels, upsampled by the model's resize",
                        path,
                        *image.size,
                    )
                return image.convert("RGB")
        except (OSError, ValueError) as error:  # PIL's messages name no file
            raise corrupt_file(path, "an image", error) from error

    def __len__(self) -> int:
        if self._files is not None:
            return len(self._files)
        if self._h5 is not None:
            return self._length
        return len(self._array)

    def __getitem__(self, index: int) -> Image.Image | np.ndarray:
        if self._files is not None:
            return self._from_file(self._files[index])
        if self._h5 is not None:
            if self._handle is None:
                import h5py

                self._handle = h5py.File(self._h5[0], "r")[self._h5[1]]
            return np.asarray(self._handle[index])
        item = self._array[index]
        if isinstance(item, Image.Image) and item.mode != "RGB":
            self._note(f"mode {item.mode}", "image %d: %s image converted to RGB", index, item.mode)
            item = item.convert("RGB")
        return item

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handle": None, "_noted": set()}

    def content_hash(self) -> str:
        """sha256 of every image's pixels, in order (keys the feature cache)."""
        h = hashlib.sha256()
        for i in range(len(self)):
            pixels = np.asarray(
                self[i].convert("RGB") if isinstance(self[i], Image.Image) else self[i]
            )
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
