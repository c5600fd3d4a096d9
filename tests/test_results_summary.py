"""Model rankings from frames alone (zooscope.results.summary) against a hand-computed table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zooscope.results.summary import SUMMARY_COLUMNS, ceiled_score, model_summary


def _best(rows):
    columns = ["model_uid", "subject", "roi", "metric", "test_score"]
    return pd.DataFrame(rows, columns=columns).assign(benchmark_hash="b", config_hash="c")


def test_model_summary_ranks_ceils_and_uses_published_means():
    best = _best(
        [
            ("m1", "1", "OTC", "crsa", 0.2),
            ("m1", "2", "OTC", "crsa", 0.4),
            ("m2", "1", "OTC", "crsa", 0.5),
            ("m2", "2", "OTC", "crsa", 0.5),
            ("p", "mean", "OTC", "crsa", 0.35),  # published subject mean only
            ("m1", "1", "IT", "predictivity", 0.3),
            ("m1", "1", "OTC", "encoding_r", 0.6),  # not ceiled
        ]
    )
    ceilings = pd.DataFrame(
        [
            ("b", "1", "OTC", "gsn_rsa", 0.6),
            ("b", "2", "OTC", "gsn_rsa", 0.8),
            ("b", "1", "IT", "internal_consistency", 0.5),
            ("b", "1", "OTC", "internal_consistency", 0.9),  # another metric's ceiling
        ],
        columns=["benchmark_hash", "subject", "roi", "method", "value"],
    )
    names = pd.DataFrame({"model_uid": ["m1", "m2", "p"], "display_name": ["M1", "M2", "P"]})
    profiles = pd.DataFrame({"config_hash": ["c"], "profile": ["paper"]})
    table = model_summary(best, ceilings, names, profiles)
    assert list(table.columns) == SUMMARY_COLUMNS
    got = table.set_index(["metric", "model_uid"])
    expected = {  # score, n_subjects, ceiling, explained variance, rank
        ("crsa", "m2"): (0.5, 2, 0.7, 0.5**2 / 0.7**2, 1),
        ("crsa", "p"): (0.35, 0, 0.7, 0.35**2 / 0.7**2, 2),  # the benchmark's mean ceiling
        ("crsa", "m1"): (0.3, 2, 0.7, 0.3**2 / 0.7**2, 3),
        ("predictivity", "m1"): (0.3, 1, 0.5, 0.3**2 / 0.5, 1),  # Brain-Score: r² / ceiling
        ("encoding_r", "m1"): (0.6, 1, np.nan, np.nan, 1),
    }
    assert len(got) == len(expected)
    for key, (score, n, ceiling, ev, rank) in expected.items():
        row = got.loc[key]
        assert row["score"] == pytest.approx(score)
        assert row["n_subjects"] == n and row["rank"] == rank and row["profile"] == "paper"
        np.testing.assert_allclose([row["ceiling"], row["explained_variance"]], [ceiling, ev])
    assert got.loc[("crsa", "p"), "display_name"] == "P"
    assert model_summary(best.iloc[:0], ceilings, names, profiles).columns.tolist() == list(
        SUMMARY_COLUMNS
    )


def test_ceiled_score_powers_by_method():
    got = ceiled_score(
        [0.3, 0.3, 0.3, 0.3],
        [0.5, 0.5, 0.0, np.nan],
        ["internal_consistency", "gsn_rsa", "gsn_rsa", None],
    )
    np.testing.assert_allclose(got, [0.09 / 0.5, 0.09 / 0.25, np.nan, np.nan])
