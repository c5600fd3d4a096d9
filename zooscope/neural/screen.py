"""What a Brain-Score model sees: stimuli placed on its screen, then Brain-Score's preprocessing.

Screen placement (Brain-Score's ``benchmark_helpers/screen.py``, ``place_on_screen`` and its
``ImageConverter``): a stimulus shown at ``source`` visual degrees is re-rendered for a model whose
field of view spans ``target`` degrees, at the ratio ``target / source``:

- ratio > 1 (the stimulus covers less of the model's field than of the monkey's): the image is
  pasted, unscaled, at the centre of a grey (128, 128, 128) canvas ``round(ratio * size)``
  pixels wide and high; the preprocessing's resize then shrinks the whole canvas;
- ratio < 1: the centre ``round(ratio * size)`` pixels are cropped;
- equal degrees leave the image as it is.

``round`` is NumPy's (halves to even), for the canvas size and the offsets alike.

Preprocessing (Brain-Score's ``load_preprocess_images``): the whole image is resized to the
model's ``image_size`` square (bilinear, no crop), converted to a tensor and normalised with the
ImageNet mean and standard deviation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "BACKGROUND",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "brainscore_transform",
    "model_image_size",
    "place_on_screen",
]

#: The canvas colour of an enlarged stimulus (PIL's ``"gray"``).
BACKGROUND = (128, 128, 128)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def place_on_screen(image: np.ndarray, source: float, target: float) -> np.ndarray:
    """One stimulus as a model with a ``target``-degree field of view sees it.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
    source : float
        Visual degrees the stimulus spanned in the experiment.
    target : float
        Visual degrees of the model's field of view (Brain-Score's default: 8).

    Returns
    -------
    ndarray of uint8, shape (H', W', 3)
        ``image`` itself when ``source == target``.
    """
    if source <= 0 or target <= 0:
        raise ValueError(f"visual degrees must be positive, got {source} and {target}")
    if source == target:
        return image
    ratio = target / source
    size = np.array(image.shape[:2])  # (H, W)
    new = np.round(ratio * size).astype(int)
    if ratio >= 1:
        top, left = np.round((new - size) / 2).astype(int)
        canvas = np.empty((*new, 3), dtype=np.uint8)
        canvas[...] = BACKGROUND
        canvas[top : top + size[0], left : left + size[1]] = image
        return canvas
    top, left = np.round((size - new) / 2).astype(int)
    return image[top : top + new[0], left : left + new[1]]


def model_image_size(entry: Any, transform: Any) -> tuple[int, int]:
    """The square a Brain-Score model is fed: the row's ``image_size``, else its own transform's."""
    size = entry.metadata.get("image_size") if entry is not None else None
    if size:
        side = int(float(size))
        return side, side
    from PIL import Image

    probe = transform(Image.new("RGB", (64, 64)))
    return int(probe.shape[-2]), int(probe.shape[-1])


def brainscore_transform(entry: Any, transform: Any) -> Any:
    """Brain-Score's ``load_preprocess_images``: resize the whole image, ImageNet normalisation.

    Parameters
    ----------
    entry : ModelEntry
        Its metadata column ``image_size`` (Brain-Score's ``image_size`` of the model) wins.
    transform : callable
        The library's own transform; its output size is the default ``image_size``.
    """
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(model_image_size(entry, transform)),
            transforms.ToTensor(),
            transforms.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        ]
    )
