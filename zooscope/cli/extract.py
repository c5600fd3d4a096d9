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


@contextlib.contextmanager
def open_images(path: Path) -> Iterator[tuple[Any, str | None]]:
    """Images from a folder, a ``.npy`` array or a Benchmark HDF5 file (its ``stimuli``).

    Yields ``(images, image_set_id)``; the id is the Benchmark's content hash when it has one
    (so the pixels need not be hashed again), else None.
    """
    if path.is_dir():
        yield path, None
    elif path.suffix == ".npy":
        import numpy as np

        yield np.load(path, mmap_mode="r"), None  # memory-mapped: images are read as needed
    elif path.suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as handle:
            if "stimuli" not in handle:
                raise _fail(f"{path} has no 'stimuli' dataset (expected a Benchmark file)")
            content_hash = handle.attrs.get("content_hash")
            yield handle["stimuli"], (f"benchmark:{content_hash}" if content_hash else None)
    elif not path.exists():
        raise _fail(f"{path} does not exist")
    else:
        raise _fail(f"cannot read images from {path}: give a folder, a .npy array or an .h5 file")


# long: typer declares the command's 18 options in its signature
def extract_cmd(
    model: str = typer.Option(..., "--model", help="model_uid of the manifest row."),
    images: Path = typer.Option(
        ...,
        "--images",
        help="Folder of images, .npy uint8 array (n, H, W, 3), or Benchmark .h5 (its stimuli).",
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
    workers: int = typer.Option(0, help="DataLoader worker processes."),
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
) -> None:
    """Extract every layer's SRP features and RSM for one model into OUT."""
    import re

    if rsm_from not in ("full", "srp"):
        raise _fail(f"--rsm-from must be 'full' or 'srp', got {rsm_from!r}")
    if srp_mode not in ("fast", "sklearn"):
        raise _fail(f"--srp-mode must be 'fast' or 'sklearn', got {srp_mode!r}")
    if layers is not None:
        try:
            re.compile(layers)
        except re.error as error:
            raise _fail(f"--layers is not a valid regular expression: {error}") from None
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
    loaded = load_model(entry, device=device)
    out.mkdir(parents=True, exist_ok=True)
    cache = FeatureCache(out / "cache")
    rows: list[dict[str, Any]] = []
    with open_images(images) as (source, image_set_id):
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
            num_workers=workers,
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
    with open(out / "layers.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    reused = sum(row["from_cache"] for row in rows)
    typer.echo(
        f"{entry.model_uid}: {len(rows)} layers ({reused} reused from cache) -> {out / 'layers.csv'}"
    )
