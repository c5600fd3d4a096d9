"""``zooscope models``: list, show, check and fetch the models of a manifest.

Thin shell over :mod:`zooscope.zoo`. Heavy libraries (torch and the model libraries, which
``zooscope.zoo.loader`` imports) are imported inside the commands so that ``zooscope --help``
stays instant.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer

from zooscope.cli.extract import BACKGROUND_HELP, PIXEL_LIMIT_HELP, open_images, pixel_rule
from zooscope.cli.output import emit
from zooscope.cli.validation import check_options
from zooscope.cli.vocabulary import VocabularyGroup, comma_list

if TYPE_CHECKING:
    from rich.console import Console

    from zooscope.zoo.manifest import ModelEntry

models_app = typer.Typer(
    name="models",
    cls=VocabularyGroup,
    help="List, inspect, check and fetch the models of a manifest.",
    no_args_is_help=True,
)

MANIFEST_OPTION = typer.Option(
    "demo",
    "--manifest",
    "-m",
    help="Manifest CSV path, or a built-in name: demo, conwell2024, openclip.",
)


def register(app: typer.Typer) -> None:
    """Add the ``models`` command group to ``app``."""
    app.add_typer(models_app, name="models")


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    # No markup/emoji: manifest values such as "package:efficientnet..." must print verbatim.
    console = Console(stderr=stderr, highlight=False, markup=False, emoji=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = max(console.width, 200)  # logs and pipes: one row per line, greppable
    return console


def _fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` to stderr and return the exit exception (``raise _fail(...)``)."""
    typer.echo(message, err=True)
    return typer.Exit(code)


def _read_manifest(manifest: str) -> list[ModelEntry]:
    """Load and validate a manifest, turning its errors into a clean CLI exit (code 2)."""
    # lazy: `zooscope --help` stays fast
    from zooscope.zoo import ManifestError, load_manifest

    try:
        return load_manifest(manifest)
    except (ManifestError, FileNotFoundError) as error:
        raise _fail(f"error: {error}") from None


def _find(entries: Sequence[ModelEntry], uid: str, manifest: str) -> ModelEntry:
    """:func:`zooscope.zoo.manifest.find_entry`, its KeyError turned into a clean CLI exit."""
    # lazy: `zooscope --help` stays fast
    from zooscope.zoo.manifest import find_entry

    try:
        return find_entry(entries, uid, manifest)
    except KeyError as error:
        raise _fail(f"error: {error.args[0]}") from None


def sample_entries(entries: Sequence[ModelEntry], n: int, seed: int = 0) -> list[ModelEntry]:
    """A deterministic sample of ``n`` rows that covers every source and arch_class present.

    Rows are visited in an order fixed by a hash of ``(seed, model_uid)`` (so the sample does not
    change when unrelated rows are added); the rows that cover a not-yet-covered source or
    arch_class are taken first (greedily, most new values first), then the sample is filled up
    to ``n`` in the same order.

    Parameters
    ----------
    entries : sequence of ModelEntry
        The candidate rows.
    n : int
        Sample size; raised to the size of the covering set when smaller.
    seed : int
        Changes the order, hence which rows are picked.

    Returns
    -------
    list of ModelEntry
        The sample, in the order of ``entries``.
    """
    # lazy: `zooscope --help` stays fast
    from zooscope._hashing import hash_json

    if n < 1:
        raise ValueError(f"sample size must be at least 1, got {n}")
    order = sorted(entries, key=lambda e: hash_json([seed, e.model_uid]))
    wanted = {("source", e.source) for e in entries} | {
        ("arch_class", e.arch_class) for e in entries
    }
    chosen: list[ModelEntry] = []
    while wanted:
        covers = [{("source", e.source), ("arch_class", e.arch_class)} & wanted for e in order]
        # max keeps the first of equal gains, so the hash order breaks ties.
        best = max(range(len(order)), key=lambda i: len(covers[i]))
        chosen.append(order.pop(best))
        wanted -= covers[best]
    chosen.extend(order[: max(0, n - len(chosen))])
    picked = {e.model_uid for e in chosen}
    return [e for e in entries if e.model_uid in picked]


def _announced_sample(entries: Sequence[ModelEntry], n: int) -> list[ModelEntry]:
    """:func:`sample_entries`, saying on stderr when covering the manifest takes more than ``n``."""
    chosen = sample_entries(entries, n)
    if len(chosen) > n:
        typer.echo(
            f"--sample {n}: checking {len(chosen)} rows, the fewest that cover every source and "
            "arch_class of the manifest",
            err=True,
        )
    return chosen


