"""extract: exact RSMs under a budget that forces feature chunking, SRP features, layouts."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.random_projection import johnson_lindenstrauss_min_dim
from torch import nn
from torchvision.transforms import ToTensor

from zooscope.feature_extraction import (
    FeatureCache,
    GramAccumulator,
    GramConsumer,
    LayerConsumer,
    LayerSelection,
    LayerSink,
    SparseRandomProjector,
    discover_layers,
    extract,
    make_non_inplace,
    parse_bytes,
    plan_passes,
)
from zooscope.feature_extraction.extract import default_consumers, forward_reserve
from zooscope.feature_extraction.layers import HookSet, hookable_modules
from zooscope.zoo import LoadedModel, ModelInfo, get_entry, load_model, parse_manifest
from zooscope.zoo.preprocess import Preprocess

N_IMAGES = 12
HEADER = "model_uid,source,name,weights,display_name,arch_class,task,task_cluster,train_data"


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def as_loaded(module: nn.Module, uid: str) -> LoadedModel:
    """Wrap a module as a LoadedModel whose preprocessing only converts to a tensor in [0, 1]."""
    entry = parse_manifest(
        [HEADER, f"{uid},torchvision,resnet18,random,{uid},Convolutional,random,,"]
    )[0]
    preprocess = Preprocess(ToTensor())
    info = ModelInfo(
        n_params=0, input_size=(3, 0, 0), weights_id=f"test:{uid}", preprocess=preprocess.describe()
    )
    return LoadedModel(
        module=module.eval(), preprocess=preprocess, entry=entry, info=info, device="cpu"
    )


def images(n: int = N_IMAGES, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def reference_activations(
    module: nn.Module, batch: torch.Tensor
) -> dict[tuple[Any, ...], torch.Tensor]:
    """Every module output for the whole batch at once, cloned at hook time (raw layout)."""
    outputs: dict[tuple[Any, ...], torch.Tensor] = {}

    def record(path: str, call: int, part: tuple[Any, ...], tensor: torch.Tensor) -> None:
        outputs[(path, call, part)] = tensor.detach().clone()

    with HookSet(hookable_modules(module), record) as hooks, torch.no_grad():
        hooks.new_forward()
        module(batch)
    return outputs


def flat_reference(
    loaded: LoadedModel, pixels: np.ndarray
) -> tuple[dict[str, np.ndarray], list[Any]]:
    """Layer name -> activations [n, p] (float64, batch-first), via an independent forward.

    The reference keeps every output until the forward pass ends, so it runs on a copy of the
    model whose in-place activations are turned off; the model itself is left as it is.
    """
    module = copy.deepcopy(loaded.module)
    make_non_inplace(module)
    batch = loaded.preprocess.batch(pixels)
    layers = discover_layers(module, batch[:3])
    raw = reference_activations(module, batch)
    flat = {
        layer.name: raw[layer.key]
        .movedim(layer.batch_axis, 0)
        .reshape(len(pixels), -1)
        .double()
        .numpy()
        for layer in layers
    }
    return flat, layers


@pytest.fixture(scope="module")
def resnet() -> LoadedModel:
    return as_loaded(load_model(get_entry("resnet18_random")).module, "resnet18_tiny")


class TokenFirst(nn.Module):
    """Patch embedding then token-first [L, N, D] attention (tuple output) and MLP."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, kernel_size=4, stride=4)
        self.attn = nn.MultiheadAttention(dim, 2)
        self.fc = nn.Linear(dim, 2 * dim)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).permute(2, 0, 1)  # [L, N, D]
        attended, _ = self.attn(x, x, x)
        return self.act(self.fc(x + attended)).mean(0)


def test_gram_accumulator_chunks_in_any_order_match_corrcoef():
    rng = np.random.default_rng(0)
    # Large, row-dependent means: the case where X X^T - p m m^T would cancel badly.
    X = (rng.standard_normal((9, 700)) + 1e3 * rng.random((9, 1))).astype(np.float32)
    acc = GramAccumulator(9, 700)
    bounds = [(300, 450), (0, 100), (450, 700), (100, 300)]
    for start, stop in bounds:
        chunk = X[:, start:stop]
        acc.add(torch.from_numpy(chunk) if start == 0 else chunk)
    assert acc.complete
    expected = np.corrcoef(X.astype(np.float64))
    # float32 centring and GEMM: correlations within 1e-5, as for extract's RSMs.
    np.testing.assert_allclose(acc.rsm("float64"), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="more features"):
        acc.add(X[:, :1])


@pytest.mark.parametrize("as_torch", [False, True])
def test_gram_accumulator_overwrite_centres_in_place_with_the_same_result(as_torch):
    rng = np.random.default_rng(1)
    X = (rng.standard_normal((6, 50)) + 10 * rng.random((6, 1))).astype(np.float32)
    copy_acc, in_place_acc = GramAccumulator(6, 50), GramAccumulator(6, 50)

    def fresh() -> np.ndarray | torch.Tensor:
        return torch.from_numpy(X.copy()) if as_torch else X.copy()

    copy_acc.add(fresh())
    chunk = fresh()
    in_place_acc.add(chunk, overwrite=True)
    np.testing.assert_array_equal(in_place_acc.rsm("float64"), copy_acc.rsm("float64"))
    centred = np.asarray(chunk)
    np.testing.assert_allclose(centred.mean(1), 0, atol=1e-5)  # the buffer itself was centred
    assert not np.allclose(X.mean(1), 0)


