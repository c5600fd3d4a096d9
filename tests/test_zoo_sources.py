"""Model sources: trained demo model, preprocessing identical to each library's own, seeded random
init, checkpoint key remapping, and fail-fast offline behaviour.

Every test runs offline; the ``no_network`` fixture proves that no connection is even attempted.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from PIL import Image

from zooscope.zoo import (
    ModelEntry,
    ModelUnavailable,
    WeightsUnavailable,
    fetch_weights,
    get_entry,
    load_manifest,
    load_model,
)

HEADER = "model_uid,source,name,weights,display_name,arch_class,task,task_cluster,train_data"
CKPT_HEADER = f"{HEADER},arch,checkpoint_key,strip_prefix"
TINY_TIMM = "test_efficientnet"  # timm's own 0.36M-parameter test network


def entry(source: str, name: str, weights: str = "random", **fields) -> ModelEntry:
    fields = {"display_name": "M", "arch_class": "Convolutional", "task": "x", **fields}
    return ModelEntry(model_uid="m", source=source, name=name, weights=weights, **fields)


def top1(loaded, image) -> int:
    with torch.inference_mode():
        return int(loaded.module(loaded.preprocess.batch([image])).argmax(1))


def test_demo_effnet_lite0_classifies_cat_and_espresso(offline, no_network):
    from skimage import data

    loaded = load_model(get_entry("effnet_lite0", "demo"))
    assert not loaded.module.training
    assert top1(loaded, data.chelsea()) in range(
        281, 286
    )  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert top1(loaded, data.coffee()) in (967, 968)  # espresso, cup
    assert loaded.info.n_params == sum(p.numel() for p in loaded.module.parameters())
    assert loaded.info.input_size == (3, 224, 224)
    assert no_network == []


# --- preprocessing is the library's own ----------------------------------------------------------


def timm_transform(name: str):
    import timm

    model = timm.create_model(name, pretrained=False)
    return timm.data.create_transform(
        **timm.data.resolve_model_data_config(model), is_training=False
    )


def torchvision_transform(name: str, tag: str = "DEFAULT"):
    import torchvision

    return torchvision.models.get_model_weights(name)[tag].transforms()


def open_clip_transform(name: str):
    import open_clip

    return open_clip.create_model_and_transforms(name, pretrained=None)[2]


@pytest.mark.parametrize(
    ("uid", "reference"),
    [
        ("vit_tiny_random", lambda: timm_transform("vit_tiny_patch16_224")),
        ("mobilenet_v3_small_random", lambda: torchvision_transform("mobilenet_v3_small")),
        ("clip_rn50_random", lambda: open_clip_transform("RN50")),
        ("effnet_lite0_random", lambda: timm_transform("efficientnet_lite0")),
    ],
    ids=["timm", "torchvision", "open_clip", "checkpoint"],
)
def test_random_init_preprocess_is_the_library_transform(
    uid, reference, rgb_image, offline, no_network
):
    loaded = load_model(get_entry(uid, "demo"))
    expected = reference()(Image.fromarray(rgb_image))
    got = loaded.preprocess(rgb_image)
    assert got.dtype == torch.float32 and got.shape == expected.shape == (3, 224, 224)
    assert torch.equal(got, expected)
    assert torch.equal(loaded.preprocess(Image.fromarray(rgb_image)), expected)
    assert loaded.entry.model_uid == uid and loaded.info.input_size == (3, 224, 224)
    assert no_network == []


@pytest.fixture(scope="module")
def tiny_vit_folder(tmp_path_factory):
    """A 2-layer ViT with its image processor, written by ``save_pretrained``."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = tmp_path_factory.mktemp("tiny_vit")
    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=64,
        patch_size=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        ViTModel(config).save_pretrained(folder)
    # Non-default size and statistics, so that the test sees the processor really is the folder's.
    ViTImageProcessor(
        size={"height": 64, "width": 64}, image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.3, 0.25]
    ).save_pretrained(folder)
    return folder


