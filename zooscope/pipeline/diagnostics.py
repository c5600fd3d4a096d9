"""What a survey says about each scored model: one line per model and per concern.

Per-layer detail (which group had how many units at an alpha-grid edge, which layer's RSM had
constant rows) goes to the log file at debug level where it arises; these summaries are what a
user reads on the terminal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from zooscope.rsa.selection import select_best_layers

__all__ = ["ALPHA_EDGE_CONCERN", "alpha_edge_table", "model_summary_lines"]

#: A layer is reported when more than this fraction of its units chose an alpha-grid edge.
ALPHA_EDGE_CONCERN = 0.2


def _best_layer(scores: pd.DataFrame, metric: str) -> str | None:
    """The layer chosen (best train score) in most subject x ROI groups for ``metric``."""
    rows = scores[scores["metric"] == metric]
    if rows.empty:
        return None
    columns = ["subject", "roi", "layer_index", "layer_name", "split", "score"]
    best = select_best_layers(rows[columns], ["subject", "roi"])
    # mode over groups; the earliest layer among equally frequent ones
    counts = best.groupby(["layer_index", "layer_name"]).size().reset_index(name="n")
    counts = counts.sort_values(["n", "layer_index"], ascending=[False, True])
    return str(counts["layer_name"].iloc[0])


def model_summary_lines(
    uid: str,
    layers: pd.DataFrame,
    scores: pd.DataFrame,
    *,
    random_init: bool = False,
    edge_concern: float = ALPHA_EDGE_CONCERN,
) -> list[str]:
    """Lines summing up a model's per-layer diagnostics (none when nothing is worth saying).

    Parameters
    ----------
    uid : str
        The model.
    layers : DataFrame, shape (n_layers, ...)
        ``layer_index, layer_name`` and optionally ``alpha_edge_fraction`` (see
        :func:`~zooscope.pipeline.scoring.score_model`).
    scores : DataFrame
        Tidy scores: ``layer_index, layer_name, subject, roi, metric, split, score``.
    random_init : bool
        A random-init model: layers whose features are constant on some images are expected.
    edge_concern : float
        Count layers with more than this fraction of units at an alpha-grid edge.

    Returns
    -------
    list of str
        E.g. ``"effnet_lite0: 41/143 layers had >20% of units at an alpha-grid edge; best
        veRSA layer blocks.5.2 had 3%"``.
    """
    lines = []
    n_layers = len(layers)
    if "alpha_edge_fraction" in layers and layers["alpha_edge_fraction"].notna().any():
        edge = layers.set_index("layer_name")["alpha_edge_fraction"]
        flagged = int((edge > edge_concern).sum())
        if flagged:
            metric = "versa" if (scores["metric"] == "versa").any() else "encoding_r"
            best = _best_layer(scores, metric)
            tail = ""
            if best is not None and best in edge.index and np.isfinite(edge[best]):
                label = "veRSA" if metric == "versa" else "encoding"
                tail = f"; best {label} layer {best} had {100 * edge[best]:.0f}%"
            lines.append(
                f"{uid}: {flagged}/{n_layers} layers had >{100 * edge_concern:.0f}% of units "
                f"at an alpha-grid edge{tail}"
            )
    nan_layers = scores.loc[scores["score"].isna(), "layer_index"].dropna().nunique()
    if nan_layers:
        why = "expected for a random-init model" if random_init else "see the log"
        lines.append(
            f"{uid}: {nan_layers}/{n_layers} layers have NaN scores (features constant on some "
            f"images; {why})"
        )
    return lines


def alpha_edge_table(
    layers: pd.DataFrame,
    best: pd.DataFrame,
    *,
    metric: str = "versa",
    edge_concern: float = ALPHA_EDGE_CONCERN,
) -> pd.DataFrame:
    """Per model: how many layers had many units at an alpha-grid edge, and the best layer.

    Parameters
    ----------
    layers : DataFrame
        :meth:`~zooscope.results.db.ResultsDB.layers` rows (``model_uid, layer_index,
        layer_name, alpha_edge_fraction``).
    best : DataFrame
        :meth:`~zooscope.results.db.ResultsDB.best_layer_scores` rows (one ROI or all).
    metric : str
        Whose best layer to report (``versa`` or ``encoding_r``).

    Returns
    -------
    DataFrame
        Columns ``model_uid, layers, layers_over, median_fraction, best_layer,
        best_layer_fraction`` (``layers_over``: layers with more than ``edge_concern`` of their
        units at an edge; the best layer is the one chosen in most subject x ROI groups).
        Models without the diagnostic are left out.
    """
    columns = [
        "model_uid", "layers", "layers_over", "median_fraction", "best_layer",
        "best_layer_fraction",
    ]  # fmt: skip
    have = layers.dropna(subset=["alpha_edge_fraction"])
    if have.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    chosen = best[(best["metric"] == metric) & best["layer_index"].notna()]
    for uid, group in have.groupby("model_uid", sort=True):
        fraction = group.set_index("layer_index")["alpha_edge_fraction"]
        picks = chosen.loc[chosen["model_uid"] == uid, "layer_index"]
        best_index = picks.value_counts().sort_index().idxmax() if len(picks) else None
        names = group.set_index("layer_index")["layer_name"]
        rows.append(
            {
                "model_uid": uid,
                "layers": len(group),
                "layers_over": int((fraction > edge_concern).sum()),
                "median_fraction": float(fraction.median()),
                "best_layer": names.get(best_index) if best_index is not None else None,
                "best_layer_fraction": (
                    float(fraction.get(best_index, np.nan)) if best_index is not None else np.nan
                ),
            }
        )
    return pd.DataFrame(rows, columns=columns)
