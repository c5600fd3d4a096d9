"""Unique variance from stored best-layer predictions: planted truth, storage round trip.

The synthetic benchmark's units mix the features of model A and model B with known weights:
``y = w_A s_A + w_B s_B + sigma * noise`` with unit-variance, independent signals
``s_A = F_A u``, ``s_B = F_B v`` (``F`` the model's features, ``u``, ``v`` unit vectors).
With A's and B's predictions close to ``s_A`` and ``s_B``, the population partial correlation
of ``y`` with A's prediction given B's is ``w_A / sqrt(w_A**2 + sigma**2)``.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from zooscope.analyses.unique_variance import (
    summarize_unique_variance,
    unique_variance,
    unique_variance_units,
)
from zooscope.benchmark import Benchmark
from zooscope.config import ScoringConfig
from zooscope.pipeline.brain import BrainData
from zooscope.pipeline.predictions import BestPredictions, observed_responses
from zooscope.pipeline.scoring import score_layer
from zooscope.results.db import ResultsDB
from zooscope.rsa import RSMComparator, rsm
from zooscope.rsa.rsm import pearson_columns

N_IMAGES, N_FEATURES, UNITS_PER_ROI, SIGMA = 600, 8, 30, 0.5
#: ROI -> (w_A, w_B), the generator's mixing weights.
WEIGHTS = {"A_only": (0.8, 0.0), "B_only": (0.0, 0.8), "both": (0.6, 0.6)}
#: Planted partial correlations w / sqrt(w**2 + sigma**2), written down from the weights above.
PLANTED_PARTIAL_A = {"A_only": 0.8480, "B_only": 0.0, "both": 0.7682}
PLANTED_PARTIAL_B = {"A_only": 0.0, "B_only": 0.8480, "both": 0.7682}
CONFIG = ScoringConfig(metrics=("versa", "encoding_r"))


def _unit_vectors(rng, n):
    v = rng.standard_normal((N_FEATURES, n))
    return v / np.linalg.norm(v, axis=0)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    rng = np.random.default_rng(18)
    tmp = tmp_path_factory.mktemp("uv")
    features = {m: rng.standard_normal((N_IMAGES, N_FEATURES)) for m in ("A", "B")}
    columns, rois = [], []
    for roi, (w_a, w_b) in WEIGHTS.items():
        s_a = features["A"] @ _unit_vectors(rng, UNITS_PER_ROI)
        s_b = features["B"] @ _unit_vectors(rng, UNITS_PER_ROI)
        noise = rng.standard_normal((N_IMAGES, UNITS_PER_ROI))
        columns.append(w_a * s_a + w_b * s_b + SIGMA * noise)
        rois += [roi] * UNITS_PER_ROI
    responses = np.concatenate(columns, axis=1).T[:, :, None]  # [units, images, 1 rep]
    units = {"subject": np.ones(len(rois), int)}
    units |= {roi: np.array([r == roi for r in rois]) for roi in WEIGHTS}
    bench = Benchmark.from_arrays(
        tmp / "b.h5", responses, np.zeros((N_IMAGES, 2, 2, 3), np.uint8), units
    )
    brain = BrainData.from_benchmark(bench, CONFIG)
    path = tmp / "r.duckdb"
    with ResultsDB(path) as db:
        run = db.start_run(bench.content_hash, CONFIG.to_dict())
        db.write_responses(bench.content_hash, observed_responses(brain))
        for uid in ("A", "B"):
            # two layers: pure noise, then the model's features (selection must find them)
            layers = {"noise": rng.standard_normal((N_IMAGES, N_FEATURES)), "real": features[uid]}
            kept, score_rows = BestPredictions(), []
            for index, (name, srp) in enumerate(layers.items()):
                predictions = {}
                rows, _ = score_layer(
                    SimpleNamespace(name=name, srp=srp.astype(np.float32), rsm=None),
                    brain,
                    CONFIG,
                    predictions=predictions,
                )
                score_rows += [{"layer_index": index, "layer_name": name, **r} for r in rows]
                for (metric, label), (train, value) in predictions.items():
                    kept.offer(metric, label, train, name, value)
            db.write_model(
                run, {"model_uid": uid}, None, pd.DataFrame(score_rows), None, 0.0, kept.frame()
            )
        db.finish_run(run)
    with ResultsDB(path, read_only=True) as db:
        yield db, brain


def test_partial_correlations_recover_the_planted_unique_contributions(planted):
    db, _ = planted
    units = unique_variance(db, "A", ["B"])
    assert set(units["layer_model"]) == {"real"} and set(units["layer_control"]) == {"real"}
    assert len(units) == 3 * UNITS_PER_ROI
    summary = summarize_unique_variance(units).set_index("roi")
    for roi in WEIGHTS:
        assert summary.loc[roi, "median_partial_model"] == pytest.approx(
            PLANTED_PARTIAL_A[roi], abs=0.05
        )
        assert summary.loc[roi, "median_partial_control"] == pytest.approx(
            PLANTED_PARTIAL_B[roi], abs=0.05
        )
    # A explains variance B does not only where A's features drive the units
    assert summary.loc["A_only", "p_partial"] < 1e-6
    assert summary.loc["both", "p_partial"] < 1e-6
    assert summary.loc["B_only", "p_partial"] > 1e-3
    assert summary.loc["A_only", "p_model_vs_control"] < 1e-6


def test_unit_statistics_equal_independent_references(planted):
    db, _ = planted
    units = unique_variance(db, "A", "B")
    preds = db.unit_predictions(metric="encoding_r").set_index(["model_uid", "roi"])
    y = db.unit_responses().set_index("roi").loc["both", "response"]
    a, b = preds.loc[("A", "both"), "prediction"], preds.loc[("B", "both"), "prediction"]
    got = units[units["roi"] == "both"].reset_index(drop=True)
    for j in range(y.shape[1]):
        # reference: residualise with numpy least squares, then scipy's Pearson r
        design = np.column_stack([np.ones(len(y)), b[:, j]])
        res_y = y[:, j] - design @ np.linalg.lstsq(design, y[:, j], rcond=None)[0]
        res_a = a[:, j] - design @ np.linalg.lstsq(design, a[:, j], rcond=None)[0]
        assert got.loc[j, "partial_model"] == pytest.approx(
            stats.pearsonr(res_y, res_a).statistic, abs=1e-12
        )
        assert got.loc[j, "r_model"] == pytest.approx(
            stats.pearsonr(a[:, j], y[:, j]).statistic, abs=1e-12
        )
    summary = summarize_unique_variance(units).set_index("roi")
    both = got.dropna()
    assert summary.loc["both", "p_model_vs_control"] == pytest.approx(
        stats.wilcoxon(both["partial_model"], both["partial_control"]).pvalue, rel=1e-12
    )


def test_stored_predictions_reproduce_the_stored_scores_exactly(planted):
    db, brain = planted
    best = db.best_layer_scores().set_index(["model_uid", "metric", "roi"])
    responses = db.unit_responses(split="test").set_index("roi")["response"]
    predictions = db.unit_predictions(split="test")
    assert len(predictions) == 2 * 2 * 3  # models x metrics x ROIs
    for row in predictions.itertuples(index=False):
        stored = best.loc[(row.model_uid, row.metric, row.roi)]
        assert row.layer_name == stored["layer_name"]
        y = responses[row.roi]
        np.testing.assert_array_equal(y, brain.Y_test[:, brain.groups[f"1|{row.roi}"]])
        if row.metric == "encoding_r":
            recomputed = float(np.nanmean(pearson_columns(row.prediction, y)))
        else:
            recomputed = RSMComparator(rsm(y, dtype="float64")).score(rsm(row.prediction))
        # Same arrays, same functions: equal up to the last bits, which numpy's reductions and
        # BLAS round by memory layout and alignment (rsm of one array at two addresses differs
        # by ~5e-16), so not always bit for bit.
        assert recomputed == pytest.approx(stored["test_score"], rel=1e-13, abs=1e-15)


def test_unit_level_function_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="share one 2-D shape"):
        unique_variance_units(np.zeros((5, 2)), np.zeros((5, 2)), np.zeros((5, 3)))


def test_missing_predictions_say_how_to_get_them(planted):
    db, _ = planted
    with pytest.raises(ValueError, match="keep_predictions"):
        unique_variance(db, "A", "nobody")


def test_predictions_round_trip_replace_and_export(tmp_path):
    rng = np.random.default_rng(0)
    pred = rng.standard_normal((7, 3))
    frame = pd.DataFrame(
        [("encoding_r", "1", "IT", "l2", "test", pred)],
        columns=["metric", "subject", "roi", "layer_name", "split", "prediction"],
    )
    scores = pd.DataFrame(
        [(0, "l2", "1", "IT", "encoding_r", "test", 0.5)],
        columns=["layer_index", "layer_name", "subject", "roi", "metric", "split", "score"],
    )
    with ResultsDB(tmp_path / "r.duckdb") as db:
        run = db.start_run("bench", {})
        db.write_model(run, {"model_uid": "m"}, None, scores, None, 0.0, frame)
        db.write_model(run, {"model_uid": "m"}, None, scores, None, 0.0, frame)  # a rerun
        got = db.unit_predictions()
        assert len(got) == 1 and got.loc[0, "n_images"] == 7 and got.loc[0, "n_units"] == 3
        np.testing.assert_array_equal(got.loc[0, "prediction"], pred)  # float64, exact
        y = rng.standard_normal((7, 3)).astype(np.float32)
        db.write_responses(
            "bench",
            pd.DataFrame([("1", "IT", "test", y)], columns=["subject", "roi", "split", "response"]),
        )
        np.testing.assert_array_equal(db.unit_responses().loc[0, "response"], y)
        paths = db.export(tmp_path / "out")
        assert {p.name for p in paths} >= {"unit_predictions.parquet", "unit_responses.parquet"}
        with pytest.raises(ValueError, match="2-D"):
            bad = frame.assign(prediction=[np.zeros(3)])
            db.write_model(run, {"model_uid": "m"}, None, scores, None, 0.0, bad)
        assert len(db.unit_predictions()) == 1  # the failed write changed nothing


def test_a_version_1_file_gains_the_prediction_tables(tmp_path):
    import duckdb

    from zooscope.results import schema as dbmod

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    dbmod.MIGRATIONS[0](con)
    con.execute("CREATE TABLE schema_info (version INTEGER)")
    con.execute("INSERT INTO schema_info VALUES (1)")
    con.close()
    with ResultsDB(path) as db:
        assert db.schema_version == dbmod.SCHEMA_VERSION
        assert db.unit_predictions().empty and db.unit_responses().empty


def test_cli_unique_variance(planted, tmp_path):
    from io import StringIO

    from typer.testing import CliRunner

    from zooscope.cli import app

    db, _ = planted
    result = CliRunner().invoke(
        app,
        ["analyze", "unique-variance", "--db", str(db.path), "--model", "A", "--control", "B",
         "--format", "csv", "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    got = pd.read_csv(StringIO(result.stdout)).set_index("roi")
    ref = summarize_unique_variance(unique_variance(db, "A", "B")).set_index("roi")
    pd.testing.assert_series_equal(got["median_partial_model"], ref["median_partial_model"])
    assert (tmp_path / "unique_variance_A.png").exists()
    assert (tmp_path / "unique_variance_A_units.csv").exists()