def test_transformers_preprocess_is_the_image_processor(
    tiny_vit_folder, rgb_image, offline, no_network
):
    from transformers import AutoImageProcessor

    loaded = load_model(entry("transformers", str(tiny_vit_folder), arch_class="Transformer"))
    processor = AutoImageProcessor.from_pretrained(tiny_vit_folder)
    expected = processor(images=Image.fromarray(rgb_image), return_tensors="pt")["pixel_values"][0]
    got = loaded.preprocess(rgb_image)
    assert got.shape == expected.shape == (3, 64, 64)
    assert torch.equal(got, expected)
    with torch.inference_mode():
        assert loaded.module(pixel_values=got[None]).last_hidden_state.shape == (1, 17, 32)
    assert no_network == []


def test_transformers_pretrained_folder_loads_its_weights(tiny_vit_folder, offline, no_network):
    from transformers import ViTModel

    loaded = load_model(entry("transformers", str(tiny_vit_folder), "pretrained"))
    saved = ViTModel.from_pretrained(tiny_vit_folder).state_dict()
    assert_same_state(loaded.module.state_dict(), saved)
    random = load_model(entry("transformers", str(tiny_vit_folder)))
    assert not torch.equal(
        random.module.embeddings.patch_embeddings.projection.weight,
        saved["embeddings.patch_embeddings.projection.weight"],
    )


def test_random_twin_keeps_the_preprocessing_of_its_weights_tag(rgb_image, offline, no_network):
    row = entry("torchvision", "mobilenet_v3_large", "IMAGENET1K_V1")
    loaded = load_model(row, weights="random")
    image = Image.fromarray(rgb_image)
    expected = torchvision_transform("mobilenet_v3_large", "IMAGENET1K_V1")(image)
    assert torch.equal(loaded.preprocess(rgb_image), expected)
    # The DEFAULT (V2) weights resize differently: the test above can tell them apart.
    assert not torch.equal(torchvision_transform("mobilenet_v3_large")(image), expected)
    assert "random" in loaded.info.weights_id
    assert no_network == []


def test_open_clip_random_twin_keeps_the_preprocessing_of_its_tag(rgb_image, offline, no_network):
    import open_clip

    name, tag = "PE-Core-T-16-384", "meta"  # the tag's statistics, resize and interpolation differ
    loaded = load_model(entry("open_clip", name, tag, arch_class="Transformer"), weights="random")
    cfg = open_clip.get_pretrained_cfg(name, tag)
    image = Image.fromarray(rgb_image)
    expected = open_clip.image_transform(
        384,
        is_train=False,
        mean=cfg["mean"],
        std=cfg["std"],
        interpolation=cfg["interpolation"],
        resize_mode=cfg["resize_mode"],
    )(image)
    assert torch.equal(loaded.preprocess(rgb_image), expected)
    assert not torch.equal(open_clip_transform(name)(image), expected)
    assert no_network == []


def test_timm_random_twin_keeps_the_preprocessing_of_its_tag(rgb_image, offline, no_network):
    loaded = load_model(entry("timm", "resnet18", "tv_in1k"), weights="random")
    image = Image.fromarray(rgb_image)
    expected = timm_transform("resnet18.tv_in1k")(image)  # bilinear, crop 0.875
    assert torch.equal(loaded.preprocess(rgb_image), expected)
    assert not torch.equal(timm_transform("resnet18.a1_in1k")(image), expected)  # bicubic, 0.95
    assert no_network == []


