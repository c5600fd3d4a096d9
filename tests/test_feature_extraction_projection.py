"""SparseRandomProjector: streaming = full matrix, sklearn parity, entry distribution, seeding."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy import stats
from sklearn.random_projection import SparseRandomProjection

from zooscope.feature_extraction import SparseRandomProjector, jl_components


def _activations(n: int, p: int, seed: int = 0) -> np.ndarray:
    """Non-negative, offset activations (like post-ReLU features), float32 [n, p]."""
    rng = np.random.default_rng(seed)
    return (np.maximum(rng.standard_normal((n, p)), 0) + 0.5).astype(np.float32)


def test_jl_components_matches_conwell():
    assert jl_components(1000, eps=0.1) == 5920


def test_streaming_equals_full_matrix_product():
    X = _activations(53, 4000)
    projector = SparseRandomProjector(4000, 300, seed=3, layer="conv1")
    streamed = np.concatenate([projector.transform(X[i : i + 8]) for i in range(0, 53, 8)])
    # Independent reference: the dense matrix product in float64.
    reference = X.astype(np.float64) @ projector.matrix.toarray().astype(np.float64)
    assert streamed.shape == (53, 300)
    assert streamed.dtype == np.float32
    np.testing.assert_allclose(streamed, reference, rtol=1e-5, atol=1e-5 * np.abs(reference).max())
    np.testing.assert_array_equal(streamed, projector.transform(X))


def test_torch_input_gives_the_numpy_result():
    X = _activations(10, 1000)
    projector = SparseRandomProjector(1000, 64, seed=0, layer="fc")
    out = projector.transform(torch.from_numpy(X))
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), projector.transform(X), rtol=1e-6)


@pytest.mark.parametrize(("n_features", "n_components", "seed"), [(3000, 200, 0), (10_000, 333, 7)])
def test_sklearn_mode_matches_sparse_random_projection(n_features, n_components, seed):
    X = _activations(20, n_features, seed=1)
    ours = SparseRandomProjector(n_features, n_components, seed=seed, layer="any", mode="sklearn")
    theirs = SparseRandomProjection(n_components=n_components, random_state=seed).fit(
        X.astype(np.float64)
    )
    expected = theirs.transform(X.astype(np.float64))
    np.testing.assert_allclose(
        ours.transform(X), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max()
    )
    # Same matrix, not merely the same product.
    np.testing.assert_allclose(ours.matrix.toarray(), theirs.components_.T.toarray(), rtol=1e-6)


def test_sklearn_mode_draws_a_width_once_and_keeps_a_bounded_cache(monkeypatch):
    from zooscope.feature_extraction import projection

    monkeypatch.setattr(projection, "_sklearn_cache", type(projection._sklearn_cache)())
    first = SparseRandomProjector(5000, 300, seed=3, layer="a", mode="sklearn")
    second = SparseRandomProjector(5000, 300, seed=3, layer="b", mode="sklearn")
    assert second.signs is first.signs  # one draw for the two layers of this width
    other = SparseRandomProjector(5000, 300, seed=4, layer="a", mode="sklearn")
    assert other.signs is not first.signs  # another seed, another matrix
    reference = SparseRandomProjection(n_components=300, random_state=3).fit(np.zeros((1, 5000)))
    np.testing.assert_allclose(
        second.matrix.toarray(), reference.components_.T.toarray(), rtol=1e-6
    )
    # the cache holds at most SKLEARN_CACHE_BYTES (the newest draw always stays)
    monkeypatch.setattr(projection, "SKLEARN_CACHE_BYTES", first.signs.nbytes)
    SparseRandomProjector(6000, 300, seed=3, mode="sklearn")
    assert list(projection._sklearn_cache) == [(6000, 300, 1 / np.sqrt(6000), 3)]


def test_entries_density_and_scale_follow_the_distribution():
    p, k = 40_000, 500
    projector = SparseRandomProjector(p, k, seed=11, layer="layer3.1.conv2")
    R = projector.matrix
    density = 1 / np.sqrt(p)
    assert projector.density == pytest.approx(density)
    # Every non-zero is exactly +-sqrt(1/density)/sqrt(k).
    scale = np.float32(np.sqrt(1 / density) / np.sqrt(k))
    np.testing.assert_array_equal(np.abs(R.data), np.full(R.nnz, scale))
    # Number of non-zeros ~ Binomial(p k, density): within 6 standard deviations.
    mean, sd = p * k * density, np.sqrt(p * k * density * (1 - density))
    assert abs(R.nnz - mean) < 6 * sd
    # Signs ~ Binomial(nnz, 1/2).
    positives = int((R.data > 0).sum())
    assert abs(positives - R.nnz / 2) < 6 * np.sqrt(R.nnz / 4)
    # Non-zeros spread uniformly over output components (chi-square) and over features
    # (counts per feature ~ Binomial(k, density): check mean and variance).
    per_component = np.bincount(R.indices, minlength=k)
    expected = R.nnz / k
    chi2 = ((per_component - expected) ** 2 / expected).sum()
    assert stats.chi2.sf(chi2, k - 1) > 1e-6
    per_feature = np.diff(R.indptr)
    assert per_feature.mean() == pytest.approx(k * density, rel=0.02)
    assert per_feature.var() == pytest.approx(k * density * (1 - density), rel=0.1)
    # No position drawn twice: flattened positions strictly increasing in CSR order.
    rows = np.repeat(np.arange(p), per_feature)
    assert np.all(np.diff(rows.astype(np.int64) * k + R.indices) > 0)


def test_projection_preserves_squared_norms_on_average():
    # E ||x R||^2 = ||x||^2 for the scaled entries; average over many random directions.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 2500)).astype(np.float32)
    projector = SparseRandomProjector(2500, 1000, seed=0, layer="x")
    ratio = (projector.transform(X) ** 2).sum(1) / (X**2).sum(1)
    # Each ratio has sd ~ sqrt(2/k) ~ 0.045; the mean of 400 has sd ~ 0.003.
    assert ratio.mean() == pytest.approx(1.0, abs=0.02)
    assert np.all(np.abs(ratio - 1) < 0.3)


def test_seeded_per_seed_and_layer():
    def draw(seed: int, layer: str) -> sp.csr_array:
        return SparseRandomProjector(5000, 100, seed=seed, layer=layer).matrix

    a, b = draw(0, "layer1.0.conv1"), draw(0, "layer1.0.conv1")
    for name in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for other in (draw(0, "layer1.0.conv2"), draw(1, "layer1.0.conv1")):
        assert (a != other).nnz > 0.9 * a.nnz  # essentially independent, not a shifted copy


def test_passthrough_and_upsample():
    X = _activations(4, 50)
    kept = SparseRandomProjector(50, 100, layer="small")
    assert kept.passthrough and kept.matrix is None and kept.n_output == 50
    np.testing.assert_array_equal(kept.transform(X), X)
    up = SparseRandomProjector(50, 100, layer="small", upsample=True)
    assert up.n_output == 100 and up.transform(X).shape == (4, 100)


def test_invalid_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="n_features >= 1"):
        SparseRandomProjector(0, 10)
    with pytest.raises(ValueError, match="density"):
        SparseRandomProjector(100, 10, density=1.5)
    with pytest.raises(ValueError, match="mode"):
        SparseRandomProjector(100, 10, mode="dense")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected 100 features"):
        SparseRandomProjector(100, 10).transform(np.zeros((2, 99), np.float32))


def test_project_ones_centres_projected_rows():
    X = _activations(6, 3000).astype(np.float64)
    means = X.mean(1, keepdims=True)
    projector = SparseRandomProjector(3000, 200, seed=0, layer="relu")
    R = projector.matrix.toarray().astype(np.float64)
    centred = projector.transform(X.astype(np.float32)) - means * projector.project_ones()
    np.testing.assert_allclose(centred, (X - means) @ R, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(SparseRandomProjector(10, 20).project_ones(), np.ones(10))


@pytest.mark.parametrize(
    ("n", "p", "k"),
    [
        (1, 7001, 300),
        (33, 20_000, 129),
        (5, 300, 1000),
        (17, 2048, 128),
        (8, 4096, 256),
        (16, 1003, 200),
        (40, 5000, 300),
        (64, 3000, 200),
        (70, 2500, 150),
    ],
)
def test_tiled_kernel_equals_the_dense_product_on_ragged_shapes(n, p, k):
    # Shapes that leave partial row tiles, partial column tiles, one image, and p < k (upsample);
    # batches below, at and above the 8x8 transpose blocks and the 16- and 32-float vector
    # operations (padded widths 16, 32, 48, 64 and 80).
    X = _activations(n, p, seed=p)
    projector = SparseRandomProjector(p, k, seed=2, layer="ragged", upsample=True)
    reference = X.astype(np.float64) @ projector.matrix.toarray().astype(np.float64)
    out = projector.transform(X)
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5 * np.abs(reference).max())


def test_full_density_fills_every_cell():
    projector = SparseRandomProjector(50, 200, density=1.0, upsample=True, layer="dense")
    R = projector.matrix.toarray()
    assert np.count_nonzero(R) == 50 * 200
    np.testing.assert_array_equal(np.abs(R), np.float32(1 / np.sqrt(200)))


def test_matrix_does_not_depend_on_the_thread_count():
    X = _activations(40, 30_000)
    one = SparseRandomProjector(30_000, 500, seed=5, layer="a", n_threads=1)
    two = SparseRandomProjector(30_000, 500, seed=5, layer="a", n_threads=2)
    for name in ("tile_ptr", "rows", "codes"):
        np.testing.assert_array_equal(getattr(one.signs, name), getattr(two.signs, name))
    # Threads only change the order of float32 additions.
    np.testing.assert_allclose(one.transform(X), two.transform(X), rtol=1e-5, atol=1e-5)


def test_tiled_storage_round_trips_a_csr_matrix_and_its_size_is_predicted():
    from zooscope.feature_extraction.projection import TiledSigns, expected_nbytes

    projector = SparseRandomProjector(60_000, 700, seed=1, layer="b")
    R = projector.matrix
    again = TiledSigns.from_csr(R).to_csr()
    for name in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(again, name), getattr(R, name))
    assert projector.nbytes == pytest.approx(expected_nbytes(60_000, 700), rel=0.02)
    with pytest.raises(ValueError, match="same magnitude"):
        TiledSigns.from_csr(sp.csr_array(np.array([[1.0, 0.0], [0.0, 2.0]])))


@pytest.mark.parametrize(
    ("b", "f0", "f1"), [(1, 0, 5), (8, 0, 64), (13, 8, 75), (32, 3, 130), (40, 64, 64)]
)
def test_row_tile_transpose_is_exact_and_leaves_the_padding_alone(b, f0, f1):
    from zooscope.feature_extraction.srp_kernels import _transpose_row_tile, padded_batch

    X = np.random.default_rng(b).standard_normal((b, 131)).astype(np.float32)
    width = padded_batch(b)
    xt = np.full((max(f1 - f0, 1), width), -7.0, np.float32)
    _transpose_row_tile(X, f0, f1, xt.reshape(-1), width)
    np.testing.assert_array_equal(xt[: f1 - f0, :b], X[:, f0:f1].T)
    assert np.all(xt[:, b:] == -7.0) and (f1 > f0 or np.all(xt == -7.0))


@pytest.mark.parametrize("shape", [(3, 1000), (2, 17), (1,)])
def test_aligned_buffers_start_on_a_cache_line(shape):
    from zooscope.feature_extraction.srp_kernels import aligned_empty

    for _ in range(5):  # numpy's own arrays start 16 bytes into an allocation
        buffer = aligned_empty(shape)
        assert buffer.ctypes.data % 64 == 0 and buffer.shape == shape and buffer.flags.c_contiguous
        assert buffer.dtype == np.float32
