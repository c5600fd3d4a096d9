"""Tests of the published-score importers against Conwell et al.'s source data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from reference_data import CONWELL, needs_conwell2024

from zooscope.results.db import SUBJECT_MEAN, ResultsDB
from zooscope.results.importers import (
    CONWELL_BENCHMARK,
    import_conwell2024,
    import_scores_table,
    load_conwell_model_similarity,
)

pytestmark = needs_conwell2024


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    with ResultsDB(tmp_path_factory.mktemp("db") / "conwell.duckdb") as database:
        import_conwell2024(database, CONWELL)
        yield database


def test_summary_equals_published(db):
    ref = pd.read_csv(CONWELL / "results_summary.csv")
    ref["metric"] = ref["metric"].map({"crsa": "crsa", "wrsa": "versa", "srpr": "encoding_r"})
    got = db.summary().set_index(["model_uid", "metric"])["score"]
    ref = ref.set_index(["model_string", "metric"])["score"]
    assert len(got) == len(ref) == 672
    np.testing.assert_allclose(got.loc[ref.index].to_numpy(), ref.to_numpy(), rtol=0, atol=1e-12)


def test_per_subject_scores_equal_figure2(db):
    fig = pd.read_csv(CONWELL / "figure_data" / "Figure2.csv")
    fig["model_uid"] = fig["architecture"] + "_classification"
    fig["metric"] = fig["metric"].map({"crsa": "crsa", "wrsa": "versa"})
    best = db.best_layer_scores()
    best = best[best.subject != SUBJECT_MEAN]
    merged = fig.assign(subject=fig.subj_id.astype(str)).merge(
        best, on=["model_uid", "subject", "metric"]
    )
    assert len(merged) == len(fig) == 440
    np.testing.assert_allclose(merged.test_score, merged.score, atol=1e-12)
    assert set(merged.selection) == {"published"}


def test_figure4a_denormalized_to_raw_scores(db):
    fig = pd.read_csv(CONWELL / "figure_data" / "Figure4A.csv")
    scores = db.scores(subject=["1", "2", "5", "7"])
    # the 21K twin of ConvNext-B, raw = plotted - grand mean + subject mean
    row = fig[
        (fig.display_name == "ConvNext-B")
        & (fig.contrast == "ImageNet21K")
        & (fig.metric == "crsa")
        & (fig.subj_id == 7)
    ].iloc[0]
    got = scores[
        (scores.model_uid == "convnext_base_in22k_classification")
        & (scores.metric == "crsa")
        & (scores.subject == "7")
    ]
    assert got.score.item() == pytest.approx(row.score - row.grand_mean + row.subj_mean, abs=1e-12)


def test_models_and_ceilings(db):
    models = db.models().set_index("model_uid")
    assert len(models) == 224
    assert models.loc["alexnet_classification", "compare_architecture"] == "Convolutional"
    assert models.loc["alexnet_random", "training"] == "random"
    stats = pd.read_csv(CONWELL / "model_statistics" / "imagenet1k.csv").set_index("model_string")
    assert (
        models.loc["alexnet_classification", "imagenet_top1"]
        == stats.loc["alexnet_classification", "imagnet1k_top1"]
    )
    # IPCL models are named without the task suffix in model_statistics
    assert np.isfinite(models.loc["alexnet_gn_ipcl_imagenet_ipcl", "effective_dim"])
    ceil = db.ceilings(CONWELL_BENCHMARK).set_index("subject")
    ref = pd.read_csv(CONWELL / "noise_ceilings.csv").groupby("subj_id")["value"]
    np.testing.assert_allclose(ceil.loc[["1", "2", "5", "7"], "value"], ref.mean().to_numpy())
    np.testing.assert_allclose(ceil.loc[["1", "2", "5", "7"], "upper"], ref.max().to_numpy())


def test_model_similarity_pairs():
    pairs = load_conwell_model_similarity(CONWELL, "versa")
    assert len(pairs) == 225 * 224 // 2
    with pytest.raises(ValueError, match="crsa and versa"):
        load_conwell_model_similarity(CONWELL, "encoding_r")


def test_import_generic_table(tmp_path):
    table = pd.DataFrame(
        {
            "net": ["a", "a", "b", "b"],
            "measure": ["wrsa", "crsa", "wrsa", "crsa"],
            "value": [0.1, 0.2, 0.3, 0.4],
            "family": ["cnn", "cnn", "vit", "vit"],
        }
    )
    with ResultsDB(tmp_path / "g.duckdb") as db:
        with pytest.raises(ValueError, match="metric_map"):
            import_scores_table(
                db, table, benchmark="x", model_col="net", score_col="value", metric_col="measure"
            )
        counts = import_scores_table(
            db,
            table,
            benchmark="x",
            model_col="net",
            score_col="value",
            metric_col="measure",
            metric_map={"wrsa": "versa"},
        )
        assert counts == {"models": 2, "scores": 4}
        summary = db.summary(metric="versa").set_index("model_uid")
        assert summary.loc["b", "score"] == pytest.approx(0.3)
        assert db.models().set_index("model_uid").loc["b", "family"] == "vit"
