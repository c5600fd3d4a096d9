"""Design mapping (nsd_expdesign.mat) and repetition grouping against brute-force references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import savemat

from zooscope.nsd import NSDDesign, NSDLayout, repetition_index


def _brute_force_reps(shown, wanted, n_reps):
    out = np.full((len(wanted), n_reps), -1)
    for i, img in enumerate(wanted):
        hits = [t for t, s in enumerate(shown) if s == img][:n_reps]
        out[i, : len(hits)] = hits
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_repetition_index_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    shown = rng.integers(0, 30, size=200)
    wanted = rng.permutation(40)[:25]  # some never shown
    got = repetition_index(shown, wanted)
    n_reps = got.shape[1]
    assert n_reps == np.bincount(shown)[wanted[wanted < 30]].max()
    np.testing.assert_array_equal(got, _brute_force_reps(shown, wanted, n_reps))
    np.testing.assert_array_equal(
        repetition_index(shown, wanted, 2), _brute_force_reps(shown, wanted, 2)
    )


def _write_design(root, masterordering, subjectim, sharedix):
    layout = NSDLayout(root)
    layout.expdesign.parent.mkdir(parents=True)
    savemat(
        layout.expdesign,
        {
            "masterordering": np.asarray(masterordering)[None],
            "subjectim": subjectim,
            "sharedix": np.asarray(sharedix)[None],
        },
    )
    return layout


def test_trials_follow_the_nsd_formula(tmp_path):
    # 2 shared images (73k ids 5, 9 1-based), 2 subject-specific per subject; 8 trials,
    # 4 per session.
    subjectim = np.array([[5, 9, 1, 2]] + [[5, 9, 11 + 2 * s, 12 + 2 * s] for s in range(1, 8)])
    masterordering = [3, 1, 2, 1, 4, 2, 1, 3]
    layout = _write_design(tmp_path, masterordering, subjectim, [5, 9])
    design = NSDDesign.load(layout)
    assert design.n_shared == 2 and design.n_trials == 8
    np.testing.assert_array_equal(design.shared_image_ids(), [4, 8])
    t = design.trials(2, trials_per_session=4)
    # trial t shows subjectim[s-1, masterordering[t]-1] - 1
    # trial t shows subjectim[s-1, masterordering[t]-1] - 1; subject 2's list is [5, 9, 13, 14]
    np.testing.assert_array_equal(t["image_id"], [12, 4, 8, 4, 13, 8, 4, 12])
    np.testing.assert_array_equal(t["session"], [1, 1, 1, 1, 2, 2, 2, 2])
    np.testing.assert_array_equal(t["column"], [0, 1, 2, 3, 0, 1, 2, 3])
    np.testing.assert_array_equal(t["shared"], [m <= 2 for m in masterordering])
    assert len(design.trials(2, trials_per_session=4, n_sessions=1)) == 4
    with pytest.raises(ValueError, match="exceed"):
        design.trials(2, trials_per_session=4, n_sessions=3)


def test_bad_design_files(tmp_path):
    subjectim = np.tile([[5, 9, 1, 2]], (8, 1))
    layout = _write_design(tmp_path / "a", [1, 5], subjectim, [5, 9])
    with pytest.raises(ValueError, match="masterordering"):
        NSDDesign.load(layout)
    layout = _write_design(tmp_path / "b", [1, 2], subjectim, [9, 5])
    with pytest.raises(ValueError, match="shared images first"):
        NSDDesign.load(layout)
    with pytest.raises(FileNotFoundError, match="trial-to-image"):
        NSDDesign.load(NSDLayout(tmp_path / "none"))
