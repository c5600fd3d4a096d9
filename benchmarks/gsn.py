"""Benchmark GSN: perform_gsn and rsa_noise_ceiling against reference-style implementations.

Usage::

    python benchmarks/gsn.py                       # all three sizes, numpy backend
    python benchmarks/gsn.py --only fit --backend torch
    python benchmarks/gsn.py --only rsa-small --only rsa-large

Reference timings are measured in the same run with straightforward restatements of what
cvnlab/GSN v1.2 does (one Cholesky + triangular solve per shrinkage level, SVD-based nearest
PSD, ``np.random.multivariate_normal`` -- an SVD of the V x V covariance -- for every draw).
They run at a smaller unit count and are extrapolated by the O(V^3) cost of their dominant
factorizations; the printed lines say so.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.linalg import solve_triangular

from zooscope.rsa.gsn import perform_gsn, rsa_noise_ceiling
from zooscope.rsa.gsn_linalg import holdout_split


def synth(n_units: int, n_cond: int, n_trial: int, seed: int = 0) -> np.ndarray:
    """Low-rank signal plus correlated noise, [units, conditions, trials]."""
    rng = np.random.default_rng(seed)
    k = min(50, n_units)
    load_s = rng.standard_normal((n_units, k)) / np.sqrt(k)
    load_n = rng.standard_normal((n_units, k)) / np.sqrt(k)
    signal = load_s @ rng.standard_normal((k, n_cond))
    noise = (load_n @ rng.standard_normal((k, n_cond * n_trial))).reshape(n_units, n_cond, n_trial)
    return signal[:, :, None] + noise + rng.standard_normal((n_units, n_cond, n_trial))


def reference_style_fit(data: np.ndarray) -> float:
    """Seconds for the reference's fit: per-level Cholesky NLL loops + SVD nearest-PSD."""
    t0 = time.perf_counter()
    v, c, t = data.shape
    levels = np.linspace(0, 1, 51)
    held, train = holdout_split(c)
    xc = data - data.mean(axis=2, keepdims=True)
    y = xc[:, train].reshape(v, -1)
    c_tr = y @ y.T / ((t - 1) * train.size)
    pts = np.concatenate([xc[:, i, :].T for i in held])
    means = data.mean(axis=2).T
    d_tr = np.cov(means[train].T)
    pts_d = means[held] - means[train].mean(axis=0)
    for cov, p in ((c_tr, pts), (d_tr, pts_d)):
        for s in levels:
            c2 = s * cov + (1 - s) * np.diag(np.diag(cov))
            try:
                lower = np.linalg.cholesky(c2)
            except np.linalg.LinAlgError:
                continue
            solve_triangular(lower, p.T, lower=True)
    # Biconvex loop: at least one nearest-PSD per covariance, each an SVD (GSN uses np.linalg.svd).
    for cov in (c_tr, d_tr):
        np.linalg.svd((cov + cov.T) / 2)
    return time.perf_counter() - t0


def reference_style_draw(n_units: int, n_draws: int) -> float:
    """Seconds for ``n_draws`` calls of np.random.multivariate_normal (50 rows each)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n_units, n_units)) / np.sqrt(n_units)
    cov = a @ a.T + np.eye(n_units)
    legacy = np.random.RandomState(0)
    t0 = time.perf_counter()
    for _ in range(n_draws):
        legacy.multivariate_normal(np.zeros(n_units), cov, size=50)
    return time.perf_counter() - t0


# Draws made by GSN's rsa_noise_ceiling with defaults and 3 trials: 21 scales x 49 simulations
# x 2 calls (signal, noise) for the scale search, plus 50 x 2 for the ceiling.
REFERENCE_DRAWS = 21 * 49 * 2 + 50 * 2


def bench_fit(backend: str) -> None:
    data = synth(2000, 1000, 3)
    t0 = time.perf_counter()
    res = perform_gsn(data, backend=backend)
    ours = time.perf_counter() - t0
    small = 500
    ref_small = reference_style_fit(data[:small])
    ref = ref_small * (2000 / small) ** 3
    print(
        f"perform_gsn 2000x1000x3 [{backend}]: {ours:.1f} s "
        f"(shrinkN={res.shrinklevelN:.2f}, shrinkD={res.shrinklevelD:.2f}, iters={res.numiters}); "
        f"reference-style {ref_small:.2f} s at {small} units -> {ref:.0f} s extrapolated (V^3; "
        f"excludes its biconvex iterations, so a lower bound) -> ratio {ref / ours:.1f}x"
    )


def bench_rsa(n_units: int, backend: str) -> None:
    data = synth(n_units, 1000, 3)
    t0 = time.perf_counter()
    res = rsa_noise_ceiling(data, backend=backend)
    ours = time.perf_counter() - t0
    small, n_draws = min(n_units, 1000), 20
    per_draw = reference_style_draw(small, n_draws) / n_draws
    ref = per_draw * REFERENCE_DRAWS * (n_units / small) ** 3
    print(
        f"rsa_noise_ceiling {n_units}x1000x3 [{backend}]: {ours:.1f} s (fit included; "
        f"nc={res.nc:.3f}, sc={res.sc:.1f}, splitr={res.splitr:.3f}, "
        f"{res.n_model_sims} sims/scale); reference-style draws alone: {per_draw * 1e3:.0f} ms "
        f"per draw at {small} units x {REFERENCE_DRAWS} draws"
        f"{' x (V/1000)^3' if n_units > small else ''} = {ref:.0f} s -> ratio {ref / ours:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy", help="numpy, torch, torch_cuda or auto")
    parser.add_argument(
        "--only", action="append", choices=["fit", "rsa-small", "rsa-large"], default=None
    )
    args = parser.parse_args()
    todo = args.only or ["fit", "rsa-small", "rsa-large"]
    if "fit" in todo:
        bench_fit(args.backend)
    if "rsa-small" in todo:
        bench_rsa(1000, args.backend)
    if "rsa-large" in todo:
        bench_rsa(8000, args.backend)


if __name__ == "__main__":
    main()
