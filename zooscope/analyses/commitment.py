"""Region-to-layer commitment: each model's best layer per region x time bin, scored held out.

Brain-Score commits one layer of a model to each region on a commitment image set and reports
the region's score on held-out images. Here: the layer with the best subject-mean ``train`` score
(the commitment split; ties: the shallowest; NaN never wins) per model x region x time bin, and
that layer's subject-mean ``test`` score. Relative depth = the layer's position among the model's
scored layers, 0 (first) to 1 (last). Under the brainscore profile the ``train`` scores are the
commitment benchmark's ceiled scores and the ``test`` score is Brain-Score's raw score of the
target benchmark, pooled over subjects, with its ``error`` (:mod:`zooscope.neural.brainscore`).
"""

from __future__ import annotations

import pandas as pd

from zooscope.benchmark import split_region
from zooscope.metrics import get_metric
from zooscope.results.db import ResultsDB
from zooscope.results.summary import ceiled_score
from zooscope.rsa.selection import select_best_layers

__all__ = ["COMMITMENT_COLUMNS", "COMMITMENT_DISPLAY", "committed_layers", "display_columns"]

COMMITMENT_COLUMNS = [
    "model_uid", "display_name", "metric", "region", "time_bin", "roi", "layer_name",
    "layer_index", "relative_depth", "train_score", "test_score", "error", "ceiling", "ceiled",
    "profile", "benchmark_hash", "config_hash",
]  # fmt: skip

#: The columns a terminal shows of :func:`committed_layers` (``results summary``, the neural demo).
COMMITMENT_DISPLAY = [
    "model_uid", "profile", "region", "time_bin", "layer_name", "relative_depth", "test_score",
    "error", "ceiled",
]  # fmt: skip


def display_columns(committed: pd.DataFrame) -> list[str]:
    """:data:`COMMITMENT_DISPLAY`, without ``error`` when no row has one."""
    has_error = "error" in committed and committed["error"].notna().any()
    return [c for c in COMMITMENT_DISPLAY if c != "error" or has_error]


def committed_layers(
    db: ResultsDB,
    metric: str = "predictivity",
    benchmark_hash: str | None = None,
    profile: str | None = None,
) -> pd.DataFrame:
    """The committed layer of every model x region x time bin.

    Parameters
    ----------
    db : ResultsDB
    metric : str
        Score the commitment uses (default ``predictivity``).
    benchmark_hash : str, optional
        Only this benchmark.
    profile : str, optional
        Only results of this scoring profile.

    Returns
    -------
    DataFrame
        Columns :data:`COMMITMENT_COLUMNS`; ``ceiled`` = ``test_score**2 / ceiling`` for
        predictivity (``**2 / ceiling**2`` for the RSA metrics), ``ceiling`` the mean of the
        metric's ceiling over the subjects the model was scored on; ``error`` the subject mean of
        the test score's error (NaN where the metric gives none).
    """
    hashes = None if profile is None else db.profile_config_hashes(profile)
    scores = db.scores(metric=metric, benchmark_hash=benchmark_hash, config_hash=hashes)
    scores = scores[scores["layer_index"].notna()]
    if scores.empty:
        return pd.DataFrame(columns=COMMITMENT_COLUMNS)
    if "error" not in scores:
        scores = scores.assign(error=float("nan"))
    keys = ["model_uid", "benchmark_hash", "config_hash", "roi"]
    # Subject means first, then the one best-layer rule of the project.
    mean = (
        scores.groupby([*keys, "layer_index", "layer_name", "split"])["score"].mean().reset_index()
    )
    best = select_best_layers(mean, keys).rename(
        columns={"train_score": "train", "test_score": "test"}
    )
    layers = db.layers(benchmark_hash=benchmark_hash)
    layers = layers.assign(
        position=layers.groupby(["model_uid", "benchmark_hash", "config_hash"])["layer_index"].rank(
            method="first"
        ),
        n_layers=layers.groupby(["model_uid", "benchmark_hash", "config_hash"])[
            "layer_index"
        ].transform("size"),
    )
    layers["relative_depth"] = (layers["position"] - 1) / (layers["n_layers"] - 1).clip(lower=1)
    best = best.merge(
        layers[["model_uid", "benchmark_hash", "config_hash", "layer_index", "relative_depth"]],
        on=["model_uid", "benchmark_hash", "config_hash", "layer_index"],
        how="left",
    )
    ceiling_method = get_metric(metric).ceiling
    method = None if ceiling_method is None else ceiling_method.name
    ceilings = db.ceilings(benchmark_hash)
    ceilings = ceilings[ceilings["method"] == method]
    # The ceilings of the subjects each model was scored on (profiles may pool subjects).
    subjects = scores[[*keys, "subject"]].drop_duplicates()
    ceiling = (
        subjects.merge(ceilings[["benchmark_hash", "subject", "roi", "value"]], how="inner")
        .groupby(keys)["value"]
        .mean()
        .rename("ceiling")
    )
    best = best.join(ceiling, on=keys)
    tests = scores[scores["split"] == "test"]
    error = tests.groupby([*keys, "layer_index"])["error"].mean().rename("error")
    best = best.join(error, on=[*keys, "layer_index"])
    best["ceiled"] = ceiled_score(best["test"], best["ceiling"], method)
    regions = best["roi"].map(split_region)
    best["region"] = [r for r, _ in regions]
    best["time_bin"] = [t for _, t in regions]
    names = db.models(expand_metadata=False)[["model_uid", "display_name"]]
    best = best.merge(names, on="model_uid", how="left").rename(
        columns={"train": "train_score", "test": "test_score"}
    )
    best["metric"] = metric
    best = best.merge(db.config_profiles(), on="config_hash", how="left")
    best["profile"] = best["profile"].fillna("default")
    best["layer_index"] = best["layer_index"].astype("Int64")
    return best[COMMITMENT_COLUMNS].sort_values(["model_uid", "roi"]).reset_index(drop=True)
