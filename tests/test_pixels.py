"""Every Pillow mode becomes 8-bit RGB by its documented rule, checked against a reference.

Each reference is computed here, pixel by pixel in plain Python from the rule's formula
(``colorsys`` for HSV, scikit-image for L*a*b* as a second opinion), not by zooscope's vectorised
code; images the rules refuse must be refused with the file (and zip member) named.
"""

from __future__ import annotations

import colorsys
import io
import math
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zooscope.errors import InputFileError
from zooscope.feature_extraction.images import ImageSet
from zooscope.pixels import MODES, PixelRule, parse_background, read_image, to_rgb

RNG = np.random.default_rng(7)
SIZE = (6, 5)  # width, height


def random_bytes(n_bands: int) -> np.ndarray:
    return RNG.integers(0, 256, (SIZE[1], SIZE[0], n_bands), dtype=np.uint8)


def from_bands(mode: str, data: np.ndarray) -> Image.Image:
    return Image.frombytes(mode, SIZE, np.ascontiguousarray(data).tobytes())


def half_up(x: float) -> int:
    return min(255, max(0, math.floor(x + 0.5)))


def per_pixel(data: np.ndarray, rule) -> np.ndarray:
    """Apply the scalar ``rule(pixel) -> (r, g, b)`` to every pixel (the independent path)."""
    out = np.zeros((*data.shape[:2], 3), np.uint8)
    for y in range(data.shape[0]):
        for x in range(data.shape[1]):
            out[y, x] = rule(
                *[int(v) if float(v).is_integer() else float(v) for v in np.atleast_1d(data[y, x])]
            )
    return out


def composite(c: int, a: int, bg: int) -> int:
    return half_up((c * a + bg * (255 - a)) / 255)


def opaque(data: np.ndarray) -> np.ndarray:
    data = data.copy()
    data[..., -1] = 255
    return data


