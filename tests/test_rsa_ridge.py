"""RidgeGCV against scikit-learn's RidgeCV and a brute-force leave-one-out loop."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import Ridge, RidgeCV

from zooscope.rsa import RidgeGCV

ALPHAS = np.logspace(-3, 5, 17)


def make_data(n, p, t, seed=0, offset=3.0):
    """Correlated features with an offset, targets of varied SNR, non-zero means."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + 9, p)) @ (
        np.eye(p) + 0.3 * rng.standard_normal((p, p)) / np.sqrt(p)
    )
    X += offset
    W = rng.standard_normal((p, t)) / np.sqrt(p)
    Y = (X - offset) @ W * np.logspace(-1.5, 1, t) + rng.standard_normal((n + 9, t)) + 2.0
    return X[:n], Y[:n], X[n:]


def sklearn_loo_mse(X, Y, alphas, fit_intercept=True):
    """scikit-learn's fit and its per-alpha LOO MSE [t, n_alphas]."""
    ref = RidgeCV(
        alphas=alphas, alpha_per_target=True, fit_intercept=fit_intercept, store_cv_results=True
    ).fit(X, Y)
    return ref, ref.cv_results_.mean(axis=0)


@pytest.mark.parametrize(
    ("n", "p", "t"), [(40, 300, 25), (60, 60, 20), (150, 30, 25), (30, 29, 10)]
)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_matches_sklearn_ridgecv(n, p, t, dtype, fit_intercept):
    X, Y, X_new = make_data(n, p, t, seed=n + p)
    ref, mse = sklearn_loo_mse(X, Y, ALPHAS, fit_intercept)
    ours = RidgeGCV(alphas=ALPHAS, fit_intercept=fit_intercept, dtype=dtype).fit(X, Y)

    differ = np.flatnonzero(ours.alpha_ != ref.alpha_)
    # a different alpha is acceptable only at a LOO near-tie (relative gap < 1e-5)
    for j in differ:
        a_ours = np.flatnonzero(ALPHAS == ours.alpha_[j])[0]
        a_ref = np.flatnonzero(ALPHAS == ref.alpha_[j])[0]
        gap = abs(mse[j, a_ours] - mse[j, a_ref]) / mse[j, a_ref]
        assert gap < 1e-5, (j, gap)
    if dtype == "float64":
        assert differ.size == 0
    same = ours.alpha_ == ref.alpha_
    assert same.mean() >= 0.9
    np.testing.assert_allclose(
        ours.predict(X_new)[:, same], ref.predict(X_new)[:, same], atol=1e-4, rtol=0
    )
    # float64: 1e-7 covers scikit-learn's own rounding at n ~ p, alpha = 1e-3 (measured against
    # a brute-force LOO refit: sklearn off by 8e-9 relative, RidgeGCV by 2e-10)
    np.testing.assert_allclose(
        ours.loo_score_[same], ref.best_score_[same], rtol=1e-5 if dtype == "float32" else 1e-7
    )
    np.testing.assert_allclose(ours.coef_[same], ref.coef_[same], atol=1e-4, rtol=0)
    ref_intercept = np.broadcast_to(ref.intercept_, (t,))
    np.testing.assert_allclose(ours.intercept_[same], ref_intercept[same], atol=1e-4, rtol=0)
    # LOO predictions at the chosen alpha reproduce sklearn's LOO squared errors
    sq = (Y - ours.loo_predictions_) ** 2
    a_idx = np.searchsorted(ALPHAS, ref.alpha_)
    ref_sq = ref.cv_results_[:, np.arange(t), a_idx]
    np.testing.assert_allclose(sq[:, same], ref_sq[:, same], rtol=1e-3, atol=1e-6)


def test_float64_matches_sklearn_tightly():
    X, Y, X_new = make_data(50, 400, 30, seed=1)
    ref, _ = sklearn_loo_mse(X, Y, ALPHAS)
    ours = RidgeGCV(alphas=ALPHAS, dtype="float64").fit(X, Y)
    np.testing.assert_array_equal(ours.alpha_, ref.alpha_)
    np.testing.assert_allclose(ours.predict(X_new), ref.predict(X_new), atol=1e-10, rtol=0)
    np.testing.assert_allclose(ours.loo_score_, ref.best_score_, rtol=1e-8)


