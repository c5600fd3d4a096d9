"""Neural benchmarks: brainio import, format 2 (time bins), Brain-Score's predictivity and ceiling.

Fixtures in tests/data were written by Brain-Score's own code (brainscore-brainio 1.1.0,
brainscore-vision 2.4.2, scikit-learn 1.5.2) with tests/data/make_brainscore_fixture.py.
"""

from __future__ import annotations

import io
import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from zooscope.benchmark import Benchmark, split_region
from zooscope.neural.brainio import import_brainio, read_assembly, write_assembly
from zooscope.rsa.predictivity import (
    RIDGECV_ALPHAS,
    cross_validation_splits,
    group_medians,
    internal_consistency,
    predictivity,
    row_space,
)

DATA = Path(__file__).parent / "data"
FIXTURE = np.load(DATA / "brainscore_metric.npz")
#: A Python with brainio + brainscore-vision (separate environment), for the live checks.
BRAINSCORE_PYTHON = os.environ.get(
    "ZOOSCOPE_BRAINSCORE_PYTHON", "/work/venvs/brainscore/bin/python"
)


# -- brainio import ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Benchmark:
    out = tmp_path_factory.mktemp("brainio") / "bench.h5"
    return import_brainio(
        DATA / "brainio_assembly.nc",
        DATA / "brainio_stimuli.csv",
        DATA / "brainio_stimuli.zip",
        out,
        image_size=16,
    )


def test_brainio_assembly_round_trips_exactly(imported: Benchmark) -> None:
    values, image, rep = FIXTURE["rt_values"], FIXTURE["rt_image"], FIXTURE["rt_rep"]
    n_neurons, n_bins = values.shape[1], values.shape[2]
    responses = imported.responses()
    assert responses.shape == (n_neurons * n_bins, 12, 3)
    expected = np.full(responses.shape, np.nan, np.float32)
    for b in range(n_bins):
        expected[b * n_neurons : (b + 1) * n_neurons, image, rep] = values[:, :, b].T
    np.testing.assert_array_equal(responses, expected)  # NaN where (image 4, rep 2) is missing
    assert np.isnan(responses[:, 4, 2]).all() and np.isfinite(responses[:, 4, :2]).all()
    images = imported.image_table
    assert images["stimulus_id"].tolist() == [f"im{k:03d}" for k in range(12)]
    assert images["object_name"].tolist() == [
        ["car", "dog", "face", "tree"][k % 4] for k in range(12)
    ]
    units = imported.units
    assert units["time_bin"].tolist() == ["70-170"] * 5 + ["170-270"] * 5
    assert units["neuroid_id"].tolist() == [f"n{j}" for j in range(5)] * 2
    assert units["subject"].tolist() == ["m1", "m2", "m1", "m1", "m2"] * 2
    assert units["V4"].tolist() == [True, True, False, False, False] * 2
    assert units["IT"].tolist() == [False, False, True, True, True] * 2
    assert imported.time_bins == ["70-170", "170-270"]
    assert imported.format_version == 2 and imported.verify()
    assert imported.groups()["m1|IT|170-270"].tolist() == [7, 8]


def test_brainio_stimuli_keep_their_pixels(imported: Benchmark) -> None:
    from PIL import Image

    with zipfile.ZipFile(DATA / "brainio_stimuli.zip") as archive:
        original = np.asarray(Image.open(io.BytesIO(archive.read("im003.png"))).convert("RGB"))
    assert original.shape == (16, 16, 3)  # stored at its own size: no resampling
    np.testing.assert_array_equal(imported.stimuli[3], original)


def test_import_selects_time_bins_and_rejects_unknown(tmp_path: Path) -> None:
    args = (
        DATA / "brainio_assembly.nc",
        DATA / "brainio_stimuli.csv",
        DATA / "brainio_stimuli.zip",
    )
    bench = import_brainio(*args, tmp_path / "late.h5", time_bins=["170-270"], image_size=8)
    assert bench.time_bins == ["170-270"] and bench.n_units == 5
    with pytest.raises(KeyError, match="unknown time bin"):
        import_brainio(*args, tmp_path / "x.h5", time_bins=["0-50"])


