"""versa / select_layer against a scikit-learn + numpy re-implementation of the pipeline."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import RidgeCV
from sklearn.metrics import make_scorer
from sklearn.preprocessing import StandardScaler

from zooscope.rsa import RSMComparator, rsm, select_layer, upper_triangle, versa
from zooscope.rsa.encoding import ALL_UNITS, groups_to_indices, standardize

ALPHAS = np.logspace(-1, 5, 7)


@pytest.fixture(scope="module")
def planted():
    """Brain units driven by a latent code; 'good' features see it, 'bad' ones do not."""
    rng = np.random.default_rng(0)
    n_train, n_test, k, units = 60, 50, 6, 30
    latent = rng.standard_normal((n_train + n_test, k))
    good = latent @ rng.standard_normal((k, 120)) + 0.3 * rng.standard_normal(
        (n_train + n_test, 120)
    )
    good[:, 5] = 2.5  # a constant feature must not produce NaN
    bad = rng.standard_normal((n_train + n_test, 120))
    Y = latent @ rng.standard_normal((k, units)) + 0.8 * rng.standard_normal(
        (n_train + n_test, units)
    )
    groups = np.array(["1|OTC"] * 12 + ["2|OTC"] * 18)
    split = lambda A: (A[:n_train], A[n_train:])  # noqa: E731
    return {"good": split(good), "bad": split(bad), "Y": split(Y), "groups": groups}


def pearson_scorer():
    return make_scorer(lambda y, p: np.corrcoef(y, p)[0, 1])


def reference_versa(X_train, X_test, Y_train, Y_test, groups):
    """Conwell et al.'s pipeline with scikit-learn: scaler, RidgeCV(pearson), corrcoef RSMs."""
    scaler = StandardScaler().fit(X_train)
    Xtr, Xte = scaler.transform(X_train), scaler.transform(X_test)
    ridge = RidgeCV(
        alphas=ALPHAS, alpha_per_target=True, scoring=pearson_scorer(), store_cv_results=True
    ).fit(Xtr, Y_train)
    a_idx = np.searchsorted(ALPHAS, ridge.alpha_)
    loo = ridge.cv_results_[:, np.arange(Y_train.shape[1]), a_idx]
    pred = {"train": loo, "test": ridge.predict(Xte)}
    actual = {"train": Y_train, "test": Y_test}
    rows = {}
    for label in pd.unique(groups):
        idx = np.flatnonzero(groups == label)
        for split in ("train", "test"):
            p, y = pred[split][:, idx], actual[split][:, idx]
            rows[(label, "versa", split)] = np.corrcoef(
                upper_triangle(np.corrcoef(p)), upper_triangle(np.corrcoef(y))
            )[0, 1]
            rows[(label, "encoding_r", split)] = np.mean(
                [np.corrcoef(p[:, u], y[:, u])[0, 1] for u in range(idx.size)]
            )
    return rows, ridge.alpha_


def as_dict(scores: pd.DataFrame):
    return {(r.group, r.metric, r.split): r.score for r in scores.itertuples()}


@pytest.mark.parametrize("features", ["good", "bad"])
def test_versa_matches_sklearn_pipeline(planted, features):
    (Xtr, Xte), (Ytr, Yte) = planted[features], planted["Y"]
    res = versa(Xtr, Xte, Ytr, Yte, planted["groups"], alphas=ALPHAS)
    ref, ref_alpha = reference_versa(Xtr, Xte, Ytr, Yte, planted["groups"])
    np.testing.assert_array_equal(res.alpha_, ref_alpha)
    assert list(res.scores.columns) == ["group", "metric", "split", "score"]
    assert len(res.scores) == 8
    ours = as_dict(res.scores)
    assert ours.keys() == ref.keys()
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, abs=1e-5), key


