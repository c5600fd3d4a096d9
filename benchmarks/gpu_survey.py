"""Benchmark: an NSD-scale survey of three models on CUDA, stage by stage, with peak GPU memory.

The CUDA path (forward passes, cuSPARSE projection, Gram products and ridge on the GPU) runs
three models of different kinds one after the other on the synthetic NSD-sized benchmark of
``benchmarks/survey.py`` (1000 images, 29,000 voxels over 4 subjects, every layer), each in a
fresh process, and prints per model the wall time of every stage, the CPU time, the peak RSS and
the peak GPU memory (``torch.cuda.max_memory_allocated``).

    python benchmarks/gpu_survey.py                       # needs a CUDA GPU
    python benchmarks/gpu_survey.py --budget 16GB --images 1000

Without a GPU it says so and exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys

from survey import arguments, measure, stage_rows

#: (manifest, model uid, weights override): trained EfficientNet-Lite0, a random ResNet-50 and
#: a random ViT-B/16, the three kinds of network a survey meets.
MODELS = (
    ("demo", "effnet_lite0", None),
    ("conwell2024", "resnet50_classification", "random"),
    ("conwell2024", "vit_base_patch16_224_classification", "random"),
)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--voxels", type=int, default=29_000)
    ap.add_argument("--budget", default=None, help="extraction memory budget on the GPU")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--layers", default=None, help="regex of layer names (default: every layer)")
    own = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU", file=sys.stderr)
        raise SystemExit(1)
    print(f"{torch.cuda.get_device_name(0)}; load average at start: {os.getloadavg()[0]:.2f}")
    for manifest, model, weights in MODELS:
        argv = [
            "--device", "cuda", "--manifest", manifest, "--model", model,
            "--images", str(own.images), "--voxels", str(own.voxels),
            "--batch-size", str(own.batch_size),
        ]  # fmt: skip
        argv += ["--weights", weights] if weights else []
        argv += ["--budget", own.budget] if own.budget else []
        argv += ["--layers", own.layers] if own.layers else []
        result = measure(arguments(argv))
        print(
            f"== {model}{' (random init)' if weights else ''}: {result['wall']:.1f} s wall, "
            f"{result['cpu']:.1f} s CPU, peak RSS {result['peak_rss'] / 1e9:.2f} GB, "
            f"peak GPU memory {result['gpu_peak'] / 1e9:.2f} GB"
        )
        for name, wall, _cpu in stage_rows(result):
            print(f"  {name:<11} {wall:8.1f} s {100 * wall / result['wall']:5.1f}%")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
