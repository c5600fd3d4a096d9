"""The CLI's one error boundary: an exception becomes one or two lines and an exit code.

Exit codes (documented in the README):

* 0 -- everything asked for was done;
* 1 -- the command ran but some work failed (e.g. models in a survey; see its last line);
* 2 -- bad input: a missing, corrupt, locked or undecodable file, a bad option value, ...;
* 3 -- an unexpected internal error (a bug: ``--debug`` shows the traceback for a report);
* 130 -- interrupted (Ctrl-C).

``--debug`` (or ``ZOOSCOPE_DEBUG=1``) lets the exception through with its traceback.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import typer
from typer.exceptions import TyperException

from zooscope.cli.vocabulary import VocabularyGroup
from zooscope.errors import ZooscopeError

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERNAL", "ErrorBoundaryGroup", "describe"]

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

_OOM_HINT = (
    "out of memory: lower --batch-size or --memory-budget, score fewer models per process, "
    "or run on a machine with more memory"
)


def debug_requested(ctx: typer.Context | None = None) -> bool:
    """True when ``--debug`` was given or ``ZOOSCOPE_DEBUG`` is set to a true value."""
    if os.environ.get("ZOOSCOPE_DEBUG", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    return bool(ctx is not None and ctx.params.get("debug"))


def _os_error(error: OSError) -> str:
    """``file: what went wrong`` for an OS error, keeping zooscope's own longer messages."""
    own = str(error)
    if error.filename is None or error.strerror is None:
        return own  # raised by zooscope (or a library) with a full message already
    name = error.filename
    if isinstance(error, FileNotFoundError):
        return f"{name}: no such file or folder"
    if isinstance(error, PermissionError):
        return f"{name}: permission denied\n  check its permissions (ls -l) or choose another path"
    if isinstance(error, IsADirectoryError):
        return f"{name}: is a folder, but a file was expected"
    if isinstance(error, NotADirectoryError):
        return f"{name}: a folder was expected, but it is a file"
    if error.errno == 28:  # ENOSPC
        return f"{name}: no space left on the device\n  free some space or write elsewhere"
    return f"{name}: {error.strerror}"


def _duckdb_error(error: Exception) -> tuple[str, int]:
    text = str(error).removeprefix("IO Error: ").strip()
    if "Could not set lock" in text:
        head = text.split(". See also")[0].split(". However")[0]
        return (
            f"{head}\n  another zooscope (or DuckDB) process has the results database open for "
            "writing: wait for it to finish, or use another --db",
            EXIT_BAD_INPUT,
        )
    if "not a valid DuckDB database" in text:
        return (
            f"{text}\n  give a results database written by zooscope (or a new file name)",
            EXIT_BAD_INPUT,
        )
    return f"results database: {text}", EXIT_BAD_INPUT


def describe(error: BaseException) -> tuple[str, int]:
    """The user-facing message (one or two lines, no traceback) and exit code of ``error``.

    Parameters
    ----------
    error : BaseException
        An exception that escaped a command.

    Returns
    -------
    message : str
        Starts with ``error:``; a second line, when present, says what to do.
    code : int
        One of the exit codes in the module docstring.
    """
    # lazy: `zooscope --help` stays fast
    from zooscope.zoo.errors import ManifestError, ModelUnavailable, WeightsUnavailable

    if isinstance(error, KeyboardInterrupt):
        return "interrupted", EXIT_INTERRUPTED
    code = EXIT_BAD_INPUT
    if isinstance(error, (ZooscopeError, ManifestError, WeightsUnavailable, ModelUnavailable)):
        text = str(error)
    elif isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        text = f"{_OOM_HINT} ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
    elif isinstance(error, UnicodeDecodeError):
        text = (
            f"a file is not {error.encoding} text (byte {error.object[error.start : error.start + 1]!r} "
            f"at position {error.start})\n  save it as UTF-8"
        )
    elif isinstance(error, EOFError):
        text = f"unexpected end of a file ({error}): it looks truncated; fetch or write it again"
    elif isinstance(error, OSError):
        text = _os_error(error)
    elif type(error).__module__.split(".")[0] in ("duckdb", "_duckdb"):
        text, code = _duckdb_error(error)  # type: ignore[arg-type]
    elif isinstance(error, KeyError):
        # KeyError's str() is the repr of its argument: show the message, not the quotes.
        text = str(error.args[0]) if error.args else "KeyError"
    elif isinstance(error, pickle.UnpicklingError):
        text = str(error)
        if "weights_only" in text:  # torch's advice to load unsafely: never pass it on
            text = (
                "a checkpoint holds Python objects besides tensors, which zooscope never "
                "unpickles (they could run code)\n  save the weights alone: "
                "torch.save(model.state_dict(), path)"
            )
    elif isinstance(error, (ValueError, LookupError, TypeError)) and str(error):
        text = str(error)
    else:
        code = EXIT_INTERNAL
        first = str(error).splitlines()[0] if str(error) else ""
        text = (
            f"unexpected {type(error).__name__}: {first}\n"
            "  this is probably a bug: rerun with --debug and report the traceback"
        )
    return f"error: {text.rstrip()}", code


class ErrorBoundaryGroup(VocabularyGroup):
    """The root command group: every command runs inside the error boundary.

    Catching in ``invoke`` (below click's ``main``) also sees ``EOFError`` (a truncated gzip
    file), which the command runner's ``main`` would otherwise turn into a bare ``Aborted!``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # lazy: help styling belongs to the CLI's presentation, not to its error boundary
        from zooscope.cli.helpstyle import tidy_help

        tidy_help(self)  # the whole command tree exists by now: typer builds it bottom-up

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except (Exception, KeyboardInterrupt) as error:
            if debug_requested(ctx):
                raise
            message, code = describe(error)
            typer.echo(message, err=True)
            raise typer.Exit(code) from None
