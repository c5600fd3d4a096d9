"""Conwell et al.'s (2024) degenerate-row filter, and best-layer selection under a profile.

Before choosing each model's best layer, the published analysis dropped "degenerate" rows: within
a metric, the difference ``test - train`` of every row (model x layer x subject x ROI) is
z-scored over all rows of the results (sample standard deviation, as R's ``scale``), and rows
with ``z`` at or below -3.291 are dropped, as are rows whose difference is missing. A layer whose
train score far exceeds its test score (an overfit ridge, or a train score inflated by the
leave-one-out intercept) thus cannot win the selection.

The filter is a statistic of the whole results table, not of one model, so it runs where the
table is read (summaries, reports, analyses), never while a model is scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from zooscope.profiles import get_profile
from zooscope.rsa.selection import select_layer

if TYPE_CHECKING:
    from zooscope.results.db import ResultsDB

__all__ = ["best_layers", "degenerate_z_scores", "drop_degenerate", "profile_best_layer_scores"]

_SELECT_COLUMNS = (
    "model",
    "layer",
    "layer_index",
    "group",
    "subject",
    "roi",
    "metric",
    "split",
    "score",
)

#: Columns that identify one score row apart from its split (when present in the table).
_ROW_KEYS = (
    "model_uid",
    "model",
    "layer_index",
    "layer_name",
    "layer",
    "subject",
    "roi",
    "group",
    "metric",
    "benchmark_hash",
    "config_hash",
)
#: Pools within which differences are z-scored: one metric of one benchmark under one config.
_POOL_KEYS = ("metric", "benchmark_hash", "config_hash")


def _wide(scores: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    keys = [c for c in _ROW_KEYS if c in scores.columns]
    if "split" not in scores.columns or "score" not in scores.columns or "metric" not in keys:
        raise ValueError(
            f"scores need 'metric', 'split' and 'score' columns; got {list(scores.columns)}"
        )
    if scores.duplicated([*keys, "split"]).any():
        raise ValueError(f"scores repeat a row key {keys} within a split")
    wide = scores.set_index([*keys, "split"])["score"].unstack("split")
    wide = wide.reindex(columns=["train", "test"]).reset_index()
    wide.columns.name = None
    return wide, keys


def degenerate_z_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per score row key with its ``train``, ``test`` and ``z`` of ``test - train``.

    Parameters
    ----------
    scores : DataFrame
        Long format: ``metric``, ``split`` (``train``/``test``), ``score`` and the row keys
        present among ``model_uid``, ``layer_index``, ``layer_name``, ``subject``, ``roi``,
        ``group``, ``benchmark_hash``, ``config_hash``.

    Returns
    -------
    DataFrame
        The row keys, ``train``, ``test`` and ``z``: the difference standardised within each
        metric (and benchmark and config, when those columns exist) with the mean and sample
        standard deviation (``ddof=1``) of the finite differences; NaN where a score is missing.
    """
    wide, _keys = _wide(scores)
    diff = wide["test"] - wide["train"]
    pools = [c for c in _POOL_KEYS if c in wide.columns]
    grouped = diff.groupby([wide[c] for c in pools], dropna=False)
    wide["z"] = (diff - grouped.transform("mean")) / grouped.transform("std")
    return wide


