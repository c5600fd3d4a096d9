"""Deprecated: ``zooscope.analyses`` was split into rooms with one job each.

Import from the room instead: :mod:`zooscope.pipeline` (scoring, survey, ceilings),
:mod:`zooscope.results` (database, importers), :mod:`zooscope.stats` (contrasts, correlates,
similarity) and :mod:`zooscope.report` (plots, HTML report). Old imports keep working, with a
``DeprecationWarning`` naming the new home.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

_ROOMS = ("zooscope.pipeline", "zooscope.results", "zooscope.stats", "zooscope.report")


def _home(name: str) -> str | None:
    """The room whose public API exports ``name``, or None."""
    for room in _ROOMS:
        if name in importlib.import_module(room).__all__:
            return room
    return None


def __getattr__(name: str) -> Any:
    room = _home(name)
    if room is None:
        raise AttributeError(f"module 'zooscope.analyses' has no attribute {name!r}")
    warnings.warn(
        f"zooscope.analyses.{name} moved to {room}.{name}; import it from there",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(room), name)


def __dir__() -> list[str]:
    return sorted(name for room in _ROOMS for name in importlib.import_module(room).__all__)
