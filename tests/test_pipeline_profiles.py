"""Scoring profiles: the conwell2024 profile's transforms, layer lists, LOO frame and selection.

Every expectation is written here independently of zooscope's own code: transforms as plain
torchvision pipelines, layer lists from hooks of this module's own, leave-one-out predictions from
a brute-force refit, and the degenerate-row filter from numpy on a constructed table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torchvision import transforms

from zooscope.config import ScoringConfig
from zooscope.feature_extraction import LayerSelection, discover_layers, list_layers
from zooscope.profiles import PROFILES
from zooscope.zoo import load_manifest, load_model

IMAGENET = transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HEADER = (
    "model_uid,source,name,weights,display_name,arch_class,task,task_cluster,train_data,seed,arch"
)


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _images(n: int = 4, size: int = 80, seed: int = 0) -> np.ndarray:
    """Non-square images with smooth structure (a crop would cut their sides away)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0 : size + 24] / size
    out = []
    for _ in range(n):
        f = rng.uniform(1, 4, 3)
        img = 0.5 + 0.25 * np.sin(2 * np.pi * (f[0] * x + f[1] * y))[..., None] * rng.uniform(
            0.5, 1, 3
        )
        img = img + 0.1 * rng.standard_normal(img.shape)
        out.append(np.clip(img * 255, 0, 255).astype(np.uint8))
    return np.stack(out)


def _entries(tmp_path: Path, rows: list[str]):
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return {e.model_uid: e for e in load_manifest(path)}


def reference_layer_names(module: nn.Module, probe: torch.Tensor) -> list[str]:
    """The published layer rule, written independently: hooks on every module that is not a
    Sequential/ModuleList (root included), one entry per call, one per tuple element, duplicates
    (equal flattened values, any shape) dropped keeping the first, then the second half."""
    b = probe.shape[0]
    paths = {id(m): n for n, m in module.named_modules()}
    calls: dict[str, int] = {}
    entries: list[tuple[str, torch.Tensor]] = []

    def hook(mod: nn.Module, _inputs, output) -> None:
        path = paths[id(mod)]
        call = calls.get(path, 0)
        calls[path] = call + 1
        parts = list(enumerate(output)) if isinstance(output, tuple | list) else [(None, output)]
        for element, tensor in parts:
            if not isinstance(tensor, torch.Tensor) or tensor.dim() == 0:
                continue
            axes = [a for a, s in enumerate(tensor.shape) if s == b]
            if tensor.shape[0] != b:
                if len(axes) != 1:
                    continue
                tensor = tensor.movedim(axes[0], 0)
            name = (path or "output") + (f"#{call + 1}" if call else "")
            name += "" if element is None else f".{element}"
            entries.append((name, tensor.detach().float().reshape(-1).clone()))

    handles = [
        m.register_forward_hook(hook)
        for m in module.modules()
        if not isinstance(m, nn.Sequential | nn.ModuleList)
    ]
    with torch.no_grad():
        module(probe)
    for handle in handles:
        handle.remove()
    kept: list[tuple[str, torch.Tensor]] = []
    for name, flat in entries:
        if not any(f.numel() == flat.numel() and torch.equal(f, flat) for _, f in kept):
            kept.append((name, flat))
    names = [name for name, _ in kept]
    return names[int(len(names) / 2) :]


def _check_transform(loaded, expected: transforms.Compose, images: np.ndarray) -> None:
    from PIL import Image

    for image in images[:2]:
        ours = loaded.preprocess(image)
        theirs = expected(Image.fromarray(image))
        assert ours.shape == theirs.shape
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def _check_layers(loaded, images: np.ndarray) -> list[str]:
    ours = [layer.name for layer in list_layers(loaded, images, layer_policy="conwell2024")]
    probe = loaded.preprocess.batch(images[:3])
    assert ours == reference_layer_names(loaded.module, probe)
    return ours


def test_timm_profile_transform_and_layers(tmp_path: Path) -> None:
    entries = _entries(
        tmp_path, ["vit,timm,vit_tiny_patch16_224,random,ViT-Ti,Transformer,random,,,0,"]
    )
    loaded = load_model(entries["vit"], preprocessing="conwell2024")
    bicubic = transforms.InterpolationMode.BICUBIC
    half = transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # this model's own statistics
    expected = transforms.Compose(
        [transforms.Resize((224, 224), bicubic), transforms.ToTensor(), half]
    )
    _check_transform(loaded, expected, _images())
    names = _check_layers(loaded, _images())
    # The root is hooked, but its output (the logits) repeats the head's, which came first.
    probe = loaded.preprocess.batch(_images()[:3])
    (head,) = [
        s for s in discover_layers(loaded.module, probe, policy="conwell2024") if s.name == "head"
    ]
    assert names[-1] == "head" and "output" in head.aliases


