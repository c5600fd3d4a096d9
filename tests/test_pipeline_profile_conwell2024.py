"""Acceptance: EfficientNet-Lite0 (the real trained checkpoint) under ``--profile conwell2024``
equals a plain, independent implementation of the six published steps.

The reference below uses only torch hooks, torchvision transforms, scikit-learn
(``SparseRandomProjection``, ``StandardScaler``, ``Ridge`` refit for every left-out image) and
``numpy.corrcoef``; it shares no code with zooscope's extraction, projection, ridge or scoring.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cpu_share import cpu_share
from torch import nn

from zooscope.benchmark import Benchmark
from zooscope.config import RunOptions, ScoringConfig
from zooscope.pipeline.scoring import score_model
from zooscope.zoo import load_manifest, load_model

pytestmark = pytest.mark.slow

N_IMAGES = 40
ALPHAS = np.logspace(-1, 5, 7)
TOLERANCE = 2e-3


@pytest.fixture(autouse=True)
def _threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, cpu_share()))  # one each when two xdist workers share 2 cores
    yield
    torch.set_num_threads(threads)


def _benchmark(path: Path) -> Benchmark:
    """40 structured 96x96 images; 2 ROIs of 40 units each driven by coarse image statistics."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:96, 0:96] / 96
    images = []
    for _ in range(N_IMAGES):
        f, phase, colour = rng.uniform(1, 6, 2), rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 1, 3)
        img = 0.5 + 0.4 * np.sin(2 * np.pi * (f[0] * x + f[1] * y) + phase)[..., None] * colour
        blob = np.exp(-((x - rng.uniform()) ** 2 + (y - rng.uniform()) ** 2) / 0.02)[..., None]
        img = img * (1 - blob) + blob * rng.uniform(0, 1, 3) + 0.05 * rng.standard_normal(img.shape)
        images.append(np.clip(img * 255, 0, 255).astype(np.uint8))
    images = np.stack(images)
    coarse = images.reshape(N_IMAGES, 8, 12, 8, 12, 3).mean(axis=(2, 4)).reshape(N_IMAGES, -1)
    coarse = (coarse - coarse.mean(0)) / (coarse.std(0) + 1e-9)
    n_units = 80
    signal = coarse @ rng.standard_normal((coarse.shape[1], n_units)) / np.sqrt(coarse.shape[1])
    responses = signal.T[:, :, None] + 0.7 * rng.standard_normal((n_units, N_IMAGES, 3))
    units = pd.DataFrame(
        {"subject": 1, "OTC": np.arange(n_units) < 40, "EVC": np.arange(n_units) >= 40}
    )
    return Benchmark.from_arrays(path, responses, images, units)


# ------------------------------------------------------------------ the six steps, plainly


def reference_features(module: nn.Module, batch: torch.Tensor) -> dict[str, np.ndarray]:
    """Step 2: every non-Sequential/ModuleList module's output (root included), one entry per
    call, tuple elements apart; duplicates by flattened values on the first 3 images dropped;
    the second half kept. Returns name -> [n_images, p] float32, in order."""
    paths = {id(m): n for n, m in module.named_modules()}
    hooked = [m for m in module.modules() if not isinstance(m, nn.Sequential | nn.ModuleList)]

    def run(images: torch.Tensor, keep: set[str] | None) -> dict[str, torch.Tensor]:
        calls: dict[str, int] = {}
        out: dict[str, torch.Tensor] = {}

        def hook(mod, _inputs, output):
            path = paths[id(mod)]
            call = calls.get(path, 0)
            calls[path] = call + 1
            parts = (
                list(enumerate(output)) if isinstance(output, tuple | list) else [(None, output)]
            )
            for element, tensor in parts:
                name = (
                    (path or "output")
                    + (f"#{call + 1}" if call else "")
                    + ("" if element is None else f".{element}")
                )
                if (
                    isinstance(tensor, torch.Tensor)
                    and tensor.dim()
                    and tensor.shape[0] == len(images)
                ):
                    if keep is None or name in keep:
                        out[name] = tensor.detach().float().reshape(len(images), -1).clone()

        handles = [m.register_forward_hook(hook) for m in hooked]
        with torch.no_grad():
            module(images)
        for handle in handles:
            handle.remove()
        return out

    probe = run(batch[:3], None)
    kept: list[str] = []
    for name, flat in probe.items():
        if not any(
            probe[k].numel() == flat.numel() and torch.equal(probe[k].reshape(-1), flat.reshape(-1))
            for k in kept
        ):
            kept.append(name)
    names = kept[int(len(kept) / 2) :]
    features: dict[str, np.ndarray] = {}
    for start in range(0, len(names), 12):  # a dozen layers per pass keeps memory small
        chunk = set(names[start : start + 12])
        outputs = run(batch, chunk)
        features.update({n: outputs[n].numpy() for n in names[start : start + 12]})
    return {n: features[n] for n in names}


