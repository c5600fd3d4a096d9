"""Every image becomes 8-bit RGB by one explicit rule per Pillow mode, or is refused.

Stimuli are the experiment: a pixel that changes value on the way into a model changes the result.
Pillow's own ``convert("RGB")`` clips 16-bit grey (``I;16``) to 255, drops transparency without a
word and has no rule at all for some modes, so zooscope converts each mode itself (every rule is
tested against an independent conversion in ``tests/test_pixels.py``):

=============================  ===============================================================
mode                           rule (``v``: a sample, ``a``: alpha, ``bg``: the background)
=============================  ===============================================================
``RGB``                        kept
``RGBX``                       the padding band X is dropped
``L``                          grey ``v`` becomes ``(v, v, v)``
``1``                          0 becomes 0, 1 becomes 255 (then as ``L``)
``P``                          each index becomes its palette colour
``I;16`` ``I;16L/B/N``         16-bit ``v`` becomes ``v >> 8`` (its high byte: 0 -> 0,
                               65535 -> 255), the rule Pillow itself applies to 16-bit colour
                               PNG and TIFF files, so grey and colour 16-bit images agree
``I``                          as ``I;16`` when the file says its samples are 16-bit unsigned
                               (PNG, TIFF with 16 bits per sample, PGM/PPM, which Pillow scales
                               to 16 bits); refused otherwise (32-bit and signed integers have no
                               defined white level, and Pillow reads 32-bit unsigned as signed)
``F``                          32-bit float ``v`` in [0, 1] becomes ``round(255 v)``; refused
                               when any sample lies outside [0, 1] or is not finite
``CMYK``                       ``round((255 - C) (255 - K) / 255)`` for R (M for G, Y for B)
``YCbCr``                      JPEG's full-range ITU-R BT.601 inverse (``R = Y + 1.402 (Cr -
                               128)``, ``G = Y - 0.344136 (Cb - 128) - 0.714136 (Cr - 128)``,
                               ``B = Y + 1.772 (Cb - 128)``), rounded, clipped to [0, 255]
``HSV``                        hue ``H / 255`` of the circle, ``S / 255``, ``V / 255`` through
                               the standard hexcone inverse (Python's ``colorsys``), rounded
``LAB``                        ``L* = 100 L / 255``, ``a* = A - 128``, ``b* = B - 128`` (Pillow's
                               storage), CIE 1976 inverse with the D65 white (the sRGB white, so
                               no chromatic adaptation), sRGB primaries and transfer curve
                               (IEC 61966-2-1), rounded; colours outside sRGB are clipped and
                               counted in a warning
``RGBA`` ``LA`` ``PA``         straight alpha; ``La`` ``RGBa``: premultiplied alpha
=============================  ===============================================================

Alpha (an alpha band, a palette entry's alpha, or a ``transparency`` colour of the file): when
every pixel is opaque the band is dropped, which changes nothing. Otherwise the image is refused
unless a background colour is given (``--alpha-background``; :class:`PixelRule`), and then each
pixel is composited on it: ``round((v a + bg (255 - a)) / 255)`` (premultiplied: ``round(v +
bg (255 - a) / 255)``). Which background the experiment showed behind a transparent stimulus is
the experimenter's knowledge, so zooscope does not guess it.

Rounding is half up everywhere. Embedded ICC colour profiles and EXIF orientation are not
applied (sample values are taken as sRGB, as stored), as by the model libraries' own loaders.
Animated and multi-page images are refused (which frame is the stimulus?), except MPO (camera
JPEGs whose first frame is the photograph). Images with more pixels than
:func:`max_image_pixels` (Pillow's decompression-bomb limit by default) are refused before they
are decoded; ``--max-image-pixels`` or ``ZOOSCOPE_MAX_IMAGE_PIXELS`` raises it (0: no limit).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
from PIL import Image

from zooscope.errors import InputFileError, corrupt_file
from zooscope.validation import OptionError

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "MODES",
    "PixelRule",
    "max_image_pixels",
    "parse_background",
    "read_image",
    "to_rgb",
]

#: Pillow's own decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``): 1024 * 1024 * 1024 // 4 // 3.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485
#: The modes :func:`to_rgb` converts (every mode ``Image.open`` returns in Pillow 10 to 13).
MODES = ("1", "L", "P", "RGB", "RGBX", "RGBA", "RGBa", "LA", "La", "PA", "CMYK", "YCbCr",
         "LAB", "HSV", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")  # fmt: skip

_NAMED_COLOURS = {"white": (255, 255, 255), "black": (0, 0, 0), "gray": (128, 128, 128),
                  "grey": (128, 128, 128)}  # fmt: skip
_MAX_PIXELS_ENV = "ZOOSCOPE_MAX_IMAGE_PIXELS"


def max_image_pixels() -> int | None:
    """The decompression-bomb limit: ``$ZOOSCOPE_MAX_IMAGE_PIXELS`` (0: none) or Pillow's default."""
    text = os.environ.get(_MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        raise InputFileError(
            _MAX_PIXELS_ENV, "a pixel count", f"{text!r} is not a number", "give e.g. 200000000"
        ) from None
    return None if value <= 0 else value


def parse_background(
    text: str | None, option: str = "--alpha-background"
) -> tuple[int, ...] | None:
    """An RGB background colour from ``white``, ``black``, ``gray``, ``R,G,B`` or ``#rrggbb``.

    Parameters
    ----------
    text : str or None
        None: no background (translucent images are refused).
    option : str
        For the message.

    Returns
    -------
    tuple of three ints in [0, 255], or None
    """
    if text is None:
        return None
    value = text.strip().lower()
    if value in _NAMED_COLOURS:
        return _NAMED_COLOURS[value]
    if re.fullmatch(r"#[0-9a-f]{6}", value):
        return tuple(int(value[i : i + 2], 16) for i in (1, 3, 5))
    parts = [p.strip() for p in value.split(",")]
    if len(parts) == 3 and all(p.isdigit() and int(p) <= 255 for p in parts):
        return tuple(int(p) for p in parts)
    raise OptionError(
        f"{option} {text!r}: not a colour\n  give white, black, gray, R,G,B (0-255 each) or #rrggbb"
    )


@dataclass(frozen=True)
class PixelRule:
    """The choices of the conversion that a user makes.

    Attributes
    ----------
    background : tuple of 3 ints, optional
        Composite translucent pixels on this colour; None refuses translucent images.
    max_pixels : int, optional
        Refuse images with more pixels (decompression bombs); None: no limit. Default:
        :func:`max_image_pixels` when the rule is made.
    """

    background: tuple[int, ...] | None = None
    max_pixels: int | None = -1  # -1: the limit of the environment when used

    def limit(self) -> int | None:
        return max_image_pixels() if self.max_pixels == -1 else self.max_pixels


class _Refused(Exception):
    """An image that the rules refuse (turned into an :class:`InputFileError` naming the file)."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason, self.hint = reason, hint


_warned: set[str] = set()


def _warn_once(kind: str, message: str, *args: Any) -> None:
    if kind not in _warned:
        _warned.add(kind)
        logger.warning(message + " (said once per process)", *args)


def _half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5)


def _grey(v: np.ndarray) -> np.ndarray:
    return np.repeat(v[..., None], 3, axis=-1)


def _palette(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """The RGB colour and alpha of each palette index (alpha 255 unless the file says otherwise)."""
    colours = np.asarray(image.getpalette("RGB") or [], dtype=np.uint8).reshape(-1, 3)
    colours = np.vstack([colours, np.zeros((256 - len(colours), 3), np.uint8)])
    alpha = np.full(256, 255, np.uint8)
    if image.palette is not None and image.palette.mode == "RGBA":
        rgba = np.asarray(image.getpalette("RGBA"), dtype=np.uint8).reshape(-1, 4)
        alpha[: len(rgba)] = rgba[:, 3]
    transparency = image.info.get("transparency")
    if isinstance(transparency, int):
        alpha[transparency] = 0
    elif isinstance(transparency, bytes):
        alpha[: len(transparency)] = np.frombuffer(transparency, np.uint8)[:256]
    return colours, alpha


def _keyed_alpha(image: Image.Image, samples: np.ndarray) -> np.ndarray | None:
    """Alpha from the file's ``transparency`` colour (PNG tRNS of grey and RGB images), or None."""
    key = image.info.get("transparency")
    if key is None or isinstance(key, bytes):
        return None
    key = np.asarray(key)
    match = (samples == key).all(axis=-1) if samples.ndim == 3 else samples == key
    return np.where(match, 0, 255).astype(np.uint8)


def _sixteen_bit(image: Image.Image) -> bool:
    """The samples of an ``I`` image are 16-bit unsigned, as its file says."""
    if image.format in ("PNG", "PPM"):
        return True
    tags = getattr(image, "tag_v2", None)
    if image.format == "TIFF" and tags is not None:
        bits = tags.get(258, (0,))
        bits = bits[0] if isinstance(bits, tuple) else bits
        signed = tags.get(339, (1,))
        signed = (signed[0] if isinstance(signed, tuple) else signed) == 2
        return bits == 16 and not signed
    return False


def _lab_to_rgb(lab: np.ndarray) -> tuple[np.ndarray, int]:
    """sRGB in [0, 255] (float) of Pillow LAB samples, and the number of clipped pixels."""
    L = lab[..., 0] * (100.0 / 255.0)
    a = lab[..., 1] - 128.0
    b = lab[..., 2] - 128.0
    fy = (L + 16.0) / 116.0
    f = np.stack([fy + a / 500.0, fy, fy - b / 200.0], axis=-1)
    delta = 6.0 / 29.0
    xyz = np.where(f > delta, f**3, 3 * delta**2 * (f - 4.0 / 29.0))
    xyz *= np.array([0.95047, 1.0, 1.08883])  # D65
    matrix = np.array(
        [
            [3.2404542, -1.5371385, -0.4985314],
            [-0.9692660, 1.8760108, 0.0415560],
            [0.0556434, -0.2040259, 1.0572252],
        ]
    )
    linear = xyz @ matrix.T
    encoded = np.where(
        linear <= 0.0031308,
        12.92 * linear,
        1.055 * np.power(np.clip(linear, 0.0031308, None), 1 / 2.4) - 0.055,
    )
    scaled = encoded * 255.0
    clipped = int(((scaled < -0.5) | (scaled > 255.5)).any(axis=-1).sum())
    return np.clip(scaled, 0, 255), clipped


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    h, s, v = (hsv[..., k] / 255.0 for k in range(3))
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f))
    i = i.astype(int) % 6
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1) * 255.0