def test_torchvision_profile_trained_shaped_and_random_twin(tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(1)
    checkpoint = tmp_path / "resnet18_trained_shaped.pt"
    torch.save(torchvision.models.resnet18().state_dict(), checkpoint)
    entries = _entries(
        tmp_path,
        [
            f"trained,checkpoint,{checkpoint},pretrained,R18,Convolutional,classification,,,0,torchvision:resnet18",
            f"twin,checkpoint,{checkpoint},random,R18 random,Convolutional,random,,,0,torchvision:resnet18",
            "plain,torchvision,resnet18,random,R18 tv,Convolutional,random,,,0,",
        ],
    )
    base = [transforms.Resize((224, 224)), transforms.ToTensor()]
    images = _images()
    trained = load_model(entries["trained"], preprocessing="conwell2024")
    _check_transform(trained, transforms.Compose([*base, IMAGENET]), images)
    for uid in ("twin", "plain"):  # untrained torchvision models saw unnormalised pixels
        _check_transform(
            load_model(entries[uid], preprocessing="conwell2024"), transforms.Compose(base), images
        )
    twin = load_model(entries["trained"], weights="random", preprocessing="conwell2024")
    _check_transform(twin, transforms.Compose(base), images)
    names = _check_layers(trained, images)
    assert names[-1] == "fc"  # the root output repeats fc's, so fc (called first) is kept


def test_open_clip_vit_profile_keeps_transform_and_scores_the_embedding(tmp_path: Path) -> None:
    import open_clip

    entries = _entries(
        tmp_path, ["clip,open_clip,ViT-S-32,random,CLIP ViT-S/32,Transformer,random,,,0,"]
    )
    loaded = load_model(entries["clip"], preprocessing="conwell2024")
    _, _, preprocess = open_clip.create_model_and_transforms("ViT-S-32", pretrained=None)
    images = _images()
    _check_transform(loaded, preprocess, images)
    names = _check_layers(loaded, images)
    # The projected image embedding is produced by no submodule: only the root hook sees it.
    assert names[-1] == "output"
    probe = loaded.preprocess.batch(images[:3])
    (root,) = [
        s for s in discover_layers(loaded.module, probe, policy="conwell2024") if s.name == "output"
    ]
    with torch.no_grad():
        embedding = loaded.module(probe)
    assert root.shape == tuple(embedding.shape[1:])


def test_library_policy_keeps_each_librarys_transform(tmp_path: Path) -> None:
    entries = _entries(
        tmp_path, ["vit,timm,vit_tiny_patch16_224,random,ViT-Ti,Transformer,random,,,0,"]
    )
    assert "CenterCrop" in load_model(entries["vit"]).info.preprocess
    assert (
        "CenterCrop" not in load_model(entries["vit"], preprocessing="conwell2024").info.preprocess
    )


# -------------------------------------------------------------------------------- aliases


def test_aliases_resolve_names_and_unknown_names_fail() -> None:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    probe = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    layers = {layer.name: layer for layer in discover_layers(model, probe)}
    # "#k" is the k-th call: relu's second call in a BasicBlock is the block's output.
    block = layers["layer3.1.relu#2"]
    assert {"layer3.1", "layer3"} <= set(block.aliases)
    assert "layer3.1.relu" in layers  # the first call (after bn1) has no suffix
    with torch.no_grad():
        stage = model.layer3(
            model.layer2(model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(probe))))))
        )
        first_relu = model.layer3[1].relu(
            model.layer3[1].bn1(
                model.layer3[1].conv1(
                    model.layer3[0](
                        model.layer2(
                            model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(probe)))))
                        )
                    )
                )
            )
        )
    assert block.shape == tuple(stage.shape[1:])
    assert layers["layer3.1.relu"].shape == tuple(first_relu.shape[1:])
    for requested in (["layer3"], ["layer3.1"], ["layer3.1.relu#2"]):
        chosen = discover_layers(model, probe, LayerSelection(names=requested))
        assert [layer.name for layer in chosen] == ["layer3.1.relu#2"]
    with pytest.raises(KeyError, match="layer9"):
        discover_layers(model, probe, LayerSelection(names=["layer3", "layer9"]))


