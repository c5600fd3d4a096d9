"""Import published score tables into a :class:`~zooscope.results.db.ResultsDB`.

Published tables give test scores without layers, so they are written as ``scores`` rows with
``layer_index`` NULL and ``split = 'test'`` (see :mod:`zooscope.results.db`): the same tables the
survey writes, so every analysis runs on both.

Conwell et al. (2024) source data (``import_conwell2024``):

- ``results_summary.csv``: one row per model and metric, the subject-mean best-layer test score;
  stored under subject :data:`~zooscope.results.db.SUBJECT_MEAN`. Metric ``wrsa`` becomes
  ``versa`` and ``srpr`` becomes ``encoding_r``. Every other column goes to ``models`` (the
  ``compare_*`` contrast columns into its metadata).
- ``figure_data/Figure2.csv``, ``Figure3.csv``, ``Figure4A.csv``, ``Figure4B.csv``: per-subject
  scores (subjects ``"1"``, ``"2"``, ``"5"``, ``"7"``) of the models in those figures; the import
  checks that their subject means equal ``results_summary.csv`` and that figures agree where they
  share a model. Figures 4A/4B publish within-subject normalized scores (``score - subj_mean +
  grand_mean``, as plotted); the import undoes the normalization.
- ``noise_ceilings.csv``: 5 simulated GSN RSA noise ceilings per subject, stored as method
  ``gsn_rsa`` with ``value`` = their mean and ``lower``/``upper`` = their min/max.
- ``model_statistics/``: ImageNet top-1 (``imagenet_top1``) and effective dimensionality
  (``effective_dim``, the random-projection variant that Figure 5B plots) into model metadata.
- ``model_uber_rsa.csv`` (model-to-model correlations) is read by
  :func:`load_conwell_model_similarity` for the similarity analysis.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zooscope.metrics import GSN_RSA, metric_names
from zooscope.results.db import SUBJECT_MEAN, ResultsDB

logger = logging.getLogger(__name__)

#: Conwell et al.'s metric names -> zooscope's.
CONWELL_METRICS = {"crsa": "crsa", "wrsa": "versa", "srpr": "encoding_r"}
#: Benchmark key of the published NSD shared-1000 OTC scores.
CONWELL_BENCHMARK = "conwell2024-nsd-shared1000-otc"
CONWELL_ROI = "OTC"
#: The ``profile`` of imported scores: computed by their authors, not by a zooscope profile.
PUBLISHED_PROFILE = "published"
_SCORE_COLUMNS = ["layer_index", "layer_name", "subject", "roi", "metric", "split", "score"]


def _read(directory: Path, name: str) -> pd.DataFrame:
    path = directory / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: pass the folder of Conwell et al.'s source data "
            "(it holds results_summary.csv, figure_data/, model_statistics/, ...)"
        )
    return pd.read_csv(path)


def _alias_map(summary: pd.DataFrame) -> dict[str, str]:
    """Names other Conwell tables use for a model -> its ``model_string``.

    Most tables use ``model_string``; a few (the IPCL models) use the bare ``model`` column.
    Only unambiguous aliases are kept.
    """
    models = summary[["model", "model_string"]].drop_duplicates()
    counts = models["model"].value_counts()
    known = set(models["model_string"])
    return {
        m: s
        for m, s in zip(models["model"], models["model_string"], strict=True)
        if counts[m] == 1 and m not in known
    }


def _resolve(names: pd.Series, known: set[str], aliases: dict[str, str]) -> pd.Series:
    return names.map(lambda n: n if n in known else aliases.get(n))


# One mapping per per-subject figure: its rows -> model_string (checked against the summary).
def _fig2(df: pd.DataFrame, summary: pd.DataFrame) -> pd.Series:
    return df["architecture"] + "_classification"


def _fig3(df: pd.DataFrame, summary: pd.DataFrame) -> pd.Series:
    return df["model"] + "_" + df["train_task"]


def _fig4a(df: pd.DataFrame, summary: pd.DataFrame) -> pd.Series:
    # Rows carry the ImageNet-1K twin's display name; both twins share the `architecture` column.
    diet = {"ImageNet1K": "imagenet", "ImageNet21K": "imagenet21k"}
    keys = summary.dropna(subset=["compare_diet_imagenetsize"]).drop_duplicates("model_string")
    one_k = keys[keys["compare_diet_imagenetsize"] == "imagenet"]
    arch_of = dict(zip(one_k["display_name"], one_k["architecture"], strict=True))
    lookup = {
        (a, d): s
        for a, d, s in zip(
            keys["architecture"],
            keys["compare_diet_imagenetsize"],
            keys["model_string"],
            strict=True,
        )
    }
    return pd.Series(
        [
            lookup.get((arch_of.get(n), diet.get(c)))
            for n, c in zip(df["display_name"], df["contrast"], strict=True)
        ],
        index=df.index,
    )


def _fig4b(df: pd.DataFrame, summary: pd.DataFrame) -> pd.Series:
    keys = summary.dropna(subset=["compare_diet_ipcl"]).drop_duplicates("model_string")
    return df["contrast"].map(
        dict(zip(keys["compare_diet_ipcl"], keys["model_string"], strict=True))
    )


_FIGURES: dict[str, Callable[[pd.DataFrame, pd.DataFrame], pd.Series]] = {
    "Figure2.csv": _fig2,
    "Figure3.csv": _fig3,
    "Figure4A.csv": _fig4a,
    "Figure4B.csv": _fig4b,
}


def conwell_per_subject_scores(directory: str | Path) -> pd.DataFrame:
    """Per-subject scores behind Conwell et al.'s Figures 2-4, in zooscope's vocabulary.

    Parameters
    ----------
    directory : str or Path
        The Conwell source-data folder.

    Returns
    -------
    DataFrame
        Columns ``model_uid, subject, metric, score, figure``; one row per model, subject and
        metric (a model in several figures appears once; the figures agree to 1e-12).
    """
    directory = Path(directory)
    summary = _read(directory, "results_summary.csv")
    known = set(summary["model_string"])
    frames = []
    for name, mapping in _FIGURES.items():
        fig = _read(directory / "figure_data", name)
        uid = mapping(fig, summary)
        missing = fig.loc[uid.isna() | ~uid.isin(known)]
        if len(missing):
            raise ValueError(
                f"{name}: rows not matched to a model of results_summary.csv:\n{missing.head()}"
            )
        score = fig["score"].astype(float)
        if {"grand_mean", "subj_mean"} <= set(fig.columns):
            # Figures 4A/4B publish the plotted, within-subject normalized score
            # (score - subject mean + grand mean); undo it to get the raw score.
            score = score - fig["grand_mean"] + fig["subj_mean"]
        frames.append(
            pd.DataFrame(
                {
                    "model_uid": uid,
                    "subject": fig["subj_id"].astype(str),
                    "metric": fig["metric"].str.lower().map(CONWELL_METRICS),
                    "score": score,
                    "figure": name.removesuffix(".csv"),
                }
            )
        )
    scores = pd.concat(frames, ignore_index=True)
    spread = scores.groupby(["model_uid", "subject", "metric"])["score"].agg(np.ptp)
    if (spread > 1e-9).any():
        raise ValueError(f"figures disagree on per-subject scores:\n{spread[spread > 1e-9].head()}")
    scores = scores.drop_duplicates(["model_uid", "subject", "metric"]).reset_index(drop=True)
    # The per-subject rows must average to the published summary: a wrong mapping shows here.
    published = summary.assign(metric=summary["metric"].map(CONWELL_METRICS)).set_index(
        ["model_string", "metric"]
    )["score"]
    means = scores.groupby(["model_uid", "metric"])["score"].mean()
    diff = (means - published.reindex(means.index).to_numpy()).abs()
    if not (diff < 1e-9).all():
        raise ValueError(
            f"per-subject means differ from results_summary.csv:\n{diff[diff >= 1e-9]}"
        )
    return scores


def conwell_models(directory: str | Path) -> pd.DataFrame:
    """One row per model of ``results_summary.csv`` in the ``models`` vocabulary.

    Returns
    -------
    DataFrame
        Columns ``model_uid, source, name, display_name, arch_class, task, task_cluster,
        train_data, model_string, param_count, training`` plus the remaining summary columns
        (``compare_*``, ``architecture``, ``model_depth``, ...), ``imagenet_top1`` and
        ``effective_dim`` (NaN where not published).
    """
    directory = Path(directory)
    summary = _read(directory, "results_summary.csv")
    known = set(summary["model_string"])
    aliases = _alias_map(summary)
    models = summary.drop(columns=["metric", "score"]).drop_duplicates("model_string")
    if len(models) != summary["model_string"].nunique():
        raise ValueError("results_summary.csv has conflicting model columns across metrics")
    models = models.rename(
        columns={
            "model_string": "model_uid",
            "model": "name",
            "model_class": "arch_class",
            "train_task": "task",
            "total_parameter_count": "param_count",
        }
    )
    models["model_string"] = models["model_uid"]
    models["training"] = np.where(models["task"] == "random", "random", "trained")
    contrasts = _read(directory, "model_contrasts.csv").drop_duplicates("model_string")
    contrasts = contrasts.set_index("model_string")[["model_source", "task_cluster"]]
    models = models.join(contrasts.rename(columns={"model_source": "source"}), on="model_uid")
    stats = directory / "model_statistics"
    top1 = _read(stats, "imagenet1k.csv")
    top1["model_uid"] = _resolve(top1["model_string"], known, aliases)
    models = models.merge(
        top1.dropna(subset=["model_uid"])[["model_uid", "imagnet1k_top1"]].rename(
            columns={"imagnet1k_top1": "imagenet_top1"}
        ),
        on="model_uid",
        how="left",
    )
    dims = _read(stats, "dimensionality.csv")
    dims = dims[dims["random_projection"].astype(str) == "True"]
    dims = dims.assign(model_uid=_resolve(dims["model_string"], known, aliases)).dropna(
        subset=["model_uid"]
    )
    models = models.merge(
        dims[["model_uid", "effective_dimensions", "model_layer"]].rename(
            columns={"effective_dimensions": "effective_dim", "model_layer": "effective_dim_layer"}
        ),
        on="model_uid",
        how="left",
    )
    return models.reset_index(drop=True)


def conwell_ceilings(directory: str | Path) -> pd.DataFrame:
    """Conwell's OTC RSA noise ceilings: mean (``value``), min and max of the 5 simulations.

    Returns
    -------
    DataFrame
        Columns ``subject, roi, method, value, lower, upper``; one row per subject.
    """
    raw = _read(Path(directory), "noise_ceilings.csv")
    agg = raw.groupby("subj_id")["value"].agg(["mean", "min", "max"]).reset_index()
    return pd.DataFrame(
        {
            "subject": agg["subj_id"].astype(str),
            "roi": CONWELL_ROI,
            "method": GSN_RSA.name,
            "value": agg["mean"],
            "lower": agg["min"],
            "upper": agg["max"],
        }
    )


def load_conwell_model_similarity(directory: str | Path, metric: str) -> pd.DataFrame:
    """Conwell's published model-to-model correlations as long pairs.

    Parameters
    ----------
    directory : str or Path
    metric : {"crsa", "versa"}

    Returns
    -------
    DataFrame
        Columns ``model_a, model_b, similarity``; each unordered pair once, no diagonal.
    """
    inverse = {v: k for k, v in CONWELL_METRICS.items()}
    if metric not in ("crsa", "versa"):
        raise ValueError(f"published model similarity exists for crsa and versa, not {metric!r}")
    raw = _read(Path(directory), "model_uber_rsa.csv")
    raw = raw[raw["metric"] == inverse[metric]]
    return pd.DataFrame(
        {"model_a": raw["var1"], "model_b": raw["var2"], "similarity": raw["correlation"]}
    ).reset_index(drop=True)


def _published_scores(frame: pd.DataFrame, roi: str) -> pd.DataFrame:
    """Tidy (subject, metric, score) rows -> the ``scores`` frame of ``write_model``."""
    return pd.DataFrame(
        {
            "layer_index": pd.array([None] * len(frame), dtype="Int64"),
            "layer_name": [None] * len(frame),
            "subject": frame["subject"].astype(str).to_numpy(),
            "roi": roi,
            "metric": frame["metric"].to_numpy(),
            "split": "test",
            "score": frame["score"].astype(float).to_numpy(),
        },
        columns=_SCORE_COLUMNS,
    )


def _write_models(
    db: ResultsDB,
    run_id: str,
    models: pd.DataFrame,
    scores: pd.DataFrame,
    roi: str,
) -> int:
    by_model = dict(tuple(scores.groupby("model_uid", sort=False)))
    n = 0
    for record in models.to_dict("records"):
        uid = record["model_uid"]
        rows = by_model.get(uid)
        if rows is None:
            continue
        model: dict[str, Any] = {k: v for k, v in record.items() if not _isna(v)}
        db.write_model(run_id, model, None, _published_scores(rows, roi), None, 0.0)
        n += 1
    return n


def _isna(value: Any) -> bool:
    return value is None or (np.ndim(value) == 0 and bool(pd.isna(value)))


def import_conwell2024(db: ResultsDB, directory: str | Path) -> dict[str, int]:
    """Load Conwell et al.'s published scores, models and ceilings into ``db``.

    Parameters
    ----------
    db : ResultsDB
    directory : str or Path
        The source-data folder (``results_summary.csv``, ``figure_data/``, ...).

    Returns
    -------
    counts : dict
        ``models``, ``scores`` (rows written) and ``ceilings``.
    """
    directory = Path(directory)
    summary = _read(directory, "results_summary.csv")
    unknown = set(summary["metric"]) - set(CONWELL_METRICS)
    if unknown:
        raise ValueError(f"results_summary.csv has unknown metrics {sorted(unknown)}")
    models = conwell_models(directory)
    mean_rows = pd.DataFrame(
        {
            "model_uid": summary["model_string"],
            "subject": SUBJECT_MEAN,
            "metric": summary["metric"].map(CONWELL_METRICS),
            "score": summary["score"],
        }
    )
    per_subject = conwell_per_subject_scores(directory)[["model_uid", "subject", "metric", "score"]]
    scores = pd.concat([mean_rows, per_subject], ignore_index=True)
    # "published": computed by the authors, not by a zooscope profile (the summary says so)
    config = {"source": "conwell2024", "scores": "published", "roi": CONWELL_ROI,
              "profile": PUBLISHED_PROFILE}  # fmt: skip
    run_id = db.start_run(
        CONWELL_BENCHMARK, config, manifest=str(directory / "results_summary.csv")
    )
    n_models = _write_models(db, run_id, models, scores, CONWELL_ROI)
    ceilings = conwell_ceilings(directory)
    db.write_ceilings(CONWELL_BENCHMARK, ceilings)
    db.finish_run(run_id)
    logger.info("imported %d Conwell 2024 models (%d score rows)", n_models, len(scores))
    return {"models": n_models, "scores": len(scores), "ceilings": len(ceilings)}


def import_scores_table(
    db: ResultsDB,
    table: pd.DataFrame,
    *,
    benchmark: str,
    model_col: str = "model_uid",
    score_col: str = "score",
    metric_col: str | None = "metric",
    metric: str | None = None,
    subject_col: str | None = None,
    roi: str = "all",
    metric_map: dict[str, str] | None = None,
    source: str = "csv",
) -> dict[str, int]:
    """Import a generic table of published test scores (one row per model, metric[, subject]).

    Columns other than the model, metric, subject and score columns that are constant within a
    model become model columns (``display_name``, ``arch_class``, ... or metadata); the rest is
    dropped with a log message.

    Parameters
    ----------
    db : ResultsDB
    table : DataFrame
    benchmark : str
        Benchmark key the scores belong to (e.g. ``"myclaim-2023-it"``).
    model_col, score_col : str
        Columns holding the model id and the score.
    metric_col : str or None
        Column holding the metric; give ``metric`` instead when the whole table is one metric.
    subject_col : str or None
        Column holding the subject; None means the scores are subject means.
    roi : str
        ROI label stored with every score.
    metric_map : dict, optional
        Renames metric values (e.g. ``{"wrsa": "versa"}``) before validation.
    source : str
        Recorded in the run's config.

    Returns
    -------
    counts : dict
        ``models`` and ``scores`` written.
    """
    if (metric_col is None) == (metric is None):
        raise ValueError("give exactly one of metric_col (a column) or metric (one value)")
    for column in (model_col, score_col, metric_col, subject_col):
        if column is not None and column not in table.columns:
            raise ValueError(f"column {column!r} not in the table; columns: {list(table.columns)}")
    metrics = table[metric_col] if metric_col else pd.Series(metric, index=table.index)
    metrics = metrics.map(lambda m: (metric_map or {}).get(m, m))
    bad = sorted(set(metrics) - set(metric_names()))
    if bad:
        raise ValueError(
            f"unknown metrics {bad}; map them with metric_map to one of {list(metric_names())}"
        )
    scores = pd.DataFrame(
        {
            "model_uid": table[model_col].astype(str),
            "subject": table[subject_col].astype(str) if subject_col else SUBJECT_MEAN,
            "metric": metrics,
            "score": table[score_col],
        }
    )
    key_columns = {model_col, score_col, metric_col, subject_col} - {None}
    rest = table.drop(columns=list(key_columns)).assign(model_uid=scores["model_uid"])
    constant = [
        c
        for c in rest.columns
        if c != "model_uid" and (rest.groupby("model_uid")[c].nunique(dropna=False) <= 1).all()
    ]
    dropped = sorted(set(rest.columns) - set(constant) - {"model_uid"})
    if dropped:
        logger.info("columns varying within a model are not stored as model columns: %s", dropped)
    models = rest[["model_uid", *constant]].drop_duplicates("model_uid")
    config = {"source": source, "scores": "published", "roi": roi, "profile": PUBLISHED_PROFILE}
    run_id = db.start_run(benchmark, config)
    n_models = _write_models(db, run_id, models, scores, roi)
    db.finish_run(run_id)
    return {"models": n_models, "scores": len(scores)}
