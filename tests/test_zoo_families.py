"""Model families carried by zooscope (Taskonomy, IPCL, YOLO, MiDaS) and where their weights live.

References: ``visualpriors``' own ``TaskonomyEncoder`` (a real dependency) for Taskonomy; the
``yolov5`` package's ``Model`` where it is importable (its pins clash with our dependencies, so
``.ci/run`` installs it without them into a side folder named by ``ZOOSCOPE_TEST_REFERENCE_PACKAGES``),
and always its state-dict names and shapes recorded from it in
``tests/data/yolov5s_state_dict_shapes.json``; the published source's layer table for IPCL and
MiDaS.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from zooscope.cli import app
from zooscope.zoo import get_entry, load_model
from zooscope.zoo.sources.ipcl_source import AlexNetGN
from zooscope.zoo.sources.midas_source import MidasNet
from zooscope.zoo.sources.yolo_source import SIZES, YOLOv5, read_yolo_checkpoint

DATA = Path(__file__).parent / "data"


def _images(n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 300, 340, 3), dtype=np.uint8)


def _perturb_norm_statistics(module: torch.nn.Module, seed: int = 1) -> None:
    """Give every BatchNorm non-trivial running statistics, so eval mode is really tested."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def _cache_path(uid: str, manifest: str = "conwell2024") -> Path:
    result = CliRunner().invoke(app, ["models", "cache-path", uid, "--manifest", manifest])
    assert result.exit_code == 0, result.output
    return Path(result.output.strip())


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch.hub cache and offline mode: only files the test writes can be loaded."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ZOOSCOPE_OFFLINE", "1")
    return tmp_path / "torch"


# ------------------------------------------------------------------------------ Taskonomy
def test_taskonomy_checkpoint_at_cache_path_loads_offline_and_matches_visualpriors(
    torch_home: Path, no_network: list[object]
) -> None:
    from visualpriors.taskonomy_network import TaskonomyEncoder

    entry = get_entry("jigsaw_taskonomy", "conwell2024")
    path = _cache_path(entry.model_uid)
    assert path == torch_home / "hub" / "checkpoints" / Path(entry.metadata["checkpoint"]).name
    torch.manual_seed(3)
    reference = TaskonomyEncoder()
    _perturb_norm_statistics(reference)
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": reference.state_dict()}, path)  # the published format

    loaded = load_model(entry)
    assert loaded.info.n_params == 23_655_504
    x = loaded.preprocess.batch(_images())
    assert x.shape == (3, 3, 256, 256) and x.min() >= -1 and x.max() <= 1
    with torch.no_grad():
        ours = loaded.module(x)
        theirs = reference.eval()(x)
    assert ours.shape == (3, 8, 16, 16)
    assert (ours - theirs).abs().max().item() <= 1e-5
    assert not no_network


def test_taskonomy_transform_is_resize_to_tensor_times_two_minus_one() -> None:
    from PIL import Image

    entry = get_entry("random_weights_taskonomy", "conwell2024")
    loaded = load_model(entry)
    image = _images(1)[0]
    expected = (
        np.asarray(Image.fromarray(image).resize((256, 256), Image.Resampling.BILINEAR), np.float32)
        / 255
    )
    got = loaded.preprocess(image).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, expected * 2 - 1, atol=2 / 255)  # PIL vs antialiased resize
    assert "ScaleShift(scale=2.0, shift=-1.0)" in loaded.info.preprocess


def test_missing_taskonomy_checkpoint_offline_names_the_cache_path(torch_home: Path) -> None:
    from zooscope.zoo import WeightsUnavailable

    entry = get_entry("normal_taskonomy", "conwell2024")
    with pytest.raises(WeightsUnavailable) as error:
        load_model(entry)
    assert str(_cache_path(entry.model_uid)) in str(error.value)


# ----------------------------------------------------------------------------------- YOLO
def test_yolov5_names_and_shapes_equal_the_package() -> None:
    reference = json.loads((DATA / "yolov5_state_dict_shapes.json").read_text())
    for size in SIZES:
        ours = {k: list(v.shape) for k, v in YOLOv5(size).state_dict().items()}
        assert ours == reference[size], size


def _yolov5_package():
    # Appended, not prepended: the side folder must never shadow a package of our environment.
    side = os.environ.get("ZOOSCOPE_TEST_REFERENCE_PACKAGES")
    if side and side not in sys.path:
        sys.path.append(side)
    return pytest.importorskip("yolov5.models.yolo", reason="the yolov5 package is not installed")


