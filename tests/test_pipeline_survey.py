"""The survey end to end: demo, planted truth, kill and resume, fault isolation, Dask, direct parity.

One small synthetic NSD (voxels driven by the trained EfficientNet-Lite0's ``blocks.5``) is built
once by running ``zooscope demo`` in its reduced form; the other tests survey that benchmark.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from zooscope.benchmark import Benchmark
from zooscope.cli import app
from zooscope.config import RunOptions
from zooscope.pipeline import ScoringConfig, survey
from zooscope.pipeline.brain import BrainData
from zooscope.results import ResultsDB
from zooscope.zoo import load_manifest

# Block outputs only (16 of EfficientNet-Lite0's ~130 layers) keep the module fast.
EFFNET_LAYERS = r"^blocks\.\d\.\d+$"
SMALL_LAYERS = r"^(layer\d\.\d\.conv\d|features\.\d+|blocks\.\d+)$"  # a few layers per model, fast
OPTIONS = RunOptions(device="cpu", batch_size=16, progress=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Run the reduced demo once: (output folder, its printed output)."""
    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--out",
            str(out),
            "--n-images",
            "80",
            "--subjects",
            "1",
            "--models",
            "effnet_lite0,effnet_lite0_random",
            "--layers",
            EFFNET_LAYERS,
            "--n-sims",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out, result.output


def small_manifest(tmp_path: Path, rows: list[str]) -> Path:
    """A manifest of the given data rows (demo-style columns)."""
    header = (
        "model_uid,source,name,weights,display_name,arch_class,task,task_cluster,train_data,seed"
    )
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


RESNET = "resnet18_random,torchvision,resnet18,random,ResNet-18,Convolutional,random,,,0"
MOBILENET = (
    "mobilenet_random,torchvision,mobilenet_v3_small,random,MobileNet-V3-S,Convolutional,random,,,0"
)
MIXER = "mixer_random,timm,mixer_s32_224,random,Mixer-S/32,MLP-Mixer,random,,,0"
VIT = "vit_random,timm,vit_tiny_patch16_224,random,ViT-Ti/16,Transformer,random,,,0"


def test_demo_writes_summary_report_and_ceilings(demo: tuple[Path, str]) -> None:
    out, output = demo
    assert "effnet_lite0" in output and "scored 2 models, 0 failed" in output
    assert "mean over subjects, per region; sorted by EVC crsa" in output  # what, and in what order
    # quiet terminal: no warning for expected conditions; the per-layer detail is in the log
    assert "WARNING" not in output
    detail = (out / "results.log").read_text()
    assert "DEBUG" in detail and f"detail in {out / 'results.log'}" in output
    assert (out / "report" / "index.html").stat().st_size > 1000
    with ResultsDB(out / "results.duckdb", read_only=True) as db:
        ceilings = db.ceilings()
        assert set(ceilings["roi"]) == {"OTC", "EVC"}
        assert ceilings["value"].between(0, 1).all()
        assert db.duplicate_score_keys().empty
        assert set(db.scores()["metric"]) == {"crsa", "versa", "encoding_r"}


def test_trained_model_beats_its_random_twin(demo: tuple[Path, str]) -> None:
    out, _ = demo
    with ResultsDB(out / "results.duckdb", read_only=True) as db:
        best = db.best_layer_scores()
    otc = best[(best["roi"] == "OTC") & (best["metric"] == "versa")].set_index("model_uid")[
        "test_score"
    ]
    # The voxels were generated from the trained network's features: it must win clearly.
    assert otc["effnet_lite0"] > 0.5
    assert otc["effnet_lite0"] > otc["effnet_lite0_random"] + 0.1


