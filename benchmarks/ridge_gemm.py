"""Benchmark: RidgeGCV's arithmetic rate against a plain GEMM of the same size, same run.

One veRSA layer at NSD scale: 500 training and 500 test images, 5920 SRP features, 29,000
voxels, 7 alphas, Pearson LOO criterion (what a survey runs per layer). Prints

- the fit's and the prediction's time and achieved GFLOP/s, counting the GEMMs the algorithm
  needs (``rsa/ridge.py``): per alpha one ``[n, n] x [n, t]`` product in float32, plus
  ``Z = U^T Y`` in float64, the thin decomposition's ``X X^T`` (float64) and, for the prediction,
  ``X' X^T`` (float64), ``(X' X^T) U`` and one ``[m, r] x [r, t]`` product (float32, as the
  fit's LOO products: ``RidgeGCV(dtype="float32")``, the default);
- the time the same GEMMs take on their own (plain ``numpy.matmul`` of the same shapes and
  dtypes, best of 3), and the ratio: the fraction of the plain-GEMM rate the fit achieves
  (1.0 = nothing but GEMMs at full speed).

    python benchmarks/ridge_gemm.py                 # NSD scale
    python benchmarks/ridge_gemm.py --t 8000        # fewer voxels

Time it on a quiet machine: the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _best(function, repeat: int = 3) -> tuple[float, float]:
    """Best wall and CPU seconds of ``function()`` over ``repeat`` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=500, help="training (and test) images")
    ap.add_argument("--p", type=int, default=5920, help="features")
    ap.add_argument("--t", type=int, default=29_000, help="targets (voxels)")
    ap.add_argument("--alphas", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    from zooscope.rsa import RidgeGCV
    from zooscope.rsa.encoding import standardize

    torch.set_num_threads(args.threads)
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    n, p, t, A = args.n, args.p, args.t, args.alphas
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2 * n, p)).astype(np.float32) / np.sqrt(1 + np.arange(p) / 50)
    W = rng.standard_normal((p, 40)).astype(np.float32) / np.sqrt(p)
    Y = (X @ W) @ rng.standard_normal((40, t)).astype(np.float32)
    Y += rng.standard_normal((2 * n, t), dtype=np.float32)
    X_train, X_test = standardize(X[:n], X[n:])
    Y_train = Y[:n]
    alphas = np.logspace(-1, 5, A)

    with threadpool_limits(limits=args.threads, user_api="blas"):
        model = RidgeGCV(alphas=alphas, criterion="pearson")
        fit_wall, fit_cpu = _best(lambda: model.fit(X_train, Y_train), args.repeat)
        pred_wall, pred_cpu = _best(lambda: model.predict(X_test), args.repeat)
        r = model.basis_.shape[1]

        # the same GEMMs alone
        a32 = rng.standard_normal((n, n)).astype(np.float32)
        z32 = rng.standard_normal((n, t)).astype(np.float32)
        out32 = np.empty((n, t), np.float32)
        u64 = rng.standard_normal((n, r))
        y64 = rng.standard_normal((n, t))
        x64 = np.asarray(X_train, np.float64)

        def fit_gemms() -> None:
            x64 @ x64.T
            u64.T @ y64
            for _ in range(A):
                np.matmul(a32, z32, out=out32)

        def predict_gemms() -> None:
            k = np.asarray(X_test, np.float64) @ x64.T
            (k @ u64).astype(np.float32) @ z32[:r]  # the GEMM over targets in float32

        gemm_fit_wall, _ = _best(fit_gemms, args.repeat)
        gemm_pred_wall, _ = _best(predict_gemms, args.repeat)
        g32_wall, _ = _best(lambda: np.matmul(a32, z32, out=out32), args.repeat)
        g64_wall, _ = _best(lambda: u64.T @ y64, args.repeat)

    fit_flops = 2 * A * n * n * t + 2 * n * r * t + 2 * n * n * p
    pred_flops = 2 * n * n * p + 2 * n * n * r + 2 * n * r * t
    print(
        f"== RidgeGCV, one veRSA layer: n={n} train/test images, p={p} features, t={t} targets, "
        f"{A} alphas, {args.threads} threads"
    )
    print(
        f"  plain GEMM [{n},{n}]x[{n},{t}]: float32 {2 * n * n * t / g32_wall / 1e9:.1f} GFLOP/s, "
        f"float64 {2 * n * r * t / g64_wall / 1e9:.1f} GFLOP/s"
    )
    for name, wall, cpu, flops, gemm in (
        ("fit", fit_wall, fit_cpu, fit_flops, gemm_fit_wall),
        ("predict", pred_wall, pred_cpu, pred_flops, gemm_pred_wall),
    ):
        print(
            f"  {name:<8} {wall:6.2f} s wall {cpu:6.2f} s CPU  {flops / wall / 1e9:6.1f} GFLOP/s; "
            f"its GEMMs alone {gemm:6.2f} s ({flops / gemm / 1e9:6.1f} GFLOP/s): "
            f"ratio {gemm / wall:.2f}"
        )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
