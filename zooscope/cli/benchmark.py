"""``zooscope benchmark``: inspect a Benchmark file, import Brain-Score (brainio) data."""

from __future__ import annotations

from pathlib import Path

import typer

from zooscope.cli.extract import BACKGROUND_HELP, PIXEL_LIMIT_HELP, pixel_rule
from zooscope.cli.output import emit_mapping
from zooscope.cli.validation import check_options
from zooscope.cli.vocabulary import VocabularyGroup

benchmark_app = typer.Typer(
    cls=VocabularyGroup,
    help="Inspect Benchmark files; import Brain-Score assemblies.",
    no_args_is_help=True,
)


@benchmark_app.command("info")
def info(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="Benchmark .h5 file."),
    verify: bool = typer.Option(False, help="Recompute the content hash from the data."),
) -> None:
    """Sizes, groups, splits, provenance and content hash of a Benchmark file."""
    check_options(ctx)
    # lazy: `zooscope --help` stays fast
    from zooscope.benchmark import Benchmark

    with Benchmark.open(path) as bench:
        typer.echo(f"{bench.path}")
        typer.echo(
            f"  {bench.n_units} units x {bench.n_images} images x {bench.n_reps} reps; "
            f"stimuli {tuple(bench.stimuli.shape)}"
        )
        typer.echo(
            f"  subjects {', '.join(map(str, bench.subjects))}; ROIs {', '.join(bench.roi_names)}"
        )
        if bench.time_bins:
            typer.echo(f"  time bins {bench.time_bins}")
        for label, idx in bench.groups().items():
            typer.echo(f"  group {label}: {idx.size} units")
        typer.echo("  splits " + ", ".join(f"{k}={v.size}" for k, v in bench.splits.items()))
        typer.echo(f"  content hash {bench.content_hash}")
        if verify:
            ok = bench.verify()
            typer.echo(f"  verified: {'yes' if ok else 'NO (data changed since writing)'}")
        typer.echo("  attributes:")
        emit_mapping(dict(bench.attrs), indent=4)
        if verify and not ok:
            raise typer.Exit(1)


@benchmark_app.command("import-brainio")
def import_brainio_command(
    ctx: typer.Context,
    assembly: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="brainio NetCDF assembly (.nc)."
    ),
    stimuli: Path = typer.Option(
        ..., "--stimuli", exists=True, dir_okay=False, help="Stimulus-set CSV."
    ),
    images: Path = typer.Option(
        ..., "--images", exists=True, help="Folder or zip of the stimulus images."
    ),
    out: Path = typer.Option(..., "--out", help="Benchmark .h5 to write."),
    time_bins: str = typer.Option(
        None, "--time-bins", help="Comma-separated time bins to keep, e.g. 70-170 (default: all)."
    ),
    image_size: int = typer.Option(
        224,
        help="Side of the stored square RGB images; 0 keeps the images' own size (they must all share it; what --profile brainscore needs to place them on screen as Brain-Score does).",
    ),
    degrees: float = typer.Option(
        None,
        "--degrees",
        help="Visual degrees the stimuli spanned (default: the stimulus set's degrees column, if any; Brain-Score's benchmarks give it, e.g. 8 for MajajHong2015, 4 for FreemanZiemba2013).",
    ),
    max_image_pixels: int | None = typer.Option(None, help=PIXEL_LIMIT_HELP),
    alpha_background: str | None = typer.Option(None, help=BACKGROUND_HELP),
) -> None:
    """Convert a Brain-Score assembly + stimulus set into a Benchmark file (time bins kept).

    Each image becomes 8-bit RGB by zooscope's per-mode rule (16-bit scaled, palettes looked up;
    transparent images need --alpha-background), or the import stops naming the file.
    """
    check_options(ctx)
    # lazy: `zooscope --help` stays fast
    from zooscope.neural.brainio import import_brainio

    bins = [t.strip() for t in time_bins.split(",") if t.strip()] if time_bins else None
    rule = pixel_rule(max_image_pixels, alpha_background)
    bench = import_brainio(
        assembly, stimuli, images, out, time_bins=bins, image_size=image_size or None,
        degrees=degrees, rule=rule,
    )  # fmt: skip
    typer.echo(
        f"{bench.path}: {bench.n_units} units ({len(bench.time_bins) or 1} time bins) x "
        f"{bench.n_images} images x {bench.n_reps} reps; ROIs {bench.roi_names}; hash {bench.content_hash}"
    )


def register(app: typer.Typer) -> None:
    """Add the ``benchmark`` command group to ``app``."""
    app.add_typer(benchmark_app, name="benchmark")
