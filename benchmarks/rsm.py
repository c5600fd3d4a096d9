"""Benchmark: zooscope rsm vs rsatoolbox calc_rdm(method="correlation"), same run.

python benchmarks/rsm.py            # 1000 images x 5920 features
python benchmarks/rsm.py --quick    # 300 x 1000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import rsatoolbox

from zooscope.rsa import rsm


def best_of(fn, repeats: int) -> tuple[object, float]:
    """Result and the fastest of ``repeats`` wall-clock timings (robust on a shared machine)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, min(times)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="300 x 1000")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--p", type=int, default=5920)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backend", default="numpy")
    args = ap.parse_args()
    n, p = (300, 1000) if args.quick else (args.n, args.p)
    X = np.random.default_rng(0).standard_normal((n, p)).astype(np.float32)
    print(f"{n} x {p} (float32 input), best of {args.repeats}, backend={args.backend}")

    results = {}
    for dtype in ("float32", "float64"):
        results[dtype], t = best_of(
            lambda d=dtype: rsm(X, dtype=d, backend=args.backend), args.repeats
        )
        print(f"zooscope rsm ({dtype})   {t * 1e3:9.1f} ms")
        results[f"t_{dtype}"] = t
    dataset = rsatoolbox.data.Dataset(X.astype(np.float64))
    ref, t_ref = best_of(
        lambda: rsatoolbox.rdm.calc_rdm(dataset, method="correlation"), args.repeats
    )
    print(f"rsatoolbox calc_rdm      {t_ref * 1e3:9.1f} ms")
    for dtype in ("float32", "float64"):
        print(f"speed-up ({dtype}) {t_ref / results[f't_{dtype}']:6.1f}x")
    ref_rsm = 1.0 - ref.get_matrices()[0]
    for dtype in ("float32", "float64"):
        print(f"max |difference| ({dtype}) {np.abs(results[dtype] - ref_rsm).max():.1e}")


if __name__ == "__main__":
    main()
