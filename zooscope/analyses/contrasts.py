"""Group comparisons of model scores by inductive bias (architecture, task, data, training).

Every function works on a tidy DataFrame with one row per model (and subject), so the same code
runs on survey output and on imported published scores. :func:`score_frame` builds such a frame
from a :class:`~zooscope.results.db.ResultsDB`.

Statistics
----------
For a grouping column ``g`` with levels ``a, b, ...``:

- group mean: :math:`\\bar s_a = \\frac{1}{n_a} \\sum_{m \\in a} \\bar s_m`, where
  :math:`\\bar s_m` is model ``m``'s score averaged over subjects;
- bootstrap over models: resample the models of each group with replacement;
- bootstrap over subjects: resample subjects with replacement (the same draw for every model, since
  subjects are shared) and average each model over the drawn subjects;
- pairwise difference :math:`\\bar s_a - \\bar s_b` with a bootstrap CI (models resampled within
  each group), a two-sided permutation p-value (group labels shuffled among the models of ``a``
  and ``b``, :math:`p = (1 + \\#\\{|d^*| \\ge |d|\\}) / (1 + n_{perm})`), Cohen's d with the pooled
  SD, and Holm and Benjamini-Hochberg corrections across the pairs of one metric and ROI;
- OLS ``score ~ C(group) + C(subject)`` (statsmodels), and the mixed model
  ``score ~ C(group) [+ C(subject)] + (C(group) | pair)`` (statsmodels MixedLM) for paired designs
  such as trained vs randomly initialised twins of one architecture.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from zooscope.analyses.cells import cells, keys_of, select_rois
from zooscope.analyses.degenerate import profile_best_layer_scores
from zooscope.results.db import SUBJECT_MEAN

if TYPE_CHECKING:
    from zooscope.results.db import ResultsDB

logger = logging.getLogger(__name__)

_TERM_COLUMNS = ["term", "estimate", "se", "ci_low", "ci_high", "p_value"]


def score_frame(
    db: ResultsDB,
    metric: str | list[str] | None = None,
    level: str = "subject",
    benchmark_hash: str | None = None,
    roi: str | Sequence[str] | None = None,
    profile: str | None = None,
) -> pd.DataFrame:
    """Best-layer test scores joined with every model column, one row per ROI (never pooled).

    Parameters
    ----------
    db : ResultsDB
    metric : str or list of str, optional
    level : {"subject", "model"}
        ``"subject"``: one row per model and subject (models with only a published subject mean
        are left out). ``"model"``: one row per model, the subject mean (or the published mean;
        see :meth:`ResultsDB.summary`), with ``subject`` set to ``"mean"``.
    benchmark_hash : str, optional
    roi : str or sequence of str, optional
        Only these ROIs (a region name also selects its time bins:
        :func:`~zooscope.analyses.cells.select_rois`); default every ROI, each in its own rows.
    profile : str, optional
        Only results of this scoring profile, best layers chosen by its rule
        (:func:`zooscope.analyses.degenerate.profile_best_layer_scores`); all results when None.

    Returns
    -------
    DataFrame
        Columns ``model_uid, subject, metric, roi, score`` plus the model columns.
    """
    metrics = [metric] if isinstance(metric, str) else metric
    best = None
    if profile is not None:
        best = profile_best_layer_scores(db, profile, benchmark_hash=benchmark_hash)
    if level == "subject":
        df = db.best_layer_scores(benchmark_hash=benchmark_hash) if best is None else best
        df = df[df["subject"] != SUBJECT_MEAN].rename(columns={"test_score": "score"})
    elif level == "model":
        df = db.summary(benchmark_hash=benchmark_hash, best=best).assign(subject=SUBJECT_MEAN)
        df = df.drop(columns=["display_name"])
    else:
        raise ValueError(f"level must be 'subject' or 'model', got {level!r}")
    if metrics is not None:
        df = df[df["metric"].isin(metrics)]
    if roi is not None:
        df = select_rois(df, [roi] if isinstance(roi, str) else roi)
    df = df[["model_uid", "subject", "metric", "roi", "score"]]
    return df.merge(db.models(), on="model_uid", how="left").reset_index(drop=True)


def normalize_within_subject(
    df: pd.DataFrame,
    value: str = "score",
    subject: str = "subject",
    by: str | list[str] | None = "metric",
) -> pd.Series:
    """Within-subject normalization for plots: ``score - subject mean + grand mean``.

    Removes between-subject offsets so that the spread of a plotted group shows between-model
    variability only (Cousineau 2005). Means are taken over the rows of ``df``, within each level
    of ``by`` (default: per metric).

    Returns
    -------
    Series, shape (n_rows,)
    """
    keys = [] if by is None else [by] if isinstance(by, str) else list(by)
    keys = [k for k in keys if k in df.columns]
    grand = df.groupby(keys)[value].transform("mean") if keys else df[value].mean()
    subj = df.groupby([*keys, subject])[value].transform("mean")
    return df[value] - subj + grand


def _prepare(
    df: pd.DataFrame, by: str, value: str, model: str, groups: list[str] | None
) -> pd.DataFrame:
    for column in (by, value, model):
        if column not in df.columns:
            raise ValueError(
                f"column {column!r} not in the score frame; columns: {list(df.columns)}"
            )
    out = df.dropna(subset=[by, value]).copy()
    out[by] = out[by].astype(str)
    if groups is not None:
        unknown = sorted(set(groups) - set(out[by]))
        if unknown:
            raise ValueError(
                f"groups {unknown} not found in {by!r}; levels: {sorted(set(out[by]))}"
            )
        out = out[out[by].isin(groups)]
    if out.empty:
        raise ValueError(f"no scores with a value in {by!r}")
    return out


def _model_means(df: pd.DataFrame, by: str, value: str, model: str) -> pd.DataFrame:
    return df.groupby([by, model], sort=True)[value].mean().reset_index()


def _percentile_ci(samples: np.ndarray, ci: float) -> tuple[float, float]:
    if samples.size == 0 or np.all(np.isnan(samples)):
        return np.nan, np.nan
    lo, hi = np.nanpercentile(samples, [50 * (1 - ci), 50 * (1 + ci)])
    return float(lo), float(hi)


def group_summary(
    df: pd.DataFrame,
    by: str,
    *,
    value: str = "score",
    model: str = "model_uid",
    subject: str = "subject",
    groups: list[str] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Per-group mean score with bootstrap CIs over models and over subjects.

    Parameters
    ----------
    df : DataFrame, shape (n_rows, ...)
        Tidy scores: one row per model (and subject, and metric).
    by : str
        Grouping column.
    value, model, subject : str
        Column names; ``subject`` may be absent (no subject bootstrap then).
    groups : list of str, optional
        Keep only these levels of ``by``.
    n_boot : int
    ci : float
        Coverage of the percentile intervals.
    seed : int
        Seeds the bootstrap (same seed, same intervals).

    Returns
    -------
    DataFrame
        One block per metric and ROI (:mod:`zooscope.analyses.cells`; never pooled): columns
        ``metric, roi, group, n_models, n_subjects, mean, sd, ci_low, ci_high,
        ci_subject_low, ci_subject_high``; ``ci_*`` resample models, ``ci_subject_*`` subjects.
    """
    df = _prepare(df, by, value, model, groups)
    rng = np.random.default_rng(seed)
    rows = []
    for key, sub in cells(df):
        for group, gdf in sub.groupby(by, sort=True):
            means = _model_means(gdf, by, value, model)[value].to_numpy()
            n = means.size
            boot = means[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
            ci_low, ci_high = _percentile_ci(boot, ci)
            s_low = s_high = np.nan
            n_subjects = gdf[subject].nunique() if subject in gdf.columns else 0
            if n_subjects > 1:
                table = gdf.pivot_table(index=model, columns=subject, values=value, aggfunc="mean")
                matrix = table.to_numpy()  # (n_models, n_subjects)
                draws = rng.integers(0, matrix.shape[1], size=(n_boot, matrix.shape[1]))
                # (n_boot, n_models): each model averaged over the drawn subjects
                per_model = np.nanmean(matrix[:, draws], axis=2).T
                s_low, s_high = _percentile_ci(np.nanmean(per_model, axis=1), ci)
            rows.append(
                {
                    **key,
                    "group": group,
                    "n_models": n,
                    "n_subjects": n_subjects,
                    "mean": means.mean(),
                    "sd": means.std(ddof=1) if n > 1 else np.nan,
                    "ci_low": ci_low,
                    "ci_high": ci_high,
                    "ci_subject_low": s_low,
                    "ci_subject_high": s_high,
                }
            )
    return pd.DataFrame(rows)


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's d of two samples with the pooled standard deviation.

    .. math:: d = (\\bar a - \\bar b) / \\sqrt{((n_a-1) s_a^2 + (n_b-1) s_b^2) / (n_a + n_b - 2)}
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 2 or b.size < 2:
        return np.nan
    pooled = ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2)
    return float((a.mean() - b.mean()) / np.sqrt(pooled)) if pooled > 0 else np.nan