def test_transformers_multimodal_model_exposes_its_vision_tower(
    tmp_path, rgb_image, offline, no_network
):
    from transformers import AutoImageProcessor, CLIPConfig, CLIPImageProcessor, CLIPModel

    tower = {
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 37,
    }
    config = CLIPConfig(
        text_config={
            **tower,
            "vocab_size": 99,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config={**tower, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(tmp_path)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(tmp_path)
    loaded = load_model(entry("transformers", str(tmp_path), arch_class="Transformer"))
    assert type(loaded.module).__name__.startswith("CLIPVision")
    assert not any("text" in name for name, _ in loaded.module.named_parameters())
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    expected = processor(images=Image.fromarray(rgb_image), return_tensors="pt")["pixel_values"][0]
    assert torch.equal(loaded.preprocess(rgb_image), expected)
    assert no_network == []


# --- seeded random init ----------------------------------------------------------------------------


def assert_same_state(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)
    for key, tensor in expected.items():
        assert torch.equal(got[key], tensor), key


@pytest.mark.parametrize(
    ("source", "name"), [("timm", TINY_TIMM), ("torchvision", "mobilenet_v3_small")]
)
def test_random_init_is_seeded_and_leaves_the_global_rng_alone(source, name, offline, no_network):
    torch.manual_seed(2024)
    state = torch.get_rng_state()
    first = load_model(entry(source, name, seed=5)).module.state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    again = load_model(entry(source, name, seed=5)).module.state_dict()
    other = load_model(entry(source, name, seed=6)).module.state_dict()
    assert_same_state(again, first)
    weights = [
        k for k, v in first.items() if v.is_floating_point() and v.numel() > 1 and v.std() > 0
    ]
    assert weights and all(not torch.equal(first[k], other[k]) for k in weights)
    assert torch.equal(torch.get_rng_state(), state)


def test_unavailable_row_refuses_to_load():
    row = entry(
        "checkpoint",
        "https://example.org/x.pth",
        "pretrained",
        available=False,
        unavailable_reason="needs X",
    )
    with pytest.raises(ModelUnavailable, match="needs X"):
        load_model(row)


# --- checkpoints ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_state():
    """The state dict of a seeded (stand-in for "trained") timm test network."""
    import timm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        return timm.create_model(TINY_TIMM).eval().state_dict()


def load_checkpoint_module(
    write_csv, tmp_path, payload, key="", prefix="", name=None, arch=f"timm:{TINY_TIMM}"
):
    """Save ``payload``, describe it in a one-row manifest and load it; return the module."""
    torch.save(payload, tmp_path / "ck.pth")
    location = name or tmp_path / "ck.pth"
    manifest = write_csv(
        f"{CKPT_HEADER}\nck,checkpoint,{location},pretrained,CK,Convolutional,x,,,{arch},{key},{prefix}\n"
    )
    (row,) = load_manifest(manifest)
    return load_model(row).module


def load_checkpoint(*args, **kwargs) -> dict:
    """The state dict of :func:`load_checkpoint_module`'s module."""
    return load_checkpoint_module(*args, **kwargs).state_dict()


def test_checkpoint_by_name_under_state_dict_with_module_prefix(
    write_csv, tmp_path, trained_state, offline, no_network
):
    payload = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in trained_state.items()}}
    assert_same_state(load_checkpoint(write_csv, tmp_path, payload), trained_state)
    assert no_network == []


@pytest.mark.parametrize("outer", ["", "module."])
def test_checkpoint_strip_prefix_selects_and_strips(write_csv, tmp_path, trained_state, outer):
    payload = {f"{outer}backbone.{k}": v for k, v in trained_state.items()}
    payload[f"{outer}text_tower.proj"] = torch.ones(3, 3)  # not under the prefix: dropped
    assert_same_state(
        load_checkpoint(write_csv, tmp_path, payload, prefix="backbone."), trained_state
    )


def test_checkpoint_positional_by_shape_with_checkpoint_key(write_csv, tmp_path, trained_state):
    renamed = {f"features.{i:03d}": v for i, v in enumerate(trained_state.values())}
    payload = {"classy": {"trunk": renamed}, "optimizer": {}}
    assert_same_state(
        load_checkpoint(write_csv, tmp_path, payload, key="classy.trunk"), trained_state
    )


def test_checkpoint_relative_path_is_found_beside_the_manifest(write_csv, tmp_path, trained_state):
    assert_same_state(
        load_checkpoint(write_csv, tmp_path, dict(trained_state), name="ck.pth"), trained_state
    )


def test_checkpoint_shape_mismatch_is_clear(write_csv, tmp_path, trained_state):
    positional = {f"p{i}": v for i, v in enumerate(trained_state.values())}
    first = next(iter(positional))
    positional[first] = positional[first][:1]
    with pytest.raises(
        ValueError, match=r"positional mapping failed at tensor 0: checkpoint 'p0' \(1,"
    ):
        load_checkpoint(write_csv, tmp_path, positional)
    by_name = dict(trained_state)
    key = next(iter(by_name))
    by_name[key] = by_name[key][:1]
    with pytest.raises(ValueError, match=rf"{key}: checkpoint \(1,.*vs architecture"):
        load_checkpoint(write_csv, tmp_path, by_name)
    fewer = {f"p{i}": v for i, v in enumerate(list(trained_state.values())[1:])}
    with pytest.raises(ValueError, match="cannot be mapped"):
        load_checkpoint(write_csv, tmp_path, fewer)


def test_checkpoint_missing_file_and_prefix_are_clear(write_csv, tmp_path, trained_state, offline):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pth"):
        load_checkpoint(write_csv, tmp_path, {}, name=str(tmp_path / "nowhere.pth"))
    with pytest.raises(ValueError, match=r"no checkpoint key starts with strip_prefix 'encoder\.'"):
        load_checkpoint(write_csv, tmp_path, dict(trained_state), prefix="encoder.")


# --- offline: fail fast, say where we looked and what to run ---------------------------------------


@pytest.mark.parametrize(
    ("source", "name", "weights"),
    [
        ("timm", "resnet18", "a1_in1k"),
        ("torchvision", "resnet18", "IMAGENET1K_V1"),
        ("open_clip", "RN50", "openai"),
        ("transformers", "facebook/dino-vits16", "pretrained"),
        ("checkpoint", "https://example.org/weights/ssl_resnet18.pth", "pretrained"),
    ],
)
def test_offline_missing_weights_fail_fast(
    source, name, weights, write_csv, empty_weight_caches, offline, no_network
):
    arch = "timm:resnet18" if source == "checkpoint" else ""
    manifest = write_csv(
        f"{HEADER},arch\nmissing_{source},{source},{name},{weights},M,Convolutional,x,,,{arch}\n"
    )
    (row,) = load_manifest(manifest)
    for attempt in (load_model, fetch_weights):
        with pytest.raises(WeightsUnavailable) as caught:
            attempt(row)
        message = str(caught.value)
        assert f"'missing_{source}'" in message
        assert (
            str(empty_weight_caches) in caught.value.searched and caught.value.searched in message
        )
        assert f"zooscope models fetch missing_{source} --manifest {manifest}" in message
    assert no_network == []


def test_offline_random_init_from_uncached_hub_config_fails_fast(
    empty_weight_caches, offline, no_network
):
    with pytest.raises(WeightsUnavailable, match="facebook/dino-vits16"):
        load_model(entry("transformers", "facebook/dino-vits16"))
    assert no_network == []


def test_random_rows_need_nothing_to_fetch():
    assert "nothing to download" in fetch_weights(
        dataclasses.replace(get_entry("resnet18_random", "demo"))
    )


@pytest.mark.parametrize(
    ("arch", "head"),
    [(f"timm:{TINY_TIMM}", "classifier"), ("torchvision:mobilenet_v3_small", "classifier.3")],
)
@pytest.mark.parametrize("by", ["name", "position"])
def test_checkpoint_without_classifier_loads_as_feature_extractor(
    write_csv, tmp_path, arch, head, by
):
    library, arch_name = arch.split(":")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        if library == "timm":
            import timm

            full = timm.create_model(arch_name).state_dict()
        else:
            import torchvision

            full = torchvision.models.get_model(arch_name).state_dict()
    headless = {k: v for k, v in full.items() if not k.startswith(f"{head}.")}
    assert len(headless) == len(full) - 2  # the test really removes a weight and a bias
    if by == "name":  # a self-supervised checkpoint: projection head instead of a classifier
        payload = {**headless, "projection_head.0.weight": torch.ones(8, 8)}
    else:
        payload = {f"t{i}": v for i, v in enumerate(headless.values())}
    module = load_checkpoint_module(write_csv, tmp_path, payload, arch=arch)
    assert_same_state(module.state_dict(), headless)
    assert isinstance(module.get_submodule(head), torch.nn.Identity)
    with torch.inference_mode():
        # The output is the classifier's input: the features.
        assert module(torch.zeros(1, 3, 160, 160)).shape == (1, full[f"{head}.weight"].shape[1])
