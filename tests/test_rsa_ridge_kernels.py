"""RidgeGCV's compiled gathers against numpy's own indexing (zooscope.rsa.ridge_kernels)."""

import numpy as np
import pytest

from zooscope.rsa.ridge_kernels import scale_chosen, take_chosen


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_take_chosen_matches_take_along_axis_into_a_column_view(dtype, sign):
    rng = np.random.default_rng(0)
    stack = rng.standard_normal((5, 7, 9)).astype(dtype)
    best = rng.integers(0, 5, 9)
    offset = rng.standard_normal(9)
    wide = np.full((7, 20), np.nan)
    view = wide[:, 4:13]  # a chunk of columns of the fit's [n, t] output
    take_chosen(stack, best, offset, view, sign)
    expected = (
        sign * np.take_along_axis(stack, best[None, None, :], axis=0)[0].astype(np.float64) + offset
    )
    np.testing.assert_array_equal(view, expected)
    assert np.isnan(wide[:, :4]).all() and np.isnan(wide[:, 13:]).all()


def test_scale_chosen_matches_fancy_indexing():
    rng = np.random.default_rng(1)
    inv = rng.uniform(0.1, 2.0, (6, 4))
    best = rng.integers(0, 4, 11)
    Z = rng.standard_normal((6, 11))
    out = np.empty((6, 30))[:, 3:14]
    scale_chosen(inv, best, Z, out)
    np.testing.assert_array_equal(out, inv[:, best] * Z)