def test_demo_keeps_best_layer_predictions_that_reproduce_the_scores(
    demo: tuple[Path, str],
) -> None:
    from zooscope.analyses.unique_variance import summarize_unique_variance, unique_variance
    from zooscope.rsa import RSMComparator, rsm
    from zooscope.rsa.rsm import pearson_columns

    out, _ = demo
    with ResultsDB(out / "results.duckdb", read_only=True) as db:
        best = db.best_layer_scores().set_index(["model_uid", "metric", "subject", "roi"])
        predictions = db.unit_predictions(split="test")
        measured = db.unit_responses(split="test").set_index(["subject", "roi"])["response"]
        # 2 models x {versa, encoding_r} x {OTC, EVC} x subject 1
        assert len(predictions) == 8
        for row in predictions.itertuples(index=False):
            stored = best.loc[(row.model_uid, row.metric, row.subject, row.roi)]
            assert row.layer_name == stored["layer_name"]
            y = measured[(row.subject, row.roi)]
            if row.metric == "encoding_r":
                recomputed = float(np.nanmean(pearson_columns(row.prediction, y)))
            else:
                recomputed = RSMComparator(rsm(y, dtype="float64")).score(rsm(row.prediction))
            # equal to the last bits (BLAS rounding depends on memory alignment)
            assert recomputed == pytest.approx(stored["test_score"], rel=1e-13, abs=1e-15)
        summary = summarize_unique_variance(
            unique_variance(db, "effnet_lite0", "effnet_lite0_random")
        ).set_index("roi")
    # the voxels were planted from the trained network: most of it is unique to it
    assert summary.loc["OTC", "median_partial_model"] > 0.3
    assert summary.loc["OTC", "median_partial_model"] > summary.loc["OTC", "median_partial_control"]
    page = (out / "report" / "index.html").read_text(encoding="utf-8")
    for section in ("Unique variance", "Layer-by-layer CKA", "Not shown"):
        assert f"<h2>{section}</h2>" in page
    # one matched pair and one model with a training-set size: left out, each with its reason
    # (the report draws no statistics the data cannot support)
    assert "<h2>Matched pairs and groups</h2>" not in page
    assert "<h2>Training-set size</h2>" not in page
    assert "1 matched pair" in page and "the tests need at least 2" in page
    assert "score against train_data_size" in page and "at least 3 models" in page


def test_demo_keeps_grams_whose_cka_falls_from_trained_to_random_twin(
    demo: tuple[Path, str],
) -> None:
    from zooscope.analyses.layer_cka import layer_cka
    from zooscope.results.grams import GramStore, grams_path

    out, _ = demo
    store = GramStore(grams_path(out / "results.duckdb"))
    (stored,) = store.models().values()  # one benchmark
    assert stored == ["effnet_lite0", "effnet_lite0_random"]
    table = layer_cka(store, "effnet_lite0", "effnet_lite0_random")
    with ResultsDB(out / "results.duckdb", read_only=True) as db:
        assert len(table) == len(db.layers(model_uid="effnet_lite0"))
    # the trained network and its random twin part ways with depth (debiased CKA)
    assert table["cka_debiased"].iloc[-1] < table["cka_debiased"].iloc[0] - 0.2
    page = (out / "report" / "index.html").read_text(encoding="utf-8")
    section = page.split("<h2>Layer-by-layer CKA</h2>")[1].split("<h2>")[0]
    assert "classification vs random" in section  # the trained/random contrast, matched by arch
    assert f"<td>{table['cka_debiased'].mean():.3f}</td>" in section


def stored_score(scores: pd.DataFrame, **key: str) -> float:
    """The one score row matching ``key``."""
    mask = np.logical_and.reduce([scores[column] == value for column, value in key.items()])
    assert mask.sum() == 1, key
    return float(scores.loc[mask, "score"].iloc[0])


