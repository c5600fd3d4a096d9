"""The cells every analysis runs within: one metric and one ROI (region and time bin) at a time.

Scores of different metrics or regions are never pooled: a table has one row (or block of rows)
per cell, labelled by its ``metric`` and ``roi`` (a neural region's label carries its time bin,
``"IT|70-170"``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd

__all__ = ["KEYS", "cells", "keys_of", "select_rois"]

#: Columns that separate independent analyses (each test runs within one metric and ROI).
KEYS = ("metric", "roi")


def keys_of(df: pd.DataFrame) -> list[str]:
    """The :data:`KEYS` that ``df`` has, in order."""
    return [k for k in KEYS if k in df.columns]


def cells(
    data: pd.DataFrame, keys: Sequence[str] | None = None
) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    """``(key values, rows)`` per combination of ``keys`` (default :func:`keys_of`), sorted.

    The whole frame, with empty key values, when it has none of the keys.
    """
    keys = keys_of(data) if keys is None else list(keys)
    for key, sub in data.groupby(list(keys), sort=True) if keys else [((), data)]:
        key = key if isinstance(key, tuple) else (key,)
        yield dict(zip(keys, key, strict=True)), sub


def _region(label: str) -> str:
    return str(label).split("|", 1)[0]


def select_rois(frame: pd.DataFrame, rois: Sequence[str] | None) -> pd.DataFrame:
    """The rows of ``frame`` whose ``roi`` is one of ``rois``; every row when None or empty.

    A name matches a label exactly or as its region: ``IT`` selects ``IT|70-170`` and
    ``IT|170-270``.

    Raises
    ------
    ValueError
        A name matches no ROI of the frame (the message lists those it has).
    """
    if not rois:
        return frame
    labels = frame["roi"].astype(str)
    present = sorted(labels.unique())
    unknown = [r for r in rois if r not in present and r not in {_region(p) for p in present}]
    if unknown:
        raise ValueError(
            f"no scores for ROI(s) {', '.join(unknown)}; the scores have {', '.join(present)}"
        )
    wanted = set(rois)
    return frame[labels.isin(wanted) | labels.map(_region).isin(wanted)]