def test_yolov5_checkpoint_written_by_the_package_matches_its_model(torch_home: Path) -> None:
    yolo = _yolov5_package()
    cfg = Path(yolo.__file__).parent / "yolov5s.yaml"
    torch.manual_seed(0)
    model = yolo.Model(str(cfg)).eval()
    _perturb_norm_statistics(model)
    entry = get_entry("yolov5s_yolo", "conwell2024")
    path = _cache_path(entry.model_uid)
    path.parent.mkdir(parents=True)
    checkpoint = {
        "epoch": -1,
        "best_fitness": None,
        "model": copy.deepcopy(model).half(),
        "ema": None,
    }
    torch.save(checkpoint, path)  # yolov5's own format: the pickled Model, half precision

    loaded = load_model(entry)
    x = loaded.preprocess.batch(_images())
    assert x.shape == (3, 3, 256, 256)
    reference = torch.load(path, map_location="cpu", weights_only=False)["model"].float().eval()
    with torch.no_grad():
        ours = loaded.module(x)
        theirs = reference(x)[0]
    assert ours.shape == theirs.shape == (3, 4032, 85)
    assert (ours - theirs).abs().max().item() <= 1e-5 * max(1.0, theirs.abs().max().item())


class _RunsCode:
    def __reduce__(self):
        return (print, ("code from a checkpoint ran",))


def test_yolo_checkpoint_reader_runs_no_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": _RunsCode()}, path)
    with pytest.raises(
        pickle.UnpicklingError, match=r"pickles print, which is not part of a yolov5 model"
    ):
        read_yolo_checkpoint(path)
    assert "code from a checkpoint ran" not in capsys.readouterr().out


# ----------------------------------------------------------------------------- IPCL, MiDaS
def test_ipcl_alexnet_gn_layers_follow_open_ipcl() -> None:
    shapes = {k: tuple(v.shape) for k, v in AlexNetGN().state_dict().items()}
    # open_ipcl models/alexnet_gn.py: bias-free convs, GroupNorm(32), BN1d in fc6/fc7, fc8 -> 128.
    assert (
        shapes["conv_block_1.0.weight"] == (96, 3, 11, 11) and "conv_block_1.0.bias" not in shapes
    )
    assert shapes["conv_block_1.1.weight"] == (96,)
    assert shapes["conv_block_5.0.weight"] == (256, 384, 3, 3)
    assert shapes["fc6.0.weight"] == (4096, 9216) and shapes["fc6.1.running_var"] == (4096,)
    assert shapes["fc8.0.weight"] == (128, 4096)
    model = AlexNetGN().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 224, 224))
    np.testing.assert_allclose(out.norm(dim=1).numpy(), 1.0, rtol=1e-6)


def test_ipcl_checkpoint_with_dataparallel_keys_loads(torch_home: Path) -> None:
    torch.manual_seed(5)
    reference = AlexNetGN()
    _perturb_norm_statistics(reference)
    entry = get_entry("alexnet_gn_ipcl_places256_ipcl", "conwell2024")
    path = _cache_path(entry.model_uid)
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, path)
    loaded = load_model(entry)
    x = loaded.preprocess.batch(_images(2))
    assert x.shape == (2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), reference.eval()(x))


def test_midas_v21_parameter_count_and_output() -> None:
    model = MidasNet().eval()
    n = sum(p.numel() for p in model.parameters())
    unused = sum(p.numel() for p in model.scratch.refinenet4.resConfUnit1.parameters())
    assert n - unused == 104_182_785  # the paper's count of MiDaS v2.1 (forward-pass parameters)
    assert "pretrained.layer1.4.0.conv1.weight" in model.state_dict()  # MiDaS's names
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 96)).shape == (1, 64, 96)


def test_dpt_hybrid_random_init_builds_offline(no_network: list[object], offline: None) -> None:
    loaded = load_model(get_entry("DPT_Hybrid_monoculardepth", "conwell2024"), weights="random")
    assert loaded.info.input_size == (3, 384, 384)
    assert not no_network


# ------------------------------------------------------------------------ locations, fetch
def test_file_url_and_relative_checkpoints_load(tmp_path: Path) -> None:
    from zooscope.zoo.manifest import parse_manifest

    torch.manual_seed(2)
    reference = AlexNetGN()
    torch.save({"state_dict": reference.state_dict()}, tmp_path / "w.pth")
    header = "model_uid,source,name,weights,display_name,arch_class,task,task_cluster,train_data,checkpoint"
    rows = [
        f"a,ipcl,alexnet_gn,pretrained,A,Convolutional,x,,d,{(tmp_path / 'w.pth').as_uri()}",
        "b,ipcl,alexnet_gn,pretrained,B,Convolutional,x,,d,w.pth",
    ]
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join([header, *rows]) + "\n")
    for entry in parse_manifest(manifest.read_text().splitlines(True), str(manifest)):
        result = CliRunner().invoke(
            app, ["models", "cache-path", entry.model_uid, "--manifest", str(manifest)]
        )
        assert Path(result.output.strip()) == tmp_path / "w.pth"
        loaded = load_model(entry)
        torch.testing.assert_close(
            loaded.module.state_dict(), reference.state_dict(), rtol=0, atol=0
        )


def test_cache_path_refuses_random_rows() -> None:
    result = CliRunner().invoke(
        app, ["models", "cache-path", "random_weights_taskonomy", "--manifest", "conwell2024"]
    )
    assert result.exit_code == 1
    assert "random init" in result.output