def test_survey_scores_equal_direct_rsa_calls(demo: tuple[Path, str]) -> None:
    from zooscope.feature_extraction import LayerSelection, extract
    from zooscope.rsa import crsa, rsm, versa
    from zooscope.zoo import load_model

    out, _ = demo
    bench = Benchmark.open(out / "benchmark.h5")
    config = ScoringConfig(layers=EFFNET_LAYERS)
    with ResultsDB(out / "results.duckdb", read_only=True) as db:
        stored = db.scores(
            model_uid="effnet_lite0", benchmark_hash=bench.content_hash, config_hash=config.hash
        )
    entry = next(e for e in load_manifest("demo") if e.model_uid == "effnet_lite0")
    layers = list(
        extract(
            load_model(entry),
            bench.stimuli,
            layers=LayerSelection(include=r"^blocks\.5\.\d+$"),
            progress=False,
        )
    )
    assert len(layers) >= 2

    # The brain side from the file itself, not from the scoring module's BrainData.
    train, test = bench.splits["train"], bench.splits["test"]
    groups = bench.groups()
    units = np.unique(np.concatenate(list(groups.values())))
    mean = np.nanmean(bench.responses(units), axis=2)  # [units, images]
    column = {u: i for i, u in enumerate(units)}
    index = {label: np.array([column[u] for u in idx]) for label, idx in groups.items()}
    Y_train, Y_test = mean[:, train].T, mean[:, test].T
    compared = 0
    for layer in layers:
        direct = versa(
            layer.srp[train], layer.srp[test], Y_train, Y_test, index, alphas=np.logspace(-1, 5, 7)
        )
        for row in direct.scores.itertuples(index=False):
            subject, roi = row.group.split("|")
            mine = stored_score(
                stored,
                layer_name=layer.name,
                subject=subject,
                roi=roi,
                metric=row.metric,
                split=row.split,
            )
            assert mine == pytest.approx(row.score, abs=1e-5)
            compared += 1
        for label, idx in index.items():
            subject, roi = label.split("|")
            for split, images in (("train", train), ("test", test)):
                brain = rsm(mean[idx][:, images].T, dtype="float64")
                expected = crsa(layer.rsm[np.ix_(images, images)], brain)
                mine = stored_score(
                    stored,
                    layer_name=layer.name,
                    subject=subject,
                    roi=roi,
                    metric="crsa",
                    split=split,
                )
                assert mine == pytest.approx(expected, abs=1e-5)
                compared += 1
    assert compared >= len(layers) * len(index) * 6