# -------------------------------------------------------------------------------- LOO frame


def test_centred_loo_train_predictions_equal_brute_force_refit() -> None:
    from sklearn.linear_model import Ridge

    from zooscope.rsa import RidgeGCV, versa
    from zooscope.rsa.rsm import upper_triangle

    rng = np.random.default_rng(3)
    n, p, t = 24, 40, 6
    X = rng.standard_normal((n, p))
    Y = X[:, :5] @ rng.standard_normal((5, t)) + rng.standard_normal((n, t)) + 3.0  # offset mean
    model = RidgeGCV(alphas=np.logspace(-1, 5, 7), criterion="pearson", dtype="float64").fit(X, Y)
    brute = np.empty((n, t))
    for j in range(t):
        for i in range(n):
            rest = np.arange(n) != i
            fit = Ridge(alpha=model.alpha_[j]).fit(X[rest], Y[rest, j])
            brute[i, j] = fit.predict(X[i : i + 1])[0]
    centred = brute - Y.mean(axis=0)  # the frame scikit-learn's RidgeCV stored LOO values in
    np.testing.assert_allclose(model.loo_predictions_ - model.y_mean_, centred, atol=1e-9)
    np.testing.assert_allclose(model.loo_predictions_, brute, atol=1e-9)

    # versa's train veRSA under "loo_centred" is computed from exactly those predictions.
    from sklearn.preprocessing import StandardScaler

    Xs = StandardScaler().fit_transform(X)
    model = RidgeGCV(alphas=np.logspace(-1, 5, 7), criterion="pearson", dtype="float64").fit(Xs, Y)
    brute = np.empty((n, t))
    for j in range(t):
        for i in range(n):
            rest = np.arange(n) != i
            brute[i, j] = (
                Ridge(alpha=model.alpha_[j]).fit(Xs[rest], Y[rest, j]).predict(Xs[i : i + 1])[0]
            )
    groups = {"g": np.arange(t)}
    for frame, predictions in (("loo", brute), ("loo_centred", brute - Y.mean(axis=0))):
        result = versa(X, X[:4], Y, Y[:4], groups, train_predictions=frame)
        score = result.scores.query("metric == 'versa' and split == 'train'")["score"].item()
        expected = np.corrcoef(
            upper_triangle(1 - np.corrcoef(predictions)), upper_triangle(1 - np.corrcoef(Y))
        )[0, 1]
        assert score == pytest.approx(expected, abs=1e-5), frame


# -------------------------------------------------------------------------------- degenerate


def _table() -> pd.DataFrame:
    """4 models x 8 layers x 2 subjects, one metric; model a's layer 3 is planted degenerate in subject 1."""
    rng = np.random.default_rng(0)
    rows = []
    for model in ("a", "b", "c", "d"):
        for layer in range(1, 9):
            for subject in ("1", "2"):
                train = 0.3 + 0.05 * layer + 0.01 * rng.standard_normal()
                test = train - 0.02 + 0.01 * rng.standard_normal()
                if (model, layer, subject) == ("a", 3, "1"):
                    train, test = 0.95, 0.05  # the highest train score, collapsing on test
                rows += [
                    {"model_uid": model, "layer_index": layer, "layer_name": f"l{layer}", "subject": subject,
                     "roi": "OTC", "metric": "versa", "split": s, "score": v}
                    for s, v in (("train", train), ("test", test))
                ]  # fmt: skip
    return pd.DataFrame(rows)


