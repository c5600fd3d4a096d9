"""A survey's progress events, its per-model stage times, and the cost model's estimate."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from zooscope.benchmark import Benchmark
from zooscope.cli import app
from zooscope.config import RunOptions, ScoringConfig
from zooscope.pipeline import survey
from zooscope.pipeline.cost import (
    _rates_key,
    cached_costs,
    calibrate,
    estimate_survey,
    predict,
    probe_model,
)
from zooscope.pipeline.progress import ProgressEvent
from zooscope.results import ResultsDB
from zooscope.zoo import load_manifest

pytestmark = pytest.mark.usefixtures("single_torch_thread")

MANIFEST = (
    "model_uid,source,name,weights,display_name,arch_class,task,task_cluster,train_data,seed\n"
    "resnet18_random,torchvision,resnet18,random,ResNet-18,Convolutional,random,,,0\n"
)
LAYERS = r"^(conv1|layer\d\.\d\.conv1)$"
CONFIG = ScoringConfig(layers=LAYERS)
# A budget that splits the 4 early layers over several passes (replays included)
OPTIONS = RunOptions(device="cpu", batch_size=8, memory_budget="150MB", progress=False)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 images of 32 px, 2 subjects x 30 units, 2 repetitions: fast to score."""
    rng = np.random.default_rng(0)
    n_units, n_images = 60, 24
    signal = rng.standard_normal((n_units, n_images)).astype(np.float32)
    responses = signal[:, :, None] + 0.5 * rng.standard_normal((n_units, n_images, 2))
    units = pd.DataFrame({"subject": np.repeat([1, 2], 30), "otc": np.ones(n_units, bool)})
    stimuli = rng.integers(0, 256, (n_images, 32, 32, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("progress") / "bench.h5"
    Benchmark.from_arrays(path, responses.astype(np.float32), stimuli, units)
    return path


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("manifest") / "manifest.csv"
    path.write_text(MANIFEST, encoding="utf-8")
    return path


def test_a_survey_reports_its_plan_every_pass_and_every_layer(bench, manifest, tmp_path):
    events: list[ProgressEvent] = []
    entries = load_manifest(manifest)
    from zooscope.pipeline.survey import score_task

    scores = score_task(entries[0], str(bench), CONFIG, OPTIONS, events.append)
    assert not hasattr(scores, "stage"), scores  # not a Failure
    kinds = [event.kind for event in events]
    assert kinds[0] == "planned" and kinds[-1] == "done"
    planned = events[0]
    assert planned.total == len(scores.layers) == 9  # conv1 and the first conv of 8 blocks
    assert planned.passes == scores.passes >= 2
    passes = [event for event in events if event.kind == "pass"]
    assert [event.number for event in passes] == list(range(1, planned.passes + 1))
    layers = [event for event in events if event.kind == "layer"]
    assert [event.done for event in layers] == list(range(1, planned.total + 1))
    assert [event.layer for event in layers] == scores.layers["layer_name"].tolist()
    assert all(event.total == planned.total for event in layers)
    elapsed = [event.elapsed for event in events]
    assert elapsed == sorted(elapsed)
    # the model's own seconds per stage come back with it
    assert {"forward", "gram", "ridge", "rsa"} <= set(scores.stage_seconds)
    assert all(t["cpu"] >= 0 and t["wall"] > 0 for t in scores.stage_seconds.values())


def test_survey_estimate_predicts_every_model_and_caches_it(bench, manifest, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOSCOPE_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(
        app,
        ["survey", "-m", str(manifest), "-b", str(bench), "--db", str(tmp_path / "r.duckdb"),
         "--layers", LAYERS, "--memory-budget", "150MB", "--batch-size", "8", "--device", "cpu",
         "--estimate"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "resnet18_random" in result.stdout and "total (1 models)" in result.stdout
    assert not (tmp_path / "r.duckdb").exists()  # nothing scored, nothing written
    entries = load_manifest(manifest)
    bench_ = Benchmark.open(bench)
    cached = cached_costs(entries, bench_, CONFIG, OPTIONS)
    assert set(cached) == {"resnet18_random"}
    cost = cached["resnet18_random"]
    assert cost.n_layers == 9 and cost.passes >= 2 and len(cost.layer_seconds) == 9
    assert cost.total("cpu") > 0 and cost.peak_bytes > 100e6


def test_the_estimate_follows_the_plan_of_the_extraction(bench, manifest, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOSCOPE_CACHE", str(tmp_path / "cache"))
    entry = load_manifest(manifest)[0]
    bench_ = Benchmark.open(bench)
    probe = probe_model(entry, bench_, CONFIG, OPTIONS)
    # passes and replays as the survey plans them
    events: list[ProgressEvent] = []
    from zooscope.pipeline.survey import score_task

    scores = score_task(entry, str(bench), CONFIG, OPTIONS, events.append)
    assert probe.passes == scores.passes
    assert 0 < probe.from_images <= probe.passes
    assert 0 < probe.forward_share <= probe.passes
    rates = calibrate(bench_, CONFIG, OPTIONS)
    cost = predict(probe, rates, bench_.n_images, CONFIG, OPTIONS)
    assert cost.n_layers == 9 and cost.passes == probe.passes
    # the forward work follows the number of batches (the rates hold for this benchmark's size)
    double = predict(probe, rates, 2 * bench_.n_images, CONFIG, OPTIONS)
    assert double.stages["forward"]["cpu"] > cost.stages["forward"]["cpu"]
    assert calibrate(bench_, CONFIG, OPTIONS) == rates  # read from the cache the second time
    # rates measured under other process settings (zooscope.runtime) are not reused
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "28")
    assert _rates_key(bench_, CONFIG, OPTIONS)["settings"]["OPENBLAS_THREAD_TIMEOUT"] == "28"
    assert _rates_key(bench_, CONFIG, OPTIONS) != rates.key
    estimate = estimate_survey([entry], bench_, CONFIG, OPTIONS, progress=False)
    assert [m.model_uid for m in estimate.models] == ["resnet18_random"]


def test_the_survey_finds_cached_estimates_for_its_eta(
    bench, manifest, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("ZOOSCOPE_CACHE", str(tmp_path / "cache"))
    db = tmp_path / "r.duckdb"
    entries = load_manifest(manifest)
    bench_ = Benchmark.open(bench)
    assert cached_costs(entries, bench_, CONFIG, OPTIONS) == {}
    estimate_survey(entries, bench_, CONFIG, OPTIONS, progress=False)
    with caplog.at_level(logging.INFO, logger="zooscope.pipeline.survey"):
        report = survey(manifest, bench, db, CONFIG, OPTIONS, ceilings=False)
    assert report.scored == ["resnet18_random"]
    # the first lines: the budget in force, where it came from, the passes it implies
    passes = cached_costs(entries, bench_, CONFIG, OPTIONS)["resnet18_random"].passes
    assert (
        f"memory budget per model: 0.1 GB (--memory-budget); {passes} passes per model for the "
        "1 model(s) --estimate has probed" in caplog.text
    )
    with ResultsDB(db, read_only=True) as results:
        assert results.completed_models(bench_.content_hash, CONFIG.hash) == {"resnet18_random"}
