"""Correlates of brain predictivity: ImageNet accuracy, parameter count, effective dimensionality.

Also ranking stability across subjects and ceiling-normalized scores. The effective
dimensionality itself is computed while a model is scored (:mod:`zooscope.rsa.dimensionality`).
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd
from scipy import stats

from zooscope.analyses.cells import cells

logger = logging.getLogger(__name__)


def _rowwise_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho per row of two (n_rows, n) arrays (ranks with ties averaged)."""
    rx = stats.rankdata(x, axis=1)
    ry = stats.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denom = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=1) / denom


def spearman_correlates(
    df: pd.DataFrame,
    x: str | list[str],
    *,
    y: str = "score",
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Spearman correlation of model scores with model properties, with bootstrap CIs.

    Parameters
    ----------
    df : DataFrame, shape (n_models, ...)
        One row per model (and metric, if a ``metric`` column is present).
    x : str or list of str
        Model properties (e.g. ``imagenet_top1``, ``param_count``, ``effective_dim``).
    y : str
        The score column.
    n_boot, ci, seed
        Bootstrap over models (rows resampled with replacement; percentile interval).

    Returns
    -------
    DataFrame
        Columns ``metric, roi, x, n, rho, p_value, ci_low, ci_high`` (one row per metric, ROI
        and property; never pooled across them); rows with a missing ``x`` or
        ``y`` are left out of that correlation.
    """
    xs = [x] if isinstance(x, str) else list(x)
    for column in [*xs, y]:
        if column not in df.columns:
            raise ValueError(f"column {column!r} not in the frame; columns: {list(df.columns)}")
    rng = np.random.default_rng(seed)
    rows = []
    for key, sub in cells(df):
        for column in xs:
            pair = sub[[column, y]].apply(pd.to_numeric, errors="coerce").dropna()
            a, b = pair[column].to_numpy(), pair[y].to_numpy()
            n = a.size
            if n < 3:
                rows.append(
                    {
                        **key,
                        "x": column,
                        "n": n,
                        "rho": np.nan,
                        "p_value": np.nan,
                        "ci_low": np.nan,
                        "ci_high": np.nan,
                    }
                )
                continue
            res = stats.spearmanr(a, b)
            idx = rng.integers(0, n, size=(n_boot, n))
            boot = _rowwise_spearman(a[idx], b[idx])
            lo, hi = np.nanpercentile(boot, [50 * (1 - ci), 50 * (1 + ci)])
            rows.append(
                {
                    **key,
                    "x": column,
                    "n": n,
                    "rho": float(res.statistic),
                    "p_value": float(res.pvalue),
                    "ci_low": float(lo),
                    "ci_high": float(hi),
                }
            )
    return pd.DataFrame(rows)


def rank_stability(
    df: pd.DataFrame,
    *,
    value: str = "score",
    model: str = "model_uid",
    subject: str = "subject",
    n_perm: int = 1000,
    seed: int = 0,
) -> tuple[float, float, pd.DataFrame]:
    """Inter-subject agreement of model rankings.

    For every pair of subjects, the Spearman correlation of the models' scores (models scored in
    both). The statistic is the mean pairwise rho; its permutation p-value shuffles the model
    labels independently within each subject, ``(1 + #{mean rho* >= mean rho}) / (1 + n_perm)``.

    Parameters
    ----------
    df : DataFrame
        One row per model and subject (one metric).

    Returns
    -------
    mean_rho : float
    p_value : float
    pairs : DataFrame
        Columns ``subject_a, subject_b, n_models, rho``.
    """
    if "metric" in df.columns and df["metric"].nunique() > 1:
        raise ValueError("rank_stability takes one metric at a time; filter the frame first")
    table = df.pivot_table(index=model, columns=subject, values=value, aggfunc="mean").dropna()
    if table.shape[1] < 2 or table.shape[0] < 3:
        raise ValueError("rank stability needs >= 2 subjects and >= 3 models scored in all of them")
    ranks = table.rank().to_numpy()  # (n_models, n_subjects)
    pairs = list(itertools.combinations(range(ranks.shape[1]), 2))

    def mean_rho(r: np.ndarray) -> np.ndarray:
        # r: (..., n_models, n_subjects) ranks -> mean pairwise Pearson of ranks
        z = (r - r.mean(axis=-2, keepdims=True)) / r.std(axis=-2, keepdims=True)
        rhos = [np.mean(z[..., i] * z[..., j], axis=-1) for i, j in pairs]
        return np.mean(rhos, axis=0)

    observed = float(mean_rho(ranks))
    rng = np.random.default_rng(seed)
    perm = rng.permuted(np.broadcast_to(ranks, (n_perm, *ranks.shape)).copy(), axis=1)
    null = mean_rho(perm)
    p = (1 + np.count_nonzero(null >= observed - 1e-12)) / (1 + n_perm)
    cols = table.columns
    pair_table = pd.DataFrame(
        [
            {
                "subject_a": cols[i],
                "subject_b": cols[j],
                "n_models": table.shape[0],
                "rho": stats.spearmanr(table.iloc[:, i], table.iloc[:, j]).statistic,
            }
            for i, j in pairs
        ]
    )
    return observed, float(p), pair_table
