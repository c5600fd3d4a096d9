"""rsm / compare_rsms / crsa against rsatoolbox, numpy and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from zooscope.rsa import RSMComparator, compare_rsms, crsa, rsm, upper_triangle

rsatoolbox = pytest.importorskip("rsatoolbox")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((60, 5))
    X = latent @ rng.standard_normal((5, 300)) + 0.5 * rng.standard_normal((60, 300)) + 7.0
    Y = latent @ rng.standard_normal((5, 80)) + rng.standard_normal((60, 80))
    return X, Y


def rsatoolbox_rdm(X):
    ds = rsatoolbox.data.Dataset(X)
    return rsatoolbox.rdm.calc_rdm(ds, method="correlation")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rsm_matches_rsatoolbox(data, dtype):
    X, _ = data
    ours = rsm(X, dtype=dtype)
    ref = 1.0 - rsatoolbox_rdm(X).get_matrices()[0]
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours, np.corrcoef(X), atol=1e-6 if dtype == "float32" else 1e-12)
    assert ours.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(np.diag(ours), 1.0)
    np.testing.assert_array_equal(ours, ours.T)


def test_rsm_accepts_torch_and_torch_backend(data):
    torch = pytest.importorskip("torch")
    X, _ = data
    ref = np.corrcoef(X)
    np.testing.assert_allclose(rsm(torch.from_numpy(X), dtype="float64"), ref, atol=1e-12)
    np.testing.assert_allclose(rsm(X, dtype="float64", backend="torch"), ref, atol=1e-12)


def test_rsm_constant_row_is_nan(data, caplog):
    X = data[0].copy()
    X[3] = 2.0
    R = rsm(X)
    assert np.isnan(R[3]).all() and np.isnan(R[:, 3]).all()
    assert np.isfinite(np.delete(np.delete(R, 3, 0), 3, 1)).all()
    assert "zero variance" in caplog.text


def test_rsm_validation():
    with pytest.raises(ValueError, match="2-D"):
        rsm(np.zeros(5))
    with pytest.raises(ValueError, match="at least 2"):
        rsm(np.zeros((1, 5)))


def test_upper_triangle_order():
    M = np.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(upper_triangle(M), [1, 2, 3, 6, 7, 11])
    np.testing.assert_array_equal(upper_triangle(M), M[np.triu_indices(4, 1)])
    with pytest.raises(ValueError, match="square"):
        upper_triangle(np.zeros((3, 4)))


@pytest.mark.parametrize(
    ("ours_method", "ref_method"), [("pearson", "corr"), ("spearman", "spearman")]
)
def test_compare_matches_rsatoolbox(data, ours_method, ref_method):
    X, Y = data
    rdm_x, rdm_y = rsatoolbox_rdm(X), rsatoolbox_rdm(Y)
    ref = rsatoolbox.rdm.compare(rdm_x, rdm_y, method=ref_method)[0, 0]
    Rx, Ry = rsm(X, dtype="float64"), rsm(Y, dtype="float64")
    assert compare_rsms(Rx, Ry, ours_method) == pytest.approx(ref, abs=1e-6)
    # upper triangles and squares mix freely; the default float32 RSMs agree too
    assert compare_rsms(upper_triangle(Rx), Ry, ours_method) == pytest.approx(ref, abs=1e-6)
    assert compare_rsms(rsm(X), rsm(Y), ours_method) == pytest.approx(ref, abs=1e-6)
    assert crsa(Rx, Ry, ours_method) == pytest.approx(ref, abs=1e-6)


def test_spearman_with_ties_and_kendall_match_scipy():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 5, size=45).astype(float)  # many ties
    b = a + rng.integers(0, 3, size=45)
    assert compare_rsms(a, b, "spearman") == pytest.approx(
        stats.spearmanr(a, b).statistic, abs=1e-12
    )
    assert compare_rsms(a, b, "kendall") == pytest.approx(
        stats.kendalltau(a, b).statistic, abs=1e-12
    )
    assert compare_rsms(a, b, "pearson") == pytest.approx(stats.pearsonr(a, b).statistic, abs=1e-12)


@pytest.mark.parametrize("method", ["pearson", "spearman", "kendall"])
def test_comparator_reuse_equals_direct(data, method):
    X, Y = data
    brain = rsm(Y, dtype="float64")
    comparator = RSMComparator(brain, method)
    rng = np.random.default_rng(2)
    for _ in range(3):
        model = rsm(X[:, rng.permutation(300)[:100]], dtype="float64")
        direct = compare_rsms(model, brain, method)
        assert comparator.score(model) == pytest.approx(direct, abs=1e-12)
        assert crsa(model, comparator, method) == pytest.approx(direct, abs=1e-12)
    with pytest.raises(ValueError, match="built for"):
        compare_rsms(brain, comparator, "kendall" if method != "kendall" else "pearson")


def test_compare_validation_and_nan(data, caplog):
    X, Y = data
    with pytest.raises(ValueError, match="sizes differ"):
        compare_rsms(rsm(X[:10]), rsm(Y))
    with pytest.raises(ValueError, match="method"):
        compare_rsms(rsm(X), rsm(Y), "cosine")
    with pytest.raises(ValueError, match="NaN"):
        RSMComparator(np.full(10, np.nan))
    bad = rsm(X)
    bad[0, 1] = bad[1, 0] = np.nan
    assert np.isnan(compare_rsms(bad, rsm(Y)))
