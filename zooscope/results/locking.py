"""Open a DuckDB file, waiting (up to a timeout) while another process holds its lock.

DuckDB allows one writing process, or any number of reading processes, per file. zooscope keeps
write transactions short (a survey opens the file only to write one model), so a second writer or
a reader that finds the file locked waits for the lock instead of failing, and fails with a clear
message only after ``timeout`` seconds.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from zooscope.errors import DatabaseLocked

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_TIMEOUT", "connect_waiting", "lock_timeout"]

#: Seconds to wait for a locked results database (``ZOOSCOPE_DB_TIMEOUT`` overrides).
DEFAULT_TIMEOUT = 600.0


def lock_timeout() -> float:
    """The lock wait in seconds: ``$ZOOSCOPE_DB_TIMEOUT`` or :data:`DEFAULT_TIMEOUT`."""
    text = os.environ.get("ZOOSCOPE_DB_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        return max(0.0, float(text))
    except ValueError as error:
        raise ValueError(
            f"ZOOSCOPE_DB_TIMEOUT must be a number of seconds, got {text!r}"
        ) from error


def _is_lock_conflict(error: Exception) -> bool:
    return "Could not set lock" in str(error) or "Conflicting lock" in str(error)


def connect_waiting(
    path: str | os.PathLike[str], read_only: bool = False, timeout: float | None = None
) -> Any:
    """``duckdb.connect(path, read_only)``, retried while another process holds the file's lock.

    Parameters
    ----------
    path : path-like
    read_only : bool
    timeout : float, optional
        Seconds to keep trying; default :func:`lock_timeout`.

    Returns
    -------
    duckdb.DuckDBPyConnection

    Raises
    ------
    DatabaseLocked
        The lock was still held after ``timeout`` seconds; the message names the file and holder.
    """
    import duckdb

    timeout = lock_timeout() if timeout is None else timeout
    deadline = time.monotonic() + timeout
    delay, announced = 0.05, False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as error:
            if not _is_lock_conflict(error):
                raise
            if time.monotonic() >= deadline:
                found = re.search(r"held in (.+?) \(PID (\d+)\)", str(error))
                holder = f"process {found.group(2)}, {found.group(1)}" if found else ""
                raise DatabaseLocked(
                    f"{Path(path)}: the results database stayed locked for {timeout:.0f} s "
                    f"(held by {holder or 'another process'})\n  wait for that process to finish, "
                    "use another --db, or wait longer with ZOOSCOPE_DB_TIMEOUT=SECONDS"
                ) from None
            if not announced and time.monotonic() + 2.0 < deadline:
                announced = True
                logger.info("%s is locked by another process; waiting up to %.0f s", path, timeout)
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 1.0)
