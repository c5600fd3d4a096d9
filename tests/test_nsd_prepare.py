"""prepare() on a synthetic NSD tree: mapping, scaling, z-scoring, formats, errors, ncsnr."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from zooscope.benchmark import Benchmark
from zooscope.nsd import NSDLayout, load_truth, prepare, write_synthetic
from zooscope.rsa.reliability import ncsnr

SUBJECTS = (1, 2)
N_IMAGES = 60


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nsd")
    features = np.random.default_rng(7).standard_normal((N_IMAGES, 12))
    write_synthetic(
        root,
        subjects=SUBJECTS,
        n_images=N_IMAGES,
        n_sessions=3,
        seed=3,
        features=features,
        image_size=32,
        volume_shape=(10, 12, 8),
        save_latent=True,
    )
    return root


@pytest.fixture(scope="module")
def bench(tree, tmp_path_factory) -> Benchmark:
    out = tmp_path_factory.mktemp("bench") / "b.h5"
    return prepare(tree, out, subjects=SUBJECTS, beta_format="hdf5")


def _stim_info(root: Path) -> pd.DataFrame:
    return pd.read_csv(NSDLayout(root).stim_info, index_col=0)


def _trial_numbers(info: pd.DataFrame, subject: int, image_ids: np.ndarray) -> np.ndarray:
    """1-based trial of each repetition [n_images, 3] (0 = not shown), from the CSV."""
    cols = [f"subject{subject}_rep{r}" for r in range(3)]
    return info.loc[image_ids, cols].to_numpy()


def test_images_and_stimuli(tree, bench):
    info = _stim_info(tree)
    np.testing.assert_array_equal(bench.image_ids, np.flatnonzero(info["shared1000"].to_numpy()))
    with h5py.File(NSDLayout(tree).stimuli, "r") as f:
        np.testing.assert_array_equal(bench.stimuli[:], f["imgBrick"][np.sort(bench.image_ids)])
    np.testing.assert_array_equal(bench.splits["train"], np.arange(0, N_IMAGES, 2))
    np.testing.assert_array_equal(bench.splits["test"], np.arange(1, N_IMAGES, 2))
    assert bench.n_reps == 3 and bench.subjects == [1, 2]


def test_responses_match_independent_reference(tree, bench):
    # Reference: whole NIfTI volumes via nibabel, / 300, scipy z-score per session, and the
    # repetition trial numbers of nsd_stim_info_merged.csv (not the design code under test).
    layout = NSDLayout(tree)
    info = _stim_info(tree)
    units = bench.units
    for subject in SUBJECTS:
        idx = np.flatnonzero(units["subject"] == subject)
        xyz = units.loc[idx, ["x", "y", "z"]].to_numpy()
        z = []
        for session in (1, 2, 3):
            data = nib.load(layout.betas(subject, session, "nii.gz")).get_fdata()
            z.append(stats.zscore(data[xyz[:, 0], xyz[:, 1], xyz[:, 2]] / 300.0, axis=1))
        z = np.concatenate(z, axis=1)
        trials = _trial_numbers(info, subject, bench.image_ids)
        assert (trials > 0).all()
        expected = z[:, trials - 1]  # [voxels, images, reps]
        np.testing.assert_allclose(bench.responses(units=idx), expected, atol=1e-5)


def test_scaling_and_zscoring_against_planted_values(tree, bench):
    arrays, settings = load_truth(tree)
    layout = NSDLayout(tree)
    tps = settings["trials_per_session"]
    info = _stim_info(tree)
    units = bench.units
    for subject in SUBJECTS:
        tag = f"subj{subject:02d}"
        planted_xyz = arrays[f"{tag}_xyz"]
        latent = arrays[f"{tag}_latent"].astype(np.float64)  # [n_resp, n_trials]
        offset, gain = arrays[f"{tag}_offset"], arrays[f"{tag}_gain"]
        # /300 scaling: stored int16 / 300 = offset + gain * latent, up to int16 rounding.
        for k in range(settings["n_sessions"]):
            with h5py.File(layout.betas(subject, k + 1, "hdf5"), "r") as f:
                raw = f["betas"][()]  # (trials, Z, Y, X)
            psc = raw[:, planted_xyz[:, 2], planted_xyz[:, 1], planted_xyz[:, 0]].T / 300.0
            cols = slice(k * tps, (k + 1) * tps)
            want = offset[:, k : k + 1] + gain[:, k : k + 1] * latent[:, cols]
            np.testing.assert_allclose(psc, want, atol=0.5 / 300 + 1e-4)
        # z-scoring per session removes offset and gain: prepared = zscore(latent) per session.
        zl = np.concatenate(
            [stats.zscore(latent[:, k * tps : (k + 1) * tps], axis=1) for k in range(3)], axis=1
        )
        row_of = {tuple(v): i for i, v in enumerate(planted_xyz)}
        idx = np.flatnonzero(units["subject"] == subject)
        rows = [row_of[tuple(v)] for v in units.loc[idx, ["x", "y", "z"]].to_numpy()]
        trials = _trial_numbers(info, subject, bench.image_ids)
        np.testing.assert_allclose(bench.responses(units=idx), zl[rows][:, trials - 1], atol=0.01)


def test_unit_table(tree, bench):
    arrays, _ = load_truth(tree)
    units = bench.units
    assert list(units.columns) == ["subject", "x", "y", "z", "ncsnr", "OTC", "EVC"]
    assert bench.roi_names == ["OTC", "EVC"]
    for subject in SUBJECTS:
        sub = units[units["subject"] == subject]
        vol = nib.load(NSDLayout(tree).ncsnr(subject)).get_fdata()
        np.testing.assert_allclose(sub["ncsnr"], vol[sub["x"], sub["y"], sub["z"]], rtol=1e-6)
        assert (sub.loc[sub["OTC"], "ncsnr"] >= 0.2).all()
        evc = arrays[f"subj{subject:02d}_roi_prf-visualrois"][sub["x"], sub["y"], sub["z"]] > 0
        np.testing.assert_array_equal(sub["EVC"].to_numpy(), evc)
    groups = bench.groups()
    assert set(groups) == {"1|OTC", "1|EVC", "2|OTC", "2|EVC"}
    np.testing.assert_array_equal(
        groups["2|OTC"], np.flatnonzero((units["subject"] == 2) & units["OTC"])
    )


def test_ncsnr_recovers_planted(tree, bench):
    arrays, _ = load_truth(tree)
    units = bench.units
    got, planted = [], []
    for subject in SUBJECTS:
        tag = f"subj{subject:02d}"
        row_of = {tuple(v): i for i, v in enumerate(arrays[f"{tag}_xyz"])}
        idx = np.flatnonzero((units["subject"] == subject) & units["OTC"])
        rows = [row_of[tuple(v)] for v in units.loc[idx, ["x", "y", "z"]].to_numpy()]
        got.append(ncsnr(bench.responses(units=idx)))
        planted.append(arrays[f"{tag}_ncsnr"][rows])
    r = np.corrcoef(np.concatenate(got), np.concatenate(planted))[0, 1]
    assert r > 0.9, r


def test_hdf5_and_nifti_give_identical_files(tree, bench, tmp_path):
    other = prepare(tree, tmp_path / "n.h5", subjects=SUBJECTS, beta_format="nii.gz")
    assert other.content_hash == bench.content_hash
    np.testing.assert_array_equal(other.responses(), bench.responses())
    pd.testing.assert_frame_equal(other.units, bench.units)
    assert other.attrs["subject_info"]["1"]["beta_format"] == "nii.gz"
    assert bench.attrs["subject_info"]["1"]["beta_format"] == "hdf5"


def test_custom_rois_and_images(tree, tmp_path):
    info = _stim_info(tree)
    ids = np.flatnonzero(info["shared1000"].to_numpy())[:10]
    b = prepare(
        tree,
        tmp_path / "c.h5",
        subjects=(2,),
        images=ids,
        rois=("ventral=streams:ventral & ncsnr>=0.5",),
    )
    assert b.roi_names == ["ventral"] and b.n_images == 10
    assert (b.units["ncsnr"] >= 0.5).all()
    assert list(b.groups()) == ["2|ventral"]


def _copy(tree: Path, tmp_path: Path) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(tree, root)
    return root


def test_missing_middle_session_is_an_error(tree, tmp_path):
    root = _copy(tree, tmp_path)
    NSDLayout(root).betas(1, 2, "hdf5").unlink()
    with pytest.raises(ValueError, match=r"sessions \[2\] are missing"):
        prepare(root, tmp_path / "b.h5", subjects=SUBJECTS, beta_format="hdf5")
    # the NIfTI copy is complete, so auto-selection of nii.gz still works
    prepare(root, tmp_path / "b.h5", subjects=SUBJECTS, beta_format="nii.gz")


def test_missing_last_session_gives_nan_and_warning(tree, tmp_path, caplog):
    root = _copy(tree, tmp_path)
    layout = NSDLayout(root)
    for fmt in ("hdf5", "nii.gz"):
        layout.betas(2, 3, fmt).unlink()
    _, settings = load_truth(tree)
    tps = settings["trials_per_session"]
    info = _stim_info(root)
    with caplog.at_level(logging.WARNING, logger="zooscope.nsd.prepare"):
        b = prepare(root, tmp_path / "b.h5", subjects=SUBJECTS, min_reps=0)
    assert "fewer than 3 repetitions" in caplog.text
    trials = _trial_numbers(info, 2, b.image_ids)
    lost = trials > 2 * tps  # shown in the deleted session
    units = b.units
    r2 = b.responses(units=np.flatnonzero(units["subject"] == 2))
    # Later repetitions move forward: count missing per image, NaNs fill the last columns.
    n_missing = lost.sum(axis=1)
    np.testing.assert_array_equal(
        np.isnan(r2).sum(axis=2), np.broadcast_to(n_missing, r2.shape[:2])
    )
    assert not np.isnan(b.responses(units=np.flatnonzero(units["subject"] == 1))).any()
    assert b.attrs["subject_info"]["2"]["sessions"] == 2
    for min_reps in (1, 3):
        if (lost.sum(axis=1) > 3 - min_reps).any():
            with pytest.raises(ValueError, match=f"fewer than {min_reps} repetition"):
                prepare(root, tmp_path / "c.h5", subjects=SUBJECTS, min_reps=min_reps)
    assert lost.all(axis=1).any()  # this seed has images seen only in session 3 (tested above)


def test_missing_files_name_the_path(tree, tmp_path):
    root = _copy(tree, tmp_path)
    layout = NSDLayout(root)
    layout.roi(1, "floc-faces").unlink()
    with pytest.raises(FileNotFoundError, match=r"subj01/func1pt8mm/roi/floc-faces\.nii\.gz"):
        prepare(root, tmp_path / "b.h5", subjects=SUBJECTS)
    assert not (tmp_path / "b.h5").exists()
    assert not list(tmp_path.glob(".b.h5*"))  # no temp file left behind
    shutil.rmtree(layout.betas_dir(2))
    with pytest.raises(FileNotFoundError, match=r"betas_session01\.hdf5"):
        prepare(root, tmp_path / "b.h5", subjects=(2,))
    layout.expdesign.unlink()
    with pytest.raises(FileNotFoundError, match=r"nsd_expdesign\.mat"):
        prepare(root, tmp_path / "b.h5", subjects=(1,))


def test_zero_variance_voxel_is_dropped(tree, bench, tmp_path, caplog):
    root = _copy(tree, tmp_path)
    units = bench.units
    x, y, z = units.loc[0, ["x", "y", "z"]].to_numpy()
    with h5py.File(NSDLayout(root).betas(1, 2, "hdf5"), "r+") as f:
        f["betas"][:, z, y, x] = 7  # constant over the session's trials
    with caplog.at_level(logging.INFO, logger="zooscope.nsd.prepare"):
        b = prepare(root, tmp_path / "b.h5", subjects=SUBJECTS, beta_format="hdf5")
    (record,) = [r for r in caplog.records if "dropped 1 voxel(s) with zero variance" in r.message]
    assert record.levelno == logging.INFO  # expected at a mask's edges: no warning
    assert b.n_units == bench.n_units - 1
    pd.testing.assert_frame_equal(b.units, units.iloc[1:].reset_index(drop=True))
    assert not np.isnan(b.responses()).any()
    assert b.attrs["subject_info"]["1"]["n_dropped_zero_variance"] == 1
