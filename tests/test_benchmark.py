"""Benchmark file: round trip, laziness, pickling, content hash, groups, validation, atomicity."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from zooscope.benchmark import Benchmark, default_splits


def _arrays(seed=0, n_units=7, n_images=6, n_reps=3):
    rng = np.random.default_rng(seed)
    responses = rng.standard_normal((n_units, n_images, n_reps)).astype(np.float32)
    responses[0, 1, 2] = np.nan
    responses[3, 4, :] = np.nan
    stimuli = rng.integers(0, 256, size=(n_images, 8, 8, 3), dtype=np.uint8)
    units = pd.DataFrame(
        {
            "subject": [1, 1, 1, 2, 2, 2, 2][:n_units],
            "x": np.arange(n_units),
            "y": np.arange(n_units) * 2,
            "z": np.zeros(n_units, dtype=int),
            "ncsnr": rng.uniform(0, 1, n_units).astype(np.float32),
            "OTC": [True, False, True, True, True, False, False][:n_units],
            "EVC": [False, True, False, False, False, False, True][:n_units],
        }
    )
    return responses, stimuli, units


def test_round_trip(tmp_path):
    responses, stimuli, units = _arrays()
    ids = np.array([10, 3, 7, 1, 99, 5])
    b = Benchmark.from_arrays(
        tmp_path / "b.h5", responses, stimuli, units, image_ids=ids, attrs={"source": "test"}
    )
    with b:
        assert (b.n_units, b.n_images, b.n_reps) == (7, 6, 3)
        np.testing.assert_array_equal(b.responses(), responses)
        np.testing.assert_array_equal(b.stimuli[2:4], stimuli[2:4])
        np.testing.assert_array_equal(b.image_ids, ids)
        pd.testing.assert_frame_equal(b.units, units)
        assert b.roi_names == ["OTC", "EVC"] and b.subjects == [1, 2]
        assert b.attrs["source"] == "test" and "created" in b.attrs
        for k, v in default_splits(6).items():
            np.testing.assert_array_equal(b.splits[k], v)
        assert b.verify()


def test_subsets_and_mean(tmp_path):
    responses, stimuli, units = _arrays()
    b = Benchmark.from_arrays(tmp_path / "b.h5", responses, stimuli, units)
    np.testing.assert_array_equal(b.responses(units=[5, 0, 5]), responses[[5, 0, 5]])
    np.testing.assert_array_equal(
        b.responses(units=[2, 3], images=[4, 0]), responses[[2, 3]][:, [4, 0]]
    )
    mask = units["OTC"].to_numpy()
    np.testing.assert_array_equal(b.responses(units=mask), responses[mask])
    with pytest.warns(RuntimeWarning):  # all-NaN slice in numpy's reference
        expected = np.nanmean(responses, axis=2)
    np.testing.assert_allclose(b.mean_responses(), expected, rtol=1e-6, equal_nan=True)
    assert np.isnan(b.mean_responses()[3, 4])
    with pytest.raises(IndexError):
        b.responses(units=[7])


def test_groups(tmp_path):
    responses, stimuli, units = _arrays()
    b = Benchmark.from_arrays(tmp_path / "b.h5", responses, stimuli, units)
    g = b.groups()
    assert set(g) == {"1|OTC", "1|EVC", "2|OTC", "2|EVC"}
    np.testing.assert_array_equal(g["1|OTC"], [0, 2])
    np.testing.assert_array_equal(g["2|EVC"], [6])
    assert set(b.groups(subjects=[2], rois=["OTC"])) == {"2|OTC"}
    with pytest.raises(KeyError, match="V1"):
        b.groups(rois=["V1"])
    # A generic dataset without subject or ROI columns: one group "all|all".
    b2 = Benchmark.from_arrays(
        tmp_path / "m.h5", responses, stimuli, {"neuron": [f"n{i}" for i in range(7)]}
    )
    assert list(b2.groups()) == ["all|all"]
    assert b2.units["neuron"].tolist()[:2] == ["n0", "n1"]


def test_content_hash_is_stable_and_sensitive(tmp_path):
    responses, stimuli, units = _arrays()
    a = Benchmark.from_arrays(tmp_path / "a.h5", responses, stimuli, units, attrs={"x": 1})
    b = Benchmark.from_arrays(tmp_path / "b.h5", responses, stimuli, units, attrs={"x": 2})
    assert a.content_hash == b.content_hash  # attrs and creation time are not hashed
    changed = responses.copy()
    changed[1, 1, 1] += 1e-3
    c = Benchmark.from_arrays(tmp_path / "c.h5", changed, stimuli, units)
    units2 = units.copy()
    units2.loc[0, "OTC"] = False
    d = Benchmark.from_arrays(tmp_path / "d.h5", responses, stimuli, units2)
    splits = {"train": [0, 1, 2], "test": [3, 4, 5]}
    e = Benchmark.from_arrays(tmp_path / "e.h5", responses, stimuli, units, splits=splits)
    hashes = {a.content_hash, c.content_hash, d.content_hash, e.content_hash}
    assert len(hashes) == 4


def test_pickle_reopens_by_path(tmp_path):
    responses, stimuli, units = _arrays()
    b = Benchmark.from_arrays(tmp_path / "b.h5", responses, stimuli, units)
    b.responses()  # open handle
    clone = pickle.loads(pickle.dumps(b))
    assert clone.path == b.path
    np.testing.assert_array_equal(clone.responses(units=[1]), responses[[1]])
    b.close()
    np.testing.assert_array_equal(b.responses(units=[1]), responses[[1]])  # reopens lazily


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda r, s, u: (r[..., 0], s, u), "3-D"),
        (lambda r, s, u: (r, s[:-1], u), "stimuli has 5 images"),
        (lambda r, s, u: (r, s.astype(np.float32), u), "uint8"),
        (lambda r, s, u: (r, s, u.iloc[:-1]), "units has 6 rows"),
        (lambda r, s, u: (np.where(r > 2, np.inf, r), s, u), "inf"),
        (lambda r, s, u: (r, s, u.rename(columns={"OTC": "a|b"})), "may not contain"),
    ],
)
def test_validation(tmp_path, mutate, match):
    r, s, u = mutate(*_arrays())
    with pytest.raises(ValueError, match=match):
        Benchmark.from_arrays(tmp_path / "b.h5", r, s, u)
    assert list(tmp_path.iterdir()) == []  # atomic: nothing left behind


def test_open_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        Benchmark.open(tmp_path / "nope.h5")
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(ValueError, match="not a zooscope Benchmark"):
        Benchmark.open(tmp_path / "other.h5")
