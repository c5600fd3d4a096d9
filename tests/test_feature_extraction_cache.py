"""FeatureCache: atomic per-layer files, content keys, and resuming a killed extraction."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zooscope
from zooscope.feature_extraction import FeatureCache, LayerFeatures, LayerSelection, extract
from zooscope.zoo import get_entry, load_model

# Top-level layers of ResNet-18 (conv1 ... fc): a few layers, at the zoo's real preprocessing.
SELECTION = LayerSelection(max_depth=1)
N_KILLED_AFTER = 3

KILLED_RUN = """
import os, signal, sys
import numpy as np, torch
torch.set_num_threads(1)
from zooscope.feature_extraction import FeatureCache, LayerSelection, extract
from zooscope.zoo import get_entry, load_model

cache_dir, images_path, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
loaded = load_model(get_entry("resnet18_random"))
layers = extract(loaded, np.load(images_path), layers=LayerSelection(max_depth=1),
                 cache=FeatureCache(cache_dir), progress=False)
for done, _ in enumerate(layers, 1):
    if done == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally blocks: a real crash
"""


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (6, 48, 48, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def resnet():
    return load_model(get_entry("resnet18_random"))


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.h5"))


def test_save_load_roundtrip_and_keys(tmp_path: Path):
    cache = FeatureCache(tmp_path / "cache")
    key = FeatureCache.key(model="m", layer="conv1", seed=0)
    assert key == FeatureCache.key(seed=0, layer="conv1", model="m")  # order-free
    assert key != FeatureCache.key(model="m", layer="conv1", seed=1)
    assert key not in cache
    rsm = np.eye(3, dtype=np.float32)
    cache.save(key, {"rsm": rsm, "srp": None}, {"name": "conv1", "index": 1})
    assert key in cache
    stored = cache.load(key)
    np.testing.assert_array_equal(stored["rsm"], rsm)
    assert "srp" not in stored and stored["name"] == "conv1" and stored["index"] == 1


def test_failed_write_leaves_nothing_behind(tmp_path: Path):
    cache = FeatureCache(tmp_path)
    key = FeatureCache.key(layer="bad")
    with pytest.raises(TypeError):
        cache.save(key, {"rsm": np.array([object()])}, {})
    assert key not in cache
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no partial or temporary file


def _assert_same(a: list[LayerFeatures], b: list[LayerFeatures]) -> None:
    assert [x.name for x in a] == [x.name for x in b]
    for x, y in zip(a, b, strict=True):
        assert (x.index, x.module_type, x.n_features) == (y.index, y.module_type, y.n_features)
        np.testing.assert_allclose(x.rsm, y.rsm, rtol=1e-6, atol=1e-7, err_msg=x.name)
        np.testing.assert_allclose(x.srp, y.srp, rtol=1e-6, atol=1e-7, err_msg=x.name)


def test_killed_extraction_resumes_from_completed_layers(tmp_path: Path, resnet, pixels):
    images_path = tmp_path / "images.npy"
    np.save(images_path, pixels)
    root = tmp_path / "cache"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(zooscope.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    run = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(root), str(images_path), str(N_KILLED_AFTER)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == -9, run.stderr  # killed by SIGKILL, not a clean exit
    assert len(_files(root)) == N_KILLED_AFTER
    assert not list(root.rglob("*.tmp"))

    uncached = list(extract(resnet, pixels, layers=SELECTION, progress=False))
    resumed = list(
        extract(resnet, pixels, layers=SELECTION, cache=FeatureCache(root), progress=False)
    )
    reused = [r.name for r in resumed if r.from_cache]
    assert reused == [r.name for r in uncached[:N_KILLED_AFTER]]
    assert sum(not r.from_cache for r in resumed) == len(uncached) - N_KILLED_AFTER
    _assert_same(sorted(resumed, key=lambda r: r.index), uncached)
    assert len(_files(root)) == len(uncached)


def test_partly_consumed_run_resumes_and_parameters_key_the_cache(tmp_path: Path, resnet, pixels):
    cache = FeatureCache(tmp_path)
    first = extract(resnet, pixels, layers=SELECTION, cache=cache, progress=False)
    started = [next(first), next(first)]
    first.close()  # the caller stops early: what was yielded is stored
    assert len(_files(tmp_path)) == 2
    rerun = list(extract(resnet, pixels, layers=SELECTION, cache=cache, progress=False))
    assert [r.name for r in rerun if r.from_cache] == [r.name for r in started]
    assert all(
        r.from_cache for r in extract(resnet, pixels, layers=SELECTION, cache=cache, progress=False)
    )
    # Another seed, or other images, is another result: nothing is reused.
    other_seed = list(
        extract(resnet, pixels, layers=SELECTION, cache=cache, seed=1, progress=False)
    )
    assert not any(r.from_cache for r in other_seed)
    other_images = list(
        extract(resnet, pixels[::-1].copy(), layers=SELECTION, cache=cache, progress=False)
    )
    assert not any(r.from_cache for r in other_images)


def _write_folder(folder: Path, pixels: np.ndarray) -> Path:
    from PIL import Image

    folder.mkdir()
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(folder / f"img{i:03d}.png")  # lossless
    return folder


def test_cli_extract_folder_npy_and_benchmark_file(tmp_path: Path, resnet, pixels):
    import csv

    import h5py
    from typer.testing import CliRunner

    from zooscope.cli import app

    folder = _write_folder(tmp_path / "images", pixels)
    out = tmp_path / "out"
    common = ["--model", "resnet18_random", "--out", str(out), "--device", "cpu", "--no-progress"]
    common += [
        "--layers",
        r"^(conv1|layer1\.0\.conv1|fc)$",
        "--memory-budget",
        "200MB",
        "--batch-size",
        "4",
    ]
    runner = CliRunner()
    result = runner.invoke(app, ["extract", "--images", str(folder), *common])
    assert result.exit_code == 0, result.output
    assert "3 layers (0 reused" in result.output
    with open(out / "layers.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["name"] for row in rows] == ["conv1", "layer1.0.conv1", "fc"]
    # Same batches as the CLI run: oneDNN may pick other kernels for other batch sizes (~1e-6 apart).
    selection = LayerSelection(include=r"^(conv1|layer1\.0\.conv1|fc)$")
    expected = {r.name: r for r in extract(resnet, folder, layers=selection, batch_size=4, memory_budget="200MB", progress=False)}  # fmt: skip
    for row in rows:
        assert int(row["n_features"]) == expected[row["name"]].n_features
        stored = FeatureCache(out / "cache").load(Path(row["file"]).stem)
        assert (out / row["file"]).is_file()
        np.testing.assert_allclose(stored["rsm"], expected[row["name"]].rsm, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(stored["srp"], expected[row["name"]].srp, rtol=1e-6, atol=1e-7)
    # The same pixels as an .npy array or a Benchmark file's stimuli: every layer is reused.
    np.save(tmp_path / "images.npy", pixels)
    with h5py.File(tmp_path / "bench.h5", "w") as handle:
        handle["stimuli"] = pixels
    for path in (tmp_path / "images.npy", tmp_path / "bench.h5"):
        result = runner.invoke(app, ["extract", "--images", str(path), *common])
        assert result.exit_code == 0, result.output
        assert "3 layers (3 reused" in result.output


def test_cli_extract_rejects_bad_input_with_exit_code_2(tmp_path: Path):
    import h5py
    from typer.testing import CliRunner

    from zooscope.cli import app

    with h5py.File(tmp_path / "empty.h5", "w") as handle:
        handle["responses"] = np.zeros(3)
    runner = CliRunner()
    base = ["extract", "--out", str(tmp_path / "out"), "--device", "cpu"]
    cases = [
        (["--model", "resnet18_random", "--images", str(tmp_path / "missing")], "does not exist"),
        (["--model", "resnet18_random", "--images", str(tmp_path / "empty.h5")], "no 'stimuli'"),
        (["--model", "no_such_model", "--images", str(tmp_path)], "no model"),
        (
            ["--model", "resnet18_random", "--images", str(tmp_path), "--layers", "("],
            "regular expression",
        ),
        (
            ["--model", "resnet18_random", "--images", str(tmp_path), "--rsm-from", "x"],
            "--rsm-from",
        ),
        (
            ["--model", "resnet18_random", "--images", str(tmp_path), "--memory-budget", "lots"],
            "memory size",
        ),
    ]
    for args, message in cases:
        result = runner.invoke(app, [*base, *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
