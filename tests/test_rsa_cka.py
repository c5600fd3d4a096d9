"""Linear CKA against Kornblith et al.'s feature-space implementation."""

from __future__ import annotations

import numpy as np
import pytest

from zooscope.rsa import cka, cka_matrix
from zooscope.rsa.cka import gram_linear


def _debiased_helper(xty, ssr_x, ssr_y, sq_x, sq_y, n):
    return xty - n / (n - 2.0) * ssr_x.dot(ssr_y) + sq_x * sq_y / ((n - 1) * (n - 2))


def feature_space_linear_cka(x, y, debiased=False):
    """Reference: Kornblith et al. (2019) colab, feature-space formulation."""
    x = x - x.mean(0, keepdims=True)
    y = y - y.mean(0, keepdims=True)
    dot = np.linalg.norm(x.T @ y) ** 2
    norm_x = np.linalg.norm(x.T @ x)
    norm_y = np.linalg.norm(y.T @ y)
    if debiased:
        n = x.shape[0]
        ssr_x = np.einsum("ij,ij->i", x, x)
        ssr_y = np.einsum("ij,ij->i", y, y)
        sq_x, sq_y = ssr_x.sum(), ssr_y.sum()
        dot = _debiased_helper(dot, ssr_x, ssr_y, sq_x, sq_y, n)
        norm_x = np.sqrt(_debiased_helper(norm_x**2, ssr_x, ssr_x, sq_x, sq_x, n))
        norm_y = np.sqrt(_debiased_helper(norm_y**2, ssr_y, ssr_y, sq_y, sq_y, n))
    return dot / (norm_x * norm_y)


@pytest.fixture(scope="module")
def reps():
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((50, 4))
    return [
        latent @ rng.standard_normal((4, p)) + noise * rng.standard_normal((50, p)) + 3.0
        for p, noise in [(30, 0.5), (80, 1.0), (12, 2.0), (200, 0.1)]
    ]


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_matches_feature_space_reference(reps, debiased):
    for i in range(len(reps)):
        for j in range(len(reps)):
            ref = feature_space_linear_cka(reps[i], reps[j], debiased)
            assert cka(reps[i], reps[j], debiased=debiased) == pytest.approx(ref, abs=1e-6)
            grams = (gram_linear(reps[i]), gram_linear(reps[j]))
            assert cka(*grams, debiased=debiased, gram=True) == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_matrix_equals_pairwise(reps, debiased):
    C = cka_matrix([gram_linear(r) for r in reps], debiased=debiased)
    assert C.shape == (4, 4)
    np.testing.assert_allclose(np.diag(C), 1.0, atol=1e-12)
    np.testing.assert_allclose(C, C.T, atol=1e-14)
    for i in range(4):
        for j in range(4):
            ref = feature_space_linear_cka(reps[i], reps[j], debiased)
            assert C[i, j] == pytest.approx(ref, abs=1e-6)


def test_cka_invariances(reps):
    x = reps[0]
    q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((30, 30)))
    assert cka(x, 3.0 * x @ q) == pytest.approx(1.0, abs=1e-10)
    assert cka(x, x @ q + 5.0, debiased=True) == pytest.approx(1.0, abs=1e-10)


def test_debiased_cka_of_independent_data_is_near_zero():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1000, 5920))
    y = rng.standard_normal((1000, 5920))
    assert abs(cka(x, y, debiased=True)) < 0.01
    assert cka(x, y) > 0.5  # the biased estimator is inflated when p >> n


def test_cka_validation():
    with pytest.raises(ValueError, match="same samples"):
        cka(np.ones((5, 3)), np.ones((6, 3)))
    with pytest.raises(ValueError, match="symmetric"):
        cka(np.arange(16.0).reshape(4, 4), np.eye(4), gram=True)
    with pytest.raises(ValueError, match="at least 4"):
        cka(np.eye(3), np.eye(3), debiased=True, gram=True)