def test_failing_model_is_recorded_and_the_others_are_scored(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    out, _ = demo
    bad = "no_such_model,timm,definitely_not_a_timm_model,random,Bad,Convolutional,random,,,0"
    manifest = small_manifest(tmp_path, [bad, RESNET])
    config = ScoringConfig(layers=SMALL_LAYERS, metrics=("crsa",))
    db_path = tmp_path / "r.duckdb"
    report = survey(manifest, out / "benchmark.h5", db_path, config, OPTIONS, ceilings=False)
    assert report.scored == ["resnet18_random"]
    assert [f.model_uid for f in report.failed] == ["no_such_model"]
    with ResultsDB(db_path, read_only=True) as db:
        failures = db.failures()
        assert failures["model_uid"].tolist() == ["no_such_model"]
        assert failures["stage"].iloc[0] == "load"
        assert "definitely_not_a_timm_model" in failures["error"].iloc[0]
        assert "Traceback" in failures["traceback"].iloc[0]
        assert set(db.scores()["model_uid"]) == {"resnet18_random"}

    again = survey(manifest, out / "benchmark.h5", db_path, config, OPTIONS, ceilings=False)
    assert again.skipped_complete == ["resnet18_random"] and again.skipped_failed == [
        "no_such_model"
    ]
    assert again.scored == [] and again.failed == []
    retried = survey(
        manifest, out / "benchmark.h5", db_path, config, OPTIONS, ceilings=False, retry_failed=True
    )
    assert [f.model_uid for f in retried.failed] == ["no_such_model"] and retried.scored == []


def test_killed_survey_resumes_without_duplicates(demo: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = demo
    manifest = small_manifest(tmp_path, [RESNET, MOBILENET, MIXER, VIT])
    db_path = tmp_path / "killed.duckdb"
    command = [
        str(Path(sys.executable).with_name("zooscope")),
        "survey",
        "--manifest",
        str(manifest),
        "--benchmark",
        str(out / "benchmark.h5"),
        "--db",
        str(db_path),
        "--layers",
        SMALL_LAYERS,
        "--no-ceilings",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    seen: list[str] = []
    deadline = time.monotonic() + 600
    assert process.stderr is not None
    for line in process.stderr:  # the log line written after each model's transaction
        seen.append(line)
        if " passes, " in line or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert any(" passes, " in line for line in seen), "".join(seen[-20:])

    with ResultsDB(db_path, read_only=True) as db:
        done_before = set(db.scores()["model_uid"])
    assert 1 <= len(done_before) < 4

    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"already complete {len(done_before)}" in rerun.stdout
    with ResultsDB(db_path, read_only=True) as db:
        scores, layers = db.scores(), db.layers()
        assert db.duplicate_score_keys().empty
    assert set(scores["model_uid"]) == {
        "resnet18_random",
        "mobilenet_random",
        "mixer_random",
        "vit_random",
    }
    n_groups = scores.groupby(["subject", "roi"]).ngroups
    for uid, rows in scores.groupby("model_uid"):
        # Complete: every layer has every group x metric x split, exactly once.
        n_layers = (layers["model_uid"] == uid).sum()
        assert len(rows) == n_layers * n_groups * 3 * 2, uid


def test_dask_local_cluster_gives_the_same_scores(demo: tuple[Path, str], tmp_path: Path) -> None:
    from zooscope.pipeline.cluster import make_client

    out, _ = demo
    manifest = small_manifest(tmp_path, [RESNET, MIXER])
    config = ScoringConfig(layers=SMALL_LAYERS)
    local = survey(
        manifest, out / "benchmark.h5", tmp_path / "local.duckdb", config, OPTIONS, ceilings=False
    )
    client = make_client(workers=2)
    try:
        assert len(client.scheduler_info()["workers"]) == 2
        dask = survey(
            manifest,
            out / "benchmark.h5",
            tmp_path / "dask.duckdb",
            config,
            OPTIONS,
            ceilings=False,
            client=client,
        )
    finally:
        client.close()
    assert sorted(local.scored) == sorted(dask.scored) == ["mixer_random", "resnet18_random"]

    def table(path: Path) -> pd.DataFrame:
        with ResultsDB(path, read_only=True) as db:
            frame = db.scores()[
                ["model_uid", "layer_name", "subject", "roi", "metric", "split", "score"]
            ]
        return frame.sort_values(
            ["model_uid", "layer_name", "subject", "roi", "metric", "split"]
        ).reset_index(drop=True)

    a, b = table(tmp_path / "local.duckdb"), table(tmp_path / "dask.duckdb")
    pd.testing.assert_frame_equal(a.drop(columns="score"), b.drop(columns="score"))
    np.testing.assert_allclose(a["score"], b["score"], atol=1e-5)


def test_brain_data_averages_repetitions(demo: tuple[Path, str]) -> None:
    out, _ = demo
    bench = Benchmark.open(out / "benchmark.h5")
    brain = BrainData.from_benchmark(bench, ScoringConfig())
    units = np.unique(np.concatenate(list(bench.groups().values())))
    mean = np.nanmean(bench.responses(units), axis=2)
    np.testing.assert_allclose(brain.Y_test, mean[:, bench.splits["test"]].T, rtol=1e-6, atol=1e-6)


def test_model_without_any_selected_layer_is_a_failure_not_complete(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    out, _ = demo
    config = ScoringConfig(layers=r"^no_layer_is_called_this$", metrics=("crsa",))
    report = survey(
        small_manifest(tmp_path, [RESNET]),
        out / "benchmark.h5",
        tmp_path / "r.duckdb",
        config,
        OPTIONS,
        ceilings=False,
    )
    assert report.scored == []
    assert [(f.model_uid, f.stage) for f in report.failed] == [("resnet18_random", "extract")]
    assert "no_layer_is_called_this" in report.failed[0].error


def test_constant_layer_gets_nan_encoding_scores_and_is_never_selected(
    demo: tuple[Path, str],
) -> None:
    from types import SimpleNamespace

    from zooscope.pipeline.scoring import score_layer
    from zooscope.rsa import RidgeGCV, rsm, versa

    out, _ = demo
    bench = Benchmark.open(out / "benchmark.h5")
    config = ScoringConfig(metrics=("versa", "encoding_r"))
    brain = BrainData.from_benchmark(bench, config)
    n = len(bench.splits["train"]) + len(bench.splits["test"])
    constant = np.tile(np.random.default_rng(0).standard_normal(40), (n, 1)).astype(np.float32)
    # Why the guard exists: on constant features the leave-one-out predictions (intercepts
    # alone) still mirror the brain RSM of the training images.
    loo = RidgeGCV().fit(np.zeros((len(brain.train), 3)), brain.Y_train).loo_predictions_
    for label, idx in brain.groups.items():
        assert brain.comparators[label]["train"].score(rsm(loo[:, idx], dtype="float64")) > 0.3

    direct = versa(
        constant[brain.train], constant[brain.test], brain.Y_train, brain.Y_test, brain.groups
    )
    assert direct.scores["score"].isna().all() and len(direct.scores) == len(brain.groups) * 4

    rows, test_rsms = score_layer(
        SimpleNamespace(name="constant", srp=constant, rsm=None), brain, config
    )
    assert len(rows) == len(brain.groups) * 2 * 2
    assert all(np.isnan(row["score"]) for row in rows)
    assert test_rsms == {}


def test_report_shows_one_roi_at_a_time(demo: tuple[Path, str], tmp_path: Path) -> None:
    from zooscope.report.html import build_report

    out, _ = demo
    assert (
        "ROI: <b>OTC</b> (also in the database: EVC" in (out / "report" / "index.html").read_text()
    )
    with ResultsDB(out / "results.duckdb", read_only=True) as db:
        evc = build_report(db, tmp_path / "evc", roi="EVC", n_boot=50).read_text()
        assert "ROI: <b>EVC</b>" in evc
        with pytest.raises(ValueError, match="no scores for ROI 'V9'"):
            build_report(db, tmp_path / "bad", roi="V9")


def test_survey_cli_profile_conwell2024_end_to_end(demo: tuple[Path, str], tmp_path: Path) -> None:
    """``zooscope survey --manifest demo --profile conwell2024`` on the demo's synthetic NSD: both
    profiles in one database, every row traceable to its profile, summaries choose one."""
    out, _ = demo
    db_path = out / "results.duckdb"
    copy = tmp_path / "both.duckdb"
    copy.write_bytes(db_path.read_bytes())  # the demo's default-profile results
    args = ["survey", "--manifest", "demo", "--benchmark", str(out / "benchmark.h5"), "--db", str(copy),
            "--models", "effnet_lite0", "--layers", EFFNET_LAYERS, "--n-sims", "5", "--batch-size", "16"]  # fmt: skip
    result = CliRunner().invoke(app, [*args, "--profile", "conwell2024"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "scored 1, failed 0" in result.output
    with ResultsDB(copy, read_only=True) as db:
        profiles = db.config_profiles().set_index("config_hash")["profile"]
        assert set(profiles) == {"default", "conwell2024"}
        scores = db.scores(model_uid="effnet_lite0")
        assert set(scores["config_hash"].map(profiles)) == {"default", "conwell2024"}
        paper = db.layers(
            model_uid="effnet_lite0", config_hash=db.profile_config_hashes("conwell2024")
        )
        default = db.layers(
            model_uid="effnet_lite0", config_hash=db.profile_config_hashes("default")
        )
        # the second half of the layers: the regex keeps only the later block outputs
        assert paper["layer_index"].min() > 60 and len(paper) < len(default)
    summary = CliRunner().invoke(
        app,
        ["results", "summary", "--db", str(copy), "--profile", "conwell2024", "--format", "csv"],
    )
    assert summary.exit_code == 0, summary.output
    table = pd.read_csv(io.StringIO(summary.output))
    assert set(table["profile"]) == {"conwell2024"} and set(table["model_uid"]) == {"effnet_lite0"}
    again = CliRunner().invoke(app, [*args, "--profile", "conwell2024"])
    assert "already complete 1" in again.output  # the profile is part of the results' identity