def test_gram_accumulator_refuses_an_incomplete_layer():
    acc = GramAccumulator(4, 10)
    acc.add(np.ones((4, 3), np.float32))
    with pytest.raises(RuntimeError, match="only 3 of 10"):
        acc.rsm()


def test_parse_bytes():
    assert parse_bytes("4GB") == 4_000_000_000
    assert parse_bytes("512MiB") == 512 * 2**20
    assert parse_bytes(1e6) == 1_000_000
    with pytest.raises(ValueError, match="memory size"):
        parse_bytes("lots")


def test_exact_rsms_with_feature_chunking_equal_corrcoef(resnet):
    pixels = images()
    reference, layers = flat_reference(resnet, pixels)
    k, budget = 16, 780_000
    passes = plan_passes(layers, N_IMAGES, budget, default_consumers(k))
    # The budget forces the big early layers into feature chunks spread over passes...
    chunked = {w.layer.name for p in passes for w in p if not (w.start == 0 and w.last)}
    assert {"conv1", "bn1", "relu"} <= chunked
    for work in passes:
        assert sum(w.nbytes for w in work) <= budget
    assert 3 <= len(passes) <= 15  # ...while staying a handful of cheap passes
    # extract keeps forward_reserve of its budget for the forward pass; plan the same passes.
    total = budget + forward_reserve(layers, 5)
    results = list(
        extract(resnet, pixels, n_components=k, memory_budget=total, batch_size=5, progress=False)
    )
    assert [r.name for r in results] == [layer.name for layer in layers]
    for result in results:
        X = reference[result.name]
        expected_rsm = np.corrcoef(X)
        np.testing.assert_allclose(
            result.rsm, expected_rsm, rtol=1e-5, atol=1e-5, err_msg=result.name
        )
        projector = SparseRandomProjector(X.shape[1], k, seed=0, layer=result.name)
        expected_srp = (
            X if projector.passthrough else X @ projector.matrix.toarray().astype(np.float64)
        )
        scale = np.abs(expected_srp).max()
        np.testing.assert_allclose(
            result.srp, expected_srp, rtol=1e-4, atol=1e-5 * scale, err_msg=result.name
        )
        assert result.n_features == X.shape[1] and not result.from_cache


def test_pre_activation_survives_inplace_relu_and_residual_add():
    # bn1 feeds an in-place ReLU; layer1.0.bn2's output is then modified by `out += identity`.
    # The model is extracted as it is: its ReLUs stay in place, before and after.
    resnet = as_loaded(load_model(get_entry("resnet18_random")).module, "resnet18_inplace")
    pixels = images(n=6)
    model = resnet.module
    assert model.relu.inplace and model.layer1[0].relu.inplace
    selection = LayerSelection(names=["bn1", "relu", "layer1.0.bn2"])
    got = {
        r.name: r
        for r in extract(resnet, pixels, layers=selection, n_components=10**6, progress=False)
    }
    assert model.relu.inplace and model.layer1[0].relu.inplace
    x = resnet.preprocess.batch(pixels)
    with torch.no_grad():
        bn1 = model.bn1(model.conv1(x))
        block = model.layer1[0]
        h = model.maxpool(torch.relu(bn1))
        bn2 = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(h)))))
    np.testing.assert_allclose(got["bn1"].srp, bn1.reshape(6, -1).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        got["layer1.0.bn2"].srp, bn2.reshape(6, -1).numpy(), rtol=1e-5, atol=1e-5
    )
    assert (got["bn1"].srp < 0).any() and not (got["relu"].srp < 0).any()
    # The exact RSMs copy the same columns inside the hooks.
    for name, reference in (("bn1", bn1), ("layer1.0.bn2", bn2)):
        expected = np.corrcoef(reference.reshape(6, -1).double().numpy())
        np.testing.assert_allclose(got[name].rsm, expected, rtol=1e-5, atol=1e-5)


def test_token_first_layers_are_batch_first_per_image():
    torch.manual_seed(0)
    loaded = as_loaded(TokenFirst(), "token_first")
    pixels = images(n=7, size=16)
    reference, layers = flat_reference(loaded, pixels)
    assert {layer.name: layer.batch_axis for layer in layers}["attn.0"] == 1
    results = list(extract(loaded, pixels, n_components=4096, batch_size=3, progress=False))
    assert [r.name for r in results] == ["embed", "attn.0", "attn.1", "fc", "act"]
    for result in results:
        # p <= k: the "projection" is the features themselves, image by image.
        np.testing.assert_allclose(result.srp, reference[result.name], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            result.rsm, np.corrcoef(reference[result.name]), rtol=1e-5, atol=1e-5
        )


