"""``--profile brainscore`` against brainscore-vision 2.4.2's own classes.

``tests/data/brainscore_profile.npz`` holds what Brain-Score's ``ModelCommitment``,
``LayerSelection``/``LayerPCA`` and ``NeuralBenchmark`` computed on the planted assemblies
``tests/data/brainscore_{commit_early,commit_it,target}.nc`` with the network
``brainscore_net.pt``; ``scripts/brainscore_fixture.py`` wrote them (in a side environment) and
draws the images both sides see (:func:`fixture_images`), so the test regenerates them.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).parents[1]
DATA = ROOT / "tests" / "data"
REF = np.load(DATA / "brainscore_profile.npz")
TOLERANCE = 1e-6  # the acceptance: float64 activations, raw / ceiling / ceiled


def _fixture_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "brainscore_fixture", ROOT / "scripts" / "brainscore_fixture.py"
    )
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


FX = _fixture_script()
COMMIT_FILES = ("brainscore_commit_early", "brainscore_commit_it")
GROUPS = [f"{r}|{s}-{e}" for r in FX.TARGET_REGIONS for s, e in FX.SETS["brainscore_target"][2]]


def _invoke(args: list[str]) -> object:
    from typer.testing import CliRunner

    from zooscope.cli import app

    return CliRunner().invoke(app, args, env={"COLUMNS": "250"})


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The fixture's images, and its three sets imported with ``benchmark import-brainio``."""
    root = tmp_path_factory.mktemp("brainscore")
    folders = FX.fixture_images(root / "images")
    out: dict[str, Path] = {"pca": folders["pca"], "root": root}
    for name, (_regions, degrees, _bins, _seed) in FX.SETS.items():
        out[name] = root / f"{name}.h5"
        result = _invoke(
            ["benchmark", "import-brainio", str(DATA / f"{name}.nc"), "--stimuli",
             str(DATA / f"{name}.csv"), "--images", str(folders[name]), "--out", str(out[name]),
             "--image-size", "0", "--degrees", str(degrees)]
        )  # fmt: skip
        assert result.exit_code == 0, result.output + repr(result.exception)
    (root / "manifest.csv").write_text(FX.fixture_manifest(DATA / "brainscore_net.pt"))
    return out


def _survey_args(sets: dict[str, Path], db: Path, dtype: str) -> list[str]:
    args = ["survey", "--manifest", str(sets["root"] / "manifest.csv"), "--benchmark",
            str(sets["brainscore_target"]), "--db", str(db), "--profile", "brainscore",
            "--layers", FX.LAYER_REGEX, "--pca-images", str(sets["pca"]),
            "--activations-dtype", dtype, "--device", "cpu"]  # fmt: skip
    for name in COMMIT_FILES:
        args += ["--commit-on", str(sets[name])]
    return args