def test_import_brainio_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from zooscope.cli import app

    out = tmp_path / "b.h5"
    result = CliRunner().invoke(
        app,
        ["benchmark", "import-brainio", str(DATA / "brainio_assembly.nc"),
         "--stimuli", str(DATA / "brainio_stimuli.csv"), "--images", str(DATA / "brainio_stimuli.zip"),
         "--out", str(out), "--time-bins", "70-170", "--image-size", "8"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "5 units (1 time bins) x 12 images x 3 reps" in result.output
    info = CliRunner().invoke(app, ["benchmark", "info", str(out)])
    assert "time bins ['70-170']" in info.output and "group m1|IT|70-170: 2 units" in info.output


def test_written_assembly_reads_back(tmp_path: Path) -> None:
    original = read_assembly(DATA / "brainio_assembly.nc")
    path = write_assembly(
        tmp_path / "a.nc",
        original.values,
        original.presentation,
        original.neuroid,
        original.time_bin,
    )
    again = read_assembly(path)
    np.testing.assert_array_equal(again.values, original.values)
    for table in ("presentation", "neuroid", "time_bin"):
        pd.testing.assert_frame_equal(getattr(again, table), getattr(original, table))


@pytest.mark.skipif(not Path(BRAINSCORE_PYTHON).exists(), reason="no brainio environment")
def test_brainio_itself_reads_the_assembly_zooscope_writes(tmp_path: Path) -> None:
    original = read_assembly(DATA / "brainio_assembly.nc")
    path = write_assembly(
        tmp_path / "a.nc",
        original.values,
        original.presentation,
        original.neuroid,
        original.time_bin,
    )
    code = (
        "import sys, numpy as np\n"
        "from brainio.assemblies import NeuronRecordingAssembly\n"
        "a = NeuronRecordingAssembly.from_files(sys.argv[1])\n"
        "b = NeuronRecordingAssembly.from_files(sys.argv[2])\n"
        "assert a.dims == b.dims == ('presentation', 'neuroid', 'time_bin')\n"
        "assert np.array_equal(a.values, b.values, equal_nan=True)\n"
        "for c in ('stimulus_id', 'repetition', 'object_name', 'region', 'animal', 'time_bin_start'):\n"
        "    assert list(a[c].values) == list(b[c].values), c\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [BRAINSCORE_PYTHON, "-W", "ignore", "-c", code, str(DATA / "brainio_assembly.nc"), str(path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.stdout.strip() == "ok", result.stderr[-2000:]


# -- format 2 ---------------------------------------------------------------------------------
def _arrays(n_units: int = 6, n_images: int = 10, reps: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (
        rng.normal(size=(n_units, n_images, reps)).astype(np.float32),
        rng.integers(0, 255, size=(n_images, 4, 4, 3), dtype=np.uint8),
    )


def test_format_one_file_opens_with_its_old_labels_and_hash(tmp_path: Path) -> None:
    import h5py

    responses, stimuli = _arrays()
    units = {"subject": [1, 1, 1, 2, 2, 2], "OTC": [True] * 6}
    bench = Benchmark.from_arrays(tmp_path / "v1.h5", responses, stimuli, units)
    digest = bench.content_hash
    bench.close()
    with h5py.File(tmp_path / "v1.h5", "r+") as f:  # what format 1 wrote: no images, version 1
        assert "images" not in f
        f.attrs["format_version"] = 1
    old = Benchmark.open(tmp_path / "v1.h5")
    assert old.format_version == 1 and old.verify() and old.content_hash == digest
    assert list(old.groups()) == ["1|OTC", "2|OTC"] and old.time_bins == []
    assert len(old.image_table) == 10 and old.image_table.columns.empty


def test_time_bins_are_part_of_group_labels(tmp_path: Path) -> None:
    responses, stimuli = _arrays()
    units = {"subject": ["m1"] * 6, "IT": [True] * 6, "time_bin": ["70-170"] * 3 + ["170-270"] * 3}
    bench = Benchmark.from_arrays(
        tmp_path / "v2.h5", responses, stimuli, units, images={"object_name": list("aabbccddee")}
    )
    groups = {k: v.tolist() for k, v in bench.groups().items()}
    assert groups == {"m1|IT|70-170": [0, 1, 2], "m1|IT|170-270": [3, 4, 5]}
    assert list(bench.groups(time_bins=["170-270"])) == ["m1|IT|170-270"]
    assert bench.image_table["object_name"].tolist() == list("aabbccddee")
    assert split_region("IT|70-170") == ("IT", "70-170") and split_region("OTC") == ("OTC", None)
    with pytest.raises(ValueError, match="may not contain"):
        Benchmark.from_arrays(
            tmp_path / "bad.h5", responses, stimuli, {**units, "time_bin": ["a|b"] * 6}
        )
    with pytest.raises(ValueError, match="image table has"):
        Benchmark.from_arrays(tmp_path / "bad.h5", responses, stimuli, units, images={"x": [1, 2]})


# -- predictivity and ceiling against Brain-Score ---------------------------------------------
@pytest.mark.parametrize("regression", ["pls", "ridge"])
def test_predictivity_equals_brainscore(regression: str) -> None:
    X, Y, labels = FIXTURE["X"], FIXTURE["Y"], FIXTURE["labels"]
    splits = cross_validation_splits(len(X), stratify=labels)
    unit_r = predictivity(X, Y, splits, regression)
    np.testing.assert_allclose(unit_r, FIXTURE[f"{regression}_raw"], rtol=0, atol=1e-6)
    score = group_medians(unit_r, {"all": np.arange(Y.shape[1])})["all"]
    assert abs(score - FIXTURE[f"{regression}_center"]) <= 1e-6


def test_internal_consistency_equals_brainscore() -> None:
    trials = FIXTURE["trials"]  # [reps, images, units]
    result = internal_consistency(np.transpose(trials, (2, 1, 0)))
    np.testing.assert_allclose(result.unit_r, FIXTURE["ceiling_raw"], rtol=0, atol=1e-6)
    ceiling = group_medians(result.unit_r, {"all": np.arange(trials.shape[2])})["all"]
    assert abs(ceiling - FIXTURE["ceiling_center"]) <= 1e-6


def _reference_predictivity(X, Y, splits, make) -> np.ndarray:
    """sklearn on the raw features, scipy's pearsonr, one neuron at a time."""
    out = np.empty((len(splits), Y.shape[1]))
    for k, (train, test) in enumerate(splits):
        predicted = make().fit(X[train], Y[train]).predict(X[test])
        for j in range(Y.shape[1]):
            out[k, j] = scipy.stats.pearsonr(predicted[:, j], Y[test, j])[0]
    return out


@pytest.mark.parametrize("regression", ["pls", "ridge", "ridgecv"])
def test_predictivity_equals_sklearn_on_raw_features(regression: str) -> None:
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.linear_model import Ridge, RidgeCV

    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 300)) * rng.uniform(0.1, 3, size=300)  # p > n: the row-space path
    Y = X[:, :20] @ rng.normal(size=(20, 7)) + rng.normal(size=(60, 7))
    make = {
        "pls": lambda: PLSRegression(n_components=25, scale=False),
        "ridge": lambda: Ridge(alpha=1.0),
        "ridgecv": lambda: RidgeCV(alphas=RIDGECV_ALPHAS),
    }[regression]
    splits = cross_validation_splits(60, stratify=np.arange(60) % 5)
    expected = _reference_predictivity(X, Y, splits, make)
    np.testing.assert_allclose(predictivity(X, Y, splits, regression), expected, rtol=0, atol=1e-8)
    manual = np.mean([np.median(row) for row in expected])
    assert abs(group_medians(expected, {"g": np.arange(7)})["g"] - manual) < 1e-15


def test_row_space_is_an_orthogonal_change_of_basis() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 200))
    Z = row_space(X)
    assert Z.shape == (30, 30)
    np.testing.assert_allclose(Z @ Z.T, X @ X.T, atol=1e-9)
    assert row_space(X[:, :20]) is not None and row_space(X[:, :20]).shape == (30, 20)
    assert row_space(np.zeros((10, 40)), min_columns=25).shape == (10, 25)