def permutation_pvalue(
    a: np.ndarray, b: np.ndarray, n_perm: int, rng: np.random.Generator
) -> float:
    """Two-sided permutation p-value of the difference of means of ``a`` and ``b``.

    Returns ``(1 + #{|d*| >= |d|}) / (1 + n_perm)`` (never 0).
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    perms = rng.permuted(np.tile(pooled, (n_perm, 1)), axis=1)
    diffs = np.abs(perms[:, : a.size].mean(axis=1) - perms[:, a.size :].mean(axis=1))
    # tolerance: permutations that reproduce the observed split must count despite rounding
    extreme = np.count_nonzero(diffs >= observed - 1e-12 * max(1.0, observed))
    return (1 + extreme) / (1 + n_perm)


def pairwise_contrasts(
    df: pd.DataFrame,
    by: str,
    *,
    value: str = "score",
    model: str = "model_uid",
    groups: list[str] | None = None,
    n_boot: int = 1000,
    n_perm: int = 5000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Differences of group means for every pair of groups (model-level scores).

    Returns
    -------
    DataFrame
        Columns ``metric, roi, group_a, group_b, n_a, n_b, mean_a, mean_b, diff, ci_low,
        ci_high, cohen_d, p_perm, p_holm, p_fdr`` (Holm and Benjamini-Hochberg across the pairs
        of one metric and ROI).
    """
    from statsmodels.stats.multitest import multipletests

    df = _prepare(df, by, value, model, groups)
    rng = np.random.default_rng(seed)
    out = []
    for key, sub in cells(df):
        means = _model_means(sub, by, value, model)
        values = {g: v[value].to_numpy() for g, v in means.groupby(by, sort=True)}
        rows = []
        for a, b in itertools.combinations(sorted(values), 2):
            va, vb = values[a], values[b]
            boot = va[rng.integers(0, va.size, size=(n_boot, va.size))].mean(axis=1) - vb[
                rng.integers(0, vb.size, size=(n_boot, vb.size))
            ].mean(axis=1)
            ci_low, ci_high = _percentile_ci(boot, ci)
            rows.append(
                {
                    **key,
                    "group_a": a,
                    "group_b": b,
                    "n_a": va.size,
                    "n_b": vb.size,
                    "mean_a": va.mean(),
                    "mean_b": vb.mean(),
                    "diff": va.mean() - vb.mean(),
                    "ci_low": ci_low,
                    "ci_high": ci_high,
                    "cohen_d": cohens_d(va, vb),
                    "p_perm": permutation_pvalue(va, vb, n_perm, rng),
                }
            )
        if rows:
            p = np.array([r["p_perm"] for r in rows])
            holm = multipletests(p, method="holm")[1]
            fdr = multipletests(p, method="fdr_bh")[1]
            for r, h, f in zip(rows, holm, fdr, strict=True):
                r["p_holm"], r["p_fdr"] = float(h), float(f)
        out.extend(rows)
    return pd.DataFrame(out)