def test_planted_structure_is_recovered(planted):
    Ytr, Yte = planted["Y"]
    good = versa(*planted["good"], Ytr, Yte, planted["groups"], alphas=ALPHAS)
    bad = versa(*planted["bad"], Ytr, Yte, planted["groups"], alphas=ALPHAS)
    g, b = (
        good.scores.set_index(["group", "metric", "split"]),
        bad.scores.set_index(["group", "metric", "split"]),
    )
    for group in ("1|OTC", "2|OTC"):
        assert g.loc[(group, "versa", "test"), "score"] > 0.8
        assert g.loc[(group, "encoding_r", "test"), "score"] > 0.6
        assert b.loc[(group, "encoding_r", "test"), "score"] < 0.3
        assert (
            g.loc[(group, "versa", "test"), "score"]
            > b.loc[(group, "versa", "test"), "score"] + 0.3
        )
    assert np.isfinite(good.unit_r).all() and good.unit_r.shape == (30,)


def test_groups_as_dict_with_overlap_and_precomputed_brain_rsms(planted):
    (Xtr, Xte), (Ytr, Yte) = planted["good"], planted["Y"]
    by_array = versa(Xtr, Xte, Ytr, Yte, planted["groups"], alphas=ALPHAS)
    index = {"1|OTC": np.arange(12), "2|OTC": np.arange(12, 30), "all": np.ones(30, bool)}
    brain = {
        "1|OTC": {
            "train": rsm(Ytr[:, :12], dtype="float64"),
            "test": upper_triangle(rsm(Yte[:, :12], dtype="float64")),
        },
        "2|OTC": {
            "train": RSMComparator(rsm(Ytr[:, 12:], dtype="float64")),
            "test": rsm(Yte[:, 12:], dtype="float64"),
        },
        "all": {"train": rsm(Ytr, dtype="float64"), "test": rsm(Yte, dtype="float64")},
    }
    by_dict = versa(Xtr, Xte, Ytr, Yte, index, alphas=ALPHAS, brain_rsms=brain, return_rsms=True)
    a, b = as_dict(by_array.scores), as_dict(by_dict.scores)
    for key in a:
        assert b[key] == pytest.approx(a[key], abs=1e-6)
    whole = versa(Xtr, Xte, Ytr, Yte, np.array(["all"] * 30), alphas=ALPHAS)
    for key, value in as_dict(whole.scores).items():
        assert b[key] == pytest.approx(value, abs=1e-6)
    assert set(by_dict.rsms) == {"1|OTC", "2|OTC", "all"}
    assert by_dict.rsms["all"].shape == (50, 50)
    assert by_array.rsms is None
    with pytest.raises(KeyError, match="brain_rsms"):
        versa(Xtr, Xte, Ytr, Yte, {"x": np.arange(5)}, alphas=ALPHAS, brain_rsms=brain)


def test_alpha_edge_fraction_and_debug_record(planted, caplog):
    (Xtr, Xte), (Ytr, Yte) = planted["good"], planted["Y"]
    # per layer this is detail for the log file, never a terminal warning
    with caplog.at_level(logging.DEBUG, logger="zooscope.rsa.encoding"):
        # far too strong penalties: LOO MSE falls monotonically towards the smallest
        res = versa(Xtr, Xte, Ytr, Yte, planted["groups"], alphas=[1e6, 1e7, 1e8], criterion="mse")
    assert res.alpha_edge_fraction[ALL_UNITS] == 1.0
    assert set(res.alpha_edge_fraction.index) == {"1|OTC", "2|OTC", ALL_UNITS}
    assert "edge of the grid" in caplog.text
    assert all(r.levelno == logging.DEBUG for r in caplog.records if "edge" in r.getMessage())
    np.testing.assert_array_equal(res.alpha_, 1e6)
    quiet = versa(Xtr, Xte, Ytr, Yte, planted["groups"], alphas=ALPHAS)
    edges = np.isin(quiet.alpha_, [ALPHAS[0], ALPHAS[-1]])
    assert quiet.alpha_edge_fraction["1|OTC"] == pytest.approx(edges[:12].mean())
    assert quiet.alpha_edge_fraction[ALL_UNITS] == pytest.approx(edges.mean())