def test_splits_follow_sklearn_and_even_odd() -> None:
    from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

    labels = np.arange(50) % 5
    ours = cross_validation_splits(50, stratify=labels)
    theirs = StratifiedShuffleSplit(10, train_size=0.9, random_state=1).split(np.zeros(50), labels)
    for (a, b), (c, d) in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    plain = ShuffleSplit(10, train_size=0.9, random_state=1).split(np.zeros(50))
    assert all(
        np.array_equal(a, c)
        for (a, _), (c, _) in zip(cross_validation_splits(50), plain, strict=True)
    )
    ((train, test),) = cross_validation_splits(7, method="even-odd")
    assert train.tolist() == [0, 2, 4, 6] and test.tolist() == [1, 3, 5]


def test_internal_consistency_brute_force_with_missing_repetitions() -> None:
    from sklearn.model_selection import ShuffleSplit

    rng = np.random.default_rng(5)
    signal = rng.normal(size=(4, 25, 1))
    data = signal + rng.normal(size=(4, 25, 5))
    data[0, 3, 1] = np.nan
    data[2, 7, 4] = np.nan
    result = internal_consistency(data)
    halves = list(ShuffleSplit(10, train_size=0.5, random_state=1).split(np.zeros(5)))
    for k, (first, second) in enumerate(halves):
        assert result.halves[k][0].tolist() == first.tolist()
        for u in range(4):
            a = [np.nanmean(data[u, i, first]) for i in range(25)]
            b = [np.nanmean(data[u, i, second]) for i in range(25)]
            r = scipy.stats.pearsonr(a, b)[0]
            assert abs(result.unit_r[k, u] - 2 * r / (1 + r)) < 1e-12