def _categorical(series: pd.Series, reference: str | None) -> pd.Categorical:
    levels = sorted(series.astype(str).unique())
    if reference is not None:
        if reference not in levels:
            raise ValueError(f"reference {reference!r} is not a level; levels: {levels}")
        levels.remove(reference)
        levels.insert(0, reference)
    # patsy takes the first category as the treatment reference
    return pd.Categorical(series.astype(str), categories=levels)


def _design(
    sub: pd.DataFrame, by: str, value: str, subject: str, reference: str | None
) -> tuple[pd.DataFrame, str]:
    """The model frame and fixed-effects formula ``score ~ C(group) [+ C(subject)]``.

    The subject term is left out when ``sub`` has a single subject level.
    """
    data = pd.DataFrame({"score": sub[value].astype(float).to_numpy()})
    data["group"] = _categorical(sub[by], reference)
    formula = "score ~ C(group)"
    if subject in sub.columns and sub[subject].nunique() > 1:
        data["subject"] = _categorical(sub[subject], None)
        formula += " + C(subject)"
    return data, formula


def _term_table(result: Any, by: str, alpha: float, fixed_effects: bool = False) -> pd.DataFrame:
    """The fixed-effect terms of a fitted statsmodels OLS (or, ``fixed_effects``, MixedLM) model."""
    conf = result.conf_int(alpha=alpha)
    names = result.model.exog_names
    params, bse = (
        (result.fe_params, result.bse_fe) if fixed_effects else (result.params, result.bse)
    )
    table = pd.DataFrame(
        {
            "term": [n.replace("C(group)", by).replace("C(subject)", "subject") for n in names],
            "estimate": params[names].to_numpy(),
            "se": bse[names].to_numpy(),
            "ci_low": conf.loc[names, 0].to_numpy(),
            "ci_high": conf.loc[names, 1].to_numpy(),
            "p_value": result.pvalues[names].to_numpy(),
        }
    )
    return table


