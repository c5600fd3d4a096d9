"""``zooscope benchmark``: inspect a Benchmark file."""

from __future__ import annotations

import json
from pathlib import Path

import typer

benchmark_app = typer.Typer(help="Inspect Benchmark files.", no_args_is_help=True)


@benchmark_app.command("info")
def info(
    path: Path = typer.Argument(..., help="Benchmark .h5 file."),
    verify: bool = typer.Option(False, help="Recompute the content hash from the data."),
) -> None:
    """Sizes, groups, splits, provenance and content hash of a Benchmark file."""
    from zooscope.benchmark import Benchmark

    with Benchmark.open(path) as bench:
        typer.echo(f"{bench.path}")
        typer.echo(
            f"  {bench.n_units} units x {bench.n_images} images x {bench.n_reps} reps; "
            f"stimuli {tuple(bench.stimuli.shape)}"
        )
        typer.echo(f"  subjects {bench.subjects}  ROIs {bench.roi_names}")
        for label, idx in bench.groups().items():
            typer.echo(f"  group {label}: {idx.size} units")
        typer.echo("  splits " + ", ".join(f"{k}={v.size}" for k, v in bench.splits.items()))
        typer.echo(f"  content hash {bench.content_hash}")
        if verify:
            ok = bench.verify()
            typer.echo(f"  verified: {'yes' if ok else 'NO (data changed since writing)'}")
        typer.echo(
            "  attributes "
            + json.dumps(bench.attrs, indent=2, sort_keys=True).replace("\n", "\n  ")
        )
        if verify and not ok:
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``benchmark`` command group to ``app``."""
    app.add_typer(benchmark_app, name="benchmark")