def brute_force_loo(X, Y, alphas):
    """LOO predictions [n, t, n_alphas] by refitting sklearn Ridge without each sample."""
    n, t = Y.shape
    out = np.empty((n, t, alphas.size))
    for i in range(n):
        keep = np.arange(n) != i
        for a, alpha in enumerate(alphas):
            model = Ridge(alpha=alpha, fit_intercept=True, solver="svd").fit(X[keep], Y[keep])
            out[i, :, a] = model.predict(X[i : i + 1])[0]
    return out


@pytest.mark.parametrize(("n", "p"), [(24, 60), (40, 8)])
def test_pearson_criterion_matches_brute_force_loop(n, p):
    alphas = np.logspace(-2, 4, 7)
    X, Y, _ = make_data(n, p, 6, seed=7)
    loo = brute_force_loo(X, Y, alphas)
    yc = Y - Y.mean(axis=0)
    lc = loo - loo.mean(axis=0)
    r = np.einsum("itk,it->tk", lc, yc) / np.sqrt(
        np.einsum("itk,itk->tk", lc, lc) * np.einsum("it,it->t", yc, yc)[:, None]
    )
    best = np.argmax(r, axis=1)
    ours = RidgeGCV(alphas=alphas, criterion="pearson", dtype="float64", store_cv_values=True).fit(
        X, Y
    )
    np.testing.assert_allclose(ours.cv_values_, loo, atol=1e-9, rtol=0)
    np.testing.assert_array_equal(ours.alpha_, alphas[best])
    np.testing.assert_allclose(ours.loo_score_, r[np.arange(6), best], atol=1e-10)
    np.testing.assert_allclose(ours.loo_predictions_, loo[:, np.arange(6), best], atol=1e-9)

    ours32 = RidgeGCV(alphas=alphas, criterion="pearson").fit(X, Y)
    np.testing.assert_allclose(ours32.loo_score_, r[np.arange(6), best], atol=1e-5)


def test_mse_loo_predictions_match_brute_force_loop():
    alphas = np.logspace(-2, 4, 5)
    X, Y, _ = make_data(20, 50, 4, seed=3)
    loo = brute_force_loo(X, Y, alphas)
    ours = RidgeGCV(alphas=alphas, dtype="float64", store_cv_values=True).fit(X, Y)
    np.testing.assert_allclose(ours.cv_values_, loo, atol=1e-9, rtol=0)
    mse = ((Y[:, :, None] - loo) ** 2).mean(axis=0)
    np.testing.assert_array_equal(ours.alpha_, alphas[np.argmin(mse, axis=1)])


@pytest.mark.parametrize("criterion", ["mse", "pearson"])
def test_chunking_does_not_change_results(criterion):
    X, Y, X_new = make_data(30, 80, 23, seed=5)
    full = RidgeGCV(alphas=ALPHAS, criterion=criterion, dtype="float64").fit(X, Y)
    chunked = RidgeGCV(
        alphas=ALPHAS, criterion=criterion, dtype="float64", target_chunk_size=4
    ).fit(X, Y)
    np.testing.assert_array_equal(full.alpha_, chunked.alpha_)
    np.testing.assert_allclose(full.loo_predictions_, chunked.loo_predictions_, atol=1e-12)
    np.testing.assert_allclose(full.predict(X_new), chunked.predict(X_new), atol=1e-12)


@pytest.mark.parametrize("criterion", ["mse", "pearson"])
def test_torch_backend_matches_numpy(criterion):
    pytest.importorskip("torch")
    X, Y, X_new = make_data(30, 80, 12, seed=6)
    a = RidgeGCV(alphas=ALPHAS, criterion=criterion, dtype="float64").fit(X, Y)
    b = RidgeGCV(alphas=ALPHAS, criterion=criterion, dtype="float64", backend="torch").fit(X, Y)
    np.testing.assert_array_equal(a.alpha_, b.alpha_)
    np.testing.assert_allclose(a.loo_predictions_, b.loo_predictions_, atol=1e-10)
    np.testing.assert_allclose(a.predict(X_new), b.predict(X_new), atol=1e-10)


