"""``zooscope extract``: every layer's SRP features and exact RSM for one model, to a folder.

Thin shell over :func:`zooscope.feature_extraction.extract`. The output folder holds the
:class:`~zooscope.feature_extraction.FeatureCache` (one HDF5 file per layer, written atomically,
so a killed run resumes where it stopped) and ``layers.csv``, the index of those files.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from zooscope.cli.validation import check_options

INDEX_COLUMNS = (
    "index",
    "name",
    "label",
    "module_type",
    "n_features",
    "srp_width",
    "from_cache",
    "file",
)


def register(app: typer.Typer) -> None:
    """Add the ``extract`` command to ``app``."""
    app.command("extract")(extract_cmd)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


NPY_MAGIC = b"\x93NUMPY"
EXPECTED_PIXELS = "uint8 pixels [n_images, height, width, 3] (RGB, 0-255)"


def _checked_pixels(array: Any, path: Path, what: str) -> Any:
    """``array`` if it holds RGB uint8 images, else an error naming the file and what it holds."""
    # lazy: `zooscope --help` stays fast
    from zooscope.errors import InputFileError

    if array.dtype != "uint8" or array.ndim != 4 or array.shape[-1] != 3 or not array.shape[0]:
        raise InputFileError(
            path, what, f"it holds {array.dtype} {tuple(array.shape)}", f"save {EXPECTED_PIXELS}"
        )
    return array


def _load_npy(path: Path) -> Any:
    """A memory-mapped ``.npy`` image array; never unpickles, and says what a bad file is."""
    # lazy: `zooscope --help` stays fast
    import numpy as np

    from zooscope.errors import InputFileError, corrupt_file

    what = "a .npy array of images"
    with open(path, "rb") as handle:
        if handle.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise InputFileError(
                path, what, "not a NumPy .npy file (it does not start with the .npy header)",
                f"write the images with numpy.save(path, images), images being {EXPECTED_PIXELS}",
            )  # fmt: skip
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)  # read as needed
    except ValueError as error:
        if "allow_pickle" in str(error):  # an object array: Python objects, not pixels
            raise InputFileError(
                path, what, "it holds Python objects (dtype object), not pixels",
                f"save {EXPECTED_PIXELS}",
            ) from None  # fmt: skip
        raise corrupt_file(path, what, error) from error
    except (OSError, EOFError) as error:
        raise corrupt_file(path, what, error) from error
    return _checked_pixels(array, path, what)


@contextlib.contextmanager
def open_images(path: Path, rule: Any = None) -> Iterator[tuple[Any, str | None]]:
    """Images from a folder or zip of image files, a ``.npy`` array or a Benchmark's ``stimuli``.

    Parameters
    ----------
    path : Path
    rule : zooscope.pixels.PixelRule, optional
        How image files become 8-bit RGB (translucency, pixel limit).

    Yields
    ------
    images : ImageSet, array or h5py.Dataset
    image_set_id : str or None
        The Benchmark's content hash when it has one (so the pixels need not be hashed again).
    """
    import zipfile

    if path.is_dir() or (path.is_file() and zipfile.is_zipfile(path)):
        # lazy: `zooscope --help` stays fast
        from zooscope.feature_extraction.images import ImageSet

        yield ImageSet(path, rule), None
    elif path.suffix == ".npy":
        yield _load_npy(path), None
    elif path.suffix in (".h5", ".hdf5"):
        # lazy: `zooscope --help` stays fast
        import h5py

        from zooscope.errors import reading

        with reading(path, "a Benchmark file"), h5py.File(path, "r") as handle:
            if "stimuli" not in handle:
                raise _fail(f"{path} has no 'stimuli' dataset (expected a Benchmark file)")
            stimuli = _checked_pixels(handle["stimuli"], path, "the stimuli of a Benchmark file")
            content_hash = handle.attrs.get("content_hash")
            yield stimuli, (f"benchmark:{content_hash}" if content_hash else None)
    elif not path.exists():
        raise _fail(f"{path} does not exist")
    else:
        raise _fail(
            f"cannot read images from {path}: give a folder or zip of images, a .npy array or an .h5 file"
        )


PIXEL_LIMIT_HELP = (
    "Refuse images with more pixels (decompression bombs; default: Pillow's 89,478,485, or "
    "ZOOSCOPE_MAX_IMAGE_PIXELS; 0: no limit)."
)
BACKGROUND_HELP = (
    "Composite transparent or translucent images on this colour (white, black, gray, R,G,B, "
    "#rrggbb); without it they are refused (what the experiment showed behind them is unknown)."
)


def pixel_rule(max_image_pixels: int | None, alpha_background: str | None) -> Any:
    """The :class:`~zooscope.pixels.PixelRule` of the two image options."""
    # lazy: `zooscope --help` stays fast
    from zooscope.pixels import PixelRule, parse_background

    limit = -1 if max_image_pixels is None else (max_image_pixels or None)
    return PixelRule(background=parse_background(alpha_background), max_pixels=limit)


# long: typer declares the command's 18 options in its signature
def extract_cmd(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", help="model_uid of the manifest row."),
    images: Path = typer.Option(
        ...,
        "--images",
        help="Folder or zip of images, .npy uint8 array (n, H, W, 3), or Benchmark .h5 (its stimuli).",
    ),
    out: Path = typer.Option(..., "--out", help="Output folder (feature cache + layers.csv)."),
    manifest: str = typer.Option(
        "demo", "--manifest", "-m", help="Manifest CSV path or built-in name."
    ),
    eps: float = typer.Option(
        0.1, help="JL distortion: k = johnson_lindenstrauss_min_dim(n, eps)."
    ),
    n_components: int | None = typer.Option(None, help="Projection width k (overrides --eps)."),
    seed: int = typer.Option(0, help="Projection seed (each layer's matrix: seed + layer name)."),
    memory_budget: str | None = typer.Option(
        None,
        help="Memory the extraction may add to the loaded model (forward pass + buffers), e.g. 4GB (default: half the free device memory).",
    ),
    batch_size: int = typer.Option(32, help="Images per forward pass."),
    loader_workers: int = typer.Option(
        0,
        "--loader-workers",
        help="PyTorch DataLoader processes decoding images (0: in this process).",
    ),
    device: str = typer.Option("auto", help="cpu, cuda, mps or auto."),
    rsm_from: str = typer.Option("full", help="full (exact RSMs) or srp (one-pass approximation)."),
    layers: str | None = typer.Option(
        None, "--layers", help="Keep layers whose name matches REGEX."
    ),
    module_type: list[str] = typer.Option(
        [], "--module-type", help="Keep only these module classes (repeat), e.g. Conv2d."
    ),
    max_depth: int | None = typer.Option(None, help="Keep modules at most this deep."),
    srp_mode: str = typer.Option("fast", help="fast, or sklearn (scikit-learn's exact matrix)."),
    amp: bool = typer.Option(False, help="Autocast the forward pass (inexact features)."),
    progress: bool = typer.Option(True, help="Show progress bars."),
    max_image_pixels: int | None = typer.Option(None, help=PIXEL_LIMIT_HELP),
    alpha_background: str | None = typer.Option(None, help=BACKGROUND_HELP),
) -> None:
    """Extract every layer's SRP features and RSM for one model into OUT."""
    check_options(ctx)
    # lazy: `zooscope --help` stays fast
    from tqdm.auto import tqdm

    from zooscope.feature_extraction import FeatureCache, LayerSelection, extract, parse_bytes
    from zooscope.zoo import ManifestError, get_entry, load_model

    try:
        budget = parse_bytes(memory_budget) if memory_budget is not None else None
        entry = get_entry(model, manifest)
    except (ValueError, KeyError, ManifestError, FileNotFoundError) as error:
        raise _fail(str(error).strip("'\"")) from None
    selection = LayerSelection(
        include=layers, module_types=module_type or None, max_depth=max_depth
    )
    with open_images(images, pixel_rule(max_image_pixels, alpha_background)) as (
        source,
        image_set_id,
    ):
        if len(source) < 2:
            # lazy: `zooscope --help` stays fast
            from zooscope.errors import InputFileError

            raise InputFileError(
                images, "images to extract", f"it holds {len(source)} image(s)",
                "an RSM and the projection need at least 2 images",
            )  # fmt: skip
        if image_set_id is None and hasattr(source, "content_hash"):
            # An image folder or zip: every file is read (and a refused one named) before the
            # model loads; the hash is the one extract() would compute.
            image_set_id = source.content_hash()
        loaded = load_model(entry, device=device)
        out.mkdir(parents=True, exist_ok=True)
        cache = FeatureCache(out / "cache")
        rows: list[dict[str, Any]] = []
        results = extract(
            loaded,
            source,
            layers=selection,
            eps=eps,
            n_components=n_components,
            seed=seed,
            rsm_from=rsm_from,  # type: ignore[arg-type]
            memory_budget=budget,
            batch_size=batch_size,
            num_workers=loader_workers,
            amp=amp,
            srp_mode=srp_mode,  # type: ignore[arg-type]
            cache=cache,
            image_set_id=image_set_id,
            progress=progress,
        )
        for features in tqdm(results, desc="layers", unit="layer", disable=not progress):
            rows.append(
                {
                    "index": features.index,
                    "name": features.name,
                    "label": features.label,
                    "module_type": features.module_type,
                    "n_features": features.n_features,
                    "srp_width": "" if features.srp is None else features.srp.shape[1],
                    "from_cache": features.from_cache,
                    "file": cache.path(features.cache_key).relative_to(out).as_posix(),
                }
            )
    if not rows:
        raise _fail("no layer matched the selection (--layers/--module-type/--max-depth)")
    rows.sort(key=lambda row: row["index"])
    # lazy: `zooscope --help` stays fast
    from zooscope._files import replacing

    with replacing(out / "layers.csv") as temporary:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=INDEX_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    reused = sum(row["from_cache"] for row in rows)
    typer.echo(
        f"{entry.model_uid}: {len(rows)} layers ({reused} reused from cache) -> {out / 'layers.csv'}"
    )