@models_app.command("list")
def list_models(
    ctx: typer.Context,
    manifest: str = MANIFEST_OPTION,
    summary: bool = typer.Option(
        False, "--summary", help="Counts by source, arch_class and task instead of the rows."
    ),
    source: str | None = typer.Option(None, "--source", help="Only rows of this source."),
    available_only: bool = typer.Option(
        False, "--available-only", help="Only rows marked available."
    ),
) -> None:
    """List the models of a manifest (or, with --summary, count them)."""
    check_options(ctx)
    # lazy: `zooscope --help` stays fast
    import pandas as pd
    from rich.table import Table

    from zooscope.zoo import SOURCES

    if source is not None and source not in SOURCES:
        raise _fail(f"error: --source expects one of {', '.join(SOURCES)}, got {source!r}")
    entries = _read_manifest(manifest)
    if source is not None:
        entries = [e for e in entries if e.source == source]
    if available_only:
        entries = [e for e in entries if e.available]
    console = _console()
    if summary:
        n_available = sum(e.available for e in entries)
        n_random = sum(e.is_random for e in entries)
        console.print(
            f"{len(entries)} models in {manifest}: {n_available} available, "
            f"{len(entries) - n_available} unavailable; {n_random} random-init, "
            f"{len(entries) - n_random} trained"
        )
        for column in ("source", "arch_class", "task"):
            counts = Counter(getattr(e, column) for e in entries)
            table = Table(title=f"by {column}")
            table.add_column(column)
            table.add_column("models", justify="right")
            table.add_column("available", justify="right")
            for value, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
                available = sum(e.available for e in entries if getattr(e, column) == value)
                table.add_row(value, str(count), str(available))
            console.print(table)
        return
    columns = ["model_uid", "source", "name", "weights", "arch_class", "task", "train_data"]
    rows = pd.DataFrame(
        [[getattr(e, c) for c in columns] + ["yes" if e.available else "no"] for e in entries],
        columns=[*columns, "available"],
    )
    emit(rows, "table", title=f"{len(entries)} models in {manifest}", keep=["model_uid"])


def _weights_status(entry: ModelEntry) -> tuple[str, str]:
    """Where ``entry``'s weights are (or would be) cached, and whether they are there."""
    # lazy: `zooscope --help` stays fast
    from zooscope.zoo.sources import get_source

    if entry.is_random:
        return f"random init (seed {entry.seed}): no weights needed", "n/a"
    source = get_source(entry.source)
    try:
        cached = source.is_cached(entry)
        return source.cache_location(entry), {True: "yes", False: "no", None: "unknown"}[cached]
    except Exception as error:  # a bad tag shows here rather than crashing `show`
        return f"cannot tell: {error}", "unknown"


