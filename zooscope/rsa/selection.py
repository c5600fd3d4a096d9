"""Best-layer selection: the one rule every part of zooscope uses.

Per key (model x subject x ROI x metric x ...), the layer with the highest *train* score wins;
ties go to the earliest layer (lowest ``layer_index``); a NaN train score never wins (a key whose
train scores are all NaN gets its first layer). The reported score is that layer's *test* score.
The results database (:meth:`~zooscope.results.db.ResultsDB.best_layer_scores`), the survey's
log lines and :func:`select_layer` all call :func:`select_best_layers`; code that sees layers one
at a time (the survey keeping the best layer's RSMs and predictions) asks :func:`better_layer`.
Both order layers by one key, :func:`layer_rank`. A profile that filters
rows first (e.g. Conwell et al.'s degenerate-row filter) filters the frame, then calls it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from zooscope.rsa.vocabulary import SPLITS

__all__ = ["better_layer", "layer_rank", "select_best_layers", "select_layer"]

_LAYER_COLUMNS = ("layer_index", "layer_name", "split", "score")


def layer_rank(train_score: Any, layer_index: Any) -> tuple[Any, Any, Any]:
    """The sort key of the rule: the layer whose key sorts first is the best.

    Parameters
    ----------
    train_score : float or array-like, shape (n,)
        Train scores; NaN and infinite ones rank after every finite one.
    layer_index : int or array-like, shape (n,)
        Layer order; breaks ties (the earliest layer first).

    Returns
    -------
    (not_finite, negated_score, layer_index)
        Compare as tuples (scalars) or sort lexicographically (arrays), ascending.
    """
    score = np.asarray(train_score, dtype=np.float64)
    finite = np.isfinite(score)
    return ~finite, -np.where(finite, score, 0.0), np.asarray(layer_index)


def better_layer(candidate: float, current: float | None) -> bool:
    """Whether a layer replaces the kept one when layers arrive in layer order (the streaming rule).

    Parameters
    ----------
    candidate : float
        Train score of the layer offered now.
    current : float or None
        Train score of the kept (earlier) layer; None when nothing is kept yet.

    Returns
    -------
    bool
        True when the candidate ranks first under :func:`layer_rank` (as the later layer, it
        loses ties), so that keeping every winner ends on :func:`select_best_layers`' choice.
    """
    if current is None:
        return True
    new, kept = layer_rank(candidate, 1), layer_rank(current, 0)
    return tuple(x.item() for x in new) < tuple(x.item() for x in kept)


def select_best_layers(scores: pd.DataFrame, keys: Sequence[str] | None = None) -> pd.DataFrame:
    """The best train layer per key and its test score.

    Parameters
    ----------
    scores : DataFrame, shape (n_rows, n_columns)
        Tidy rows with columns ``layer_index`` (the layer order), ``layer_name``, ``split``
        (``"train"``/``"test"``), ``score`` and the key columns. One row per key, layer and split.
    keys : sequence of str, optional
        The columns a selection is made within; default: every other column.

    Returns
    -------
    DataFrame, shape (n_keys, len(keys) + 4)
        Columns ``*keys, layer_index, layer_name, train_score, test_score``, one row per key that
        has train rows, in the order of the keys' first train row. ``test_score`` is NaN when
        the chosen layer has no test row.
    """
    missing = [c for c in (*_LAYER_COLUMNS, *(keys or ())) if c not in scores.columns]
    if missing:
        raise ValueError(f"scores lacks columns {missing}; it has {list(scores.columns)}")
    keys = (
        list(keys) if keys is not None else [c for c in scores.columns if c not in _LAYER_COLUMNS]
    )
    bad = set(scores["split"].dropna().unique()) - set(SPLITS)
    if bad:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {sorted(bad)}")
    if scores.duplicated([*keys, "layer_index", "split"]).any():
        raise ValueError("scores has duplicate rows for the same key, layer and split")
    columns = [*keys, "layer_index", "layer_name", "train_score", "test_score"]
    train = scores[scores["split"] == "train"]
    if train.empty:
        return pd.DataFrame(columns=columns)
    not_finite, negated, index = layer_rank(train["score"], train["layer_index"])
    ranked = train.assign(
        _first=np.arange(len(train)), _not_finite=not_finite, _negated=negated, _index=index
    ).sort_values(["_not_finite", "_negated", "_index"], kind="stable")
    best = ranked.drop_duplicates(keys, keep="first").sort_values("_first", kind="stable")
    best = best.rename(columns={"score": "train_score"})
    test = scores.loc[scores["split"] == "test", [*keys, "layer_index", "score"]]
    out = best.merge(
        test.rename(columns={"score": "test_score"}), on=[*keys, "layer_index"], how="left"
    )
    return out[columns].reset_index(drop=True)


def select_layer(scores: pd.DataFrame) -> pd.DataFrame:
    """Pick, per model x group x metric, the layer with the best train score.

    A convenience over :func:`select_best_layers` for frames that name layers ``layer``.

    Parameters
    ----------
    scores : pd.DataFrame
        Columns ``layer``, ``metric``, ``split`` (``"train"``/``"test"``), ``score``, the group
        key ``group`` or ``subject``/``roi`` (either or both), optionally ``model`` and
        ``layer_index``. One row per (model, layer, group, metric, split).

    Returns
    -------
    pd.DataFrame
        One row per model x group x metric: the keys, ``layer`` (and ``layer_index`` if given),
        ``train_score`` and ``test_score`` of that layer. Ties in train score go to the
        earliest layer: smallest ``layer_index`` if present, else first appearance in
        ``scores``. Layers with a NaN train score are never chosen (all NaN: first layer).
    """
    missing = {"layer", "metric", "split", "score"} - set(scores.columns)
    if missing:
        raise ValueError(f"scores lacks columns {sorted(missing)}")
    group_keys = [c for c in ("group", "subject", "roi") if c in scores.columns]
    if not group_keys:
        raise ValueError("scores needs a 'group' column or 'subject'/'roi' columns")
    keys = (["model"] if "model" in scores.columns else []) + group_keys + ["metric"]
    has_index = "layer_index" in scores.columns
    frame = scores.rename(columns={"layer": "layer_name"})
    if not has_index:
        frame = frame.assign(layer_index=pd.factorize(frame["layer_name"])[0])
    best = select_best_layers(frame[[*keys, *_LAYER_COLUMNS]], keys)
    best = best.sort_values(keys, kind="stable").rename(columns={"layer_name": "layer"})
    layer_columns = ["layer", "layer_index"] if has_index else ["layer"]
    return best[[*keys, *layer_columns, "train_score", "test_score"]].reset_index(drop=True)