def ols_contrast(
    df: pd.DataFrame,
    by: str,
    *,
    value: str = "score",
    subject: str = "subject",
    model: str = "model_uid",
    groups: list[str] | None = None,
    reference: str | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """OLS ``score ~ C(group) + C(subject)`` per metric (statsmodels).

    The subject term is dropped when the frame has a single subject level (e.g. published subject
    means). Treatment coding; ``reference`` is the baseline level (default: first sorted).

    Returns
    -------
    DataFrame
        Columns ``metric, roi, term, estimate, se, ci_low, ci_high, p_value`` (one fit per
        metric and ROI); terms are
        ``Intercept``, ``{by}[T.level]`` and ``subject[T.level]``.
    """
    import statsmodels.formula.api as smf

    df = _prepare(df, by, value, model, groups)
    out = []
    for key, sub in cells(df):
        data, formula = _design(sub, by, value, subject, reference)
        result = smf.ols(formula, data=data).fit()
        out.append(_term_table(result, by, alpha).assign(**key))
    return pd.concat(out, ignore_index=True)[[*keys_of(df), *_TERM_COLUMNS]]


def _mixed_terms(model: Any, by: str, alpha: float, where: str, pair: str):
    """The fixed-effect terms of a MixedLM fitted by REML; whether fitting it raised warnings.

    statsmodels' ConvergenceWarning and numpy's RuntimeWarning (while fitting, and while
    computing the standard errors) are caught here and summed up in one sentence by the
    caller; other warnings pass through. A fit that cannot be computed at all is a ValueError
    that says why.
    """
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            terms = _term_table(model.fit(reml=True), by, alpha, fixed_effects=True)
        except np.linalg.LinAlgError:
            raise ValueError(
                f"{where}: the mixed model cannot be fitted (its random effects are not "
                f"identifiable: too few {pair!r} pairs holding models of more than one group); "
                "use the ols or groups statistics model (--stats-model ols)"
            ) from None
    noisy = ("ConvergenceWarning", "RuntimeWarning", "HessianInversionWarning")
    ours = [w for w in caught if w.category.__name__ in noisy]
    for other in caught:
        if other not in ours:
            warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    return terms, bool(ours)


def _unreliable_fit(where: str, data: pd.DataFrame, terms: pd.DataFrame) -> str:
    """One sentence on a mixed model that did not converge: what it means, what to do."""
    n_pairs = data.groupby("pair")["group"].nunique().gt(1).sum()
    missing = int(terms["se"].isna().sum())
    se = (
        f"{missing} of {len(terms)} standard errors (and their CIs and p-values) are not available"
        if missing
        else "its standard errors, CIs and p-values are not trustworthy"
    )
    return (
        f"{where}: the mixed model did not converge ({n_pairs} pair(s) hold models of more "
        f"than one group, too few for its random effects): {se}; use the ols or groups "
        "statistics model (--stats-model ols)"
    )


def mixed_contrast(
    df: pd.DataFrame,
    by: str,
    pair: str,
    *,
    value: str = "score",
    subject: str = "subject",
    model: str = "model_uid",
    groups: list[str] | None = None,
    reference: str | None = None,
    random_slope: bool = True,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Linear mixed model ``score ~ C(group) [+ C(subject)] + (C(group) | pair)`` per metric.

    ``pair`` groups the models that share everything but ``by`` (e.g. the architecture ``name``
    of a trained model and its randomly initialised twin). With one observation per (pair, group)
    cell the random slope is not identifiable (it is confounded with the residual), so the model
    falls back to a random intercept and logs it. Fitted by REML with statsmodels ``MixedLM``.

    Returns
    -------
    DataFrame
        Columns ``metric, roi, term, estimate, se, ci_low, ci_high, p_value, random_effects``
        (fixed effects only; ``random_effects`` names the random-effects structure used).
    """
    import statsmodels.formula.api as smf

    df = _prepare(df, by, value, model, groups)
    if pair not in df.columns:
        raise ValueError(f"pair column {pair!r} not in the score frame")
    out = []
    for key, sub in cells(df):
        sub = sub.dropna(subset=[pair])
        data, formula = _design(sub, by, value, subject, reference)
        data["pair"] = sub[pair].astype(str).to_numpy()
        per_cell = data.groupby(["pair", "group"], observed=True).size()
        slope = random_slope and bool((per_cell > 1).all())
        if random_slope and not slope:
            logger.info("one observation per (pair, group): random intercept only for %s", key)
        re_formula = "~C(group)" if slope else "1"
        where = ", ".join(str(v) for v in key.values())
        model_ = smf.mixedlm(formula, data, groups=data["pair"], re_formula=re_formula)
        terms, troubled = _mixed_terms(model_, by, alpha, where, pair)
        if troubled or terms["se"].isna().any():
            logger.warning(_unreliable_fit(where, data, terms))
        out.append(terms.assign(**key, random_effects=f"({'group' if slope else '1'} | {pair})"))
    return pd.concat(out, ignore_index=True)[[*keys_of(df), *_TERM_COLUMNS, "random_effects"]]
