"""Errors whose message is written for the user: the CLI prints them without a traceback.

Readers raise these where bad input enters, naming the file, what was expected and what to do,
so a message is actionable even when it surfaces three calls away from the file it is about.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DatabaseLocked", "InputFileError", "SchemaVersionError", "ZooscopeError", "corrupt_file"]


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

    def __init__(self, path: str | os.PathLike[str], expected: str, reason: str, hint: str = "") -> None:
        self.path = Path(path)
        self.expected = expected
        self.reason = reason
        self.hint = hint
        message = f"{self.path}: cannot read {expected}: {reason}"
        super().__init__(f"{message}\n  {hint}" if hint else message)


class DatabaseLocked(ZooscopeError):
    """Another process kept the results database locked for longer than the wait allowed."""


class SchemaVersionError(ZooscopeError, RuntimeError):
    """A results database written by a newer zooscope (or one that needs an upgrade to be read)."""


def corrupt_file(path: str | os.PathLike[str], expected: str, error: BaseException) -> InputFileError:
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
    if isinstance(error, EOFError) or "truncat" in reason.lower() or "end-of-stream" in reason:
        hint = "the file looks truncated (an interrupted download or copy?): fetch it again"
    elif isinstance(error, UnicodeDecodeError):
        hint = "save it as UTF-8 text"
    elif isinstance(error, PermissionError):
        hint = "check the file's permissions"
    else:
        hint = "the file looks damaged or is of another format: replace it"
    return InputFileError(path, expected, reason, hint)