def test_nan_policy():
    X, Y, X_new = make_data(30, 50, 6, seed=8)
    Y[3, 2] = np.nan
    with pytest.raises(ValueError, match="nan_policy='mask'"):
        RidgeGCV(alphas=ALPHAS).fit(X, Y)
    masked = RidgeGCV(alphas=ALPHAS, nan_policy="mask", dtype="float64").fit(X, Y)
    clean = RidgeGCV(alphas=ALPHAS, dtype="float64").fit(X, np.delete(Y, 2, axis=1))
    assert np.isnan(masked.alpha_[2]) and np.isnan(masked.loo_score_[2])
    assert np.isnan(masked.predict(X_new)[:, 2]).all()
    np.testing.assert_array_equal(np.delete(masked.alpha_, 2), clean.alpha_)
    np.testing.assert_allclose(
        np.delete(masked.predict(X_new), 2, axis=1), clean.predict(X_new), atol=1e-12
    )


def test_constant_target_and_1d_y():
    X, Y, X_new = make_data(25, 40, 3, seed=9)
    Y[:, 1] = 4.0
    model = RidgeGCV(alphas=ALPHAS, criterion="pearson").fit(X, Y)
    assert model.alpha_[1] == ALPHAS[0] and np.isnan(model.loo_score_[1])
    np.testing.assert_allclose(model.predict(X_new)[:, 1], 4.0, atol=1e-5)
    one = RidgeGCV(alphas=ALPHAS, dtype="float64").fit(X, Y[:, 0])
    ref = RidgeCV(alphas=ALPHAS).fit(X, Y[:, 0])
    assert one.predict(X_new).shape == (X_new.shape[0],)
    np.testing.assert_allclose(one.predict(X_new), ref.predict(X_new), atol=1e-10)
    assert one.coef_.shape == (40,)


def test_sklearn_api_and_validation():
    X, Y, _ = make_data(20, 30, 3)
    est = RidgeGCV(alphas=ALPHAS, criterion="pearson")
    assert clone(est).get_params()["criterion"] == "pearson"
    assert est.fit(X, Y).score(X, Y) > 0
    for kwargs, msg in [
        ({"alphas": [0.0, 1.0]}, "alphas must be finite and > 0"),
        ({"criterion": "r2"}, "criterion"),
        ({"nan_policy": "drop"}, "nan_policy"),
        ({"target_chunk_size": 0}, "target_chunk_size"),
    ]:
        with pytest.raises(ValueError, match=msg):
            RidgeGCV(**kwargs).fit(X, Y)
    with pytest.raises(ValueError, match="samples"):
        RidgeGCV().fit(X, Y[:-1])
    bad = X.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="X contains NaN"):
        RidgeGCV().fit(bad, Y)


def test_float32_keeps_the_alphas_and_moves_scores_by_less_than_1e_6():
    """What veRSA reads from a float32 fit: the chosen alphas, per-unit r and predicted RSMs."""
    from zooscope.rsa.rsm import pearson_columns, rsm

    rng = np.random.default_rng(3)
    n, p, t = 120, 700, 400
    X = rng.standard_normal((2 * n, p)) / np.sqrt(1 + np.arange(p) / 20)
    signal = (X @ rng.standard_normal((p, 8)) / np.sqrt(p)) @ rng.standard_normal((8, t))
    Y = signal * np.logspace(-1.5, 0.5, t) + rng.standard_normal((2 * n, t))
    alphas = np.logspace(-1, 5, 7)
    single = RidgeGCV(alphas=alphas, criterion="pearson").fit(X[:n], Y[:n])
    double = RidgeGCV(alphas=alphas, criterion="pearson", dtype="float64").fit(X[:n], Y[:n])
    differ = np.flatnonzero(single.alpha_ != double.alpha_)
    assert differ.size <= 0.01 * t  # only LOO near-ties may go the other way
    same = np.setdiff1d(np.arange(t), differ)
    p32, p64 = single.predict(X[n:]), double.predict(X[n:])
    np.testing.assert_allclose(p32[:, same], p64[:, same], atol=1e-6 * np.abs(p64).max())
    r32, r64 = pearson_columns(p32, Y[n:]), pearson_columns(p64, Y[n:])
    np.testing.assert_allclose(r32[same], r64[same], atol=1e-6)
    np.testing.assert_allclose(rsm(p32[:, same]), rsm(p64[:, same]), atol=1e-6)
