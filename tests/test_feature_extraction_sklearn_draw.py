"""scikit-learn's SRP matrix drawn fast: bit for bit the matrix scikit-learn draws."""

from __future__ import annotations

import numpy as np
import pytest

from zooscope.feature_extraction import sklearn_draw
from zooscope.feature_extraction.sklearn_draw import draw_components, sklearn_components


@pytest.mark.parametrize(
    ("p", "k", "seed"),
    [
        (200_704, 60, 0),  # a wide layer: tracking selection on every row
        (12_544, 300, 5),  # ratio just under 0.01: tracking, with repeats in most rows
        (5_000, 80, 2),  # ratio above 0.01: scikit-learn's own sampler, sharing the generator
        (40, 30, 1),  # tiny: ratios near 1 (reservoir and permutation paths)
    ],
)
def test_the_matrix_equals_scikit_learns_bit_for_bit(p, k, seed):
    density = 1 / np.sqrt(p)
    ours, theirs = draw_components(p, k, density, seed), sklearn_components(p, k, density, seed)
    assert ours.shape == theirs.shape == (k, p)
    np.testing.assert_array_equal(ours.indptr, theirs.indptr)
    np.testing.assert_array_equal(ours.indices, theirs.indices)
    np.testing.assert_array_equal(ours.data, theirs.data)


def test_the_generator_is_advanced_exactly_as_scikit_learns_loop():
    # Repeats force extra draws (40 picks from 300): a miscount would shift every later draw
    rng = np.random.RandomState(11)
    picks = sklearn_draw._tracking_selection(rng, 300, 40)
    reference = np.random.RandomState(11)
    seen: list[int] = []
    while len(seen) < 40:  # scikit-learn's loop, written out
        j = reference.randint(300)
        if j not in seen:
            seen.append(j)
    np.testing.assert_array_equal(picks, seen)
    assert rng.randint(2**31) == reference.randint(2**31)  # same state afterwards
    assert len(set(seen)) == 40


def test_the_installed_scikit_learn_is_checked_once():
    assert sklearn_draw.matches_sklearn() is True  # this environment's scikit-learn