@models_app.command("show")
def show_model(
    ctx: typer.Context,
    uid: str = typer.Argument(..., help="The model_uid of the row."),
    manifest: str = MANIFEST_OPTION,
    load: bool = typer.Option(False, "--load", help="Also load the model and print its ModelInfo."),
    weights: str | None = typer.Option(
        None, "--weights", help="'random': load the seeded random init instead."
    ),
    device: str = typer.Option(
        "auto", "--device", help="auto, cpu, cuda or mps (with --load or --profile)."
    ),
    profile: str | None = typer.Option(
        None,
        "--profile",
        help="Also load the model and print the exact transform and the scored layer list of this scoring profile (default, conwell2024).",
    ),
    images: str | None = typer.Option(
        None,
        "--images",
        help="With --profile: the probe images (folder or zip, .npy or benchmark .h5; the first 3 are used), as a survey on them would. Default: 3 seeded noise images.",
    ),
    max_image_pixels: int | None = typer.Option(None, help=PIXEL_LIMIT_HELP),
    alpha_background: str | None = typer.Option(None, help=BACKGROUND_HELP),
) -> None:
    """Show every column of one manifest row, where its weights live and how to fetch them."""
    check_options(ctx)
    # lazy: `zooscope --help` stays fast
    from rich.table import Table

    from zooscope.zoo import ModelUnavailable, WeightsUnavailable, load_model
    from zooscope.zoo.loader import fetch_command

    entry = _find(_read_manifest(manifest), uid, manifest)
    table = Table(
        title=f"{entry.model_uid} ({entry.manifest}, line {entry.line})", show_header=False
    )
    table.add_column("column", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in entry.to_record().items():
        table.add_row(key, "" if value is None else str(value))
    location, cached = _weights_status(entry)
    table.add_row("weights cache", location)
    table.add_row("cached", cached)
    table.add_row("fetch command", fetch_command(entry))
    console = _console()
    console.print(table)
    if profile is not None:
        rule = pixel_rule(max_image_pixels, alpha_background)
        _show_profile(entry, profile, images, weights, device, console, rule)
        return
    if not load:
        return
    try:
        loaded = load_model(entry, device=device, weights=weights)
    except (WeightsUnavailable, ModelUnavailable) as error:
        raise _fail(f"error: {error}", code=1) from None
    info = Table(title="ModelInfo", show_header=False)
    info.add_column("field", style="bold")
    info.add_column("value", overflow="fold")
    info.add_row("n_params", f"{loaded.info.n_params:,}")
    info.add_row("input_size", str(loaded.info.input_size))
    info.add_row("weights_id", loaded.info.weights_id)
    info.add_row("preprocess", loaded.info.preprocess)
    info.add_row("versions", ", ".join(f"{k} {v}" for k, v in loaded.info.versions.items()))
    info.add_row("load_seconds", f"{loaded.info.load_seconds:.2f}")
    info.add_row("device", loaded.device)
    console.print(info)


def _show_profile(
    entry: ModelEntry,
    profile: str,
    images: str | None,
    weights: str | None,
    device: str,
    console: Console,
    rule: Any = None,
) -> None:
    """Print the transform and the layers a survey under ``profile`` would score for ``entry``."""
    # lazy: `zooscope --help` stays fast
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from zooscope.config import ScoringConfig
    from zooscope.feature_extraction import LayerSelection, list_layers
    from zooscope.zoo import ModelUnavailable, WeightsUnavailable, load_model

    try:
        config = ScoringConfig.from_profile(profile)
    except (KeyError, ValueError) as error:
        raise typer.BadParameter(str(error), param_hint="--profile") from None
    try:
        loaded = load_model(
            entry, device=device, weights=weights, preprocessing=config.preprocessing
        )
    except (WeightsUnavailable, ModelUnavailable) as error:
        raise _fail(f"error: {error}", code=1) from None
    selection = LayerSelection(include=config.layers) if config.layers else None
    if images is None:
        probe = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
        layers = list_layers(loaded, probe, selection, config.layer_policy)
        source = "3 seeded noise images (a survey probes with the benchmark's first 3)"
    else:
        with open_images(Path(images), rule) as (data, _):
            layers = list_layers(loaded, data, selection, config.layer_policy)
        source = f"the first 3 images of {images}"
    console.print(f"profile: {profile}\ntransform: {loaded.info.preprocess}")
    listing = pd.DataFrame(
        [
            (layer.index, layer.name + (f" (= {', '.join(layer.aliases)})" if layer.aliases else ""),
             layer.module_type, "x".join(map(str, layer.shape)) or "-", layer.n_features)
            for layer in layers
        ],
        columns=["index", "name (= aliases)", "module_type", "shape", "n_features"],
    )  # fmt: skip
    emit(
        listing, "table", keep=["index", "name (= aliases)"],
        title=f"{len(layers)} scored layers ({config.layer_policy} layer policy; duplicates "
        f"judged on {source}):",
    )  # fmt: skip


def _check_one(entry: ModelEntry, weights: str | None, device: str, forward: bool) -> str:
    """Load one model (and run one image through it); return a short description of it."""
    # lazy: `zooscope --help` stays fast
    import numpy as np
    import torch

    from zooscope.zoo import load_model

    loaded = load_model(entry, device=device, weights=weights)
    description = f"{loaded.info.n_params / 1e6:.1f}M params, input {tuple(loaded.info.input_size)}"
    if forward:
        image = np.zeros((*loaded.info.input_size[1:], 3), np.uint8)
        with torch.inference_mode():
            loaded.module(loaded.preprocess.batch([image]).to(loaded.device))
    return description


@models_app.command("check")
def check_models(
    ctx: typer.Context,
    manifest: str = MANIFEST_OPTION,
    weights: str | None = typer.Option(
        None, "--weights", help="'random': build every row with its seeded random init (offline)."
    ),
    sample: int | None = typer.Option(
        None,
        "--sample",
        min=1,
        help="Check a deterministic sample of N rows covering every source and arch_class "
        "(more than N when N rows cannot cover them all: the command says so).",
    ),
    models: str | None = typer.Option(
        None, "--models", help="Comma-separated model uids to check (default: every row)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
    forward: bool = typer.Option(
        True, "--forward/--no-forward", help="Also run one image through each model."
    ),
) -> None:
    """Instantiate every available model of a manifest; report ok / failed / missing / skipped.

    Continues after failures and exits with code 1 when any row failed. Rows whose weights (or,
    for hub models, config files) are not cached and cannot be downloaded are reported as
    "missing" with the fetch command: an environment state, not a broken row.
    """
    check_options(ctx)
    # lazy: `zooscope --help` stays fast
    import gc

    from rich.table import Table
    from tqdm.auto import tqdm

    from zooscope.zoo import WeightsUnavailable

    if sample is not None and models is not None:
        raise _fail("error: give either --sample or --models, not both")
    entries = _read_manifest(manifest)
    if models is not None:
        entries = [_find(entries, uid, manifest) for uid in comma_list(models) or ()]
    skipped = [e for e in entries if not e.available]
    candidates = [e for e in entries if e.available]
    if sample is not None:
        candidates = _announced_sample(candidates, sample)
        skipped = []  # a sample is drawn from the available rows only
    results: list[tuple[ModelEntry, str, str]] = [
        (e, "skipped", e.unavailable_reason) for e in skipped
    ]
    for entry in skipped:
        typer.echo(f"skipped  {entry.model_uid}  {entry.unavailable_reason}")
    with tqdm(candidates, desc="models check", unit="model") as progress:
        for entry in progress:
            progress.set_postfix_str(entry.model_uid)
            try:
                status, detail = "ok", _check_one(entry, weights, device, forward)
            except WeightsUnavailable as error:
                status, detail = "missing", f"not cached, offline: run {error.fetch_command}"
            except Exception as error:  # report and go on: one broken row must not stop the check
                first_line = (str(error).strip().splitlines() or [""])[0]
                status, detail = "failed", f"{type(error).__name__}: {first_line}"
            gc.collect()
            progress.write(f"{status:>7}  {entry.model_uid}  {detail}")
            results.append((entry, status, detail))

    console = _console()
    failed = [(e, d) for e, s, d in results if s == "failed"]
    if failed:
        table = Table(title="failed")
        table.add_column("model_uid", no_wrap=True)
        table.add_column("reason", overflow="fold")
        for entry, detail in failed:
            table.add_row(entry.model_uid, detail)
        console.print(table)
    counts = Counter(s for _, s, _ in results)
    mode = "random init" if weights == "random" else "manifest weights"
    console.print(
        f"{manifest} ({mode}): {counts['ok']} ok, {counts['failed']} failed, "
        f"{counts['missing']} missing weights, {counts['skipped']} skipped "
        f"(of {len(results)} rows checked)"
    )
    if failed:
        raise typer.Exit(1)


@models_app.command("fetch")
def fetch_model(
    ctx: typer.Context,
    uid: str = typer.Argument(..., help="The model_uid of the row."),
    manifest: str = MANIFEST_OPTION,
) -> None:
    """Download (or confirm cached) a model's pretrained weights into its library's cache."""
    check_options(ctx)
    # lazy: `zooscope --help` stays fast
    from zooscope.zoo import ModelUnavailable, WeightsUnavailable, fetch_weights

    entry = _find(_read_manifest(manifest), uid, manifest)
    if not entry.available:
        raise _fail(
            f"error: model {uid!r} is marked unavailable: {entry.unavailable_reason}", code=1
        )
    try:
        location = fetch_weights(entry)
    except (WeightsUnavailable, ModelUnavailable) as error:
        raise _fail(f"error: {error}", code=1) from None
    typer.echo(f"{entry.model_uid}: {location}")


@models_app.command("cache-path")
def cache_path(
    ctx: typer.Context,
    uid: str = typer.Argument(..., help="The model_uid of the row."),
    manifest: str = MANIFEST_OPTION,
) -> None:
    """Print where zooscope reads a model's weights (copy them there on an offline machine).

    For a URL checkpoint this is the file `zooscope models fetch` downloads to; for a local
    checkpoint the file itself; for hub models (timm, open_clip, transformers) their library's cache.
    """
    check_options(ctx)
    # lazy: `zooscope --help` stays fast
    from zooscope.zoo.sources import get_source

    entry = _find(_read_manifest(manifest), uid, manifest)
    if entry.is_random:
        raise _fail(f"error: model {uid!r} is a seeded random init: it reads no weights", code=1)
    typer.echo(get_source(entry.source).cache_location(entry))
