"""The report's layer-by-layer CKA section, from the Gram store next to the database.

Shown when the store (:mod:`zooscope.results.grams`, filled by ``zooscope survey --keep-grams``
and by ``zooscope demo``) holds at least two of the report's models on one benchmark: debiased
linear CKA (:mod:`zooscope.analyses.layer_cka`) against relative depth for model pairs, mean ± s.e.m.
across the pairs of one contrast (e.g. trained vs random twins matched by architecture), and a
model x model CKA heatmap at each model's committed layer (best train score on the report's ROI).
"""

from __future__ import annotations

import html
import itertools
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from zooscope.analyses import layer_cka
from zooscope.analyses.commitment import committed_layers
from zooscope.report import plots
from zooscope.report.elements import figure_html, table_html
from zooscope.results.db import ResultsDB
from zooscope.results.grams import GramStore, grams_path

logger = logging.getLogger(__name__)

__all__ = ["cka_section"]

#: Pairs drawn when no contrast matches models: the top model against the next ones.
MAX_PAIRS = 5
#: Metrics whose best layer is a model's committed layer, in order of preference.
COMMIT_METRICS = ("predictivity", "encoding_r", "versa", "crsa")


def _pairs(scores: pd.DataFrame, stored: list[str], spec: Any) -> list[tuple[str, str, str]]:
    """``(model_a, model_b, group)``: the contrast's matched pairs, else the top model's pairs."""
    models = scores.drop_duplicates("model_uid").set_index("model_uid")
    models = models[models.index.isin(stored)]
    if spec is not None and spec[0] is not None and {spec[0], spec[1]} <= set(models.columns):
        pair_by, column, (a, b) = spec
        out = []
        for _, sub in models.dropna(subset=[pair_by]).groupby(pair_by, sort=True):
            level = sub[column].astype(str)
            for left, right in itertools.product(sub.index[level == a], sub.index[level == b]):
                out.append((left, right, f"{a} vs {b} ({column}, by {pair_by})"))
        if out:
            return out
    ranked = scores[scores["model_uid"].isin(stored)].sort_values("score", ascending=False)
    order = list(dict.fromkeys(ranked["model_uid"]))
    return [(order[0], other, f"{order[0]} vs others") for other in order[1 : MAX_PAIRS + 1]]


def cka_section(
    db: ResultsDB, scores: pd.DataFrame, figdir: Path, roi: str, spec: Any = None
) -> str:
    """The ``<h2>`` section, or ``""`` when fewer than two of the models have stored Grams.

    Parameters
    ----------
    db : ResultsDB
    scores : DataFrame
        Model-level scores of the report's ROI with the model columns.
    figdir : Path
    roi : str
    spec : tuple, optional
        ``(pair_by, column, (a, b))`` of the report's contrast
        (:func:`zooscope.report.comparisons.auto_contrast`).
    """
    store = GramStore(grams_path(db.path))
    reported = set(scores["model_uid"])
    candidates = {b: [m for m in ms if m in reported] for b, ms in store.models().items()}
    if not candidates:
        return ""
    bench, stored = max(candidates.items(), key=lambda kv: (len(kv[1]), kv[0]))
    if len(stored) < 2:
        return ""
    metric = next((m for m in COMMIT_METRICS if m in set(scores["metric"])), None)
    ranked = scores if metric is None else scores[scores["metric"] == metric]
    pairs = _pairs(ranked, stored, spec)
    names = db.models(expand_metadata=False).set_index("model_uid")["display_name"].to_dict()
    curves = []
    for a, b, group in pairs:
        table = layer_cka.layer_cka(store, a, b, bench)
        pair = f"{names.get(a) or a} vs {names.get(b) or b}"
        curves.append(table.assign(pair=pair, group=group.replace(a, names.get(a) or a)))
    curves = pd.concat(curves, ignore_index=True)
    several = curves.groupby("group")["pair"].nunique().max() > 1  # an s.e.m. needs 2 pairs
    plotted = curves.rename(columns={"depth_a": "depth", "cka": "cka_biased"})
    plotted = plotted.rename(columns={"cka_debiased": "cka"})
    paths = plots.plot_layer_cka(
        plotted,
        figdir / "layer_cka",
        title="Layer-by-layer debiased CKA"
        + (" (mean ± s.e.m. over pairs)" if several else f", {curves['pair'].iloc[0]}"),
    )
    per_pair = curves.groupby(["group", "pair"], sort=False)["cka_debiased"]
    summary = per_pair.agg(layers="size", first="first", last="last", mean="mean").reset_index()
    body = [
        figure_html(paths, "Debiased linear CKA against relative depth"),
        table_html(summary, "{:.3f}"),
    ]
    committed = pd.DataFrame()
    if metric is not None:
        committed = committed_layers(db, metric=metric, benchmark_hash=bench)
        committed = committed[committed["roi"] == roi].drop_duplicates("model_uid")
    layers = dict(zip(committed.get("model_uid", []), committed.get("layer_name", []), strict=True))
    heat_models = [m for m in stored if m in layers]
    if len(heat_models) >= 2:
        try:
            matrix = layer_cka.model_cka_matrix(
                store, heat_models, layers=layers, debiased=True, benchmark_hash=bench
            )
        except KeyError as error:  # a committed layer not among the stored ones
            logger.info("no CKA heatmap: %s", error)
        else:
            heat = plots.plot_matrix(
                matrix, figdir / "model_cka", label="debiased CKA", limit=1.0, names=names,
                title=f"Debiased CKA at each model's committed layer ({metric}, {roi})",
            )  # fmt: skip
            body.append(
                figure_html(heat, f"Model x model debiased CKA at committed layers ({roi})")
            )
    note = (
        "Linear CKA between the feature-centred Gram matrices of every layer, over the "
        f"benchmark's images (Gram store {html.escape(store.path.name)}); each layer of the first "
        "model against the second's layer at the nearest relative depth; debiased (unbiased HSIC) "
        "so that unrelated representations give about 0. Curves: mean ± s.e.m. over the pairs "
        "of a group. Heatmap: each model's committed layer (best train score"
        + (f", {html.escape(metric)}" if metric else "")
        + "). More pairs: <code>zooscope analyze layer-cka</code>."
    )
    return '<h2>Layer-by-layer CKA</h2><p class="note">' + note + "</p>" + "".join(body)
