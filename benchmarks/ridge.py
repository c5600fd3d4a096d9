"""Benchmark: zooscope RidgeGCV vs scikit-learn RidgeCV(alpha_per_target=True), same run.

Prints fit time and peak traced memory (tracemalloc sees every NumPy allocation) of both, their
ratios, the fraction of targets given the same alpha, and the largest prediction difference.

    python benchmarks/ridge.py            # n=500, p=5920, t=20000, 20 alphas (sklearn ~1 min)
    python benchmarks/ridge.py --quick    # n=200, p=1000, t=2000
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from sklearn.linear_model import RidgeCV

from zooscope.rsa import RidgeGCV


def make_data(n: int, p: int, t: int, seed: int = 0):
    """Features with a decaying spectrum and targets of varied signal-to-noise ratio."""
    rng = np.random.default_rng(seed)
    scales = 1.0 / np.sqrt(1.0 + np.arange(p) / 50.0)
    X = rng.standard_normal((2 * n, p)) * scales
    W = rng.standard_normal((p, t)) / np.sqrt(p)
    snr = np.logspace(-2, 1, t)
    Y = (X @ W) * snr + rng.standard_normal((2 * n, t))
    return X[:n], X[n:], Y[:n], Y[n:]


def measure(fn):
    """Run ``fn`` under tracemalloc.

    Returns (result, wall seconds, peak traced bytes above the baseline, process CPU seconds).
    CPU time is reported too because on a shared machine wall time mostly measures the queue.
    """
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return out, dt, peak, cpu


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="n=200, p=1000, t=2000")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--p", type=int, default=5920)
    ap.add_argument("--t", type=int, default=20000)
    ap.add_argument("--n-alphas", type=int, default=20)
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--skip-sklearn", action="store_true", help="time RidgeGCV only")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="limit BLAS/OpenMP threads for both fits (threadpoolctl); on a shared machine "
        "--threads 1 gives reproducible timings",
    )
    args = ap.parse_args()
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=args.threads)
    n, p, t = (200, 1000, 2000) if args.quick else (args.n, args.p, args.t)
    alphas = np.logspace(-1, 5, args.n_alphas)
    X, X_test, Y, _ = make_data(n, p, t)
    print(
        f"n={n} p={p} t={t} alphas={alphas.size} backend={args.backend} dtype={args.dtype} "
        f"threads={args.threads or 'default'}"
    )

    ours, t_ours, m_ours, c_ours = measure(
        lambda: RidgeGCV(alphas=alphas, backend=args.backend, dtype=args.dtype).fit(X, Y)
    )
    print(
        f"RidgeGCV         fit {t_ours:8.2f} s (CPU {c_ours:8.2f} s)   peak {m_ours / 2**20:8.1f} MiB"
    )
    if args.skip_sklearn:
        return
    ref, t_ref, m_ref, c_ref = measure(
        lambda: RidgeCV(alphas=alphas, alpha_per_target=True, fit_intercept=True).fit(X, Y)
    )
    print(
        f"sklearn RidgeCV  fit {t_ref:8.2f} s (CPU {c_ref:8.2f} s)   peak {m_ref / 2**20:8.1f} MiB"
    )
    print(
        f"speed-up {t_ref / t_ours:6.1f}x wall, {c_ref / c_ours:6.1f}x CPU   "
        f"memory ratio (ours/sklearn) {m_ours / m_ref:6.3f}"
    )
    same = ours.alpha_ == ref.alpha_
    print(f"alpha agreement {same.mean():.4%} of {t} targets")
    pred_ours, tp_ours, mp_ours, _ = measure(lambda: ours.predict(X_test))
    pred_ref, tp_ref, mp_ref, _ = measure(lambda: ref.predict(X_test))
    print(
        f"predict {X_test.shape[0]} images: RidgeGCV (dual form) {tp_ours:.2f} s, "
        f"{mp_ours / 2**20:.0f} MiB; sklearn (primal) {tp_ref:.2f} s, {mp_ref / 2**20:.0f} MiB"
    )
    diff = np.abs(pred_ours - pred_ref)
    print(
        f"max |prediction difference|, same alpha: {diff[:, same].max(initial=0):.2e} (target sd {Y.std():.2f})"
    )
    differ = np.flatnonzero(~same)
    if differ.size:
        # are the disagreements LOO near-ties? exact float64 LOO MSE at both alphas
        check = RidgeGCV(alphas=alphas, dtype="float64", store_cv_values=True).fit(X, Y[:, differ])
        mse = ((Y[:, differ, None] - check.cv_values_) ** 2).mean(axis=0)
        cols = np.arange(differ.size)
        m_ours = mse[cols, np.searchsorted(alphas, ours.alpha_[differ])]
        m_ref = mse[cols, np.searchsorted(alphas, ref.alpha_[differ])]
        gap = np.abs(m_ours - m_ref) / m_ref
        print(
            f"{differ.size} disagreements; relative LOO-MSE gap between the two alphas: "
            f"max {gap.max():.1e}, median {np.median(gap):.1e} (near-tie if < 1e-5)"
        )


if __name__ == "__main__":
    main()
