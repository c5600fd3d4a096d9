"""Tests of zooscope.analyses.correlates against scipy/numpy and published data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from reference_data import CONWELL, needs_conwell2024
from scipy import stats

from zooscope.analyses.correlates import (
    rank_stability,
    spearman_correlates,
)
from zooscope.rsa.dimensionality import effective_dimensionality, participation_ratio


def test_effective_dimensionality_matches_covariance_eigenvalues():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 30)) * np.linspace(0.1, 3, 30)
    lam = np.linalg.eigvalsh(np.cov(x, rowvar=False))
    assert effective_dimensionality(x) == pytest.approx(lam.sum() ** 2 / (lam**2).sum(), rel=1e-10)
    # more features than samples (SRP features: 1000 x 5920): through the smaller Gram matrix
    wide = (rng.normal(size=(40, 5)) @ rng.normal(size=(5, 300)) + 10).astype(np.float32)
    s = np.linalg.svd(wide - wide.astype(np.float64).mean(0), compute_uv=False)
    assert effective_dimensionality(wide) == pytest.approx(
        (s**2).sum() ** 2 / (s**4).sum(), rel=1e-9
    )
    assert effective_dimensionality(np.ones((5, 8))) == 0.0  # no variance at all
    # planted: k equal eigenvalues -> PR = k
    assert participation_ratio(np.r_[np.ones(7), np.zeros(5)]) == pytest.approx(7)
    with pytest.raises(ValueError, match="non-negative"):
        participation_ratio(np.array([1.0, -1.0]))


def test_spearman_correlates_matches_scipy_and_is_seeded():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"acc": rng.normal(size=60), "params": rng.lognormal(size=60)})
    df["score"] = 0.5 * df.acc + rng.normal(size=60)
    df.loc[3, "acc"] = np.nan
    got = spearman_correlates(df, ["acc", "params"], seed=5).set_index("x")
    ok = df.dropna()
    ref = stats.spearmanr(ok.acc, ok.score)
    assert got.loc["acc", "rho"] == pytest.approx(ref.statistic)
    assert got.loc["acc", "p_value"] == pytest.approx(ref.pvalue)
    assert got.loc["acc", "n"] == 59
    assert got.loc["acc", "ci_low"] < got.loc["acc", "rho"] < got.loc["acc", "ci_high"]
    again = spearman_correlates(df, ["acc", "params"], seed=5).set_index("x")
    pd.testing.assert_frame_equal(got, again)


@needs_conwell2024
def test_published_accuracy_correlation():
    fig = pd.read_csv(CONWELL / "figure_data" / "Figure5C.csv")
    got = spearman_correlates(fig, "imagenet_accuracy", n_boot=200).set_index("metric")
    for metric, sub in fig.groupby("metric"):
        assert got.loc[metric, "rho"] == pytest.approx(
            stats.spearmanr(sub.imagenet_accuracy, sub.score).statistic
        )


def test_rank_stability():
    rng = np.random.default_rng(2)
    true = rng.normal(size=40)
    df = pd.DataFrame(
        [
            {"model_uid": m, "subject": s, "score": true[m] + rng.normal(0, 0.3)}
            for m in range(40)
            for s in "1257"
        ]
    )
    rho, p, pairs = rank_stability(df, n_perm=500)
    wide = df.pivot(index="model_uid", columns="subject", values="score")
    ref = np.mean(
        [
            stats.spearmanr(wide[a], wide[b]).statistic
            for a, b in [("1", "2"), ("1", "5"), ("1", "7"), ("2", "5"), ("2", "7"), ("5", "7")]
        ]
    )
    assert rho == pytest.approx(ref)
    np.testing.assert_allclose(pairs.rho.mean(), ref)
    assert p < 0.01
    noise = df.assign(score=rng.normal(size=len(df)))
    assert rank_stability(noise, n_perm=500)[1] > 0.01
