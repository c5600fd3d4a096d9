"""Model rankings: subject-mean best-layer scores, their ceilings and explained variance.

Statistics over the rows the results database returns (:meth:`ResultsDB.best_layer_scores
<zooscope.results.db.ResultsDB.best_layer_scores>`, :meth:`~zooscope.results.db.ResultsDB.ceilings`):
the database stores and retrieves, this module aggregates. :meth:`ResultsDB.summary
<zooscope.results.db.ResultsDB.summary>` is the thin wrapper that fetches the frames and calls
:func:`model_summary`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from zooscope.metrics import GSN_RSA, ceiling_power, registered
from zooscope.rsa.partial import explained_variance

__all__ = ["SUMMARY_COLUMNS", "ceiled_score", "model_summary"]

#: Columns of :func:`model_summary`'s table.
SUMMARY_COLUMNS = [
    "metric", "rank", "model_uid", "display_name", "benchmark_hash", "config_hash",
    "profile", "roi", "score", "n_subjects", "ceiling", "explained_variance",
]  # fmt: skip

_KEYS = ["model_uid", "metric", "roi", "benchmark_hash", "config_hash"]


def ceiled_score(score: Any, ceiling: Any, method: Any) -> np.ndarray:
    """Explained variance of scores under their ceiling method.

    Each ceiling method says how it divides (:attr:`CeilingMethod.power
    <zooscope.metrics.CeilingMethod.power>`): predictivity's internal-consistency ceiling is a
    variance ratio (``score**2 / ceiling``); every other (correlation-valued) ceiling is squared
    (``score**2 / ceiling**2``); see :func:`zooscope.rsa.explained_variance`.

    Parameters
    ----------
    score, ceiling : array-like, shape (n,)
    method : str or array-like of str, broadcastable to shape (n,)
        The ceiling method of each row (:func:`zooscope.metrics.ceiling_power`).

    Returns
    -------
    np.ndarray, shape (n,)
        NaN where the ceiling is missing or not positive.
    """
    power = np.vectorize(ceiling_power, otypes=[np.int64])(np.asarray(method, dtype=object))
    return np.atleast_1d(
        explained_variance(
            np.asarray(score, dtype=np.float64), np.asarray(ceiling, dtype=np.float64), power
        )
    )


def _ceiling_methods(rsa_method: str) -> dict[str, str]:
    """Metric -> the ceiling method that divides it; ``rsa_method`` for GSN's RSA metrics."""
    return {
        metric.name: rsa_method if metric.ceiling is GSN_RSA else metric.ceiling.name
        for metric in registered()
        if metric.ceiling is not None
    }


def model_summary(
    best: pd.DataFrame,
    ceilings: pd.DataFrame,
    names: pd.DataFrame,
    profiles: pd.DataFrame,
    *,
    ceiling_method: str = GSN_RSA.name,
    subject_mean: str = "mean",
) -> pd.DataFrame:
    """Models ranked by their subject-mean best-layer test score, per metric, ROI and benchmark.

    ``score`` is the mean over subjects of the best-layer test score; where a model has no
    per-subject rows, the published subject mean (subject ``subject_mean``) is used and
    ``n_subjects`` is 0. ``ceiling`` is the mean over the same subjects (all subjects of the
    benchmark for published means) of the metric's ceiling (:attr:`Metric.ceiling
    <zooscope.metrics.Metric.ceiling>`): ``ceiling_method`` for the RSA metrics (those divided by
    GSN's RSA ceiling), the internal-consistency ceiling for ``predictivity`` (see
    :func:`ceiled_score`). A metric without a ceiling (``encoding_r``) is not ceiled.

    Parameters
    ----------
    best : DataFrame, shape (n_rows, ...)
        Best-layer rows: ``model_uid, subject, roi, metric, benchmark_hash, config_hash,
        test_score`` (the ``best_layer_scores`` view or a profile's selection).
    ceilings : DataFrame
        ``benchmark_hash, subject, roi, method, value`` (the ``ceilings`` table).
    names : DataFrame
        ``model_uid, display_name``.
    profiles : DataFrame
        ``config_hash, profile``; a config without one reads ``"default"``.
    ceiling_method : str
        The ceiling of the RSA metrics.
    subject_mean : str
        The reserved subject label of published subject means.

    Returns
    -------
    DataFrame
        Columns :data:`SUMMARY_COLUMNS`, sorted by metric, ROI, rank and model.
    """
    if best.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    methods = _ceiling_methods(ceiling_method)
    best = best.assign(method=best["metric"].map(methods))
    is_mean = best["subject"] == subject_mean
    per_subject = best[~is_mean].merge(
        ceilings[["benchmark_hash", "subject", "roi", "method", "value"]],
        on=["benchmark_hash", "subject", "roi", "method"],
        how="left",
    )
    agg = (
        per_subject.groupby(_KEYS, dropna=False)
        .agg(
            score=("test_score", "mean"),
            n_subjects=("subject", "nunique"),
            ceiling=("value", "mean"),
        )
        .reset_index()
    )
    published = best[is_mean].rename(columns={"test_score": "score"})
    published = published[~published.set_index(_KEYS).index.isin(agg.set_index(_KEYS).index)]
    if len(published):
        bench_ceil = (
            ceilings.groupby(["benchmark_hash", "roi", "method"])["value"].mean().rename("ceiling")
        )
        published = published.join(bench_ceil, on=["benchmark_hash", "roi", "method"])
        published = published.assign(n_subjects=0)[[*_KEYS, "score", "n_subjects", "ceiling"]]
        agg = pd.concat([agg, published], ignore_index=True)
    method = agg["metric"].map(methods)
    agg.loc[method.isna(), "ceiling"] = np.nan
    agg["explained_variance"] = ceiled_score(agg["score"], agg["ceiling"], method.to_numpy())
    agg["rank"] = (
        agg.groupby(["metric", "roi", "benchmark_hash", "config_hash"])["score"]
        .rank(ascending=False, method="min")
        .astype("Int64")
    )
    agg = agg.merge(names[["model_uid", "display_name"]], on="model_uid", how="left")
    agg = agg.merge(profiles[["config_hash", "profile"]], on="config_hash", how="left")
    # Imported (published) scores have runs too; a config without a run reads "default".
    agg["profile"] = agg["profile"].fillna("default")
    return (
        agg[SUMMARY_COLUMNS]
        .sort_values(["metric", "roi", "rank", "model_uid"])
        .reset_index(drop=True)
    )