def test_planted_signal_gives_a_higher_score_than_noise() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(100, 40))
    Y = np.hstack([X[:, :5] @ rng.normal(size=(5, 6)), rng.normal(size=(100, 6))])
    splits = cross_validation_splits(100)
    scores = group_medians(
        predictivity(X, Y, splits, "ridge"), {"signal": range(6), "noise": range(6, 12)}
    )
    assert scores["signal"] > 0.9 and abs(scores["noise"]) < 0.2


# -- storage: unit scores, ceiled summaries, commitment --------------------------------------
def _neural_rows() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Two layers x two subjects x one region/bin; layer 1 wins on train for every subject."""
    layers = pd.DataFrame(
        {
            "layer_index": [0, 1, 2],
            "layer_name": ["a", "b", "c"],
            "module_type": "Conv2d",
            "n_features": 10,
        }
    )
    rows, units = [], []
    table = {
        (0, "train"): 0.2,
        (1, "train"): 0.5,
        (2, "train"): 0.4,
        (0, "test"): 0.3,
        (1, "test"): 0.6,
        (2, "test"): 0.7,
    }
    for (layer, split), score in table.items():
        for subject, shift in (("m1", 0.0), ("m2", 0.1)):
            rows.append({"layer_index": layer, "layer_name": "abc"[layer], "subject": subject,
                         "roi": "IT|70-170", "metric": "predictivity", "split": split, "score": score + shift})  # fmt: skip
            units.append({"layer_index": layer, "layer_name": "abc"[layer], "subject": subject, "roi": "IT|70-170",
                          "metric": "predictivity", "split": split, "unit": 3, "score": score})  # fmt: skip
    return layers, pd.DataFrame(rows), pd.DataFrame(units)


def test_summary_and_commitment_report_raw_and_ceiled(tmp_path: Path) -> None:
    from zooscope.analyses.commitment import committed_layers
    from zooscope.results.db import ResultsDB

    layers, scores, units = _neural_rows()
    with ResultsDB(tmp_path / "r.duckdb") as db:
        run = db.start_run("bench", {"metrics": ["predictivity"]})
        db.write_model(
            run,
            {"model_uid": "m", "display_name": "M"},
            layers,
            scores,
            None,
            1.0,
            unit_scores=units,
        )
        ceilings = pd.DataFrame({"subject": ["m1", "m2"], "roi": "IT|70-170", "method": "internal_consistency",
                                 "value": [0.8, 0.6], "lower": np.nan, "upper": np.nan})  # fmt: skip
        db.write_ceilings("bench", ceilings)
        gsn = ceilings.assign(method="gsn_rsa", value=0.5)
        db.write_ceilings("bench", gsn)  # replaces only its own method
        assert (
            sorted(db.ceilings("bench")["method"]) == ["gsn_rsa"] * 2 + ["internal_consistency"] * 2
        )
        assert len(db.unit_scores(model_uid="m")) == len(units)
        row = db.summary(metric="predictivity").iloc[0]
        # best train layer per subject is b: test 0.6 (m1), 0.7 (m2); ceiling mean 0.7
        assert row["score"] == pytest.approx(0.65) and row["ceiling"] == pytest.approx(0.7)
        assert row["explained_variance"] == pytest.approx(0.65**2 / 0.7)  # r^2 / ceiling
        committed = committed_layers(db).iloc[0]
    assert committed["layer_name"] == "b" and committed["relative_depth"] == pytest.approx(0.5)
    assert (committed["region"], committed["time_bin"]) == ("IT", "70-170")
    assert committed["train_score"] == pytest.approx(0.55) and committed[
        "test_score"
    ] == pytest.approx(0.65)
    assert committed["ceiled"] == pytest.approx(0.65**2 / 0.7)
    from typer.testing import CliRunner

    from zooscope.cli import app

    summary = ["results", "summary", "--db", str(tmp_path / "r.duckdb")]
    result = CliRunner().invoke(app, summary, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output + repr(result.exception)
    committed_part = result.output.split("committed layers", 1)[1]
    assert "70-170" in committed_part and " b " in committed_part, result.output


def test_predictivity_config_keeps_old_hashes_and_validates() -> None:
    from zooscope.config import ScoringConfig

    assert "regression" not in ScoringConfig().to_dict()  # NSD configs hash as before
    assert ScoringConfig().metrics == ("crsa", "versa", "encoding_r")
    neural = ScoringConfig(metrics=("predictivity",))
    assert (
        neural.to_dict()["regression"] == "ridge"
        and neural.hash != ScoringConfig(metrics=("predictivity",), regression="pls").hash
    )
    with pytest.raises(ValueError, match="regression"):
        ScoringConfig(metrics=("predictivity",), regression="lasso")


# -- the neural demo end to end (acceptance) ----------------------------------------------------
#: Block outputs plus stem and head keep the module fast (11 of EfficientNet-Lite0's layers).
DEMO_LAYERS = r"^(conv_stem|blocks\.\d\.\d+|conv_head)$"


@pytest.fixture(scope="module")
def neural_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    from typer.testing import CliRunner

    from zooscope.cli import app

    out = tmp_path_factory.mktemp("neural_demo")
    result = CliRunner().invoke(
        app,
        ["demo", "--neural", "--out", str(out), "--models", "effnet_lite0,effnet_lite0_random",
         "--layers", DEMO_LAYERS],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out, result.output


@pytest.mark.slow
def test_neural_demo_commits_layers_by_depth_and_trained_beats_random(
    neural_demo: tuple[Path, str],
) -> None:
    from zooscope.analyses.commitment import committed_layers
    from zooscope.analyses.layer_cka import layer_cka
    from zooscope.results.db import ResultsDB
    from zooscope.results.grams import GramStore, grams_path

    out, output = neural_demo
    assert "committed layers" in output and "scored 2 models, 0 failed" in output
    assert (out / "neural" / "brainio" / "assembly.nc").exists()
    page = (out / "neural" / "report" / "index.html").read_text()
    for section in ("Committed layers", "Layer-by-layer CKA", "Unique variance"):
        assert f"<h2>{section}</h2>" in page or f"<h3>{section}</h3>" in page, section
    # the demo keeps every scored layer's Gram matrix for CKA
    store = GramStore(grams_path(out / "neural" / "results.duckdb"))
    (stored,) = store.models().values()
    assert stored == ["effnet_lite0", "effnet_lite0_random"]
    cka = layer_cka(store, "effnet_lite0", "effnet_lite0_random")
    assert len(cka) == 11 and cka["cka_debiased"].iloc[-1] < cka["cka_debiased"].iloc[0]
    with ResultsDB(out / "neural" / "results.duckdb", read_only=True) as db:
        committed = committed_layers(db)
        assert set(db.ceilings()["method"]) == {"internal_consistency"}
        assert len(db.unit_scores(model_uid="effnet_lite0", split="test")) == 11 * 112
    depth = committed.set_index(["model_uid", "region", "time_bin"])["relative_depth"]
    for time_bin in ("70-170", "170-270"):
        trained = depth.loc["effnet_lite0"].xs(time_bin, level="time_bin")
        assert trained["V1"] < trained["V4"] < trained["IT"], trained
    assert (
        depth.loc[("effnet_lite0", "IT", "170-270")] >= depth.loc[("effnet_lite0", "IT", "70-170")]
    )
    ceiled = committed.pivot_table(
        index=["region", "time_bin"], columns="model_uid", values="ceiled"
    )
    assert (ceiled["effnet_lite0"] > ceiled["effnet_lite0_random"]).all(), ceiled
