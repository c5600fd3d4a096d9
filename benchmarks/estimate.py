r"""Benchmark: ``zooscope survey --estimate`` against the measured cost, same machine, same run.

For each model (default: the trained EfficientNet-Lite0, a random ResNet-50 and a random
ViT-B/16, at 1000 images and 29,000 voxels: the NSD-sized benchmark of ``benchmarks/survey.py``),
predicts the survey's CPU time, passes and peak memory with the cost model (in a fresh process,
calibration included), then scores the model (``benchmarks/survey.py``'s measurement, another
fresh process) and prints predicted, measured and their ratio, per stage and in all.

    python benchmarks/estimate.py --threads 2 --budget 6GB
    python benchmarks/estimate.py --threads 2 --budget 6GB --profile conwell2024 --models resnet50
    python benchmarks/estimate.py --layers '^(blocks\.\d+(\.0)?|layer\d\.\d)$'   # block outputs

The acceptance bar of the estimate is +-35% of the measured CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from survey import arguments, benchmark_file, measure, stage_rows

#: short name -> (manifest, model uid, weights override)
MODELS = {
    "effnet": ("demo", "effnet_lite0", None),
    "resnet50": ("conwell2024", "resnet50_classification", "random"),
    "vit_b16": ("conwell2024", "vit_base_patch16_224_classification", "random"),
}
#: the measured stages each predicted stage covers
GROUPS = {
    "load": ("load",),
    "forward": ("forward",),
    "srp": ("srp",),
    "gram": ("gram", "cka_gram"),
    "rsa": ("ridge", "rsa", "layer_stats"),
}


def child(argv: list[str]) -> None:
    """Print the cost model's prediction for the model of ``argv`` (survey.py's options)."""
    args = arguments(argv)
    import torch

    from zooscope.benchmark import Benchmark
    from zooscope.config import RunOptions, ScoringConfig
    from zooscope.pipeline.cost import estimate_survey
    from zooscope.zoo import get_entry

    if args.threads:
        torch.set_num_threads(args.threads)
    entry = get_entry(args.model, args.manifest)
    config = ScoringConfig.from_profile(args.profile, layers=args.layers)
    options = RunOptions(
        device=args.device, batch_size=args.batch_size, memory_budget=args.budget, progress=False
    )
    estimate = estimate_survey([entry], Benchmark.open(args.benchmark), config, options, False)
    if not estimate.models:
        raise SystemExit(f"not estimated: {estimate.unprobed}")
    cost = estimate.models[0]
    fields = {"stages": cost.stages, "passes": cost.passes, "peak": cost.peak_bytes}
    print(json.dumps({**fields, "forward_passes": cost.forward_passes}))


def main() -> None:
    if "--child-estimate" in sys.argv:
        child([a for a in sys.argv[1:] if a != "--child-estimate"])
        return
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--models", default=",".join(MODELS), help=f"of {', '.join(MODELS)}")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", default="6GB")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--voxels", type=int, default=29_000)
    ap.add_argument("--layers", default=None, help="regex of layer names (default: every layer)")
    own = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    for short in own.models.split(","):
        manifest, model, weights = MODELS[short]
        argv = [
            "--manifest", manifest, "--model", model, "--threads", str(own.threads),
            "--budget", own.budget, "--profile", own.profile, "--images", str(own.images),
            "--voxels", str(own.voxels), "--device", "cpu",
        ]  # fmt: skip
        argv += ["--weights", weights] if weights else []
        argv += ["--layers", own.layers] if own.layers else []
        args = arguments(argv)
        bench = benchmark_file(args)
        done = subprocess.run(
            [sys.executable, __file__, "--child-estimate", *argv, "--benchmark", str(bench)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"estimate failed:\n{done.stderr[-3000:]}")
        predicted = json.loads(done.stdout.strip().splitlines()[-1])
        measured = measure(args)
        spent = {name: cpu for name, _wall, cpu in stage_rows(measured)}
        total_p = sum(stage["cpu"] for stage in predicted["stages"].values())
        print(
            f"== {model}{' (random init)' if weights else ''}, profile {own.profile}: "
            f"{predicted['passes']} passes, {predicted['forward_passes']:.1f} forward passes' work"
        )
        print(f"  {'stage':<8} {'predicted':>10} {'measured':>10} {'ratio':>6}  (CPU s)")
        for name, covers in GROUPS.items():
            p = predicted["stages"][name]["cpu"]
            m = sum(spent.get(stage, 0.0) for stage in covers)
            print(f"  {name:<8} {p:10.1f} {m:10.1f} {p / m if m else float('nan'):6.2f}")
        print(
            f"  {'total':<8} {total_p:10.1f} {measured['cpu']:10.1f} "
            f"{total_p / measured['cpu']:6.2f}   peak RSS predicted {predicted['peak'] / 1e9:.2f} GB, "
            f"measured {measured['peak_rss'] / 1e9:.2f} GB"
        )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
