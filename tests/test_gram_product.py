"""zooscope._gram: Gram products split by columns over threads, against a float64 reference."""

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from zooscope._gram import gram_product, single_threaded_blas


def _reference(x, shift=None):
    x = x.astype(np.float64)
    if shift is not None:
        x = x - shift
    return x @ x.T


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("block", [None, 1000])
def test_split_products_sum_to_the_whole_gram(threads, block):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 9001))  # columns not divisible by threads or blocks
    got = gram_product(x, block=block, threads=threads)
    np.testing.assert_allclose(got, _reference(x), rtol=1e-12, atol=1e-9)
    assert got.dtype == np.float64 and got.shape == (30, 30)


def test_the_shift_and_the_product_dtype_apply_block_by_block_without_touching_x():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((20, 7000)) + 50.0).astype(np.float32)  # large column means
    kept = x.copy()
    means = x.mean(0, dtype=np.float64)
    exact = _reference(x, means)
    got64 = gram_product(x, column_shift=means, dtype=np.float64, block=2048, threads=2)
    np.testing.assert_allclose(got64, exact, rtol=1e-12, atol=1e-8)
    got32 = gram_product(x, column_shift=means, block=2048, threads=2)
    scale = np.abs(np.diag(exact)).max()
    assert np.abs(got32 - exact).max() / scale < 1e-5  # float32 products of centred blocks
    np.testing.assert_array_equal(x, kept)


def _blas_threads():
    return {
        info["filepath"]: info["num_threads"]
        for info in threadpool_info()
        if info["user_api"] == "blas"
    }


def test_single_threaded_blas_limits_inside_and_restores_after():
    before = _blas_threads()
    with single_threaded_blas():
        assert set(_blas_threads().values()) <= {1}
        with single_threaded_blas():  # re-entrant (the lock is an RLock)
            assert set(_blas_threads().values()) <= {1}
    assert _blas_threads() == before


def test_a_torch_tensor_is_multiplied_on_its_device_with_the_same_result():
    import torch

    rng = np.random.default_rng(3)
    x = (rng.standard_normal((12, 5000)) + 3.0).astype(np.float32)
    means = x.mean(0, dtype=np.float64)
    got = gram_product(torch.from_numpy(x), torch.from_numpy(means), "float64", block=1024)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), _reference(x, means), rtol=1e-12, atol=1e-8)
