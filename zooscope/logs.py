"""Where log records go: a short terminal, and the full detail in a log file.

The terminal shows zooscope's summary lines (one per model and concern) and warnings a user must
act on; other libraries' chatter (Dask, timm, open_clip) only from ``-v`` on. A log file, if
configured, receives zooscope's debug records (per-layer diagnostics) and every other library's
INFO records, with times and logger names.

Verbosity: ``-1`` (``-q``) warnings and errors only; ``0`` zooscope's INFO; ``1`` (``-v``)
zooscope's DEBUG and other libraries' INFO; ``2`` (``-vv``) everything's DEBUG.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["configure_logging", "current_log_file", "log_to_file"]

_FILE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: Dask's loggers, kept at WARNING unless -v (a local cluster logs every worker start at INFO).
_DASK_LOGGERS = ("distributed", "dask", "bokeh", "tornado")


class _TerminalFilter(logging.Filter):
    """Pass zooscope's records from ``own`` up, everyone else's from ``others`` up."""

    def __init__(self, own: int, others: int) -> None:
        super().__init__()
        self.own, self.others = own, others

    def filter(self, record: logging.LogRecord) -> bool:
        mine = record.name == "zooscope" or record.name.startswith("zooscope.")
        return record.levelno >= (self.own if mine else self.others)


def _levels(verbosity: int) -> tuple[int, int]:
    """(zooscope's, other libraries') lowest level shown on the terminal."""
    if verbosity < 0:
        return logging.WARNING, logging.WARNING
    if verbosity == 0:
        return logging.INFO, logging.WARNING
    if verbosity == 1:
        return logging.DEBUG, logging.INFO
    return logging.DEBUG, logging.DEBUG


#: Attribute marking the root handlers that configure_logging installed.
_OWN_HANDLER = "_zooscope_handler"


def configure_logging(verbosity: int = 0, log_file: str | os.PathLike[str] | None = None) -> None:
    """Set up the terminal handler (stderr) and, optionally, a log file (the CLI calls this).

    Parameters
    ----------
    verbosity : int
        -1 quiet, 0 default, 1 verbose, 2 debug (see the module docstring).
    log_file : path, optional
        Append every zooscope record (DEBUG up) and other libraries' INFO up to this file.
    """
    from rich.console import Console
    from rich.logging import RichHandler

    own, others = _levels(verbosity)
    console = Console(stderr=True)
    if not console.is_terminal:
        console.width = max(console.width, 160)  # pipes and CI logs: one record, one line
    terminal = RichHandler(console=console, show_path=False)
    terminal.addFilter(_TerminalFilter(own, others))
    handlers: list[logging.Handler] = [terminal]
    if log_file is not None:
        handlers.append(_file_handler(log_file))
    root = logging.getLogger()
    # Replace only the handlers an earlier call installed: others (a host program's, pytest's
    # capture) stay. The root passes other libraries' INFO to the file; the terminal filter
    # decides the rest.
    for handler in [h for h in root.handlers if getattr(h, _OWN_HANDLER, False)]:
        root.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter("%(message)s", datefmt="[%X]")
    for handler in handlers:
        setattr(handler, _OWN_HANDLER, True)
        if handler.formatter is None:
            handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
    logging.getLogger("zooscope").setLevel(logging.DEBUG)
    dask_level = "info" if verbosity >= 1 else "warning"
    # Dask reads its logging levels from its config when `distributed` is imported (here or in a
    # worker process), so the environment carries the choice; set the loggers too in case
    # distributed is imported already.
    os.environ["DASK_LOGGING__DISTRIBUTED"] = dask_level
    for name in _DASK_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbosity >= 1 else logging.WARNING)


def _file_handler(path: str | os.PathLike[str]) -> logging.Handler:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter(_FILE_FORMAT))
    return handler


def current_log_file() -> Path | None:
    """The file a handler of the root or ``zooscope`` logger writes to, if any."""
    files = [
        handler
        for logger in (logging.getLogger(), logging.getLogger("zooscope"))
        for handler in logger.handlers
        if isinstance(handler, logging.FileHandler) and handler.baseFilename != os.devnull
    ]
    # zooscope's own file first: a host program (or pytest) may have files of its own.
    files.sort(key=lambda handler: not getattr(handler, _OWN_HANDLER, False))
    return Path(files[0].baseFilename) if files else None


@contextlib.contextmanager
def log_to_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Within the block, also write zooscope's records (DEBUG up) to ``path`` (appending).

    Used by the survey for its log next to the database. Records of other libraries reach it
    only through :func:`configure_logging`'s file.
    """
    logger = logging.getLogger("zooscope")
    handler = _file_handler(path)
    previous = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.DEBUG:
        logger.setLevel(logging.DEBUG)
    try:
        yield Path(handler.baseFilename)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
        handler.close()
