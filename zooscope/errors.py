"""Errors whose message is written for the user: the CLI prints them without a traceback.

Readers raise these where bad input enters, naming the file, what was expected and what to do,
so a message is actionable even when it surfaces three calls away from the file it is about.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "DatabaseLocked",
    "InputFileError",
    "SchemaVersionError",
    "ScoringError",
    "ZooscopeError",
    "corrupt_file",
    "reading",
]


class ZooscopeError(Exception):
    """Base of zooscope's user-facing errors (the CLI maps them to exit code 2)."""


class InputFileError(ZooscopeError):
    """A file exists (or should) but cannot be used: missing, truncated, corrupt, not decodable.

    Parameters
    ----------
    path : path-like
        The file.
    expected : str
        What the file should be, e.g. ``"an NSD beta file (gzip NIfTI)"``.
    reason : str
        What is wrong with it (usually the underlying library's message).
    hint : str, optional
        What to do about it.
    """

    def __init__(
        self, path: str | os.PathLike[str], expected: str, reason: str, hint: str = ""
    ) -> None:
        self.path = Path(path)
        self.expected = expected
        self.reason = reason
        self.hint = hint
        message = f"{self.path}: cannot read {expected}: {reason}"
        super().__init__(f"{message}\n  {hint}" if hint else message)


class ScoringError(RuntimeError):
    """A model failed while being scored; ``stage`` says where (load, extract, score)."""

    def __init__(self, stage: str, error: BaseException) -> None:
        self.stage = stage
        self.error = error
        super().__init__(f"{stage}: {type(error).__name__}: {error}")


class DatabaseLocked(ZooscopeError):
    """Another process kept the results database locked for longer than the wait allowed."""


class SchemaVersionError(ZooscopeError, RuntimeError):
    """A results database written by a newer zooscope (or one that needs an upgrade to be read)."""


def corrupt_file(
    path: str | os.PathLike[str], expected: str, error: BaseException
) -> InputFileError:
    """An :class:`InputFileError` for a file that a library failed to decode.

    Parameters
    ----------
    path : path-like
    expected : str
        What the file should be.
    error : BaseException
        The library's exception (its message becomes the reason).

    Returns
    -------
    InputFileError
        Raise it ``from error`` so ``--debug`` still shows the original traceback.
    """
    reason = str(error).strip() or type(error).__name__
    if isinstance(error, FileNotFoundError):
        reason, hint = (
            "no such file",
            "check the path (and that this part of the data was downloaded)",
        )
    elif isinstance(error, EOFError) or "truncat" in reason.lower() or "end-of-stream" in reason:
        hint = "the file looks truncated (an interrupted download or copy?): fetch it again"
    elif isinstance(error, UnicodeDecodeError):
        hint = "save it as UTF-8 text"
    elif isinstance(error, PermissionError):
        hint = "check the file's permissions"
    else:
        hint = "the file looks damaged or is of another format: replace it"
    return InputFileError(path, expected, reason, hint)


#: Libraries whose own exception types mean "this file cannot be decoded".
_DECODER_MODULES = ("nibabel", "h5py", "scipy.io", "PIL")


@contextlib.contextmanager
def reading(path: str | os.PathLike[str], expected: str) -> Iterator[None]:
    """Turn decoding errors raised while reading ``path`` into an :class:`InputFileError`.

    Parameters
    ----------
    path : path-like
        The file being read inside the ``with`` block.
    expected : str
        What it should be, e.g. ``"an NSD beta file (gzip NIfTI)"``.

    Notes
    -----
    Catches OS errors, ``EOFError`` (a truncated gzip stream), ``zlib.error``, Unicode decode
    errors and the exception types of the file-format libraries (nibabel, h5py, scipy.io, PIL);
    zooscope's own errors (e.g. a ``ValueError`` about the content) pass through unchanged.
    """
    try:
        yield
    except ZooscopeError:
        raise
    except FileNotFoundError as error:
        if error.filename is None:  # zooscope's own message (e.g. NSDLayout.require): keep it
            raise
        raise corrupt_file(path, expected, error) from error
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as error:
        raise corrupt_file(path, expected, error) from error
    except Exception as error:
        if type(error).__module__.startswith(_DECODER_MODULES):
            raise corrupt_file(path, expected, error) from error
        raise