def test_degenerate_filter_on_a_constructed_table() -> None:
    from zooscope.analyses.degenerate import best_layers, degenerate_z_scores, drop_degenerate

    table = _table()
    # An extra, unrelated metric: z is computed within each metric only.
    other = table.assign(metric="crsa", score=table["score"] * 0.1)
    both = pd.concat([table, other], ignore_index=True)
    wide = both.pivot_table(
        index=["model_uid", "layer_index", "subject", "metric"], columns="split", values="score"
    )
    diff = wide["test"] - wide["train"]
    z = diff.groupby(level="metric").transform(lambda d: (d - d.mean()) / d.std(ddof=1))
    got = degenerate_z_scores(both).set_index(["model_uid", "layer_index", "subject", "metric"])[
        "z"
    ]
    np.testing.assert_allclose(got.sort_index(), z.sort_index(), atol=1e-12)

    kept = drop_degenerate(both, -3.291)
    keys = ["model_uid", "layer_index", "subject", "metric"]
    dropped = set(map(tuple, both[keys].values)) - set(map(tuple, kept[keys].values))
    assert dropped == {key for key, value in z.items() if value <= -3.291}
    assert dropped == {
        ("a", 3, "1", "versa"),
        ("a", 3, "1", "crsa"),
    }  # the planted row, in each metric
    assert len(kept) == len(both) - 2 * len(dropped)  # both splits of a dropped row go

    plain = best_layers(table).set_index(["model_uid", "subject"])
    filtered = best_layers(table, -3.291).set_index(["model_uid", "subject"])
    assert plain.loc[("a", "1"), "layer_index"] == 3  # without the filter the collapse wins
    assert filtered.loc[("a", "1"), "layer_index"] == 8  # the next best train layer
    others = [key for key in plain.index if key != ("a", "1")]
    pd.testing.assert_frame_equal(plain.loc[others], filtered.loc[others])


def test_degenerate_filter_drops_rows_with_a_missing_score() -> None:
    from zooscope.analyses.degenerate import drop_degenerate

    table = _table()
    table.loc[
        (table["model_uid"] == "b") & (table["layer_index"] == 2) & (table["split"] == "test"),
        "score",
    ] = np.nan
    kept = drop_degenerate(table, -3.291)
    assert not ((kept["model_uid"] == "b") & (kept["layer_index"] == 2)).any()


# -------------------------------------------------------------------------------- config


def test_profile_enters_config_hash_and_names_every_setting() -> None:
    default, paper = ScoringConfig(), ScoringConfig.conwell2024()
    assert default.profile == "default" and paper.profile == "conwell2024"
    assert default.hash != paper.hash
    for field, value in PROFILES["conwell2024"].settings.items():
        assert getattr(paper, field) == value
        assert getattr(default, field) != value, (
            field
        )  # each named setting differs from the default
    assert ScoringConfig.conwell2024(rois=("OTC",)).rois == ("OTC",)
    with pytest.raises(KeyError, match="unknown profile"):
        ScoringConfig.from_profile("conwell2023")
    with pytest.raises(ValueError, match="srp_mode"):
        ScoringConfig(srp_mode="exact")


def test_models_show_prints_the_profile_transform_and_scored_layers() -> None:
    from typer.testing import CliRunner

    from zooscope.cli import app

    result = CliRunner().invoke(
        app, ["models", "show", "effnet_lite0", "--profile", "conwell2024"], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    assert "Resize(size=(224, 224), interpolation=bicubic" in result.output
    assert "CenterCrop" not in result.output
    assert "71 scored layers" in result.output  # the second half of 142 distinct layers
    assert "classifier" in result.output and "output" in result.output  # root: alias of classifier
    bad = CliRunner().invoke(app, ["models", "show", "effnet_lite0", "--profile", "nope"])
    assert bad.exit_code == 2 and "--profile 'nope': must be one of" in bad.output


def test_results_choose_a_profile_and_its_selection_rule(tmp_path: Path) -> None:
    from zooscope.analyses.degenerate import profile_best_layer_scores
    from zooscope.results.db import ResultsDB

    table = _table()
    with ResultsDB(tmp_path / "results.duckdb") as db:
        for profile in ("default", "conwell2024"):
            run = db.start_run("bench", ScoringConfig.from_profile(profile).to_dict())
            for model, rows in table.groupby("model_uid"):
                layers = rows.drop_duplicates("layer_index")[["layer_index", "layer_name"]]
                layers = layers.assign(module_type="Conv2d", n_features=10)
                db.write_model(
                    run, {"model_uid": model}, layers, rows.drop(columns="model_uid"), None, 0.0
                )
        assert sorted(db.config_profiles()["profile"]) == ["conwell2024", "default"]

        def chosen(best: pd.DataFrame) -> int:
            return best.query("model_uid == 'a' and subject == '1'")["layer_index"].item()

        assert chosen(profile_best_layer_scores(db, "default")) == 3  # the plain rule
        assert chosen(profile_best_layer_scores(db, "conwell2024")) == 8  # degenerate row dropped
        paper = db.summary(best=profile_best_layer_scores(db, "conwell2024"))
        assert set(paper["profile"]) == {"conwell2024"} and len(paper) == 4
        assert set(db.summary()["profile"]) == {"default", "conwell2024"}  # both live in one file
        assert set(db.summary(profile="default")["profile"]) == {"default"}
