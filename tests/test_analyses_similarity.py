"""Tests of model-to-model similarity, clustering and MDS."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from reference_data import CONWELL, needs_conwell2024
from scipy import stats
from scipy.spatial.distance import pdist, squareform

from zooscope.analyses.similarity import (
    classical_mds,
    cluster_models,
    correlation_matrix,
    matrix_to_pairs,
    pairs_to_matrix,
    rsm_similarity,
    similarity_from_db,
)
from zooscope.results.db import ResultsDB
from zooscope.results.importers import load_conwell_model_similarity


@needs_conwell2024
@pytest.mark.parametrize("metric", ["crsa", "versa"])
def test_published_uber_rsa_matrix(metric):
    pairs = load_conwell_model_similarity(CONWELL, metric)
    m = pairs_to_matrix(pairs)
    assert m.shape == (225, 225)
    np.testing.assert_array_equal(m.to_numpy(), m.to_numpy().T)
    np.testing.assert_array_equal(np.diag(m), 1.0)
    row = pairs.iloc[17]
    assert m.loc[row.model_a, row.model_b] == row.similarity
    coords, eig = classical_mds(m)
    assert coords.shape == (225, 2) and np.isfinite(coords.to_numpy()).all()
    assert eig[0] >= eig[1] > 0
    clusters = cluster_models(m, n_clusters=4)
    assert sorted(clusters["order"]) == sorted(m.index)
    assert set(clusters["labels"]) == {1, 2, 3, 4}
    back = matrix_to_pairs(m)
    assert len(back) == len(pairs)


def _synthetic_rsms(rng, n_models=6, n_images=12, subjects=("1", "2")):
    rows, vecs = [], {}
    iu = np.triu_indices(n_images, k=1)
    for s in subjects:
        for m in range(n_models):
            feats = rng.normal(size=(n_images, 20))
            v = np.corrcoef(feats)[iu].astype(np.float32)
            vecs[(f"m{m}", s)] = v
            rows.append(
                {
                    "model_uid": f"m{m}",
                    "metric": "versa",
                    "subject": s,
                    "roi": "OTC",
                    "layer_name": "l",
                    "split": "test",
                    "rsm": v,
                }
            )
    return pd.DataFrame(rows), vecs


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_rsm_similarity_equals_direct_computation(method):
    rng = np.random.default_rng(0)
    df, vecs = _synthetic_rsms(rng)
    got = rsm_similarity(df, method=method)
    corr = stats.pearsonr if method == "pearson" else stats.spearmanr
    for a in got.index:
        for b in got.columns:
            ref = np.mean(
                [
                    corr(vecs[(a, s)].astype(float), vecs[(b, s)].astype(float))[0]
                    for s in ("1", "2")
                ]
            )
            assert got.loc[a, b] == pytest.approx(ref, abs=1e-12)


def test_constant_rsms_are_left_out_not_fatal(caplog):
    rng = np.random.default_rng(0)
    df, vecs = _synthetic_rsms(rng)
    constant = df.index[(df["model_uid"] == df["model_uid"].iloc[0]) & (df["subject"] == "1")]
    df.loc[constant[0], "rsm"] = np.ones_like(df.loc[constant[0], "rsm"])
    with caplog.at_level(logging.INFO, logger="zooscope.analyses.similarity"):
        got = rsm_similarity(df)
    assert "left out 1 constant" in caplog.text
    kept = df.drop(index=constant[0])
    for a in got.index:
        for b in got.columns:
            subjects = set(kept.loc[kept["model_uid"] == a, "subject"]) & set(
                kept.loc[kept["model_uid"] == b, "subject"]
            )
            ref = np.mean(
                [
                    stats.pearsonr(vecs[(a, s)].astype(float), vecs[(b, s)].astype(float))[0]
                    for s in sorted(subjects)
                ]
            )
            assert got.loc[a, b] == pytest.approx(ref, abs=1e-12)


def test_similarity_from_db(tmp_path):
    rng = np.random.default_rng(1)
    df, _ = _synthetic_rsms(rng, n_models=3)
    with ResultsDB(tmp_path / "s.duckdb") as db:
        run = db.start_run("b", {})
        layers = pd.DataFrame(
            {"layer_index": [0], "layer_name": ["l"], "module_type": ["Conv2d"], "n_features": [20]}
        )
        scores = pd.DataFrame(
            {
                "layer_index": [0],
                "layer_name": ["l"],
                "subject": ["1"],
                "roi": ["OTC"],
                "metric": ["versa"],
                "split": ["test"],
                "score": [0.1],
            }
        )
        for uid, group in df.groupby("model_uid"):
            db.write_model(
                run, {"model_uid": uid}, layers, scores, group.drop(columns="model_uid"), 0
            )
        got = similarity_from_db(db, "versa")
        pd.testing.assert_frame_equal(got, rsm_similarity(db.rsms(metric="versa")))
        with pytest.raises(ValueError, match="no stored"):
            similarity_from_db(db, "crsa")


def test_classical_mds_recovers_planted_configuration():
    rng = np.random.default_rng(2)
    # unit-norm centred vectors in a 2-D subspace: sqrt(2(1-r)) distances are exactly Euclidean in 2-D
    basis = np.linalg.qr(rng.normal(size=(50, 2)))[0]
    basis -= basis.mean(axis=0)
    pts = rng.normal(size=(8, 2))
    vecs = pts @ basis.T
    sim = pd.DataFrame(correlation_matrix(vecs))
    coords, eig = classical_mds(sim, n_components=2)
    ref = squareform(
        pdist(vecs / np.linalg.norm(vecs - vecs.mean(1, keepdims=True), axis=1, keepdims=True))
    )
    np.testing.assert_allclose(squareform(pdist(coords.to_numpy())), ref, atol=1e-8)
    assert abs(eig[2]) < 1e-8


def test_validation():
    with pytest.raises(ValueError, match="NaN"):
        correlation_matrix(np.array([[1.0, np.nan, 2.0], [1.0, 2.0, 3.0]]))
    with pytest.raises(ValueError, match="no value"):
        pairs_to_matrix(
            pd.DataFrame({"model_a": ["a", "a"], "model_b": ["b", "c"], "similarity": [0.1, 0.2]})
        )


def test_cka_similarity_equals_pairwise_cka():
    from zooscope.analyses.similarity import cka_similarity
    from zooscope.rsa.cka import cka

    rng = np.random.default_rng(3)
    feats = {f"m{i}": rng.normal(size=(15, 8 + i)) for i in range(4)}
    got = cka_similarity({k: v @ v.T for k, v in feats.items()})
    for a in feats:
        for b in feats:
            assert got.loc[a, b] == pytest.approx(cka(feats[a], feats[b]), abs=1e-10)
