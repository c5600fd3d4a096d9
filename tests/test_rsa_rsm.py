"""rsm / compare_rsms / crsa against rsatoolbox, numpy and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from zooscope.feature_extraction.gram import GramAccumulator
from zooscope.rsa import RSMComparator, compare_rsms, crsa, rsm, upper_triangle
from zooscope.rsa.rsm import tie_codes

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
    caplog.set_level("DEBUG", logger="zooscope")
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


def _tied_rsm_case(n_features: int, seed: int):
    """Discrete features of 8 prototype images, each shown several times (duplicated stimuli).

    Returns the float32 features X and the exact RSM's upper triangle: every entry is one of
    the prototypes' pairwise correlations (computed once, so equal entries are bit-equal).
    """
    rng = np.random.default_rng(seed)
    levels = np.array([0.1, 0.7, 1.3, 2.9], np.float32)  # not exact in binary: rounding happens
    own = levels[rng.integers(0, 4, size=(8, n_features))]
    shared = levels[rng.integers(0, 4, size=n_features)]
    # prototype i copies a share of a common pattern: correlations spread over (0, 1)
    share = np.array([0.12, 0.23, 0.31, 0.44, 0.52, 0.67, 0.79, 0.88])
    protos = np.where(rng.random((8, n_features)) < share[:, None], shared, own)
    which = rng.permutation(np.arange(60) % 8)
    # duplicates scaled by a power of two: same correlations, different float32 inputs
    X = protos[which] * rng.choice([1.0, 4.0], size=(60, 1)).astype(np.float32)
    C = np.corrcoef(protos.astype(np.float64))
    C = np.triu(C, 1) + np.triu(C, 1).T + np.eye(8)  # bit-symmetric
    return X, upper_triangle(C[np.ix_(which, which)])


@pytest.mark.parametrize("n_features", [50, 2000, 50000])
def test_rank_comparisons_are_tie_aware_on_duplicated_discrete_stimuli(n_features):
    X, exact = _tied_rsm_case(n_features, seed=n_features)
    _, brain_exact = _tied_rsm_case(40, seed=7)  # a tied "brain" RSM too
    distinct = np.unique(exact)
    n_distinct = distinct.size
    assert n_distinct <= 29  # 28 prototype pairs + the duplicates' 1.0
    assert np.diff(distinct).min() > 1e-4  # distinct values are well apart: ties are unambiguous
    gram = GramAccumulator(60, n_features)
    gram.add(X.copy())
    brain = upper_triangle(rsm(_tied_rsm_case(40, seed=7)[0], dtype="float64"))
    for computed in (rsm(X), rsm(X, dtype="float64"), gram.rsm()):
        v = upper_triangle(computed)
        # the ties are back exactly: codes equal where the exact entries are equal
        codes = tie_codes(v)
        assert np.unique(codes).size == n_distinct
        assert np.unique(np.stack([codes, exact]), axis=1).shape[1] == n_distinct
        assert compare_rsms(v, brain, "spearman") == pytest.approx(
            stats.spearmanr(exact, brain_exact).statistic, abs=1e-12
        )
        assert compare_rsms(v, brain, "kendall") == pytest.approx(
            stats.kendalltau(exact, brain_exact).statistic, abs=1e-12
        )


def test_tie_codes_groups_never_chain():
    # values 0.4e-5 apart: chaining by neighbour gaps would tie them all; groups stay <= tol wide
    v = np.arange(100) * 0.4e-5
    codes = tie_codes(v, tol=1e-5)
    spans = [np.ptp(v[codes == c]) for c in np.unique(codes)]
    assert max(spans) <= 1e-5 and np.unique(codes).size == 34
    np.testing.assert_array_equal(np.diff(codes) >= 0, True)  # order is kept
    np.testing.assert_array_equal(tie_codes(v, tol=0), np.arange(100))


def test_rank_comparisons_of_continuous_rsms_match_scipy(data):
    X, Y = data
    a, b = upper_triangle(rsm(X, dtype="float64")), upper_triangle(rsm(Y, dtype="float64"))
    # float64 RSMs: ties only at 1e-12, i.e. none here; exactly scipy's values
    for method, ref in (("spearman", stats.spearmanr), ("kendall", stats.kendalltau)):
        assert compare_rsms(a, b, method) == pytest.approx(ref(a, b).statistic, abs=1e-12)
    # float32 RSMs: entries within 1e-5 (rounding level) tie; here 23 of 1770 entries, which
    # moves Spearman by ~1e-7 and Kendall's tau-b by about (tied pairs / pairs) ~ 1e-5
    a32 = upper_triangle(rsm(X))
    assert compare_rsms(a32, b, "spearman") == pytest.approx(
        stats.spearmanr(a, b).statistic, abs=1e-6
    )
    assert compare_rsms(a32, b, "kendall") == pytest.approx(
        stats.kendalltau(a, b).statistic, abs=5e-5
    )


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
