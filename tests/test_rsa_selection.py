"""The one best-layer rule (zooscope.rsa.selection) against a brute-force loop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zooscope.rsa import select_best_layers


def _brute_force(scores: pd.DataFrame, keys: list[str]) -> dict:
    out = {}
    for key, group in scores.groupby(keys):
        train = group[group.split == "train"]
        best = None
        for row in train.itertuples():
            value = row.score if np.isfinite(row.score) else None
            if best is None:
                best = (value, row.layer_index)
                continue
            better = value is not None and (best[0] is None or value > best[0])
            tie = value is not None and best[0] is not None and value == best[0]
            if (
                better
                or (tie and row.layer_index < best[1])
                or (best[0] is None and value is None and row.layer_index < best[1])
            ):
                best = (value, row.layer_index)
        test = group[(group.split == "test") & (group.layer_index == best[1])].score
        out[key] = (best[1], test.iloc[0] if len(test) else np.nan)
    return out


def test_matches_brute_force_with_ties_nan_and_shuffled_rows():
    rng = np.random.default_rng(0)
    rows = []
    for model in ("a", "b", "c"):
        for subject in ("1", "2"):
            for metric in ("crsa", "versa"):
                for layer in range(6):
                    train = rng.choice([0.1, 0.2, 0.3, np.nan, np.inf])  # ties, NaN, inf
                    if model == "c":
                        train = np.nan  # all NaN: the first layer
                    rows.append((model, subject, metric, layer, f"l{layer}", "train", train))
                    rows.append((model, subject, metric, layer, f"l{layer}", "test", rng.random()))
    scores = pd.DataFrame(
        rows, columns=["model", "subject", "metric", "layer_index", "layer_name", "split", "score"]
    ).sample(frac=1.0, random_state=1)
    keys = ["model", "subject", "metric"]
    got = select_best_layers(scores, keys)
    assert list(got.columns) == [*keys, "layer_index", "layer_name", "train_score", "test_score"]
    expected = _brute_force(scores, keys)
    assert len(got) == len(expected)
    for row in got.itertuples():
        layer, test = expected[(row.model, row.subject, row.metric)]
        assert row.layer_index == layer and row.layer_name == f"l{layer}"
        assert row.test_score == test
    assert (got[got.model == "c"].layer_index == 0).all()


def test_default_keys_and_errors():
    scores = pd.DataFrame(
        {
            "roi": "OTC",
            "layer_index": [0, 1, 0, 1],
            "layer_name": ["x", "y", "x", "y"],
            "split": ["train", "train", "test", "test"],
            "score": [0.1, 0.2, 0.5, 0.6],
        }
    )
    got = select_best_layers(scores)  # keys: every other column
    assert got[["roi", "layer_name", "train_score", "test_score"]].values.tolist() == [
        ["OTC", "y", 0.2, 0.6]
    ]
    with pytest.raises(ValueError, match="lacks"):
        select_best_layers(scores.drop(columns="split"))
    with pytest.raises(ValueError, match="duplicate"):
        select_best_layers(pd.concat([scores, scores]))
    with pytest.raises(ValueError, match="split"):
        select_best_layers(scores.assign(split="val"))


@pytest.mark.parametrize("seed", range(5))
def test_streaming_keeper_picks_the_same_layer_as_select_best_layers(seed):
    """KeepBest (layers offered in order, as the survey scores them) and the batch rule agree."""
    from zooscope.pipeline.predictions import KeepBest

    rng = np.random.default_rng(seed)
    n_layers, rows = 8, []
    keeper = KeepBest(prepare=lambda value: value)
    groups = [(metric, f"{subject}|OTC") for metric in ("crsa", "versa") for subject in "1234"]
    all_nan = groups[0]  # a group with no finite train score: its first layer
    for layer in range(n_layers):
        for metric, group in groups:
            # Few distinct values: ties are common; NaN and inf never win.
            train = rng.choice([0.1, 0.2, 0.3, -0.1, np.nan, np.inf, -np.inf])
            train = np.nan if (metric, group) == all_nan else float(train)
            keeper.offer(metric, group, train, f"l{layer}", lambda layer=layer: layer)
            rows.append((metric, group, layer, f"l{layer}", "train", train))
    scores = pd.DataFrame(
        rows, columns=["metric", "group", "layer_index", "layer_name", "split", "score"]
    )
    batch = select_best_layers(scores, ["metric", "group"])
    assert len(batch) == len(groups) == len(keeper.best)
    for row in batch.itertuples():
        _score, layer_name, layer = keeper.best[(row.metric, row.group)]
        assert (layer_name, layer) == (row.layer_name, row.layer_index)
    assert keeper.best[all_nan][1] == "l0"