def test_standardize_matches_sklearn_and_handles_constants(planted):
    Xtr, Xte = planted["good"]
    a, b = standardize(Xtr, Xte)
    scaler = StandardScaler().fit(Xtr)
    np.testing.assert_allclose(a, scaler.transform(Xtr), atol=1e-12)
    np.testing.assert_allclose(b, scaler.transform(Xte), atol=1e-12)
    assert np.isfinite(a).all() and np.isfinite(b).all()
    np.testing.assert_allclose(a[:, 5], 0.0, atol=1e-12)


def test_versa_validation(planted):
    (Xtr, Xte), (Ytr, Yte) = planted["good"], planted["Y"]
    with pytest.raises(ValueError, match="one label per unit"):
        versa(Xtr, Xte, Ytr, Yte, planted["groups"][:-1])
    with pytest.raises(ValueError, match="image counts"):
        versa(Xtr, Xte, Ytr[:-1], Yte, planted["groups"])
    with pytest.raises(ValueError, match="at least 2"):
        groups_to_indices({"a": [3]}, 30)
    with pytest.raises(ValueError, match="out of range"):
        groups_to_indices({"a": [3, 30]}, 30)


def test_select_layer_picks_best_train_and_reports_test():
    rows = []
    train = {"m1": [0.2, 0.5, 0.5, 0.1], "m2": [np.nan, 0.3, 0.1, 0.2]}
    for model, scores in train.items():
        for li, tr in enumerate(scores):
            for group in ("1|OTC", "2|OTC"):
                for metric in ("versa", "encoding_r"):
                    rows.append((model, f"layer{li}", group, metric, "train", tr))
                    rows.append((model, f"layer{li}", group, metric, "test", 10 * li + 1))
    df = pd.DataFrame(rows, columns=["model", "layer", "group", "metric", "split", "score"])
    out = select_layer(df.sample(frac=1.0, random_state=0))  # order of rows must not matter...
    assert len(out) == 8
    m1 = out[(out.model == "m1") & (out.group == "1|OTC") & (out.metric == "versa")].iloc[0]
    m2 = out[(out.model == "m2") & (out.group == "2|OTC") & (out.metric == "encoding_r")].iloc[0]
    assert m2.layer == "layer1" and m2.train_score == 0.3 and m2.test_score == 11
    # ...except for ties, which go to the earliest layer: give the order with layer_index
    df["layer_index"] = df["layer"].str[-1].astype(int)
    out = select_layer(df.sample(frac=1.0, random_state=0))
    m1 = out[(out.model == "m1") & (out.group == "1|OTC") & (out.metric == "versa")].iloc[0]
    assert m1.layer == "layer1" and m1.layer_index == 1 and m1.test_score == 11
    assert list(out.columns) == [
        "model",
        "group",
        "metric",
        "layer",
        "layer_index",
        "train_score",
        "test_score",
    ]


def test_select_layer_subject_roi_ties_without_index_and_errors():
    df = pd.DataFrame(
        [
            ("a", 1, "OTC", "versa", "train", 0.4),
            ("a", 1, "OTC", "versa", "test", 0.30),
            ("b", 1, "OTC", "versa", "train", 0.4),
            ("b", 1, "OTC", "versa", "test", 0.35),
        ],
        columns=["layer", "subject", "roi", "metric", "split", "score"],
    )
    out = select_layer(df)
    assert out.loc[0, "layer"] == "a" and out.loc[0, "test_score"] == 0.30  # first appearance
    with pytest.raises(ValueError, match="lacks columns"):
        select_layer(df.drop(columns="split"))
    with pytest.raises(ValueError, match="duplicate"):
        select_layer(pd.concat([df, df]))