@pytest.fixture(scope="module")
def surveyed(sets: dict[str, Path]) -> Path:
    """``zooscope survey --profile brainscore`` in float64 and float32 into one database."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core runner: spinning OpenMP threads cost ~50x
    db = sets["root"] / "results.duckdb"
    try:
        for dtype in ("float64", "float32"):
            result = _invoke(_survey_args(sets, db, dtype))
            assert result.exit_code == 0, result.output + repr(result.exception)
    finally:
        torch.set_num_threads(threads)
    return db


def _results(db: Path, dtype: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    from zooscope.results.db import ResultsDB

    with ResultsDB(db, read_only=True) as results:
        runs = results.runs()
        dtypes = runs["config"].map(lambda c: json.loads(c).get("activations_dtype"))
        hashes = runs.loc[dtypes == dtype, "config_hash"]
        scores = results.scores(config_hash=list(hashes))
        return scores, results.ceilings()


# -- the acceptance: committed layers and scores equal Brain-Score's (float64) -------------------
def test_profile_equals_brainscore_classes(surveyed: Path) -> None:
    scores, ceilings = _results(surveyed, "float64")
    test = scores[scores["split"] == "test"].set_index("roi")
    pooled = ceilings[ceilings["subject"] == "pooled"].set_index("roi")["value"]
    assert set(test.index) == set(GROUPS) and (test["subject"] == "pooled").all()
    worst = {"raw": 0.0, "ceiling": 0.0, "ceiled": 0.0, "error": 0.0}
    for group in GROUPS:
        region = group.split("|")[0]
        assert test.loc[group, "layer_name"] == str(REF[f"float64/committed/{region}"])
        raw, ceiling = test.loc[group, "score"], pooled[group]
        worst["raw"] = max(worst["raw"], abs(raw - REF[f"float64/raw/{group}"]))
        worst["ceiling"] = max(worst["ceiling"], abs(ceiling - REF[f"float64/ceiling/{group}"]))
        worst["ceiled"] = max(
            worst["ceiled"], abs(raw**2 / ceiling - REF[f"float64/ceiled/{group}"])
        )
        worst["error"] = max(
            worst["error"], abs(test.loc[group, "error"] - REF[f"float64/error/{group}"])
        )
    assert max(worst.values()) <= TOLERANCE, worst


def test_per_neuroid_scores_equal_brainscore(surveyed: Path, sets: dict[str, Path]) -> None:
    from zooscope.benchmark import Benchmark
    from zooscope.results.db import ResultsDB

    neuroids = Benchmark.open(sets["brainscore_target"]).units["neuroid_id"].to_numpy()
    scores, _ = _results(surveyed, "float64")
    with ResultsDB(surveyed, read_only=True) as results:
        units = results.unit_scores(split="test", config_hash=scores["config_hash"].iloc[0])
        assert len(results.profile_config_hashes("brainscore")) == 2  # float64 and float32
    for group in GROUPS:
        ours = units[units["roi"] == group]
        ours = pd.Series(ours["score"].to_numpy(), index=neuroids[ours["unit"].to_numpy()])
        theirs = REF[f"float64/neuroid_r/{group}"].mean(axis=0)  # [splits, neuroids] -> neuroids
        np.testing.assert_allclose(
            ours.loc[REF[f"float64/neuroid_id/{group}"]], theirs, rtol=0, atol=TOLERANCE
        )


def test_commitment_scores_equal_brainscore_up_to_its_degenerate_pca_component(
    surveyed: Path,
) -> None:
    """Layers left unreduced (p <= 1000) match to 1e-6. The PCA-reduced ones differ by up to
    ~2e-4: with 1,000 images, Brain-Score's 1,000th component has no variance on them and its
    direction is LAPACK's rounding, which zooscope leaves out (``LayerPCA``)."""
    scores, _ = _results(surveyed, "float64")
    train = scores[scores["split"] == "train"]
    layers = [str(name) for name in REF["layers"]]
    n_features = {"conv_stem": 6144, "blocks.0.0.conv": 4096, "blocks.1.0.conv_pwl": 1536, "blocks.3.0.conv_pw": 2048}  # fmt: skip
    for region in FX.TARGET_REGIONS:
        ours = train[train["roi"] == f"{region}|70-170"].set_index("layer_name")["score"]
        theirs = REF[f"float64/layer_scores/{region}"]
        for layer, value in zip(layers, theirs, strict=True):
            tolerance = 5e-4 if n_features.get(layer, 0) > 1000 else TOLERANCE
            assert abs(ours[layer] - value) <= tolerance, (region, layer, ours[layer], value)


def test_float32_activations_stay_close_to_brainscore(surveyed: Path) -> None:
    """float32 activations (as Brain-Score runs models): same layers, scores within 1e-5 of
    Brain-Score's own float32 run (2.4e-7 measured) and of its float64 run (1.2e-6)."""
    scores, ceilings = _results(surveyed, "float32")
    test = scores[scores["split"] == "test"].set_index("roi")
    pooled = ceilings[ceilings["subject"] == "pooled"].set_index("roi")["value"]
    for group in GROUPS:
        region = group.split("|")[0]
        assert test.loc[group, "layer_name"] == str(REF[f"float32/committed/{region}"])
        ceiled = test.loc[group, "score"] ** 2 / pooled[group]
        for dtype in ("float32", "float64"):
            assert abs(ceiled - REF[f"{dtype}/ceiled/{group}"]) <= 1e-5


