"""Model rankings: subject-mean best-layer scores, noise ceilings and explained variance."""

from __future__ import annotations

import numpy as np
import pandas as pd

from zooscope.rsa.partial import explained_variance
from zooscope.rsa.vocabulary import RSA_CEILING_METHOD, RSA_METRICS

__all__ = ["RANKING_COLUMNS", "rank_models"]

#: Columns of :func:`rank_models`' table.
RANKING_COLUMNS = (
    "metric", "rank", "model_uid", "display_name", "benchmark_hash", "config_hash",
    "roi", "score", "n_subjects", "ceiling", "explained_variance",
)  # fmt: skip
_KEYS = ["model_uid", "metric", "roi", "benchmark_hash", "config_hash"]


def rank_models(
    best: pd.DataFrame,
    ceilings: pd.DataFrame,
    names: pd.DataFrame | None = None,
    *,
    metric: str | None = None,
    roi: str | None = None,
    ceiling_method: str = RSA_CEILING_METHOD,
    subject_mean: str = "mean",
) -> pd.DataFrame:
    """Models ranked by their subject-mean best-layer test score, per metric, ROI and benchmark.

    ``score`` is the mean over subjects of the best-layer test score; where a model has no
    per-subject rows, the published subject mean (subject ``subject_mean``) is used and
    ``n_subjects`` is 0. ``ceiling`` is the mean over the same subjects (all subjects of the
    benchmark for published means) of the ``ceiling_method`` ceiling, for the RSA metrics only;
    ``explained_variance`` is :func:`zooscope.rsa.explained_variance` (score² / ceiling², NaN
    where the ceiling is missing or not positive).

    Parameters
    ----------
    best : DataFrame
        Best layers (:meth:`~zooscope.results.db.ResultsDB.best_layer_scores`): columns
        ``model_uid, subject, roi, metric, benchmark_hash, config_hash, test_score``.
    ceilings : DataFrame
        Columns ``benchmark_hash, subject, roi, method, value``.
    names : DataFrame, optional
        ``model_uid, display_name``.
    metric, roi : str, optional
        Keep only this metric / ROI.
    subject_mean : str
        The subject label of published subject means
        (:data:`zooscope.results.db.SUBJECT_MEAN`).

    Returns
    -------
    DataFrame
        Columns :data:`RANKING_COLUMNS`, sorted by metric, ROI and rank (1 = best; ties share
        the smaller rank).
    """
    if roi is not None:
        best = best[best["roi"] == roi]
    if metric is not None:
        best = best[best["metric"] == metric]
    if best.empty:
        return pd.DataFrame(columns=list(RANKING_COLUMNS))
    ceil = ceilings[ceilings["method"] == ceiling_method]
    is_mean = best["subject"] == subject_mean
    per_subject = best[~is_mean].merge(
        ceil[["benchmark_hash", "subject", "roi", "value"]],
        on=["benchmark_hash", "subject", "roi"],
        how="left",
    )
    table = (
        per_subject.groupby(_KEYS, dropna=False)
        .agg(
            score=("test_score", "mean"),
            n_subjects=("subject", "nunique"),
            ceiling=("value", "mean"),
        )
        .reset_index()
    )
    published = best[is_mean].rename(columns={"test_score": "score"})
    published = published[~published.set_index(_KEYS).index.isin(table.set_index(_KEYS).index)]
    if len(published):
        bench_ceil = ceil.groupby(["benchmark_hash", "roi"])["value"].mean().rename("ceiling")
        published = published.join(bench_ceil, on=["benchmark_hash", "roi"])
        published = published.assign(n_subjects=0)[[*_KEYS, "score", "n_subjects", "ceiling"]]
        table = pd.concat([table, published], ignore_index=True)
    table.loc[~table["metric"].isin(RSA_METRICS), "ceiling"] = np.nan
    table["explained_variance"] = explained_variance(
        table["score"].to_numpy(float), table["ceiling"].to_numpy(float)
    )
    table["rank"] = (
        table.groupby(["metric", "roi", "benchmark_hash", "config_hash"])["score"]
        .rank(ascending=False, method="min")
        .astype("Int64")
    )
    if names is not None:
        table = table.merge(names[["model_uid", "display_name"]], on="model_uid", how="left")
    else:
        table["display_name"] = None
    return (
        table[list(RANKING_COLUMNS)]
        .sort_values(["metric", "roi", "rank", "model_uid"])
        .reset_index(drop=True)
    )