def drop_degenerate(scores: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """``scores`` without the rows (both splits) whose ``z`` (:func:`degenerate_z_scores`) is not above ``threshold``.

    Rows with a missing ``z`` (a missing train or test score) are dropped too, as in the
    published analysis (R's ``filter`` drops NA).

    Returns
    -------
    DataFrame
        The kept rows of ``scores`` in their original (long) form and order.
    """
    z = degenerate_z_scores(scores)
    keys = [c for c in _ROW_KEYS if c in scores.columns]
    keep = z.loc[z["z"] > threshold, keys]
    merged = scores.reset_index(drop=True).reset_index().merge(keep, on=keys, how="inner")
    return scores.iloc[np.sort(merged["index"].to_numpy())]


def best_layers(
    scores: pd.DataFrame, degenerate_z: float | None = None, keys: Sequence[str] = ()
) -> pd.DataFrame:
    """Best train layer per model x subject x ROI x metric, optionally after the degenerate filter.

    The one best-layer rule of a profile: ``degenerate_z`` None is the plain rule (highest
    train score, ties to the earliest layer, NaN never wins; :func:`zooscope.rsa.select_layer`);
    a number first applies :func:`drop_degenerate` over the whole table (Conwell et al. 2024:
    -3.291).

    Parameters
    ----------
    scores : DataFrame
        Long format with ``layer`` (or ``layer_name``), ``metric``, ``split``, ``score``,
        ``subject``/``roi`` (or ``group``), and optionally ``model_uid``, ``layer_index``,
        ``benchmark_hash``, ``config_hash``.
    degenerate_z : float, optional
    keys : sequence of str
        Further columns that separate selections (e.g. ``benchmark_hash``, ``config_hash``).

    Returns
    -------
    DataFrame
        One row per selection key: the keys, ``layer`` (and ``layer_index``), ``train_score``,
        ``test_score``.
    """
    frame = scores
    if degenerate_z is not None:
        frame = drop_degenerate(frame, degenerate_z)
    frame = frame.rename(columns={"layer_name": "layer", "model_uid": "model"})
    columns = [c for c in _SELECT_COLUMNS if c in frame.columns]
    extra = [k for k in keys if k in frame.columns]
    if not extra:
        return select_layer(frame[columns]).rename(columns={"model": "model_uid"})
    parts = []
    for values, part in frame.groupby(extra, sort=True, dropna=False):
        chosen = select_layer(part[columns])
        for key, value in zip(
            extra, values if isinstance(values, tuple) else (values,), strict=True
        ):
            chosen[key] = value
        parts.append(chosen)
    if not parts:
        return pd.DataFrame(columns=["model_uid", *extra, "layer", "train_score", "test_score"])
    return pd.concat(parts, ignore_index=True).rename(columns={"model": "model_uid"})


def profile_best_layer_scores(
    db: ResultsDB, profile: str, benchmark_hash: str | None = None
) -> pd.DataFrame:
    """The best-layer rows of one profile's results, chosen by that profile's rule.

    Parameters
    ----------
    db : ResultsDB
    profile : str
        A scoring profile (:data:`~zooscope.profiles.PROFILES`); only results made under
        it are read.
    benchmark_hash : str, optional

    Returns
    -------
    DataFrame
        Shaped like the database's ``best_layer_scores`` view (``model_uid, subject, roi,
        metric, benchmark_hash, config_hash, layer_index, layer_name, train_score, test_score,
        selection``), ready for :meth:`ResultsDB.summary(best=...) <zooscope.results.db.ResultsDB.summary>`.
    """
    threshold = get_profile(profile).settings.get("degenerate_z")
    hashes = db.profile_config_hashes(profile)
    if threshold is None:
        return db.best_layer_scores(benchmark_hash=benchmark_hash, config_hash=hashes)
    scores = db.scores(benchmark_hash=benchmark_hash, config_hash=hashes)
    scores = scores[scores["layer_index"].notna()].drop(columns=["run_id"], errors="ignore")
    best = best_layers(scores, threshold, keys=("benchmark_hash", "config_hash"))
    best = best.rename(columns={"layer": "layer_name"}).assign(
        selection="best_train_layer_nondegenerate"
    )
    columns = [
        "model_uid", "subject", "roi", "metric", "benchmark_hash", "config_hash", "layer_index",
        "layer_name", "train_score", "test_score", "selection",
    ]  # fmt: skip
    return (
        best.reindex(columns=columns)
        .sort_values(["model_uid", "metric", "roi", "subject"])
        .reset_index(drop=True)
    )
