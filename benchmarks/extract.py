"""Benchmark: feature extraction overhead, memory and SRP throughput, all measured in one run.

Prints, each against a reference measured in the same run:

1. ``(all layers hooked + streaming SRP) / (bare forward)`` wall time for random-init ResNet-50
   and ViT-B/16 on CPU (target <= 1.3), with k = 5920 (the value for 1000 images, eps=0.1)
   whatever the number of images, so the per-image projection work is the real one. The
   one-time setup (layer discovery, drawing the projection matrices) is reported separately;
   it does not grow with the number of images.
2. The same ratio with exact RSMs of the full activations (``--budget``, several passes).
3. The error of the one-pass approximate RSMs (Pearson RSM of the SRP features, what
   ``rsm_from="srp"`` computes) against the exact ones.
4. Streaming SRP throughput vs scikit-learn ``SparseRandomProjection.transform`` on a
   1000 x 500k float32 matrix (target >= 3x).
5. Peak RSS of extracting every layer of ResNet-50 over 256 images with a 2 GB budget, in a
   child process (target < ~3 GB).

    python benchmarks/extract.py                      # everything (~10-15 min on 2 cores)
    python benchmarks/extract.py --only speed --images 16
    python benchmarks/extract.py --only memory

Torch runs ``--threads`` intra-op threads (default: torch's default) in every measurement.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

from zooscope.runtime import quiet_openmp_waits, reuse_freed_memory

# What the zooscope command sets (--keep-freed-memory: its opt-in allocator setting); both must
# precede torch's import, so they are read before argparse runs.
quiet_openmp_waits()
if "--keep-freed-memory" in sys.argv:
    reuse_freed_memory()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _memory import peak_rss_bytes  # noqa: E402

K_PRODUCTION = 5920  # johnson_lindenstrauss_min_dim(1000, eps=0.1)


def random_images(n: int, size: int = 224, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def build(name: str) -> Any:
    """A random-init torchvision model wrapped as a LoadedModel (ImageNet normalisation)."""
    import torchvision
    from torchvision import transforms

    from zooscope.zoo import LoadedModel, ModelInfo, parse_manifest
    from zooscope.zoo.preprocess import Preprocess

    torch.manual_seed(0)
    module = getattr(torchvision.models, name)().eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    header = "model_uid,source,name,weights,display_name,arch_class,task,task_cluster,train_data"
    entry = parse_manifest(
        [header, f"{name}_random,torchvision,{name},random,{name},Convolutional,random,,"]
    )[0]
    normalize = transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    preprocess = Preprocess(transforms.Compose([transforms.ToTensor(), normalize]))
    info = ModelInfo(0, (3, 224, 224), f"torchvision:{name}:random:seed=0", preprocess.describe())
    return LoadedModel(module=module, preprocess=preprocess, entry=entry, info=info, device="cpu")


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float, float]:
    """``fn(*args, **kwargs)`` -> (result, wall seconds, process CPU seconds)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0, time.process_time() - c0


def run_extract(loaded: Any, images: np.ndarray, batch_size: int, **kwargs: Any) -> list[Any]:
    from zooscope.feature_extraction import extract

    return list(
        extract(
            loaded,
            images,
            n_components=K_PRODUCTION,
            batch_size=batch_size,
            progress=False,
            **kwargs,
        )
    )


def bare_forward(loaded: Any, images: np.ndarray, batch_size: int) -> None:
    """The reference: the same preprocessing, DataLoader and forward, without any hook."""
    from zooscope.feature_extraction.images import ImageSet, PreprocessedImages

    dataset = PreprocessedImages(ImageSet(images), loaded.preprocess)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    with torch.no_grad():
        for batch in loader:
            loaded.module(batch)


def setup_cost(loaded: Any, images: np.ndarray, k: int) -> float:
    """Seconds of the one-time work: layer discovery and drawing every projection matrix."""
    from zooscope.feature_extraction import SparseRandomProjector, discover_layers, make_non_inplace

    t0 = time.perf_counter()
    make_non_inplace(loaded.module)
    probe = loaded.preprocess.batch(images[:3])
    for layer in discover_layers(loaded.module, probe):
        SparseRandomProjector(layer.n_features, k, 0, layer.name)
    return time.perf_counter() - t0