def test_summary_and_report_show_the_brainscore_profile(surveyed: Path, tmp_path: Path) -> None:
    result = _invoke(["results", "summary", "--db", str(surveyed), "--profile", "brainscore"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "brainscore" in result.output and "committed layers" in result.output
    assert "conv_head" in result.output.split("committed layers", 1)[1]
    result = _invoke(["report", "--db", str(surveyed), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    page = (tmp_path / "report" / "index.html").read_text()
    committed = page.split("<h2>Committed layers</h2>", 1)[1].split("<h2>", 1)[0]
    assert "brainscore" in committed and "error" in committed


# -- inputs ----------------------------------------------------------------------------------------
def test_missing_or_small_pca_image_set_exits_2(sets: dict[str, Path], tmp_path: Path) -> None:
    args = _survey_args(sets, tmp_path / "r.duckdb", "float64")
    without = args[: args.index("--pca-images")] + args[args.index("--pca-images") + 2 :]
    result = _invoke(without)
    assert result.exit_code == 2, result.output
    assert "--pca-images" in result.output and "1,000 ImageNet validation images" in result.output
    few = tmp_path / "few"
    few.mkdir()
    for path in sorted(sets["pca"].glob("*.png"))[:5]:
        (few / path.name).write_bytes(path.read_bytes())
    result = _invoke(
        [*args[: args.index("--pca-images") + 1], str(few), *args[args.index("--pca-images") + 2 :]]
    )
    assert result.exit_code == 2 and "holds 5 images" in result.output, result.output
    no_commit = [
        a for a in args if a not in (str(sets[n]) for n in COMMIT_FILES) and a != "--commit-on"
    ]
    result = _invoke(no_commit)
    assert result.exit_code == 2 and "--commit-on" in result.output, result.output
    only_it = [*args[: args.index("--commit-on")], "--commit-on", str(sets["brainscore_commit_it"])]
    result = _invoke(only_it)
    assert (
        result.exit_code == 2
        and "no commitment benchmark for region(s) ['V1', 'V4']" in result.output
    )


def test_screen_placement_equals_brainscore() -> None:
    from zooscope.neural.screen import place_on_screen

    for name, (_regions, degrees, _bins, seed) in FX.SETS.items():
        first = FX.stand_in_images(1, FX.STIMULUS_SIZE, seed, n_objects=FX.N_OBJECTS)[0]
        for target in (8.0, 7.0):
            expected = REF[f"placed/{name}/{target:g}"]
            np.testing.assert_array_equal(place_on_screen(first, degrees, target), expected)


def test_brainscore_preprocessing_equals_load_preprocess_images() -> None:
    from types import SimpleNamespace

    from zooscope.neural.screen import brainscore_transform
    from zooscope.zoo.preprocess import Preprocess

    preprocess = Preprocess(
        brainscore_transform(SimpleNamespace(metadata={"image_size": "32"}), None)
    )
    for name in FX.SETS:
        for target in ("8", "7"):
            placed = REF[f"placed/{name}/{target}"]
            expected = REF[f"preprocessed/{name}/{target}"]
            np.testing.assert_allclose(preprocess(placed).numpy(), expected, rtol=0, atol=1e-7)


def test_placement_rounds_and_centres_like_image_converter() -> None:
    from zooscope.neural.screen import place_on_screen

    image = np.arange(5 * 4 * 3, dtype=np.uint8).reshape(5, 4, 3)
    assert place_on_screen(image, 8, 8) is image
    big = place_on_screen(
        image, 4, 6
    )  # ratio 1.5: 7.5 -> 8 rows, 6 columns; offsets round(1.5)=2, 1
    assert big.shape == (8, 6, 3) and (big[0] == 128).all()
    np.testing.assert_array_equal(big[2:7, 1:5], image)
    small = place_on_screen(
        image, 10, 5
    )  # ratio 0.5: 2.5 -> 2 rows, 2 columns from (round(1.5), 1)
    np.testing.assert_array_equal(small, image[2:4, 1:3])
    with pytest.raises(ValueError, match="positive"):
        place_on_screen(image, 0, 8)


def test_layer_pca_spans_what_sklearn_pca_spans() -> None:
    from sklearn.decomposition import PCA

    from zooscope.neural.brainscore import LayerPCA

    rng = np.random.default_rng(0)
    A = rng.normal(size=(60, 200)) @ np.diag(rng.uniform(0.1, 3, 200))
    X = rng.normal(size=(7, 200))
    ours = LayerPCA.fit(A, 20)
    theirs = PCA(n_components=20, random_state=0).fit(A).transform(X)
    mine = ours(X)
    assert ours.n_components == 20
    np.testing.assert_allclose(mine @ mine.T, theirs @ theirs.T, atol=1e-9)  # same span
    assert LayerPCA.fit(A[:, :20], 20) is None  # p <= n_components: left as it is
    with pytest.raises(ValueError, match="at least 70 images"):
        LayerPCA.fit(A, 70)
    assert LayerPCA.fit(A, 60).n_components == 59  # centring leaves rank m - 1


# -- import and config ----------------------------------------------------------------------------
def test_import_keeps_native_size_and_degrees(tmp_path: Path) -> None:
    from zooscope.neural.brainio import import_brainio

    table = pd.read_csv(DATA / "brainio_stimuli.csv").assign(degrees=4.0)
    table.to_csv(tmp_path / "s.csv", index=False)
    args = (DATA / "brainio_assembly.nc", tmp_path / "s.csv", DATA / "brainio_stimuli.zip")
    with pytest.raises(ValueError, match="one size"):  # the zip's images are 16-18 px high
        import_brainio(*args, tmp_path / "a.h5", image_size=None)
    bench = import_brainio(*args, tmp_path / "b.h5", image_size=16)
    assert (bench.image_table["degrees"] == 4.0).all()
    with pytest.raises(ValueError, match="differ from degrees=8"):
        import_brainio(*args, tmp_path / "c.h5", image_size=16, degrees=8)


def test_brainscore_settings_stay_out_of_other_profiles_hashes(sets: dict[str, Path]) -> None:
    from zooscope.config import ScoringConfig

    plain = ScoringConfig(metrics=("predictivity",))
    assert not {"commit_on", "pca_images", "activations_dtype"} & set(plain.to_dict())
    assert plain.hash == ScoringConfig(metrics=("predictivity",), pca_components=5).hash
    config = ScoringConfig.from_profile(
        "brainscore", commit_on=(str(sets["brainscore_commit_it"]),), pca_images=str(sets["pca"])
    )
    identity = config.to_dict()
    assert identity["regression"] == "pls" and identity["preprocessing"] == "brainscore"
    assert len(identity["commit_on"][0]) == 16 and str(sets["pca"]) not in str(identity)
    with pytest.raises(ValueError, match="predictivity only"):
        ScoringConfig.from_profile("brainscore", metrics=("crsa",))


# -- the neural demo under the profile, from the CLI (acceptance) ---------------------------------
@pytest.mark.slow
def test_neural_demo_runs_the_brainscore_profile(tmp_path: Path) -> None:
    from zooscope.analyses.commitment import committed_layers
    from zooscope.results.db import ResultsDB

    result = _invoke(
        ["demo", "--neural", "--profile", "brainscore", "--out", str(tmp_path),
         "--models", "effnet_lite0", "--n-images", "80"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "stand-in images" in result.output and "scored 1 models, 0 failed" in result.output
    with ResultsDB(tmp_path / "neural" / "results.duckdb", read_only=True) as db:
        committed = committed_layers(db, profile="brainscore")
        assert set(db.ceilings()["subject"]) == {"pooled"}
    assert (committed["profile"] == "brainscore").all() and committed["error"].notna().all()
    depth = committed.set_index(["region", "time_bin"])["relative_depth"]
    for time_bin in ("70-170", "170-270"):
        assert depth[("V1", time_bin)] < depth[("V4", time_bin)] < depth[("IT", time_bin)]
    page = (tmp_path / "neural" / "report" / "index.html").read_text()
    assert "brainscore" in page.split("<h2>Committed layers</h2>", 1)[1]