def test_rsm_from_srp_approximates_the_exact_rsm(resnet):
    # Three groups of noisy copies of a prototype: an RSM with real structure to preserve.
    rng = np.random.default_rng(1)
    prototypes = images(n=3, seed=2).astype(float)
    noisy = prototypes[np.arange(N_IMAGES) % 3] + rng.normal(0, 40, (N_IMAGES, 32, 32, 3))
    pixels = np.clip(noisy, 0, 255).astype(np.uint8)
    # Wider than k; conv outputs are centred, post-ReLU ones carry large per-image offsets.
    selection = LayerSelection(include=r"^(conv1|relu|layer1\.0\.conv1|layer1\.0\.relu#2)$")
    exact = {
        r.name: r.rsm for r in extract(resnet, pixels, layers=selection, srp=False, progress=False)
    }
    approx = list(extract(resnet, pixels, layers=selection, rsm_from="srp", progress=False))
    assert len(approx) == 4
    for result in approx:
        assert result.srp.shape == (N_IMAGES, johnson_lindenstrauss_min_dim(N_IMAGES, eps=0.1))
        upper = np.triu_indices(N_IMAGES, 1)
        error = np.abs(result.rsm - exact[result.name])[upper]
        # JL with eps=0.1 keeps correlations within a few hundredths, not exactly. Without the
        # per-image centring, post-ReLU layers were off by ~0.1 on average.
        assert error.max() < 0.06
        assert 0 < error.mean() < 0.02
        assert np.corrcoef(result.rsm[upper], exact[result.name][upper])[0, 1] > 0.98


def test_budget_too_small_raises_an_actionable_error(resnet):
    with pytest.raises(ValueError, match="raise memory_budget"):
        list(extract(resnet, images(n=4), memory_budget=1000, progress=False))


def test_invalid_rsm_from_is_rejected_before_any_work(resnet):
    with pytest.raises(ValueError, match="rsm_from"):
        list(extract(resnet, images(n=4), rsm_from="approx", progress=False))  # type: ignore[arg-type]


class SquaredNorms(LayerConsumer):
    """A consumer written outside the package: each image's squared norm, summed over chunks."""

    chunked = True

    def fixed_nbytes(self, layer: Any, n_images: int) -> int:
        return 8 * n_images

    def column_nbytes(self, n_images: int) -> int:
        return 0  # reads the columns as they pass, keeps none

    def params(self) -> dict[str, Any]:
        return {}

    def open(self, layer: Any, n_images: int, place: Any) -> LayerSink:
        return SquaredNormSink(n_images)


class SquaredNormSink(LayerSink):
    def __init__(self, n_images: int) -> None:
        self.total = np.zeros(n_images)
        self.columns_seen = 0

    def begin_pass(self, start: int, stop: int) -> None:
        self.columns_seen += stop - start

    def update(self, rows: slice, batch: Any) -> None:
        self.total[rows] += np.square(batch, dtype=np.float64).sum(1)

    def outputs(self) -> dict[str, np.ndarray]:
        return {"squared_norm": self.total, "columns_seen": np.array(self.columns_seen)}


def test_extra_consumers_join_the_same_passes_chunks_included(resnet, tmp_path):
    pixels = images()
    reference, layers = flat_reference(resnet, pixels)
    k, budget = 16, 780_000
    consumers = [GramConsumer(("centred_gram",)), SquaredNorms()]
    # The Gram consumer's buffers force the big early layers into chunks over several passes.
    passes = plan_passes(layers, N_IMAGES, budget, default_consumers(k) + consumers)
    assert any(not (piece.first and piece.last) for work in passes for piece in work)
    total = budget + forward_reserve(layers, 5)
    cache = FeatureCache(tmp_path)
    run = dict(n_components=k, memory_budget=total, batch_size=5, progress=False, cache=cache)
    results = list(extract(resnet, pixels, consumers=consumers, **run))
    assert [r.name for r in results] == [layer.name for layer in layers]
    for result in results:
        X = reference[result.name]
        centred = X - X.mean(1, keepdims=True)
        np.testing.assert_allclose(
            result.outputs["centred_gram"],
            centred @ centred.T,
            rtol=1e-5,
            atol=1e-6 * np.abs(X).max() ** 2,
        )
        assert result.outputs["centred_gram"].dtype == np.float64
        np.testing.assert_allclose(result.outputs["squared_norm"], (X**2).sum(1), rtol=1e-5)
        assert int(result.outputs["columns_seen"]) == X.shape[1]  # every chunk, once
        np.testing.assert_allclose(result.rsm, np.corrcoef(X), rtol=1e-5, atol=1e-5)
    # Extra consumers are part of the cache key, and their outputs come back from the cache.
    again = {r.name: r for r in extract(resnet, pixels, consumers=consumers, **run)}
    assert all(r.from_cache for r in again.values())
    np.testing.assert_array_equal(
        again["conv1"].outputs["squared_norm"], results[0].outputs["squared_norm"]
    )
    plain = list(extract(resnet, pixels, **run))
    assert not any(r.from_cache for r in plain) and all(not r.outputs for r in plain)


def test_gram_consumer_rejects_unknown_outputs():
    with pytest.raises(ValueError, match="outputs must be among"):
        GramConsumer(("cka",))