def speed(args: argparse.Namespace) -> None:
    images = random_images(args.images)
    print(
        f"== hooks + SRP overhead: {args.images} images 224x224, k={K_PRODUCTION}, batch {args.batch_size}, torch threads {torch.get_num_threads()}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_')}"
    )
    for name in ("resnet50", "vit_b_16"):
        loaded = build(name)
        bare_forward(loaded, images[: args.batch_size], args.batch_size)  # warm-up
        # Warm-up: compiles the projection kernels where numba's on-disk cache is cold. It also
        # matters for fairness: glibc serves large tensors from fresh mmaps (page faults, zeroing)
        # until frees of big chunks raise its mmap threshold, and the extraction's buffers do that.
        # A bare ResNet-50 forward measured before any extraction took 3.0 s per 32 images here,
        # and 1.75 s after one; both measurements below run in that warmed state.
        run_extract(loaded, images[:2], 2, rsm=False, memory_budget="64GB")
        _, t_bare, c_bare = timed(bare_forward, loaded, images, args.batch_size)
        t_setup = setup_cost(loaded, images, K_PRODUCTION)
        srp_only, t_srp, c_srp = timed(
            run_extract, loaded, images, args.batch_size, rsm=False, memory_budget="64GB"
        )
        exact, t_exact, c_exact = timed(
            run_extract, loaded, images, args.batch_size, memory_budget=args.budget
        )
        stream = t_srp - t_setup
        print(
            f"{name}: {len(srp_only)} layers; bare forward {t_bare:.1f}s wall ({c_bare:.1f}s CPU)"
        )
        print(
            f"  hooked+SRP {t_srp:.1f}s wall ({c_srp:.1f}s CPU), of which one-time setup {t_setup:.1f}s"
        )
        print(
            f"  ratio hooked+SRP / bare: {t_srp / t_bare:.2f} total, {stream / t_bare:.2f} streaming (target <= 1.3)"
        )
        print(
            f"  ratio exact RSMs + SRP ({args.budget} budget) / bare: {t_exact / t_bare:.2f} ({c_exact / c_bare:.2f} in CPU time)"
        )
        errors = []
        for layer in exact:
            if layer.srp.shape[1] < layer.n_features:  # projected layers only
                approx = np.corrcoef(layer.srp.astype(np.float64))
                upper = np.triu_indices(len(approx), 1)
                errors.append(np.abs(approx - layer.rsm)[upper])
        worst = np.array([e.max() for e in errors])
        mean = np.concatenate(errors).mean()
        print(
            f"  approx (SRP) vs exact RSM over {len(errors)} projected layers: mean |error| {mean:.4f}, median of per-layer max {np.median(worst):.4f}, max {worst.max():.4f}"
        )


def throughput(args: argparse.Namespace) -> None:
    from sklearn.random_projection import SparseRandomProjection

    from zooscope.feature_extraction import SparseRandomProjector

    n, p = args.srp_rows, args.srp_features
    print(f"== SRP throughput: {n} x {p} float32 -> k={K_PRODUCTION}")
    X = np.random.default_rng(0).standard_normal((n, p), dtype=np.float32)
    sk = SparseRandomProjection(n_components=K_PRODUCTION, random_state=0).fit(X[:2])
    _, t_sk, _ = timed(lambda: sk.transform(X))
    ours = SparseRandomProjector(p, K_PRODUCTION, seed=0, layer="x")
    _, t_ours, _ = timed(
        lambda: np.concatenate(
            [ours.transform(X[i : i + args.batch_size]) for i in range(0, n, args.batch_size)]
        )
    )
    print(
        f"  sklearn transform {t_sk:.2f}s; streaming (batches of {args.batch_size}) {t_ours:.2f}s; speed-up {t_sk / t_ours:.2f}x (target >= 3x)"
    )


MEMORY_CHILD = """
import sys, time, torch
sys.path.insert(0, {here!r})
torch.set_num_threads({threads})
from extract import build, random_images
from zooscope.feature_extraction import extract
from _memory import peak_rss_bytes
loaded = build("resnet50")
images = random_images({n})
with torch.no_grad():  # what any extraction needs besides its budget: libraries, model, one batch
    loaded.module(torch.stack([loaded.preprocess(image) for image in images[:{batch}]]))
baseline = peak_rss_bytes()
t0 = time.perf_counter()
count = sum(1 for _ in extract(loaded, images, memory_budget={budget!r}, batch_size={batch}, progress=False))
print(count, time.perf_counter() - t0, baseline, peak_rss_bytes())
"""


def memory(args: argparse.Namespace) -> None:
    from pathlib import Path

    print(
        f"== memory: every layer of ResNet-50, {args.memory_images} images, exact RSMs + SRP, budget {args.memory_budget}"
    )
    code = MEMORY_CHILD.format(
        here=str(Path(__file__).parent),
        threads=torch.get_num_threads(),
        n=args.memory_images,
        budget=args.memory_budget,
        batch=args.batch_size,
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, seconds, baseline, peak = child.stdout.split()[-4:]
    print(
        f"  {count} layers in {float(seconds):.0f}s; peak RSS {int(peak) / 1e9:.2f} GB (target < ~3 GB)"
    )
    print(
        f"  of which baseline {int(baseline) / 1e9:.2f} GB (torch, model, images, one bare forward of a batch); "
        f"extraction above it {(int(peak) - int(baseline)) / 1e9:.2f} GB for a {args.memory_budget} budget"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--only", choices=["speed", "throughput", "memory"], action="append")
    ap.add_argument("--images", type=int, default=32, help="images for the speed ratios")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--budget", default="2GB", help="memory budget of the exact-RSM speed run")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--srp-rows", type=int, default=1000)
    ap.add_argument("--srp-features", type=int, default=500_000)
    ap.add_argument("--memory-images", type=int, default=256)
    ap.add_argument("--memory-budget", default="2GB")
    ap.add_argument(
        "--keep-freed-memory", action="store_true", help="measure with `zooscope --keep-freed-memory`"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sections = args.only or ["speed", "throughput", "memory"]
    for section in sections:
        {"speed": speed, "throughput": throughput, "memory": memory}[section](args)
    print(f"(this process: peak RSS {peak_rss_bytes() / 1e9:.2f} GB)")


if __name__ == "__main__":
    main()
