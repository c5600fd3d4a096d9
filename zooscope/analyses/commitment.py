"""Region-to-layer commitment: each model's best layer per region x time bin, scored held out.

Brain-Score commits one layer of a model to each region on a commitment image set and reports
the region's score on held-out images. Here: the layer with the best subject-mean ``train`` score
(the commitment split; ties: the shallowest; NaN never wins) per model x region x time bin, and
that layer's subject-mean ``test`` score. Relative depth = the layer's position among the model's
scored layers, 0 (first) to 1 (last).
"""

from __future__ import annotations

import pandas as pd

from zooscope.benchmark import split_region
from zooscope.metrics import get_metric
from zooscope.results.db import ResultsDB
from zooscope.results.summary import ceiled_score
from zooscope.rsa.selection import select_best_layers

__all__ = ["COMMITMENT_COLUMNS", "COMMITMENT_DISPLAY", "committed_layers"]

COMMITMENT_COLUMNS = [
    "model_uid", "display_name", "metric", "region", "time_bin", "roi", "layer_name",
    "layer_index", "relative_depth", "train_score", "test_score", "ceiling", "ceiled",
    "benchmark_hash", "config_hash",
]  # fmt: skip

#: The columns a terminal shows of :func:`committed_layers` (``results summary``, the neural demo).
COMMITMENT_DISPLAY = [
    "model_uid", "region", "time_bin", "layer_name", "relative_depth", "test_score", "ceiled",
]  # fmt: skip


def committed_layers(
    db: ResultsDB, metric: str = "predictivity", benchmark_hash: str | None = None
) -> pd.DataFrame:
    """The committed layer of every model x region x time bin.

    Parameters
    ----------
    db : ResultsDB
    metric : str
        Score the commitment uses (default ``predictivity``).
    benchmark_hash : str, optional
        Only this benchmark.

    Returns
    -------
    DataFrame
        Columns :data:`COMMITMENT_COLUMNS`; ``ceiled`` = ``test_score**2 / ceiling`` for
        predictivity (``**2 / ceiling**2`` for the RSA metrics), ``ceiling`` the subject mean of the
        metric's ceiling on the benchmark.
    """
    scores = db.scores(metric=metric, benchmark_hash=benchmark_hash)
    scores = scores[scores["layer_index"].notna()]
    if scores.empty:
        return pd.DataFrame(columns=COMMITMENT_COLUMNS)
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
    ceiling = ceilings.groupby(["benchmark_hash", "roi"])["value"].mean().rename("ceiling")
    best = best.join(ceiling, on=["benchmark_hash", "roi"])
    best["ceiled"] = ceiled_score(best["test"], best["ceiling"], method)
    regions = best["roi"].map(split_region)
    best["region"] = [r for r, _ in regions]
    best["time_bin"] = [t for _, t in regions]
    names = db.models(expand_metadata=False)[["model_uid", "display_name"]]
    best = best.merge(names, on="model_uid", how="left").rename(
        columns={"train": "train_score", "test": "test_score"}
    )
    best["metric"] = metric
    best["layer_index"] = best["layer_index"].astype("Int64")
    return best[COMMITMENT_COLUMNS].sort_values(["model_uid", "roi"]).reset_index(drop=True)