def png16(array: np.ndarray, color_type: int) -> bytes:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit colour)."""
    height, width = array.shape[:2]
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


# ------------------------------------------------------------------ modes without alpha
def test_rgb_rgbx_grey_and_bilevel() -> None:
    data = random_bytes(3)
    np.testing.assert_array_equal(to_rgb(from_bands("RGB", data)), data)
    padded = random_bytes(4)
    np.testing.assert_array_equal(to_rgb(from_bands("RGBX", padded)), padded[..., :3])
    grey = random_bytes(1)[..., 0]
    expected = per_pixel(grey, lambda v: (v, v, v))
    np.testing.assert_array_equal(to_rgb(Image.fromarray(grey, "L")), expected)
    bits = RNG.integers(0, 2, (SIZE[1], SIZE[0])).astype(bool)
    expected = per_pixel(bits.astype(np.uint8), lambda b: (255 * b,) * 3)
    np.testing.assert_array_equal(to_rgb(Image.fromarray(bits)), expected)


def test_palette_looks_up_each_index() -> None:
    palette = RNG.integers(0, 256, 768, dtype=np.uint8)
    index = RNG.integers(0, 256, (SIZE[1], SIZE[0]), dtype=np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette(palette.tobytes())
    colours = palette.reshape(256, 3)
    expected = per_pixel(index, lambda i: tuple(colours[i]))
    np.testing.assert_array_equal(to_rgb(image), expected)


@pytest.mark.parametrize("mode", ["I;16", "I;16L", "I;16B", "I;16N"])
def test_16_bit_grey_keeps_the_high_byte_instead_of_clipping(mode: str) -> None:
    values = RNG.integers(0, 65536, (SIZE[1], SIZE[0]), dtype=np.uint16)
    values[0, :3] = (0, 255, 65535)
    order = ">" if mode == "I;16B" else "<" if mode != "I;16N" else "="
    image = Image.frombytes(mode, SIZE, values.astype(f"{order}u2").tobytes())
    expected = per_pixel(values, lambda v: (v // 256,) * 3)
    out = to_rgb(image)
    np.testing.assert_array_equal(out, expected)
    assert tuple(out[0, 1]) == (0, 0, 0) and tuple(out[0, 2]) == (255, 255, 255)
    # Pillow's own conversion clips every value above 255 to white: the bug this rule fixes.
    assert (np.asarray(image.convert("RGB"))[values > 255] == 255).all()


def test_16_bit_files_grey_and_colour_follow_one_rule(tmp_path: Path) -> None:
    grey = RNG.integers(0, 65536, (5, 6), dtype=np.uint16)
    colour = RNG.integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    (tmp_path / "grey.png").write_bytes(png16(grey, 0))
    (tmp_path / "colour.png").write_bytes(png16(colour, 2))
    pgm = tmp_path / "grey.pgm"  # Pillow opens 16-bit PGM as mode I
    pgm.write_bytes(b"P5\n6 5\n65535\n" + grey.astype(">u2").tobytes())
    assert Image.open(pgm).mode == "I"
    for path, values in ((tmp_path / "grey.png", np.repeat(grey[..., None], 3, -1)),
                         (tmp_path / "colour.png", colour), (pgm, np.repeat(grey[..., None], 3, -1))):  # fmt: skip
        expected = per_pixel(values, lambda r, g, b: (r >> 8, g >> 8, b >> 8))
        np.testing.assert_array_equal(read_image(path, path.name), expected)


def test_cmyk_ycbcr_hsv_by_their_formulas() -> None:
    cmyk = random_bytes(4)
    expected = per_pixel(
        cmyk, lambda c, m, y, k: tuple(half_up((255 - v) * (255 - k) / 255) for v in (c, m, y))
    )
    np.testing.assert_array_equal(to_rgb(from_bands("CMYK", cmyk)), expected)

    ycc = random_bytes(3)

    def jfif(y: int, cb: int, cr: int) -> tuple[int, int, int]:
        return (half_up(y + 1.402 * (cr - 128)),
                half_up(y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)),
                half_up(y + 1.772 * (cb - 128)))  # fmt: skip

    np.testing.assert_array_equal(to_rgb(from_bands("YCbCr", ycc)), per_pixel(ycc, jfif))

    hsv = random_bytes(3)
    hsv[0, 0] = (255, 255, 255)  # hue 1.0 wraps to red

    def hexcone(h: int, s: int, v: int) -> tuple[int, ...]:
        return tuple(half_up(255 * c) for c in colorsys.hsv_to_rgb(h / 255, s / 255, v / 255))

    np.testing.assert_array_equal(to_rgb(from_bands("HSV", hsv)), per_pixel(hsv, hexcone))


def _srgb(c: float) -> float:
    return 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055


def _lab_reference(L: int, A: int, B: int) -> tuple[int, ...]:
    lstar, astar, bstar = L * 100 / 255, A - 128, B - 128
    fy = (lstar + 16) / 116
    fs = (fy + astar / 500, fy, fy - bstar / 200)
    d = 6 / 29
    x, y, z = (t**3 if t > d else 3 * d * d * (t - 4 / 29) for t in fs)
    x, z = x * 0.95047, z * 1.08883
    r = 3.2404542 * x - 1.5371385 * y - 0.4985314 * z
    g = -0.9692660 * x + 1.8760108 * y + 0.0415560 * z
    b = 0.0556434 * x - 0.2040259 * y + 1.0572252 * z
    return tuple(half_up(255 * _srgb(min(max(c, 0.0), 1.0))) for c in (r, g, b))


def test_lab_to_srgb_d65() -> None:
    from skimage.color import lab2rgb

    lab = random_bytes(3)
    lab[..., 1:] = RNG.integers(100, 156, (SIZE[1], SIZE[0], 2))  # mostly inside sRGB
    lab[0, 0] = (255, 128, 128)  # white
    lab[0, 1] = (0, 128, 128)  # black
    out = to_rgb(from_bands("LAB", lab))
    np.testing.assert_array_equal(out, per_pixel(lab, _lab_reference))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[0, 1]) == (0, 0, 0)
    # A second, separately written implementation agrees within its own matrix's rounding.
    wide = lab.astype(np.float64)
    floats = np.stack([wide[..., 0] * 100 / 255, wide[..., 1] - 128, wide[..., 2] - 128], -1)
    other = np.floor(lab2rgb(floats, illuminant="D65") * 255 + 0.5)
    assert np.abs(out.astype(int) - other).max() <= 1


def test_float_images_white_at_one_else_refused() -> None:
    values = RNG.random((SIZE[1], SIZE[0])).astype(np.float32)
    values[0, :2] = (0.0, 1.0)
    expected = per_pixel(values, lambda v: (half_up(255 * v),) * 3)
    np.testing.assert_array_equal(to_rgb(Image.fromarray(values, "F")), expected)
    for bad in (2.5, -0.1, np.nan):
        values[1, 1] = bad
        with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
            to_rgb(Image.fromarray(values, "F"))


def test_integer_images_without_a_known_bit_depth_are_refused(tmp_path: Path) -> None:
    import tifffile

    with pytest.raises(ValueError, match=r"no\s+defined white level"):
        to_rgb(Image.fromarray(RNG.integers(0, 1000, (4, 4)).astype(np.int32)))
    for dtype in (np.int16, np.uint32):  # signed, and 32-bit (Pillow reads it as signed)
        path = tmp_path / f"{np.dtype(dtype).name}.tif"
        tifffile.imwrite(path, np.arange(16, dtype=dtype).reshape(4, 4))
        with pytest.raises(InputFileError, match=path.name):
            read_image(path, str(path))


# ------------------------------------------------------------------ alpha
def test_opaque_alpha_is_dropped_exactly() -> None:
    data = opaque(random_bytes(4))
    for mode in ("RGBA", "RGBa"):
        np.testing.assert_array_equal(to_rgb(from_bands(mode, data)), data[..., :3])
    grey = opaque(random_bytes(2))
    for mode in ("LA", "La"):
        np.testing.assert_array_equal(
            to_rgb(from_bands(mode, grey)), np.repeat(grey[..., :1], 3, -1)
        )


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA", "RGBa", "La"])
def test_translucent_images_are_refused_without_a_background(mode: str) -> None:
    data = random_bytes(Image.getmodebands(mode))
    data[0, 0, -1] = 10
    image = from_bands(mode, data)
    with pytest.raises(ValueError, match="--alpha-background"):
        to_rgb(image)


def test_translucent_pixels_are_composited_on_the_given_background() -> None:
    background = (128, 64, 255)
    data = random_bytes(4)
    data[0, 0, 3], data[0, 1, 3] = 0, 255
    expected = per_pixel(
        data,
        lambda r, g, b, a: tuple(
            composite(c, a, k) for c, k in zip((r, g, b), background, strict=True)
        ),
    )
    np.testing.assert_array_equal(to_rgb(from_bands("RGBA", data), background), expected)
    assert tuple(expected[0, 0]) == background and tuple(expected[0, 1]) == tuple(data[0, 1, :3])

    grey = random_bytes(2)
    expected = per_pixel(grey, lambda v, a: tuple(composite(v, a, k) for k in background))
    np.testing.assert_array_equal(to_rgb(from_bands("LA", grey), background), expected)

    premultiplied = random_bytes(4)
    premultiplied[..., :3] = np.minimum(premultiplied[..., :3], premultiplied[..., 3:])
    expected = per_pixel(premultiplied, lambda r, g, b, a: tuple(
        half_up(c + k * (255 - a) / 255) for c, k in zip((r, g, b), background, strict=True)))  # fmt: skip
    np.testing.assert_array_equal(to_rgb(from_bands("RGBa", premultiplied), background), expected)


def test_palette_transparency_and_colour_keys_count_as_alpha(tmp_path: Path) -> None:
    index = RNG.integers(0, 4, (SIZE[1], SIZE[0]), dtype=np.uint8)
    index[0, 0] = 3
    image = Image.fromarray(index, "P")
    palette = RNG.integers(0, 256, 12, dtype=np.uint8)
    image.putpalette(palette.tobytes())
    image.info["transparency"] = 3  # a GIF's transparent index
    with pytest.raises(ValueError, match="--alpha-background"):
        to_rgb(image)
    colours = palette.reshape(4, 3)
    expected = per_pixel(index, lambda i: (0, 0, 0) if i == 3 else tuple(colours[i]))
    np.testing.assert_array_equal(to_rgb(image, (0, 0, 0)), expected)

    grey = RNG.integers(1, 256, (SIZE[1], SIZE[0]), dtype=np.uint8)
    grey[2, 2] = 0
    path = tmp_path / "keyed.png"
    Image.fromarray(grey, "L").save(path, transparency=0)  # PNG tRNS: grey 0 is transparent
    with pytest.raises(InputFileError, match=r"keyed\.png"):
        read_image(path, str(path))
    out = read_image(path, str(path), PixelRule(background=(255, 255, 255)))
    assert tuple(out[2, 2]) == (255, 255, 255) and tuple(out[0, 0]) == (grey[0, 0],) * 3


def test_every_mode_has_a_rule_or_a_reason() -> None:
    """The documented list is what is converted; each listed mode was exercised above."""
    covered = {"1", "L", "P", "RGB", "RGBX", "RGBA", "RGBa", "LA", "La", "PA", "CMYK", "YCbCr",
               "LAB", "HSV", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}  # fmt: skip
    assert set(MODES) == covered
    assert parse_background("grey") == (128, 128, 128) and parse_background("#ff0080") == (
        255,
        0,
        128,
    )
    assert parse_background("1, 2, 3") == (1, 2, 3)
    with pytest.raises(ValueError, match="not a colour"):
        parse_background("256,0,0")


# ------------------------------------------------------------------ files that are refused
def test_refused_files_are_named_in_folders_and_zips(tmp_path: Path) -> None:
    good = io.BytesIO()
    Image.fromarray(random_bytes(3)).save(good, "PNG")
    truncated = good.getvalue()[: len(good.getvalue()) // 2]
    frames = io.BytesIO()
    Image.new("L", (4, 4)).save(
        frames, "GIF", save_all=True, append_images=[Image.new("L", (4, 4), 9)]
    )
    archive = tmp_path / "stimuli.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a/ok.png", good.getvalue())
        z.writestr("a/cut.png", truncated)
        z.writestr("a/moving.gif", frames.getvalue())
    images = ImageSet(archive)
    assert len(images) == 3  # name order: a/cut.png, a/moving.gif, a/ok.png
    np.testing.assert_array_equal(images[2], np.asarray(Image.open(good)))
    with pytest.raises(InputFileError, match=r"stimuli\.zip \(member a/cut\.png\).*\n.*truncated"):
        images[0]
    with pytest.raises(InputFileError, match=r"member a/moving\.gif\).*2 frames"):
        images[1]
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(
        InputFileError, match=r"notes\.png: cannot read an image: not in an image format"
    ):
        read_image(text, str(text))


def test_decompression_bombs_are_refused_before_decoding(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "wide.png"
    Image.new("L", (400, 300)).save(path)
    with pytest.raises(
        InputFileError, match=r"wide\.png.*120,000 pixels.*\n.*--max-image-pixels 120000"
    ):
        read_image(path, str(path), PixelRule(max_pixels=100_000))
    monkeypatch.setenv("ZOOSCOPE_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(InputFileError, match="ZOOSCOPE_MAX_IMAGE_PIXELS=120000"):
        read_image(path, str(path))
    monkeypatch.setenv("ZOOSCOPE_MAX_IMAGE_PIXELS", "0")  # 0: no limit
    assert read_image(path, str(path)).shape == (300, 400, 3)
    assert read_image(path, str(path), PixelRule(max_pixels=None)).shape == (300, 400, 3)
