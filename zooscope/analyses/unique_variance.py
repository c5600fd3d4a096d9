r"""Unique variance: what one model's predictions explain in each unit beyond another model's.

For a unit with measured test responses :math:`y` and the held-out predictions
:math:`\hat y_A`, :math:`\hat y_B` of models A and B (each from its best layer, stored by the
survey; :mod:`zooscope.pipeline.predictions`):

- ``r_model`` :math:`= r(y, \hat y_A)`, ``r_control`` :math:`= r(y, \hat y_B)`;
- ``partial_model`` :math:`= r(y, \hat y_A \mid \hat y_B)`: A's unique contribution
  (:func:`zooscope.rsa.partial_correlation`), ``partial_control`` the converse.

A model explains neural variance that the control does not where ``partial_model`` is above 0;
a control from the same family as A (e.g. another ImageNet-trained network) gives the baseline
of how much "unique" variance two merely different networks have.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from zooscope.benchmark import split_region
from zooscope.rsa.partial import partial_correlation
from zooscope.rsa.rsm import pearson_columns

if TYPE_CHECKING:
    from zooscope.results.db import ResultsDB

logger = logging.getLogger(__name__)

__all__ = ["summarize_unique_variance", "unique_variance", "unique_variance_units"]

#: Columns that identify a unit group (``time_bin`` when the benchmark has time bins).
GROUP_KEYS = ("subject", "roi", "time_bin")


def unique_variance_units(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> pd.DataFrame:
    """Per-unit correlations and partial correlations of two models' predictions.

    Parameters
    ----------
    y : ndarray, shape (n_images, n_units)
        Measured responses.
    a, b : ndarray, shape (n_images, n_units)
        Predictions of the model and of the control.

    Returns
    -------
    DataFrame, shape (n_units, 5)
        ``unit, r_model, r_control, partial_model, partial_control``.
    """
    y, a, b = (np.asarray(v, dtype=np.float64) for v in (y, a, b))
    if not (y.shape == a.shape == b.shape) or y.ndim != 2:
        raise ValueError(
            f"responses and predictions must share one 2-D shape, got {y.shape}, {a.shape}, "
            f"{b.shape}"
        )
    return pd.DataFrame(
        {
            "unit": np.arange(y.shape[1]),
            "r_model": pearson_columns(a, y),
            "r_control": pearson_columns(b, y),
            "partial_model": partial_correlation(y, a, b),
            "partial_control": partial_correlation(y, b, a),
        }
    )


def _one_run(table: pd.DataFrame, what: str, benchmark_hash: str | None, config_hash: str | None):
    """The single (benchmark_hash, config_hash) of ``table`` after the given filters."""
    if benchmark_hash is not None:
        table = table[table["benchmark_hash"] == benchmark_hash]
    if config_hash is not None:
        table = table[table["config_hash"] == config_hash]
    runs = table[["benchmark_hash", "config_hash"]].drop_duplicates()
    if len(runs) == 0:
        raise ValueError(
            f"no stored unit predictions for {what}; score it with predictions kept "
            "(RunOptions(keep_predictions=True), the default)"
        )
    if len(runs) > 1:
        raise ValueError(
            f"{what} has unit predictions for several (benchmark_hash, config_hash): "
            f"{runs.to_records(index=False).tolist()}; choose one"
        )
    return table, runs.iloc[0]["benchmark_hash"], runs.iloc[0]["config_hash"]


def unique_variance(
    db: ResultsDB,
    model: str,
    controls: str | Sequence[str],
    *,
    metric: str = "encoding_r",
    benchmark_hash: str | None = None,
    config_hash: str | None = None,
) -> pd.DataFrame:
    """Per-unit unique variance of ``model`` against each control, from stored predictions.

    Parameters
    ----------
    db : ResultsDB
        With unit predictions and responses (a survey keeps them by default).
    model : str
        ``model_uid`` of model A.
    controls : str or sequence of str
        ``model_uid`` of each control B; each is analysed separately.
    metric : str
        Whose best layer's predictions to use (``encoding_r``: the layer that predicts units
        best on the training images; ``versa``: the veRSA-selected layer; ``predictivity``: the
        committed layer, its regression fit on the commitment images predicting held-out ones).
    benchmark_hash, config_hash : str, optional
        Needed only when the models were scored more than once.

    Returns
    -------
    DataFrame
        One row per control, unit group and unit: ``control, subject, roi[, time_bin], unit,
        r_model, r_control, partial_model, partial_control, layer_model, layer_control``. On a
        benchmark with time bins, ``roi`` is the region and ``time_bin`` the bin (the stored
        group label ``"IT|70-170"`` split by :func:`zooscope.benchmark.split_region`).
    """
    controls = [controls] if isinstance(controls, str) else list(controls)
    if not controls:
        raise ValueError("name at least one control model")
    wanted = db.unit_predictions(model_uid=[model, *controls], metric=metric, split="test")
    frames = {}
    for uid in [model, *controls]:
        table, bench, config = _one_run(
            wanted[wanted["model_uid"] == uid], f"{uid!r} ({metric})", benchmark_hash, config_hash
        )
        benchmark_hash, config_hash = bench, config  # every model must match the first
        frames[uid] = table
    keys = [k for k in GROUP_KEYS if k in wanted.columns]
    responses = db.unit_responses(benchmark_hash=benchmark_hash, split="test")
    if responses.empty:
        raise ValueError(f"no stored test responses for benchmark {benchmark_hash}")
    measured = {tuple(r[k] for k in keys): r["response"] for _, r in responses.iterrows()}
    target = frames[model].set_index(keys)
    out = []
    for control in controls:
        other = frames[control].set_index(keys)
        shared = target.index.intersection(other.index)
        missing = target.index.difference(other.index).tolist()
        if missing:
            logger.warning("%s has no predictions for groups %s; left out", control, missing)
        for key in shared:
            key_t = key if isinstance(key, tuple) else (key,)
            if key_t not in measured:
                raise ValueError(f"no stored test responses for group {key_t}")
            units = unique_variance_units(
                measured[key_t], target.loc[key, "prediction"], other.loc[key, "prediction"]
            )
            for k, v in zip(keys, key_t, strict=True):
                units[k] = v
            units["control"] = control
            units["layer_model"] = target.loc[key, "layer_name"]
            units["layer_control"] = other.loc[key, "layer_name"]
            out.append(units)
    columns = ["control", *keys, "unit", "r_model", "r_control", "partial_model",
               "partial_control", "layer_model", "layer_control"]  # fmt: skip
    if not out:
        return pd.DataFrame(columns=columns)
    return _split_time_bins(pd.concat(out, ignore_index=True)[columns])


def _split_time_bins(units: pd.DataFrame) -> pd.DataFrame:
    """``roi`` "IT|70-170" -> ``roi`` "IT" and ``time_bin`` "70-170" when any group has a time bin."""
    if "roi" not in units.columns or "time_bin" in units.columns:
        return units
    parts = units["roi"].map(split_region)
    if parts.map(lambda p: p[1] is None).all():
        return units
    units = units.copy()
    units["roi"] = [region for region, _ in parts]
    units.insert(units.columns.get_loc("roi") + 1, "time_bin", [t for _, t in parts])
    return units


def summarize_unique_variance(units: pd.DataFrame) -> pd.DataFrame:
    """Medians per control and unit group, and paired tests across units.

    ``p_partial`` is the two-sided Wilcoxon signed-rank test of ``partial_model`` against 0
    (does the model explain variance the control does not?); ``p_model_vs_control`` pairs
    ``partial_model`` with ``partial_control`` per unit (does the model explain more unique
    variance than the control?). Units with a NaN value are left out.

    Returns
    -------
    DataFrame
        ``control, subject, roi[, time_bin], n_units, median_r_model, median_r_control,
        median_partial_model, median_partial_control, p_partial, p_model_vs_control``.
    """
    keys = ["control", *[k for k in GROUP_KEYS if k in units.columns]]
    values = ["r_model", "r_control", "partial_model", "partial_control"]
    rows = []
    for key, sub in units.groupby(keys, sort=True, dropna=False):
        sub = sub.dropna(subset=values)
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        row["n_units"] = len(sub)
        for v in values:
            row[f"median_{v}"] = float(sub[v].median()) if len(sub) else np.nan
        a, b = sub["partial_model"].to_numpy(), sub["partial_control"].to_numpy()
        row["p_partial"] = float(stats.wilcoxon(a).pvalue) if np.any(a != 0) else np.nan
        row["p_model_vs_control"] = float(stats.wilcoxon(a, b).pvalue) if np.any(a != b) else np.nan
        rows.append(row)
    columns = [
        *keys,
        "n_units",
        *[f"median_{v}" for v in values],
        "p_partial",
        "p_model_vs_control",
    ]
    return pd.DataFrame(rows, columns=columns)
