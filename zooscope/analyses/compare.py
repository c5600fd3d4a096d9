r"""Comparing families of models: matched pairs, groups, and scaling with training-set size.

Every function takes a tidy score frame (one row per model, or per model and subject, with the
model's manifest columns; :func:`zooscope.analyses.contrasts.score_frame` builds one from a results
database) and works separately within each ``metric`` x ``roi`` (the ``keys``).

Statistics
----------
Matched pairs (:func:`paired_tests`): models sharing a value of ``pair_by`` (e.g. ``arch``) and
differing in ``column`` (e.g. ``task``) at levels ``a`` and ``b``; several models in one cell
(seeds) are averaged first. With differences :math:`d_i = s_{a,i} - s_{b,i}` over :math:`n`
pairs,

.. math:: t = \bar d / (s_d / \sqrt n), \qquad \nu = n - 1,

two-sided :math:`p = 2\,(1 - F_{t,\nu}(|t|))`, the CI of the mean difference
:math:`\bar d \pm t_{\nu, 1-\alpha/2}\, s_d/\sqrt n`, and :math:`d_z = \bar d / s_d`. The
Wilcoxon signed-rank test is scipy's (exact null distribution for small samples without ties,
normal approximation otherwise).

Groups (:func:`group_tests`): the Mann-Whitney U test of the model scores of level ``a`` against
level ``b`` (scipy; exact for small samples without ties), with ``U`` of sample ``a`` and the
rank-biserial correlation :math:`r = 2U/(n_a n_b) - 1` (positive: ``a`` tends to score higher).

Scaling (:func:`scaling_fit`, :func:`scaling_band`): ordinary least squares
``score ~ log10(x)``; slope CI and two-sided p from the t distribution with :math:`n - 2` degrees
of freedom; the band is the confidence interval of the fitted mean,

.. math:: \hat y(x_0) \pm t_{n-2, 1-\alpha/2}\, \hat\sigma
          \sqrt{1/n + (x_0 - \bar x)^2 / \textstyle\sum_i (x_i - \bar x)^2}.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from zooscope.analyses.cells import cells, keys_of

logger = logging.getLogger(__name__)

__all__ = [
    "group_tests",
    "paired_scores",
    "paired_tests",
    "parse_contrast",
    "scaling_band",
    "scaling_fit",
    "scaling_frame",
]

_PAIRED_COLUMNS = [
    "n_pairs", "mean_a", "mean_b", "mean_diff", "sd_diff", "ci_low", "ci_high", "t", "df", "p_t",
    "cohen_dz", "w", "p_wilcoxon",
]  # fmt: skip
_GROUP_COLUMNS = ["n_a", "n_b", "median_a", "median_b", "u", "p_mwu", "rank_biserial"]
_SCALING_COLUMNS = [
    "n", "slope", "slope_se", "slope_ci_low", "slope_ci_high", "p_slope", "intercept", "r2",
]  # fmt: skip


def parse_contrast(text: str) -> tuple[str, tuple[str, str]]:
    """``"task=memorability,classification"`` -> ``("task", ("memorability", "classification"))``.

    Raises
    ------
    ValueError
        Unless the text is ``COLUMN=A,B`` with two different non-empty levels.
    """
    column, sep, levels = text.partition("=")
    parts = tuple(p.strip() for p in levels.split(","))
    if not sep or not column.strip() or len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise ValueError(
            f"a contrast is COLUMN=LEVEL_A,LEVEL_B (e.g. task=memorability,classification), "
            f"got {text!r}"
        )
    return column.strip(), (parts[0], parts[1])


def _require(df: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"column(s) {missing} not in the score frame; it has {sorted(map(str, df.columns))}"
        )


def _levels(df: pd.DataFrame, column: str, levels: tuple[str, str]) -> pd.DataFrame:
    """Rows of ``df`` at one of the two levels of ``column`` (compared as text)."""
    _require(df, [column])
    text = df[column].astype("string")
    present = set(text.dropna())
    unknown = [level for level in levels if level not in present]
    if unknown:
        raise ValueError(f"level(s) {unknown} not found in {column!r}; levels: {sorted(present)}")
    out = df[text.isin(levels)].copy()
    out[column] = out[column].astype(str)
    return out


def paired_scores(
    df: pd.DataFrame,
    pair_by: str,
    column: str,
    levels: tuple[str, str],
    *,
    value: str = "score",
    model: str = "model_uid",
) -> pd.DataFrame:
    """The matched pairs: one row per ``pair_by`` value (and subject) with both levels present.

    Parameters
    ----------
    df : DataFrame
        Tidy scores with columns ``value``, ``model``, ``pair_by``, ``column`` and the keys
        (``metric``, ``roi``); a ``subject`` column other than the published mean ``"mean"``
        makes the pairs per subject too.
    pair_by : str
        Models with the same value are matched (e.g. ``arch``).
    column, levels : str, (str, str)
        The contrast: level ``a`` against level ``b`` of ``column``.

    Returns
    -------
    DataFrame
        Columns ``metric, roi, pair[, subject], score_a, score_b, diff, n_a, n_b, models_a,
        models_b``; ``score_*`` average the ``n_*`` models of a cell.
    """
    _require(df, [value, model, pair_by])
    data = _levels(df.dropna(subset=[pair_by, value]), column, levels)
    keys = keys_of(data)
    per_subject = "subject" in data.columns and (data["subject"].astype(str) != "mean").any()
    cell = [*keys, pair_by, *(["subject"] if per_subject else [])]
    rows = []
    for row, sub in cells(data, cell):
        side = {level: sub[sub[column] == level] for level in levels}
        if any(s.empty for s in side.values()):
            continue
        a, b = side[levels[0]], side[levels[1]]
        row["pair"] = row.pop(pair_by)
        row.update(
            score_a=float(a[value].mean()),
            score_b=float(b[value].mean()),
            n_a=int(a[model].nunique()),
            n_b=int(b[model].nunique()),
            models_a=",".join(sorted(a[model].astype(str).unique())),
            models_b=",".join(sorted(b[model].astype(str).unique())),
        )
        row["diff"] = row["score_a"] - row["score_b"]
        rows.append(row)
    columns = [*keys, "pair", *(["subject"] if per_subject else []), "score_a", "score_b", "diff",
               "n_a", "n_b", "models_a", "models_b"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def _paired_statistics(a: np.ndarray, b: np.ndarray, ci: float) -> dict[str, float]:
    """Paired t (closed form) and Wilcoxon signed-rank (scipy) of two matched samples."""
    d = a - b
    n = d.size
    out = dict.fromkeys(_PAIRED_COLUMNS, np.nan)
    out.update(n_pairs=n, mean_a=a.mean() if n else np.nan, mean_b=b.mean() if n else np.nan)
    if n == 0:
        return out
    out["mean_diff"] = d.mean()
    if n < 2:
        return out
    sd = d.std(ddof=1)
    dof = n - 1
    out.update(sd_diff=sd, df=float(dof))
    if sd > 0:
        se = sd / np.sqrt(n)
        t = d.mean() / se
        half = stats.t.ppf(0.5 + ci / 2, dof) * se
        out.update(
            t=t,
            p_t=2 * stats.t.sf(abs(t), dof),
            ci_low=d.mean() - half,
            ci_high=d.mean() + half,
            cohen_dz=d.mean() / sd,
        )
    if np.any(d != 0):
        res = stats.wilcoxon(a, b)
        out.update(w=float(res.statistic), p_wilcoxon=float(res.pvalue))
    return out


def paired_tests(
    df: pd.DataFrame,
    pair_by: str,
    column: str,
    levels: tuple[str, str],
    *,
    value: str = "score",
    model: str = "model_uid",
    ci: float = 0.95,
) -> pd.DataFrame:
    """Paired t-test and Wilcoxon signed-rank test of level ``a`` against ``b`` across pairs.

    Parameters
    ----------
    df, pair_by, column, levels, value, model
        As in :func:`paired_scores`.
    ci : float
        Coverage of the interval of the mean difference.

    Returns
    -------
    DataFrame
        One row per metric and ROI: ``metric, roi, contrast, level_a, level_b, pair_by, n_pairs,
        mean_a, mean_b, mean_diff, sd_diff, ci_low, ci_high, t, df, p_t, cohen_dz, w,
        p_wilcoxon`` (NaN where a statistic needs more pairs or non-zero differences).
    """
    pairs = paired_scores(df, pair_by, column, levels, value=value, model=model)
    keys = keys_of(pairs)
    rows = []
    for row, sub in cells(pairs, keys):
        row.update(contrast=column, level_a=levels[0], level_b=levels[1], pair_by=pair_by)
        a, b = sub["score_a"].to_numpy(float), sub["score_b"].to_numpy(float)
        row.update(_paired_statistics(a, b, ci))
        rows.append(row)
    columns = [*keys, "contrast", "level_a", "level_b", "pair_by", *_PAIRED_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def group_tests(
    df: pd.DataFrame,
    column: str,
    levels: tuple[str, str],
    *,
    value: str = "score",
    model: str = "model_uid",
) -> pd.DataFrame:
    """Mann-Whitney U test of the models at level ``a`` of ``column`` against those at ``b``.

    Each model contributes one value: its mean over the rows it has (subjects) within a metric
    and ROI.

    Returns
    -------
    DataFrame
        One row per metric and ROI: ``metric, roi, contrast, level_a, level_b, n_a, n_b,
        median_a, median_b, u, p_mwu, rank_biserial``.
    """
    _require(df, [value, model])
    data = _levels(df.dropna(subset=[value]), column, levels)
    keys = keys_of(data)
    means = data.groupby([*keys, column, model], sort=True)[value].mean().reset_index()
    rows = []
    for row, sub in cells(means, keys):
        a = sub.loc[sub[column] == levels[0], value].to_numpy(float)
        b = sub.loc[sub[column] == levels[1], value].to_numpy(float)
        row.update(contrast=column, level_a=levels[0], level_b=levels[1])
        row.update(dict.fromkeys(_GROUP_COLUMNS, np.nan))
        row.update(
            n_a=a.size,
            n_b=b.size,
            median_a=np.median(a) if a.size else np.nan,
            median_b=np.median(b) if b.size else np.nan,
        )
        if a.size and b.size:
            res = stats.mannwhitneyu(a, b, alternative="two-sided")
            row.update(
                u=float(res.statistic),
                p_mwu=float(res.pvalue),
                rank_biserial=2 * float(res.statistic) / (a.size * b.size) - 1,
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, "contrast", "level_a", "level_b", *_GROUP_COLUMNS])


def _ols_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float, float]:
    """Slope, intercept, residual SD, mean of x and its centred sum of squares."""
    xm = x.mean()
    sxx = float(np.sum((x - xm) ** 2))
    slope = float(np.sum((x - xm) * (y - y.mean())) / sxx)
    intercept = float(y.mean() - slope * xm)
    resid = y - intercept - slope * x
    sigma = float(np.sqrt(np.sum(resid**2) / (x.size - 2))) if x.size > 2 else np.nan
    return slope, intercept, sigma, float(xm), sxx


def _scaling_data(df: pd.DataFrame, x: str, value: str, model: str) -> pd.DataFrame:
    """One row per model and key: ``log_x`` (log10 of a positive ``x``) and the mean score."""
    _require(df, [x, value, model])
    data = df.assign(_x=pd.to_numeric(df[x], errors="coerce")).dropna(subset=["_x", value])
    dropped = int((data["_x"] <= 0).sum())
    if dropped:
        logger.info(
            "scaling: %d row(s) with %s <= 0 have no logarithm and are left out", dropped, x
        )
    data = data[data["_x"] > 0]
    keys = keys_of(data)
    out = data.groupby([*keys, model], sort=True).agg(x=("_x", "first"), score=(value, "mean"))
    out = out.reset_index()
    out["log_x"] = np.log10(out["x"].astype(float))
    return out


def scaling_frame(
    df: pd.DataFrame, x: str = "train_data_size", *, value: str = "score", model: str = "model_uid"
) -> pd.DataFrame:
    """The points of a scaling fit: ``metric, roi, model_uid, x, score, log_x`` (one per model)."""
    return _scaling_data(df, x, value, model)


def scaling_fit(
    df: pd.DataFrame,
    x: str = "train_data_size",
    *,
    value: str = "score",
    model: str = "model_uid",
    ci: float = 0.95,
) -> pd.DataFrame:
    """OLS of the score on ``log10(x)`` per metric and ROI (one point per model).

    Parameters
    ----------
    df : DataFrame
        Tidy scores with columns ``x`` (positive numbers; others are left out), ``value`` and
        ``model``.
    x : str
        The size column, by default the manifest's ``train_data_size``.
    ci : float
        Coverage of the slope interval.

    Returns
    -------
    DataFrame
        ``metric, roi, x, n, slope, slope_se, slope_ci_low, slope_ci_high, p_slope, intercept,
        r2``; the slope is per decade of ``x``. NaN where fewer than 3 models or fewer than 2
        distinct sizes.
    """
    data = _scaling_data(df, x, value, model)
    keys = keys_of(data)
    rows = []
    for row, sub in cells(data, keys):
        row.update(x=x, **dict.fromkeys(_SCALING_COLUMNS, np.nan))
        lx, y = sub["log_x"].to_numpy(float), sub["score"].to_numpy(float)
        row["n"] = lx.size
        if lx.size >= 3 and np.ptp(lx) > 0:
            slope, intercept, sigma, _, sxx = _ols_line(lx, y)
            dof = lx.size - 2
            se = sigma / np.sqrt(sxx)
            half = stats.t.ppf(0.5 + ci / 2, dof) * se
            ss_tot = float(np.sum((y - y.mean()) ** 2))
            ss_res = float(np.sum((y - intercept - slope * lx) ** 2))
            row.update(
                slope=slope,
                slope_se=se,
                slope_ci_low=slope - half,
                slope_ci_high=slope + half,
                p_slope=2 * stats.t.sf(abs(slope / se), dof) if se > 0 else np.nan,
                intercept=intercept,
                r2=1 - ss_res / ss_tot if ss_tot > 0 else np.nan,
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, "x", *_SCALING_COLUMNS])


def scaling_band(
    df: pd.DataFrame,
    x: str = "train_data_size",
    *,
    value: str = "score",
    model: str = "model_uid",
    ci: float = 0.95,
    n_points: int = 50,
) -> pd.DataFrame:
    """The fitted line of :func:`scaling_fit` and its confidence band on a grid of sizes.

    Returns
    -------
    DataFrame
        ``metric, roi, log_x, x, fit, ci_low, ci_high``; ``n_points`` rows per metric and ROI
        spanning the observed sizes (none where the fit is undefined).
    """
    data = _scaling_data(df, x, value, model)
    keys = keys_of(data)
    frames = []
    for key, sub in cells(data, keys):
        lx, y = sub["log_x"].to_numpy(float), sub["score"].to_numpy(float)
        if lx.size < 3 or np.ptp(lx) == 0:
            continue
        slope, intercept, sigma, xm, sxx = _ols_line(lx, y)
        grid = np.linspace(lx.min(), lx.max(), n_points)
        fit = intercept + slope * grid
        half = stats.t.ppf(0.5 + ci / 2, lx.size - 2) * sigma
        half = half * np.sqrt(1 / lx.size + (grid - xm) ** 2 / sxx)
        frame = pd.DataFrame(
            {"log_x": grid, "x": 10**grid, "fit": fit, "ci_low": fit - half, "ci_high": fit + half}
        )
        frames.append(frame.assign(**key))
    columns = [*keys, "log_x", "x", "fit", "ci_low", "ci_high"]
    return (
        pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    )
