"""Short write transactions: open the results database for one write, close it right after.

DuckDB lets one process write a file, and no other process read it meanwhile. A survey that
kept its connection for hours would lock out ``zooscope results summary``, ``report`` and a second
survey for hours; a :class:`ShortWrites` session holds the file only while it writes one model (or
a run row, or a ceiling), so readers get in between and a second writer waits its turn (see
:mod:`zooscope.results.locking`). Within one process the openings of one file take turns (a
survey's heartbeat thread and its main thread never hold two connections at once).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from zooscope.results.db import ResultsDB

__all__ = ["ShortWrites"]

_TURNS: dict[Path, threading.RLock] = {}
_TURNS_GUARD = threading.Lock()


def _turn(path: Path) -> threading.RLock:
    """The lock that makes this process's openings of ``path`` take turns."""
    with _TURNS_GUARD:
        return _TURNS.setdefault(path.absolute(), threading.RLock())


class ShortWrites:
    """Hand out the results database for one operation at a time.

    Parameters
    ----------
    db : path-like or ResultsDB
        A path: opened (waiting for the lock) and closed around each operation. An open
        :class:`ResultsDB`: used as is (its owner decides how long it stays open).
    timeout : float, optional
        Lock wait per opening (default ``$ZOOSCOPE_DB_TIMEOUT`` or 600 s).
    """

    def __init__(
        self, db: str | os.PathLike[str] | ResultsDB, timeout: float | None = None
    ) -> None:
        self._open_db = db if isinstance(db, ResultsDB) else None
        self.path = db.path if isinstance(db, ResultsDB) else Path(db)
        self.timeout = timeout

    @contextlib.contextmanager
    def open(self) -> Iterator[ResultsDB]:
        """The database, open for the duration of the ``with`` block."""
        if self._open_db is not None:
            yield self._open_db
            return
        with _turn(self.path), ResultsDB(self.path, timeout=self.timeout) as database:
            yield database
