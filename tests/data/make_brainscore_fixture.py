"""Write the Brain-Score fixtures of tests/test_neural_brainio.py with Brain-Score's OWN code.

Run in a separate environment that has brainscore-brainio and brainscore-vision (their pins clash
with zooscope's), e.g.::

    python3 -m venv /tmp/bs && /tmp/bs/bin/pip install brainscore-brainio "numpy<2" "pandas<2" \\
        "scikit-learn<1.6" psutil result_caching && /tmp/bs/bin/pip install --no-deps \\
        brainscore-vision brainscore-core
    /tmp/bs/bin/python tests/data/make_brainscore_fixture.py tests/data

Writes
------
brainio_assembly.nc, brainio_stimuli.csv, brainio_stimuli.zip
    A NeuronRecordingAssembly (presentation x neuroid x time_bin) written by ``brainio.packaging.
    write_netcdf`` and a stimulus set written by ``create_stimulus_csv`` / ``create_stimulus_zip``.
brainscore_metric.npz
    Inputs (features X, responses Y, object labels, repetition data) and Brain-Score's outputs:
    ``CrossRegressedCorrelation`` with ``pls_regression()`` and ``ridge_regression()`` (default
    stratified splits) and ``InternalConsistency`` (raw per-split per-neuroid values and centers).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image


def _center(score) -> float:
    """The aggregate value (older Brain-Score versions keep it under aggregation='center')."""
    if "aggregation" in score.dims:
        score = score.sel(aggregation="center")
    return float(score.values)


def main(out: Path) -> None:
    from brainio.assemblies import NeuroidAssembly, NeuronRecordingAssembly
    from brainio.packaging import create_stimulus_csv, create_stimulus_zip, write_netcdf
    from brainio.stimuli import StimulusSet
    from brainscore_vision.metrics.internal_consistency.ceiling import InternalConsistency
    from brainscore_vision.metrics.regression_correlation.metric import (
        CrossRegressedCorrelation,
        pearsonr_correlation,
        pls_regression,
        ridge_regression,
    )

    rng = np.random.default_rng(17)
    out.mkdir(parents=True, exist_ok=True)

    # -- assembly + stimulus set (round trip) -------------------------------------------------
    n_images, n_reps, n_neurons = 12, 3, 5
    ids = [f"im{k:03d}" for k in range(n_images)]
    objects = np.array(["car", "dog", "face", "tree"])[np.arange(n_images) % 4]
    image_dir = out / "_brainio_images"
    image_dir.mkdir(exist_ok=True)
    paths = {}
    for k, sid in enumerate(ids):
        pixels = rng.integers(0, 256, size=(16 + k % 3, 16, 3), dtype=np.uint8)
        path = image_dir / f"{sid}.png"
        Image.fromarray(pixels).save(path)
        paths[sid] = str(path)
    stimuli = StimulusSet(
        {"stimulus_id": ids, "object_name": objects, "size_px": 16 + np.arange(n_images) % 3}
    )
    stimuli.stimulus_paths = paths
    stimuli.identifier = "zooscope.fixture"
    create_stimulus_csv(stimuli, out / "brainio_stimuli.csv")
    create_stimulus_zip(stimuli, str(out / "brainio_stimuli.zip"))
    # Presentations: every image x repetition, shuffled, one (image 4, rep 2) missing.
    pres = [(i, r) for i in range(n_images) for r in range(n_reps) if (i, r) != (4, 2)]
    order = rng.permutation(len(pres))
    pres = [pres[j] for j in order]
    values = rng.normal(size=(len(pres), n_neurons, 2)).astype(np.float32)
    assembly = NeuronRecordingAssembly(
        values,
        coords={
            "stimulus_id": ("presentation", [ids[i] for i, _ in pres]),
            "object_name": ("presentation", [objects[i] for i, _ in pres]),
            "repetition": ("presentation", [r for _, r in pres]),
            "neuroid_id": ("neuroid", [f"n{j}" for j in range(n_neurons)]),
            "region": ("neuroid", ["V4", "V4", "IT", "IT", "IT"]),
            "animal": ("neuroid", ["m1", "m2", "m1", "m1", "m2"]),
            "time_bin_start": ("time_bin", [70, 170]),
            "time_bin_end": ("time_bin", [170, 270]),
        },
        dims=["presentation", "neuroid", "time_bin"],
    )
    write_netcdf(assembly, out / "brainio_assembly.nc")
    truth = {
        "rt_values": values,
        "rt_image": np.array([i for i, _ in pres]),
        "rt_rep": np.array([r for _, r in pres]),
    }
    for path in image_dir.iterdir():
        path.unlink()
    image_dir.rmdir()

    # -- metric and ceiling --------------------------------------------------------------------
    n, p, units, reps = 80, 150, 10, 6
    labels = np.array([f"obj{k % 8}" for k in range(n)])
    stim = [f"s{k:03d}" for k in range(n)]
    X = rng.normal(size=(n, p))
    W = rng.normal(size=(p, units)) / np.sqrt(p)
    signal = X @ W
    trials = signal[None] + rng.normal(scale=1.5, size=(reps, n, units))  # [reps, n, units]
    Y = trials.mean(axis=0)

    def presentation_coords() -> dict:
        return {"stimulus_id": ("presentation", stim), "object_name": ("presentation", labels)}

    source = NeuroidAssembly(
        X,
        coords={
            **presentation_coords(),
            "neuroid_id": ("neuroid", [f"f{j}" for j in range(p)]),
            "layer": ("neuroid", ["fc"] * p),
        },
        dims=["presentation", "neuroid"],
    )
    target = NeuroidAssembly(
        Y,
        coords={
            **presentation_coords(),
            "neuroid_id": ("neuroid", [f"u{j}" for j in range(units)]),
            "region": ("neuroid", ["IT"] * units),
        },
        dims=["presentation", "neuroid"],
    )
    for name, regression in (("pls", pls_regression()), ("ridge", ridge_regression())):
        metric = CrossRegressedCorrelation(
            regression=regression, correlation=pearsonr_correlation()
        )
        score = metric(source, target)
        raw = score.raw.transpose("split", "neuroid")
        order = np.argsort(raw["neuroid_id"].values)
        assert list(raw["neuroid_id"].values[order]) == [f"u{j}" for j in range(units)]
        truth[f"{name}_raw"] = raw.values[:, order]
        truth[f"{name}_center"] = _center(score)
    rep_assembly = NeuronRecordingAssembly(
        trials.reshape(reps * n, units),
        coords={
            "stimulus_id": ("presentation", np.tile(stim, reps)),
            "object_name": ("presentation", np.tile(labels, reps)),
            "repetition": ("presentation", np.repeat(np.arange(reps), n)),
            "neuroid_id": ("neuroid", [f"u{j}" for j in range(units)]),
            "region": ("neuroid", ["IT"] * units),
        },
        dims=["presentation", "neuroid"],
    )
    ceiling = InternalConsistency()(rep_assembly)
    raw = ceiling.raw.transpose("split", "neuroid")
    order = np.argsort(raw["neuroid_id"].values)
    truth["ceiling_raw"] = raw.values[:, order]
    truth["ceiling_center"] = _center(ceiling)
    np.savez_compressed(
        out / "brainscore_metric.npz", X=X, Y=Y, labels=labels, trials=trials, **truth
    )
    print({k: v for k, v in truth.items() if k.endswith("center")})


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent))
