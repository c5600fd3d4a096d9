"""What a survey says about each scored model: one line per model and per concern.

Per-layer detail (which group had how many units at an alpha-grid edge, which layer's RSM had
constant rows) goes to the log file at debug level where it arises; these summaries are what a
user reads on the terminal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from zooscope.rsa.selection import select_best_layers

__all__ = [
    "ALPHA_EDGE_CONCERN",
    "alpha_edge_table",
    "best_scores_text",
    "ceiling_notes_text",
    "model_summary_lines",
]

#: A layer is reported when more than this fraction of its units chose an alpha-grid edge.
ALPHA_EDGE_CONCERN = 0.2


def best_scores_text(best: dict[tuple[str, str], float]) -> str:
    """``{(roi, metric): score}`` as ``"EVC crsa 0.484 versa 0.612; OTC crsa 0.685 ..."``.

    One group per ROI (region and time bin), in sorted order: what each number belongs to is
    written next to it.
    """
    rois: dict[str, list[str]] = {}
    for (roi, metric), value in sorted(best.items()):
        rois.setdefault(roi, []).append(f"{metric} {value:.3f}")
    return "; ".join(f"{roi} {' '.join(parts)}" for roi, parts in rois.items()) or "none"


def ceiling_notes_text(notes: Sequence[str]) -> str:
    """What the notes of a survey's noise ceilings mean, for its summary line ("" when none).

    A note says that GSN's signal-scale grid was widened (the data were more reliable than the
    default grid reaches: handled, the ceiling stands) and/or that units without usable data were
    left out of the group (the ceiling is of the others).
    """
    widened = sum("grid widened" in n for n in notes)
    dropped = sum(bool(n) and not n.startswith("scale grid widened") for n in notes)
    parts = []
    if widened:
        parts.append(
            f"{widened} needed a wider GSN signal-scale grid than the default (the data are more "
            "reliable than it reaches; it was widened automatically: nothing to do)"
        )
    if dropped:
        parts.append(
            f"{dropped} left out units without usable data (the ceiling is of the other units; "
            "the report's noise-ceiling table says how many)"
        )
    return "".join(f"; {p}" for p in parts)


def model_summary_lines(
    uid: str,
    layers: pd.DataFrame,
    scores: pd.DataFrame,
    *,
    random_init: bool = False,
    edge_concern: float = ALPHA_EDGE_CONCERN,
) -> list[str]:
    """Lines summing up a model's per-layer diagnostics (none when nothing is worth saying).

    The alpha-grid line gives, per ROI, the best veRSA (or encoding) layer and its fraction, the
    numbers of :func:`alpha_edge_table` (the report's ridge diagnostics), and says when to act.

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
        E.g. ``"effnet_lite0: 41/143 layers had >20% of units at an alpha-grid edge; best veRSA
        layer: OTC blocks.5.2 3% (fine: ...)"``.
    """
    lines = []
    n_layers = len(layers)
    if "alpha_edge_fraction" in layers and layers["alpha_edge_fraction"].notna().any():
        metric = "versa" if (scores["metric"] == "versa").any() else "encoding_r"
        columns = ["subject", "roi", "metric", "layer_index", "layer_name", "split", "score"]
        best = select_best_layers(
            scores.loc[scores["metric"] == metric, columns], ["subject", "roi", "metric"]
        ).assign(model_uid=uid)
        table = alpha_edge_table(
            layers.assign(model_uid=uid), best, metric=metric, edge_concern=edge_concern
        )
        if len(table) and table["layers_over"].iloc[0]:
            lines.append(_alpha_edge_line(uid, table, metric, edge_concern, random_init))
    nan_layers = scores.loc[scores["score"].isna(), "layer_index"].dropna().nunique()
    if nan_layers:
        why = "expected for a random-init model" if random_init else "see the log"
        lines.append(
            f"{uid}: {nan_layers}/{n_layers} layers have NaN scores (features constant on some "
            f"images; {why})"
        )
    return lines


def _alpha_edge_line(
    uid: str, table: pd.DataFrame, metric: str, edge_concern: float, random_init: bool = False
) -> str:
    """The terminal line of one model's :func:`alpha_edge_table` rows (one per ROI)."""
    first = table.iloc[0]
    label = "veRSA" if metric == "versa" else "encoding"
    best = ", ".join(
        f"{row.roi} {row.best_layer} {100 * row.best_layer_fraction:.0f}%"
        for row in table.itertuples()
        if row.best_layer is not None and np.isfinite(row.best_layer_fraction)
    )
    flagged = bool((table["best_layer_fraction"] > edge_concern).any())
    if random_init:
        advice = (
            "expected for a random-init model, whose units have little predictable signal and "
            "pick the largest alpha: no action needed"
        )
    elif flagged:
        advice = (
            "a best layer is among them, and its score is the one reported: it may be held down "
            "by the alpha grid; to check, score this model again with a wider grid "
            "(ScoringConfig(alphas=...) in Python; no command-line option sets it) and compare"
        )
    else:
        advice = (
            "no action needed: the best layers are below it, and units without predictable "
            "signal pick the largest alpha"
        )
    return (
        f"{uid}: {first.layers_over}/{first.layers} layers had >{100 * edge_concern:.0f}% of "
        f"units at an alpha-grid edge; best {label} layer: {best or 'none'} ({advice})"
    )


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
        One row per model and ROI of ``best``: columns ``model_uid, roi, layers, layers_over,
        median_fraction, best_layer, best_layer_fraction`` (``layers``: layers with the
        diagnostic; ``layers_over``: those with more than ``edge_concern`` of their units at an
        edge; the best layer is the one chosen in most subjects of the ROI, the earliest among
        equally frequent ones). Models without the diagnostic are left out.
    """
    columns = [
        "model_uid", "roi", "layers", "layers_over", "median_fraction", "best_layer",
        "best_layer_fraction",
    ]  # fmt: skip
    have = layers.dropna(subset=["alpha_edge_fraction"])
    if have.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    chosen = best[(best["metric"] == metric) & best["layer_index"].notna()]
    for uid, group in have.groupby("model_uid", sort=True):
        fraction = group.set_index("layer_index")["alpha_edge_fraction"]
        names = group.set_index("layer_index")["layer_name"]
        mine = chosen[chosen["model_uid"] == uid]
        for roi in sorted(mine["roi"].unique()) or [None]:
            picks = mine.loc[mine["roi"] == roi, "layer_index"]
            best_index = picks.value_counts().sort_index().idxmax() if len(picks) else None
            rows.append(
                {
                    "model_uid": uid,
                    "roi": roi,
                    "layers": len(group),
                    "layers_over": int((fraction > edge_concern).sum()),
                    "median_fraction": float(fraction.median()),
                    "best_layer": names.get(best_index) if best_index is not None else None,
                    "best_layer_fraction": (
                        float(fraction.get(best_index, np.nan))
                        if best_index is not None
                        else np.nan
                    ),
                }
            )
    return pd.DataFrame(rows, columns=columns)