def loo_ridge(
    X_train: np.ndarray, Y_train: np.ndarray, X_test: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Step 4: per-voxel alpha by brute-force leave-one-out Pearson r (refit without each image);
    train predictions = LOO predictions minus the voxel's training mean; test from the full fit."""
    from sklearn.linear_model import Ridge

    n = len(X_train)
    loo = np.empty((len(ALPHAS), n, Y_train.shape[1]))
    for a, alpha in enumerate(ALPHAS):
        for i in range(n):
            rest = np.arange(n) != i
            loo[a, i] = (
                Ridge(alpha=alpha).fit(X_train[rest], Y_train[rest]).predict(X_train[i : i + 1])[0]
            )
    r = np.array(
        [
            [np.corrcoef(loo[a, :, v], Y_train[:, v])[0, 1] for v in range(Y_train.shape[1])]
            for a in range(len(ALPHAS))
        ]
    )
    best = np.nanargmax(np.where(np.isnan(r), -np.inf, r), axis=0)  # ties: the first alpha
    train = loo[best, :, np.arange(Y_train.shape[1])].T - Y_train.mean(axis=0)
    test = Ridge(alpha=ALPHAS[best]).fit(X_train, Y_train).predict(X_test)
    return train, test


def rdm_score(a: np.ndarray, b: np.ndarray) -> float:
    iu = np.triu_indices(len(a), k=1)
    return float(np.corrcoef((1 - np.corrcoef(a))[iu], (1 - np.corrcoef(b))[iu])[0, 1])


def reference_scores(
    module: nn.Module, images: np.ndarray, Y: np.ndarray, groups: dict[str, np.ndarray]
) -> pd.DataFrame:
    from PIL import Image
    from sklearn.preprocessing import StandardScaler
    from sklearn.random_projection import SparseRandomProjection, johnson_lindenstrauss_min_dim
    from torchvision import transforms

    # Step 1: timm's eval transform for efficientnet_lite0 with the crop removed.
    transform = transforms.Compose([
        transforms.Resize((224, 224), transforms.InterpolationMode.BICUBIC),
        transforms.ToTensor(),
        transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])  # fmt: skip
    batch = torch.stack([transform(Image.fromarray(image)) for image in images])
    k = johnson_lindenstrauss_min_dim(len(images), eps=0.1)
    train, test = np.arange(0, len(images), 2), np.arange(1, len(images), 2)
    rows = []
    for index, (name, F) in enumerate(reference_features(module, batch).items()):
        # Step 3: the same seed for every layer; layers with p <= k are projected up too.
        srp = SparseRandomProjection(k, random_state=0).fit_transform(F).astype(np.float64)
        scaler = StandardScaler().fit(srp[train])
        pred_train, pred_test = loo_ridge(
            scaler.transform(srp[train]), Y[train], scaler.transform(srp[test])
        )
        for label, idx in groups.items():
            for split, rows_, predicted in (
                ("train", train, pred_train),
                ("test", test, pred_test),
            ):
                measured = Y[rows_][:, idx]
                r = [np.corrcoef(predicted[:, v], measured[:, j])[0, 1] for j, v in enumerate(idx)]
                scores = {
                    "crsa": rdm_score(F[rows_], measured),  # step 5, full features
                    "versa": rdm_score(predicted[:, idx], measured),
                    "encoding_r": float(np.nanmean(r)),
                }
                rows += [
                    {
                        "layer": name,
                        "order": index,
                        "group": label,
                        "metric": m,
                        "split": split,
                        "score": v,
                    }
                    for m, v in scores.items()
                ]
    return pd.DataFrame(rows)


def reference_best(scores: pd.DataFrame) -> pd.DataFrame:
    """Step 6: z-score test - train within each metric, drop z < -3.291, best train layer."""
    wide = scores.pivot_table(
        index=["layer", "order", "group", "metric"], columns="split", values="score"
    ).reset_index()
    diff = wide["test"] - wide["train"]
    wide["z"] = diff.groupby(wide["metric"]).transform(lambda d: (d - d.mean()) / d.std(ddof=1))
    wide = wide[wide["z"] > -3.291].sort_values(
        ["group", "metric", "train", "order"], ascending=[True, True, False, True]
    )
    return wide.groupby(["group", "metric"]).head(1).set_index(["group", "metric"])


# ------------------------------------------------------------------ the test


def test_effnet_lite0_profile_equals_an_independent_implementation(tmp_path: Path) -> None:
    from zooscope.analyses.degenerate import best_layers

    bench = _benchmark(tmp_path / "bench.h5")
    entry = next(e for e in load_manifest("demo") if e.model_uid == "effnet_lite0")
    ours = score_model(
        entry,
        bench,
        ScoringConfig.conwell2024(),
        RunOptions(device="cpu", batch_size=16, progress=False),
    )

    # The trained weights; everything after loading them is the reference's own.
    module = load_model(entry).module
    units = bench.units
    responses = bench.responses(np.arange(bench.n_units))  # [units, images, reps]
    Y = np.nanmean(responses, axis=2).T.astype(np.float64)  # [images, units]
    groups = {f"1|{roi}": np.flatnonzero(units[roi].to_numpy()) for roi in ("EVC", "OTC")}
    theirs = reference_scores(module, np.asarray(bench.stimuli), Y, groups)

    ours_scores = ours.scores.assign(group=lambda d: d["subject"].astype(str) + "|" + d["roi"])
    # The same scored layers, in the same order.
    assert list(ours.layers["layer_name"]) == list(dict.fromkeys(theirs["layer"]))
    assert len(ours.layers) >= 60  # the second half of EfficientNet-Lite0's ~142 distinct layers
    merged = ours_scores.merge(
        theirs,
        left_on=["layer_name", "group", "metric", "split"],
        right_on=["layer", "group", "metric", "split"],
        suffixes=("_ours", "_ref"),
    )
    assert len(merged) == len(theirs) == len(ours_scores)
    worst = (merged["score_ours"] - merged["score_ref"]).abs().groupby(merged["metric"]).max()
    assert (worst <= TOLERANCE).all(), worst

    expected = reference_best(theirs)
    got = best_layers(ours_scores, -3.291).set_index(["group", "metric"])
    assert set(got.index) == set(expected.index)
    difference = (got["test_score"] - expected.loc[got.index, "test"]).abs()
    assert (difference <= TOLERANCE).all(), difference