def _colour_and_alpha(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """RGB samples (any numeric dtype, 0-255 scale), alpha (or None) and whether it is premultiplied."""
    mode = image.mode
    data = np.asarray(image)
    if mode == "RGB":
        return data, _keyed_alpha(image, data), False
    if mode == "RGBX":
        return data[..., :3], None, False
    if mode in ("RGBA", "RGBa"):
        return data[..., :3], data[..., 3], mode == "RGBa"
    if mode == "L":
        return _grey(data), _keyed_alpha(image, data), False
    if mode == "1":
        return _grey(data.astype(np.uint8) * 255), None, False
    if mode in ("LA", "La"):
        return _grey(data[..., 0]), data[..., 1], mode == "La"
    if mode in ("P", "PA"):
        colours, alpha = _palette(image)
        index = data if mode == "P" else data[..., 0]
        return colours[index], alpha[index] if mode == "P" else data[..., 1], False
    if mode in ("I;16", "I;16L", "I;16B", "I;16N") or (mode == "I" and _sixteen_bit(image)):
        values = data.astype(np.int64)
        if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
            raise _Refused(
                f"16-bit samples outside 0..65535 (mode {mode})",
                "the file is damaged or not what its header says: write it again",
            )
        return _grey(values >> 8), _keyed_alpha(image, data), False
    if mode == "I":
        raise _Refused(
            f"32-bit or signed integer samples (mode I, {image.format or 'no file format'}) have no "
            "defined white level",
            "convert the image to 8- or 16-bit unsigned yourself (the scaling is yours to choose)",
        )
    if mode == "F":
        if not np.isfinite(data).all() or data.min(initial=0) < 0 or data.max(initial=0) > 1:
            raise _Refused(
                f"32-bit float samples outside [0, 1] (from {np.nanmin(data):g} to "
                f"{np.nanmax(data):g}; mode F)",
                "scale the image to [0, 1] (white = 1.0) or convert it to 8-bit yourself",
            )
        return _grey(data.astype(np.float64) * 255.0), None, False
    if mode == "CMYK":
        c = data.astype(np.int64)
        ink = 255 - c[..., 3:4]
        return ((255 - c[..., :3]) * ink + 127) // 255, None, False
    if mode == "YCbCr":
        y, cb, cr = (data[..., k].astype(np.float64) for k in range(3))
        rgb = np.stack(
            [y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
             y + 1.772 * (cb - 128)], axis=-1,
        )  # fmt: skip
        return rgb, None, False
    if mode == "HSV":
        return _hsv_to_rgb(data.astype(np.float64)), None, False
    if mode == "LAB":
        rgb, clipped = _lab_to_rgb(data.astype(np.float64))
        if clipped:
            _warn_once(
                "lab-gamut",
                "%s of an L*a*b* image lie outside sRGB: clipped to the nearest sRGB value",
                f"{clipped} pixel(s)",
            )
        return rgb, None, False
    raise _Refused(
        f"image mode {mode!r} has no conversion rule",
        f"convert it to one of {', '.join(MODES)} (8-bit RGB is safest)",
    )


def to_rgb(image: Image.Image, background: tuple[int, ...] | None = None) -> np.ndarray:
    """8-bit RGB pixels of ``image`` by the rule of its mode (module docstring).

    Parameters
    ----------
    image : PIL.Image.Image
        Any mode in :data:`MODES`.
    background : tuple of 3 ints, optional
        Composite translucent pixels on this colour; None refuses translucent images.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)

    Raises
    ------
    ValueError
        The image is refused; the message says why and what to do (:func:`read_image` names the
        file).
    """
    try:
        return _to_rgb(image, background)
    except _Refused as refused:
        raise ValueError(f"{refused.reason}\n  {refused.hint}") from None


def _to_rgb(image: Image.Image, background: tuple[int, ...] | None) -> np.ndarray:
    colour, alpha, premultiplied = _colour_and_alpha(image)
    if alpha is not None and (alpha < 255).any():
        if background is None:
            n = int((alpha < 255).sum())
            raise _Refused(
                f"{n} of {alpha.size} pixels are transparent or translucent (mode {image.mode}), and "
                "what the experiment showed behind them is unknown",
                "give the background to composite them on: --alpha-background gray (or white, "
                "black, R,G,B)",
            )
        a = alpha.astype(np.int64)[..., None]
        bg = np.asarray(background, np.int64) * (255 - a)
        if premultiplied:
            out = colour.astype(np.int64) + (bg + 127) // 255
        else:
            out = (colour.astype(np.int64) * a + bg + 127) // 255
        return np.clip(out, 0, 255).astype(np.uint8)
    if colour.dtype == np.uint8:
        return np.ascontiguousarray(colour)
    if np.issubdtype(colour.dtype, np.integer):
        return colour.astype(np.uint8)
    return np.clip(_half_up(colour), 0, 255).astype(np.uint8)


@contextlib.contextmanager
def _own_bomb_check() -> Iterator[None]:
    """Let zooscope's limit (checked before decoding) replace Pillow's, which raises no file name."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def read_image(
    source: str | os.PathLike[str] | IO[bytes],
    name: str,
    rule: PixelRule | None = None,
    seen_mode: Callable[[str], None] | None = None,
) -> np.ndarray:
    """Decode one image file into 8-bit RGB pixels, or refuse it naming the file.

    Parameters
    ----------
    source : path or binary file object
    name : str
        How the message names the file, e.g. ``"photos/cat.png"`` or ``"stimuli.zip (member
        cat.png)"``.
    rule : PixelRule, optional
        Background of translucent images and the pixel limit (default: none, and the
        environment's limit).
    seen_mode : callable, optional
        Called with the file's Pillow mode (e.g. to note conversions once per image set).

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)

    Raises
    ------
    InputFileError
        A file that is not an image, is truncated or damaged, has too many pixels, several
        frames, or samples no rule converts; one or two lines naming it and what to do.
    """
    rule = rule or PixelRule()
    try:
        with _own_bomb_check(), Image.open(source) as image:
            limit = rule.limit()
            width, height = image.size
            if limit is not None and width * height > limit:
                raise InputFileError(
                    name,
                    "an image",
                    f"{width}x{height} = {width * height:,} pixels, more than the limit of "
                    f"{limit:,} against decompression bombs",
                    f"if you trust this file, raise the limit: --max-image-pixels {width * height} "
                    f"(or {_MAX_PIXELS_ENV}={width * height}; 0 removes it)",
                )
            if getattr(image, "is_animated", False) and image.format != "MPO":
                raise InputFileError(
                    name,
                    "an image",
                    f"it has {image.n_frames} frames ({image.format}): which one is the stimulus?",
                    "save the stimulus as a single-frame image",
                )
            image.load()
            pixels = _to_rgb(image, rule.background)
            if seen_mode is not None:
                seen_mode(image.mode)
            return pixels
    except InputFileError:
        raise
    except _Refused as refused:
        raise InputFileError(name, "an image", refused.reason, refused.hint) from None
    except Image.UnidentifiedImageError as error:
        raise InputFileError(
            name, "an image", "not in an image format Pillow can read",
            "give PNG, JPEG, TIFF, BMP, WebP or GIF files (or check that the file is complete)",
        ) from error  # fmt: skip
    except Image.DecompressionBombError as error:  # a plugin's own check
        raise corrupt_file(name, "an image", error) from error
    except (OSError, ValueError, SyntaxError, EOFError) as error:  # PIL's messages name no file
        raise corrupt_file(name, "an image", error) from error
