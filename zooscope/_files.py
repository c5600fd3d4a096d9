"""Temporary files that become results by rename: created with the user's umask, cleaned up later.

``tempfile.mkstemp`` creates files mode 0600, so a renamed result would be unreadable to the
group on a shared cluster; :func:`temporary_path` applies the umask like ``open()`` does. Its name
carries host and process id, so :func:`remove_stale_temporaries` can tell a temporary of a killed
process (remove) from one that a running process is still writing (keep).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["current_umask", "remove_stale_temporaries", "replacing", "temporary_path"]

#: A temporary from another host is removed only when it has not been touched for this long.
FOREIGN_STALE_SECONDS = 24 * 3600
_SUFFIX = ".tmp"


def current_umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _host() -> str:
    return socket.gethostname().split(".")[0].replace("_", "-") or "host"


def temporary_path(folder: str | os.PathLike[str], stem: str) -> Path:
    """Create an empty temporary file in ``folder`` with mode ``0o666 & ~umask``.

    Parameters
    ----------
    folder : path-like
        Where the final file will be renamed to (same file system, so the rename is atomic).
    stem : str
        Name of the final file; the temporary is ``.<stem>.<host>_<pid>_<random>.tmp``.

    Returns
    -------
    Path
    """
    fd, name = tempfile.mkstemp(
        prefix=f".{stem}.{_host()}_{os.getpid()}_", suffix=_SUFFIX, dir=folder
    )
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    return Path(name)


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary beside ``path`` that replaces ``path`` (atomic rename) when the block succeeds.

    Readers see the old file or the new one, never half a file; on an error (a full disk, a
    Ctrl-C) the temporary is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : path-like
        The file to (re)write.

    Yields
    ------
    Path
        Write the new content here.
    """
    path = Path(path)
    temporary = temporary_path(path.parent, path.name)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _is_stale(path: Path, host: str, now: float) -> bool:
    parts = path.name[: -len(_SUFFIX)].rsplit(".", 1)[-1].split("_")
    if len(parts) >= 3 and parts[0] == host and parts[1].isdigit():
        return not _pid_alive(int(parts[1]))
    try:
        return now - path.stat().st_mtime > FOREIGN_STALE_SECONDS
    except FileNotFoundError:
        return False


def remove_stale_temporaries(folder: str | os.PathLike[str], stem: str = "") -> list[Path]:
    """Remove temporaries left in ``folder`` by killed processes (see the module docstring).

    Parameters
    ----------
    folder : path-like
    stem : str, optional
        Only temporaries of this final file name; default every ``.*.tmp`` file.

    Returns
    -------
    list of Path
        The files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    host, now, removed = _host(), time.time(), []
    for path in folder.glob(f".{stem}*{_SUFFIX}" if stem else f".*{_SUFFIX}"):
        if _is_stale(path, host, now):
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        logger.info("removed %d stale temporary file(s) in %s", len(removed), folder)
    return removed
