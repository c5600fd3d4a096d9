"""Test-time preprocessing: one callable per model that turns an image into the model's input.

zooscope never re-implements a library's transform: :class:`Preprocess` wraps the library's own
callable (timm ``create_transform``, torchvision ``weights.transforms()``, open_clip's preprocess,
HF ``AutoImageProcessor``) and only normalises what goes in (PIL image or uint8 array).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from zooscope.pixels import to_rgb


def to_pil(image: Image.Image | np.ndarray) -> Image.Image:
    """An RGB PIL image from a PIL image or an ``[H, W, 3]`` uint8 array.

    A PIL image of another mode is converted by zooscope's per-mode rule
    (:func:`zooscope.pixels.to_rgb`; a translucent one is refused, with the reason).
    """
    if isinstance(image, Image.Image):
        if image.mode == "RGB":
            return image

        return Image.fromarray(to_rgb(image), mode="RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(
            f"expected an RGB image as a uint8 array [H, W, 3], got dtype {array.dtype} shape {array.shape}"
        )
    return Image.fromarray(array, mode="RGB")


class HFImageTransform:
    """Apply a Hugging Face image processor to one PIL image, returning ``[3, H, W]``."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]

    def __repr__(self) -> str:
        return f"HFImageTransform({self.processor!r})"


class Preprocess:
    """A model's test-time transform.

    Parameters
    ----------
    transform : callable
        The source library's own transform, taking an RGB PIL image and returning a float
        tensor ``[3, H, W]``.

    Examples
    --------
    >>> x = loaded.preprocess(np.zeros((425, 425, 3), np.uint8))  # doctest: +SKIP
    >>> x.shape                                                   # doctest: +SKIP
    torch.Size([3, 224, 224])
    """

    def __init__(self, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.transform = transform

    def __call__(self, image: Image.Image | np.ndarray) -> torch.Tensor:
        """Transform one image (PIL or ``[H, W, 3]`` uint8) into a float tensor ``[3, H, W]``."""
        return self.transform(to_pil(image))

    def batch(self, images: np.ndarray | list[Any]) -> torch.Tensor:
        """Transform a sequence of images into a batch ``[n, 3, H, W]``."""
        return torch.stack([self(image) for image in images])

    def describe(self) -> str:
        """A stable text description of the transform (part of feature-cache keys)."""
        return " ".join(repr(self.transform).split())

    def __repr__(self) -> str:
        return f"Preprocess({self.describe()})"
