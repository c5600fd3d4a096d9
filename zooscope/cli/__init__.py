"""The ``zooscope`` command line.

Each sub-command lives in its own module of this package and is a thin shell over one
library package; heavy imports (torch, model libraries) happen inside the command functions so
that ``zooscope --help`` stays instant. A module joins the CLI by exposing ``register(app)``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from zooscope import __version__
from zooscope.cli import analyze, benchmark, extract, models, nsd, survey
from zooscope.cli.errors import ErrorBoundaryGroup
from zooscope.logs import configure_logging
from zooscope.runtime import command_settings

app = typer.Typer(
    name="zooscope",
    cls=ErrorBoundaryGroup,
    help="Score vision models against brain data and compare their inductive biases.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"zooscope {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    verbose: int = typer.Option(
        0,
        "--verbose",
        "-v",
        count=True,
        help="More on the terminal: zooscope's per-layer detail and other libraries' INFO (-vv: all debug).",
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Only warnings and errors on the terminal."
    ),
    log_file: Path | None = typer.Option(
        None,
        "--log-file",
        dir_okay=False,
        help="Append the full detail (zooscope's debug records, other libraries' INFO) to this file. "
        "A survey writes one next to its database when this is not given.",
    ),
    debug: bool = typer.Option(
        False, "--debug", envvar="ZOOSCOPE_DEBUG", help="Show the Python traceback of an error."
    ),
) -> None:
    """Score vision models against brain data and compare their inductive biases."""
    if quiet and verbose:
        raise typer.BadParameter("choose one of --quiet and --verbose")
    # Logs go to stderr so that a command's results on stdout can be piped.
    configure_logging(-1 if quiet else verbose, log_file)


# Each module adds its commands; keep this list in CLI-help order.
for _module in (models, nsd, benchmark, extract, survey, analyze):
    _module.register(app)


def main() -> None:
    """Entry point of the ``zooscope`` console script."""
    command_settings()  # before any command imports torch
    app()
