"""What a survey keeps besides scores: per-layer CKA Grams and predictivity unit predictions.

One small neural (time-binned, brainio-imported) benchmark surveyed once with ``predictivity``
and ``keep_grams=True`` over two tiny random networks; the checks recompute everything
independently: CKA from forward-hook activations, predictions from sklearn's ``Ridge(alpha=1)``
on SRP features extracted outside the survey.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from typer.testing import CliRunner

from zooscope.benchmark import Benchmark, split_region
from zooscope.cli import app
from zooscope.config import RunOptions
from zooscope.feature_extraction import LayerSelection, extract
from zooscope.feature_extraction.cka_consumer import CKAGramConsumer
from zooscope.feature_extraction.consumers import GramConsumer
from zooscope.feature_extraction.extract import plan_passes
from zooscope.feature_extraction.layers import LayerSpec
from zooscope.pipeline import ScoringConfig, survey
from zooscope.results import ResultsDB
from zooscope.results.grams import GramStore, grams_path
from zooscope.rsa import cka
from zooscope.zoo import load_manifest, load_model

LAYERS = r"^(layer\d\.\d\.conv\d|features\.\d+)$"  # a few layers of each tiny model
MANIFEST = (
    "model_uid,source,name,weights,display_name,arch_class,task,task_cluster,train_data,seed\n"
    "resnet18_random,torchvision,resnet18,random,ResNet-18,Convolutional,random,,,0\n"
    "mobilenet_random,torchvision,mobilenet_v3_small,random,MobileNet-V3-S,Convolutional,random,,,0\n"
)
MODELS = ("resnet18_random", "mobilenet_random")
CONFIG = ScoringConfig(
    metrics=("predictivity",), layers=LAYERS, regression="ridge", predictivity_splits="even-odd"
)
KEEP = RunOptions(device="cpu", batch_size=16, progress=False, keep_grams=True)
runner = CliRunner()


@pytest.fixture(scope="module")
def surveyed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from zooscope.neural.brainio import import_brainio
    from zooscope.neural.synthetic import write_synthetic_assembly

    tmp = tmp_path_factory.mktemp("kept")
    paths = write_synthetic_assembly(tmp / "brainio", n_images=48, image_size=64)
    bench_path = tmp / "benchmark.h5"
    import_brainio(paths["assembly"], paths["stimuli"], paths["images"], bench_path)
    manifest = tmp / "manifest.csv"
    manifest.write_text(MANIFEST, encoding="utf-8")
    kept, plain = tmp / "kept.duckdb", tmp / "plain.duckdb"
    report = survey(manifest, bench_path, kept, CONFIG, KEEP)
    assert sorted(report.scored) == sorted(MODELS) and not report.failed
    # the default options, on one model (enough to see that nothing is kept)
    default = RunOptions(device="cpu", batch_size=16, progress=False)
    assert survey(manifest, bench_path, plain, CONFIG, default, models=[MODELS[1]]).scored
    return {"bench": bench_path, "manifest": manifest, "db": kept, "plain": plain}


def test_kept_grams_give_rsa_cka_of_independent_activations(
    surveyed: dict, hooked_activations
) -> None:
    bench = Benchmark.open(surveyed["bench"])
    store = GramStore(grams_path(surveyed["db"]))
    assert store.models() == {bench.content_hash: sorted(MODELS)}
    with ResultsDB(surveyed["db"], read_only=True) as db:
        scored = db.layers()
    grams = {uid: store.read(uid, bench.content_hash) for uid in MODELS}
    for uid in MODELS:  # every scored layer, in extraction order
        layers = scored[scored["model_uid"] == uid].sort_values("layer_index")
        assert [name for _, name, _ in grams[uid]] == layers["layer_name"].tolist()
    entries = {e.model_uid: e for e in load_manifest(surveyed["manifest"])}
    images = bench.stimuli[:]
    picked = {uid: [grams[uid][i][1] for i in (0, len(grams[uid]) // 2, -1)] for uid in MODELS}
    acts = {
        uid: hooked_activations(load_model(entries[uid], device="cpu"), images, picked[uid])
        for uid in MODELS
    }
    by_name = {uid: {name: g for _, name, g in grams[uid]} for uid in MODELS}
    a, b = MODELS
    for name_a, name_b in zip(picked[a], picked[b], strict=True):
        for debiased in (False, True):
            expected = cka(acts[a][name_a], acts[b][name_b], debiased=debiased)
            got = cka(by_name[a][name_a], by_name[b][name_b], debiased=debiased, gram=True)
            assert got == pytest.approx(expected, abs=1e-6)
    # the stored matrix itself is H X X^T H of the activations
    X = acts[a][picked[a][-1]]
    centred = X - X.mean(axis=0)
    expected_gram = centred @ centred.T
    scale = np.abs(expected_gram).max()
    np.testing.assert_allclose(by_name[a][picked[a][-1]], expected_gram, atol=1e-6 * scale)


def test_grams_are_off_by_default(surveyed: dict) -> None:
    assert RunOptions().keep_grams is False
    assert not grams_path(surveyed["plain"]).exists()


def test_layer_cka_cli_uses_the_stored_grams_without_extracting(surveyed: dict) -> None:
    result = runner.invoke(
        app,
        ["analyze", "layer-cka", "--db", str(surveyed["db"]), "--models", MODELS[0], "--models",
         MODELS[1], "--benchmark", str(surveyed["bench"]), "--manifest", str(surveyed["manifest"]),
         "--format", "csv"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert " layers\n" not in result.stdout  # "<uid>: N layers" is printed only when extracting
    table = pd.read_csv(StringIO(result.stdout))
    assert len(table) == len(GramStore(grams_path(surveyed["db"])).read(MODELS[0]))
    assert table["cka"].between(0, 1 + 1e-9).all()


def test_the_planner_counts_the_gram_consumer_in_the_budget() -> None:
    n = 500
    layers = [LayerSpec(f"l{i}", i + 1, "Conv2d", f"l{i}", 0, (), 0, (1000,), 1) for i in range(4)]
    consumer = CKAGramConsumer()
    fixed = consumer.fixed_nbytes(layers[0], n)
    assert fixed >= 8 * n * n  # at least the n x n float64 Gram
    per_layer = fixed + 4 * n * 1000  # and the float32 columns of the layer
    passes = plan_passes(layers, n, 2 * per_layer, [consumer])
    assert [len(p) for p in passes] == [2, 2]
    assert all(sum(piece.nbytes for piece in p) <= 2 * per_layer for p in passes)
    # With the exact RSMs, the columns are held once: only the RSM's own Gram is added.
    both = [GramConsumer(), consumer]
    rsm_gram = GramConsumer().fixed_nbytes(layers[0], n)
    passes = plan_passes(layers, n, 2 * (per_layer + rsm_gram), both)
    assert [len(p) for p in passes] == [2, 2]
    assert passes[0][0].nbytes == per_layer + rsm_gram


def test_stored_predictivity_predictions_equal_sklearn_ridge(surveyed: dict) -> None:
    bench = Benchmark.open(surveyed["bench"])
    train, test = bench.splits["train"], bench.splits["test"]
    with ResultsDB(surveyed["db"], read_only=True) as db:
        predictions = db.unit_predictions(metric="predictivity", split="test")
        best = db.best_layer_scores().set_index(["model_uid", "subject", "roi"])
    groups = bench.groups()
    assert len(predictions) == len(MODELS) * len(groups)
    assert any(split_region(roi)[1] for roi in predictions["roi"])  # time-binned groups
    entries = {e.model_uid: e for e in load_manifest(surveyed["manifest"])}
    mean = bench.mean_responses(np.arange(len(bench.units)))  # [units, images]
    for uid in MODELS:
        stream = extract(
            load_model(entries[uid], device="cpu"), bench.stimuli, layers=LayerSelection(include=LAYERS),
            rsm=False, seed=CONFIG.srp_seed, eps=CONFIG.eps, progress=False,
        )  # fmt: skip
        srp = {f.name: f.srp for f in stream}
        for row in predictions[predictions["model_uid"] == uid].itertuples(index=False):
            # the committed layer: the best train-split predictivity of the group
            assert row.layer_name == best.loc[(uid, row.subject, row.roi), "layer_name"]
            units = groups[f"{row.subject}|{row.roi}"]
            X = srp[row.layer_name].astype(np.float64)
            y = mean[units][:, train].T
            expected = Ridge(alpha=1.0).fit(X[train], y).predict(X[test])
            assert row.prediction.shape == (len(test), len(units))
            np.testing.assert_allclose(row.prediction, expected, atol=1e-6, rtol=0)


def test_unique_variance_cli_on_predictivity_splits_time_bins(surveyed: dict, tmp_path: Path):
    result = runner.invoke(
        app,
        ["analyze", "unique-variance", "--db", str(surveyed["db"]), "--model", MODELS[0],
         "--control", MODELS[1], "--metric", "predictivity", "--format", "csv",
         "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = pd.read_csv(StringIO(result.stdout))
    bench = Benchmark.open(surveyed["bench"])
    expected = sorted(
        (subject, *split_region(roi))
        for subject, roi in (label.split("|", 1) for label in bench.groups())
    )
    got = sorted(
        zip(summary["subject"], summary["roi"], summary["time_bin"].astype(str), strict=True)
    )
    assert got == expected and len(set(summary["time_bin"])) == 2
    units = pd.read_csv(tmp_path / f"unique_variance_{MODELS[0]}_units.csv")
    assert {"roi", "time_bin", "partial_model"} <= set(units.columns)
    assert not units["roi"].str.contains("|", regex=False).any()
    assert (tmp_path / f"unique_variance_{MODELS[0]}.png").exists()


def test_report_shows_cka_and_predictivity_unique_variance(surveyed: dict, tmp_path: Path):
    from zooscope.analyses.layer_cka import layer_cka
    from zooscope.report.html import build_report

    with ResultsDB(surveyed["db"], read_only=True) as db:
        page = build_report(db, tmp_path / "report", n_boot=20).read_text(encoding="utf-8")
    for section in ("Layer-by-layer CKA", "Unique variance"):
        assert f"<h2>{section}</h2>" in page
    assert (tmp_path / "report" / "figures" / "layer_cka.png").exists()
    assert (tmp_path / "report" / "figures" / "model_cka.png").exists()  # the heatmap
    # the section's per-pair mean is the debiased layer CKA of the stored Grams (top model first)
    store = GramStore(grams_path(surveyed["db"]))
    section = page.split("<h2>Layer-by-layer CKA</h2>")[1].split("<h2>")[0]
    means = {
        f"{layer_cka(store, a, b)['cka_debiased'].mean():.3f}" for a, b in (MODELS, MODELS[::-1])
    }
    assert any(f"<td>{m}</td>" in section for m in means), section[-2000:]
