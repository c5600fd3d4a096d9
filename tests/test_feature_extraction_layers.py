"""discover_layers on small random-init models: coverage, stable names, duplicates, layouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from zooscope.feature_extraction import (
    LayerSelection,
    LayerSpec,
    discover_layers,
    make_non_inplace,
)
from zooscope.feature_extraction.layers import HookSet, hookable_modules
from zooscope.zoo import get_entry, load_model, parse_manifest

pytestmark = pytest.mark.usefixtures("single_torch_thread")


class TokenFirst(nn.Module):
    """A tiny transformer that works token-first (``[L, N, D]``) inside, like older open_clip.

    ``attn`` returns a tuple (token-first output, batch-first weights); ``identity`` and the
    eval-mode ``dropout`` repeat their input; ``unused`` is never called.
    """

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, kernel_size=4, stride=4)
        self.attn = nn.MultiheadAttention(dim, 2)  # batch_first=False: [L, N, D]
        self.norm = nn.LayerNorm(dim)
        self.act = nn.ReLU(inplace=True)
        self.identity = nn.Identity()
        self.dropout = nn.Dropout(0.5)
        self.unused = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).permute(2, 0, 1)  # [N, D, h, w] -> [L, N, D]
        attended, _weights = self.attn(x, x, x)
        x = self.act(self.norm(x + attended))
        x = self.dropout(self.identity(x))
        return self.head(x.mean(0))


def _probe(size: int, seed: int = 0, n: int = 3) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _all_outputs(module: nn.Module, probe: torch.Tensor) -> tuple[list[tuple[Any, ...]], set[str]]:
    """Reference: every per-image tensor output, batch-first, in hook order; called modules."""
    b = probe.shape[0]
    records: list[tuple[Any, ...]] = []
    called: set[str] = set()

    def record(path: str, call: int, part: tuple[Any, ...], tensor: torch.Tensor) -> None:
        called.add(path)
        shape = tuple(tensor.shape)
        axis = 0 if shape[0] == b else 1 if len(shape) > 1 and shape[1] == b else None
        if axis is not None:
            records.append(((path, call, part), tensor.detach().movedim(axis, 0).clone()))

    modules = hookable_modules(module)
    with HookSet(modules, record) as hooks, torch.no_grad():
        hooks.new_forward()
        module(probe)
    return records, called


def assert_covers_every_module(module: nn.Module, probe: torch.Tensor) -> list[LayerSpec]:
    """Every called non-container module yields a layer, unless its output repeats an earlier one."""
    make_non_inplace(module)
    layers = discover_layers(module, probe)
    records, called = _all_outputs(module, probe)
    kept = {layer.key for layer in layers}
    names = [layer.name for layer in layers]
    assert len(set(names)) == len(names), "layer names must be unique"
    assert [layer.index for layer in layers] == list(range(1, len(layers) + 1))
    for position, (key, tensor) in enumerate(records):
        if key in kept:
            continue
        earlier = [t for _, t in records[:position]]
        assert any(t.shape == tensor.shape and torch.equal(t, tensor) for t in earlier), (
            f"{key} was dropped but is not a duplicate of an earlier layer"
        )
    for path, _ in hookable_modules(module):
        if path not in called:
            assert not any(layer.module_path == path for layer in layers)
    return layers


@pytest.fixture(scope="module")
def resnet18() -> nn.Module:
    return load_model(get_entry("resnet18_random")).module


def test_resnet18_every_module_and_multi_call_names(resnet18):
    layers = assert_covers_every_module(resnet18, _probe(64))
    names = [layer.name for layer in layers]
    # torchvision's BasicBlock calls its one ReLU twice: two distinct layers.
    assert "layer1.0.relu" in names and "layer1.0.relu#2" in names
    assert (
        names.index("layer1.0.relu") < names.index("layer1.0.bn2") < names.index("layer1.0.relu#2")
    )
    # Pre- and post-activation are both kept (the in-place ReLU was made non-inplace).
    assert "bn1" in names and "relu" in names
    assert not any(getattr(m, "inplace", False) for m in resnet18.modules())
    by_name = {layer.name: layer for layer in layers}
    assert by_name["conv1"].shape == (64, 32, 32) and by_name["conv1"].module_type == "Conv2d"
    assert by_name["fc"].shape == (1000,) and by_name["layer3.1.conv2"].depth == 3
    assert by_name["conv1"].label == "Conv2d-1"


def test_names_are_stable_across_runs_and_probes(resnet18):
    again = load_model(get_entry("resnet18_random")).module
    first = discover_layers(make_inplace_free(resnet18), _probe(64, seed=0))
    second = discover_layers(make_inplace_free(again), _probe(64, seed=1))
    assert [layer.name for layer in first] == [layer.name for layer in second]
    assert [layer.index for layer in first] == [layer.index for layer in second]


def make_inplace_free(module: nn.Module) -> nn.Module:
    make_non_inplace(module)
    return module


def test_inplace_activation_keeps_pre_activation_distinct():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True)).eval()
    # Each output is hashed inside its hook, before the in-place ReLU overwrites the BN output.
    assert [layer.name for layer in discover_layers(model, _probe(8))] == ["0", "1", "2"]
    assert model[2].inplace
    assert make_non_inplace(model) == 1
    assert not model[2].inplace
    layers = discover_layers(model, _probe(8))
    assert [layer.name for layer in layers] == ["0", "1", "2"]


@pytest.mark.parametrize("arch", ["vit_tiny_patch16_224", "mixer_s32_224"])
def test_timm_transformer_and_mixer(arch):
    import timm

    # Random-init, shallow and small-input versions of the demo manifest's ViT and Mixer.
    torch.manual_seed(0)
    if arch.startswith("vit"):
        module = timm.create_model(arch, pretrained=False, img_size=64, depth=2).eval()
    else:
        module = timm.models.mlp_mixer.MlpMixer(
            img_size=64, patch_size=32, num_blocks=2, embed_dim=64
        ).eval()
    layers = assert_covers_every_module(module, _probe(64))
    assert all(layer.batch_axis == 0 for layer in layers)
    types = {layer.module_type for layer in layers}
    assert {"Linear", "LayerNorm", "GELU"} <= types
    names = [layer.name for layer in layers]
    if arch.startswith("vit"):
        assert "blocks.0.attn.qkv" in names and "blocks.1.mlp.fc2" in names
        # The attention block ends in its projection's (eval) dropout: a duplicate, dropped.
        assert "blocks.0.attn.proj" in names and "blocks.0.attn" not in names
        assert {layer.shape for layer in layers if layer.name.startswith("blocks.0.")} >= {
            (17, 192)
        }
    else:
        assert "blocks.1.mlp_tokens.fc1" in names and "blocks.1.mlp_channels.fc2" in names


def test_token_first_layout_is_detected_and_duplicates_dropped():
    model = TokenFirst().eval()
    layers = assert_covers_every_module(model, _probe(16))
    by_name = {layer.name: layer for layer in layers}
    assert list(by_name) == ["embed", "attn.0", "attn.1", "norm", "act", "head"]
    assert by_name["attn.0"].batch_axis == 1 and by_name["attn.0"].shape == (16, 8)
    assert by_name["attn.1"].batch_axis == 0 and by_name["attn.1"].shape == (16, 16)
    assert by_name["norm"].batch_axis == 1 and by_name["act"].part == ()
    assert by_name["attn.1"].part == (1,)
    everything = [layer.name for layer in discover_layers(model, _probe(16), drop_duplicates=False)]
    assert everything == ["embed", "attn.0", "attn.1", "norm", "act", "identity", "dropout", "head"]
    assert "unused" not in everything and "attn.out_proj" not in everything  # never called


def _open_clip_vit(token_first: bool) -> nn.Module:
    from open_clip.transformer import Transformer, VisionTransformer

    torch.manual_seed(0)
    visual = VisionTransformer(
        image_size=32, patch_size=8, width=32, layers=2, heads=2, mlp_ratio=2.0, output_dim=16
    )
    if token_first:
        # Older open_clip releases ran the residual blocks on [L, N, D] tensors.
        visual.transformer = Transformer(
            width=32, layers=2, heads=2, mlp_ratio=2.0, batch_first=False
        )
    return visual.eval()


@pytest.mark.parametrize("token_first", [False, True])
def test_open_clip_image_encoder(token_first):
    model = _open_clip_vit(token_first)
    layers = assert_covers_every_module(model, _probe(32))
    by_name = {layer.name: layer for layer in layers}
    block = by_name["transformer.resblocks.0.mlp.c_fc"]
    assert block.batch_axis == (1 if token_first else 0)
    assert block.shape == (17, 64)  # 16 patches + class token, per image
    assert by_name["transformer.resblocks.1.attn.0"].shape == (17, 32)
    # After the blocks, open_clip transposes back: ln_post is batch-first either way.
    assert by_name["ln_post"].shape == (17, 32) and by_name["ln_post"].batch_axis == 0


def test_hf_vision_model_from_a_local_folder(tmp_path: Path, no_network):
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = tmp_path / "tiny-vit"
    config = ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        image_size=32, patch_size=8,
    )  # fmt: skip
    torch.manual_seed(0)
    ViTModel(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    header = "model_uid,source,name,weights,display_name,arch_class,task,task_cluster,train_data"
    row = f"hf_tiny,transformers,{folder},pretrained,tiny ViT,Transformer,classification,,"
    entry = parse_manifest([header, row])[0]
    loaded = load_model(entry)
    probe = torch.stack([loaded.preprocess(img) for img in _uint8_images(3, 40)])
    assert probe.shape == (3, 3, 32, 32)
    layers = assert_covers_every_module(loaded.module, probe)
    names = [layer.name for layer in layers]
    assert "layers.1.mlp.fc1" in names and "layers.1.attention.o_proj" in names
    assert "pooler.activation" in names
    assert all(layer.batch_axis == 0 for layer in layers)
    assert not no_network


def _uint8_images(n: int, size: int) -> list[Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    return list(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8))


def test_selection_by_regex_type_depth_keeps_indices(resnet18):
    make_non_inplace(resnet18)
    probe = _probe(32)
    everything = discover_layers(resnet18, probe)
    cases = [
        (LayerSelection(include=r"^layer1\.", exclude=r"bn"), lambda s: s.name.startswith("layer1.") and "bn" not in s.name),
        (LayerSelection(module_types=("ReLU",)), lambda s: s.module_type == "ReLU"),
        (LayerSelection(max_depth=1), lambda s: "." not in s.module_path),
        (LayerSelection(names=["fc", "conv1"]), lambda s: s.name in ("fc", "conv1")),
    ]  # fmt: skip
    for selection, expected in cases:
        chosen = discover_layers(resnet18, probe, selection)
        assert chosen == [s for s in everything if expected(s)]
        assert chosen
    # A callable works as a selection too.
    assert discover_layers(resnet18, probe, lambda s: s.index == 5) == [everything[4]]
