"""Benchmark: what the ``predictivity`` metric adds to a survey, measured inside one survey.

One survey of one model (default: ResNet-50, random init, every layer) over a synthetic neural
benchmark (default: 1000 images x 300 neurons, 4 repetitions, 8 object labels) scores the default
metrics (cRSA, veRSA, encoding r) *and* predictivity. The time spent in predictivity
(:func:`zooscope.metrics.predictivity.score_predictivity`, every layer, both splits, and
:func:`~zooscope.metrics.predictivity.predictivity_predictions`, the held-out predictions kept for
cross-model analyses) is measured around those calls; the rest is the survey without it. Prints
both, wall and process CPU time (on a shared machine the CPU time is the stable figure), and their
ratio.

    python benchmarks/predictivity.py                          # 1000 images, ResNet-50
    python benchmarks/predictivity.py --n-images 200 --threads 1
    python benchmarks/predictivity.py --regression pls         # Brain-Score's PLS (slower)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n-images", type=int, default=1000)
    ap.add_argument("--n-neurons", type=int, default=300)
    ap.add_argument("--model", default="resnet50", help="torchvision architecture (random init)")
    ap.add_argument("--regression", default="ridge", choices=["ridge", "pls", "ridgecv"])
    ap.add_argument("--layers", default=None, help="regex of layers (default: every layer)")
    ap.add_argument("--threads", type=int, default=None, help="BLAS/torch threads (threadpoolctl)")
    args = ap.parse_args()
    if args.threads is not None:
        import torch
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=args.threads)
        torch.set_num_threads(args.threads)

    import zooscope.metrics.predictivity as neural
    from zooscope.benchmark import Benchmark
    from zooscope.config import RunOptions, ScoringConfig
    from zooscope.nsd.synthetic import natural_images
    from zooscope.pipeline.survey import survey

    timing = {"wall": 0.0, "cpu": 0.0, "calls": 0}

    def timed(function, count: bool):
        def wrapper(*a, **k):
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return function(*a, **k)
            finally:
                timing["wall"] += time.perf_counter() - t0
                timing["cpu"] += time.process_time() - c0
                timing["calls"] += count

        return wrapper

    # the predictivity metric calls both through its module: the scores of every layer and the
    # held-out predictions it keeps for the committed layer
    neural.score_predictivity = timed(neural.score_predictivity, True)
    neural.predictivity_predictions = timed(neural.predictivity_predictions, False)

    rng = np.random.default_rng(0)
    n, units = args.n_images, args.n_neurons
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pixels = natural_images(n, image_size=224, seed=0)
        latent = rng.normal(size=(n, 20))
        responses = (latent @ rng.normal(size=(20, units))).T[:, :, None] + rng.normal(
            size=(units, n, 4)
        )
        bench = Benchmark.from_arrays(
            root / "bench.h5", responses, pixels,
            {"subject": ["m1"] * units, "IT": np.ones(units, bool)},
            images={"object_name": [f"obj{k % 8}" for k in range(n)]},
            attrs={"kind": "neural"},
        )  # fmt: skip
        manifest = root / "manifest.csv"
        manifest.write_text(
            "model_uid,source,name,weights,display_name,arch_class,task,task_cluster,train_data,seed\n"
            f"{args.model}_random,torchvision,{args.model},random,{args.model},Convolutional,random,,,0\n"
        )
        config = ScoringConfig(
            metrics=("crsa", "versa", "encoding_r", "predictivity"),
            layers=args.layers,
            regression=args.regression,
        )
        t0, c0 = time.perf_counter(), time.process_time()
        report = survey(
            manifest, bench.path, root / "results.duckdb", config, RunOptions(device="cpu", progress=False),
            ceilings=False,
        )  # fmt: skip
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if report.failed:
        raise SystemExit(f"survey failed: {report.failed[0].error}")
    rest_wall, rest_cpu = wall - timing["wall"], cpu - timing["cpu"]
    print(
        f"{args.model} (random), {n} images x {units} neurons, layers {args.layers or 'all'}, "
        f"regression {args.regression}, threads {args.threads or 'default'}: {timing['calls']} layers"
    )
    print(f"survey without predictivity: wall {rest_wall:8.1f} s  cpu {rest_cpu:8.1f} s")
    print(f"predictivity (all layers):   wall {timing['wall']:8.1f} s  cpu {timing['cpu']:8.1f} s")
    print(
        f"added: {timing['wall'] / rest_wall:.1%} of the wall time, "
        f"{timing['cpu'] / rest_cpu:.1%} of the CPU time (target: <= 20 %)"
    )


if __name__ == "__main__":
    main()
