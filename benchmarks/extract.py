"""Benchmark: feature extraction overhead, memory and SRP throughput, all measured in one run.

Prints, each against a reference measured in the same run:

1. ``(all layers hooked + streaming SRP) / (bare forward)`` wall time for random-init ResNet-50
   and ViT-B/16 on CPU (target <= 1.3), with k = 5920 (the value for 1000 images, eps=0.1)
   whatever the number of images, so the per-image projection work is the real one. Each side
   runs in a fresh process of its own (see :func:`speed_child`), the bare forward on the model
   exactly as loaded. "Streaming" compares the batches after the first, whose cost is what grows
   with the image set; the first batch also pays the one-time setup (layer discovery, drawing
   the projection matrices), which "total" includes.
2. The same ratio with exact RSMs of the full activations (``--budget``, several passes).
3. The error of the one-pass approximate RSMs (Pearson RSM of the SRP features, what
   ``rsm_from="srp"`` computes) against the exact ones.
4. Streaming SRP throughput vs scikit-learn ``SparseRandomProjection.transform`` on a
   1000 x 500k float32 matrix (target >= 3x).
5. Peak RSS of extracting every layer of ResNet-50 over 256 images with a 2 GB budget, in a
   child process (target < ~3 GB).

    python benchmarks/extract.py                      # everything (~10-15 min on 2 cores)
    python benchmarks/extract.py --only speed --images 64
    python benchmarks/extract.py --only memory

Torch runs ``--threads`` intra-op threads (default: torch's default) in every measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from zooscope.runtime import quiet_openmp_waits, reuse_freed_memory, use_huge_pages

# What the zooscope command sets (OMP_WAIT_POLICY), plus the opt-in allocator settings of
# docs/performance.md; all must precede torch's import, so they are read before argparse runs.
quiet_openmp_waits()
if "--keep-freed-memory" in sys.argv:
    reuse_freed_memory()
if "--huge-pages" in sys.argv:
    use_huge_pages()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _memory import peak_rss_bytes  # noqa: E402

K_PRODUCTION = 5920  # johnson_lindenstrauss_min_dim(1000, eps=0.1)


def process_settings() -> str:
    """The process settings in effect (what ``zooscope.runtime`` sets), for the section headers."""
    names = ("OMP_WAIT_POLICY", "MALLOC_MMAP_THRESHOLD_", "THP_MEM_ALLOC_ENABLE")
    return ", ".join(f"{name}={os.environ.get(name)}" for name in names)


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
    from zooscope.feature_extraction import SparseRandomProjector, discover_layers

    t0 = time.perf_counter()
    probe = loaded.preprocess.batch(images[:3])
    for layer in discover_layers(loaded.module, probe):
        SparseRandomProjector(layer.n_features, k, 0, layer.name)
    return time.perf_counter() - t0


def speed_child(args: argparse.Namespace) -> dict[str, Any]:
    """One side of a speed ratio, measured in this (fresh) process; returns what it measured.

    Each side runs in its own process so neither inherits the other's heap: glibc serves a
    large tensor from a fresh mmap (page faults, zeroing) unless a free chunk of the heap fits
    it, and an extraction leaves ~1 GB of such chunks behind when its projection matrices are
    freed. A bare forward run after an extraction in the same process took 1.75 s per 32
    ResNet-50 images with no page faults; in a process of its own, 3.0 s with 1M page faults per
    batch, every batch. The second is what a user's own inference costs.
    """
    images = random_images(args.images)
    loaded = build(args.model)
    if args.child == "bare":
        bare_forward(loaded, images[: args.batch_size], args.batch_size)  # warm-up
        _, seconds, cpu = timed(bare_forward, loaded, images, args.batch_size)
        return {"seconds": seconds, "cpu": cpu}
    # Warm-up: numba kernels compiled or loaded, one extraction's heap state, as in a survey
    # that scores model after model in one process.
    run_extract(loaded, images[:2], 2, rsm=False, memory_budget="64GB")
    one_batch = args.batch_size
    _, t_small, _ = timed(
        run_extract, loaded, images[:one_batch], args.batch_size, rsm=False, memory_budget="64GB"
    )
    srp_only, t_srp, c_srp = timed(
        run_extract, loaded, images, args.batch_size, rsm=False, memory_budget="64GB"
    )
    t_setup = setup_cost(loaded, images, K_PRODUCTION)
    exact, t_exact, c_exact = timed(
        run_extract, loaded, images, args.batch_size, memory_budget=args.budget
    )
    errors = []
    for layer in exact:
        if layer.srp.shape[1] < layer.n_features:  # projected layers only
            approx = np.corrcoef(layer.srp.astype(np.float64))
            upper = np.triu_indices(len(approx), 1)
            errors.append(np.abs(approx - layer.rsm)[upper])
    worst = np.array([e.max() for e in errors])
    return {
        "layers": len(srp_only),
        "seconds": t_srp,
        "cpu": c_srp,
        "first_batch": t_small,
        "streaming_images": args.images - one_batch,
        "setup": t_setup,
        "exact": t_exact,
        "exact_cpu": c_exact,
        "projected": len(errors),
        "error_mean": float(np.concatenate(errors).mean()),
        "error_median_max": float(np.median(worst)),
        "error_max": float(worst.max()),
    }


def run_child(args: argparse.Namespace, role: str, model: str) -> dict[str, Any]:
    """``speed_child`` in a fresh interpreter (the environment, so the settings, is inherited)."""
    command = [
        sys.executable,
        __file__,
        "--child",
        role,
        "--model",
        model,
        "--images",
        str(args.images),
        "--batch-size",
        str(args.batch_size),
        "--budget",
        args.budget,
    ]
    if args.threads:
        command += ["--threads", str(args.threads)]
    child = subprocess.run(command, capture_output=True, text=True)
    if child.returncode != 0:
        raise RuntimeError(f"{role} child for {model} failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def speed(args: argparse.Namespace) -> None:
    print(
        f"== hooks + SRP overhead: {args.images} images 224x224, k={K_PRODUCTION}, batch {args.batch_size}, "
        f"torch threads {torch.get_num_threads()}, {process_settings()}; each side in a fresh process"
    )
    if args.images <= args.batch_size:
        raise SystemExit(
            "--images must exceed --batch-size: the streaming cost is what batches after the first add"
        )
    for name in ("resnet50", "vit_b_16"):
        bare = run_child(args, "bare", name)
        ext = run_child(args, "extract", name)
        bare_per_image = bare["seconds"] / args.images
        # The first batch carries the one-time setup (layer discovery, drawing the matrices);
        # every later batch costs the same, so their time per image is the streaming cost.
        streaming_per_image = (ext["seconds"] - ext["first_batch"]) / ext["streaming_images"]
        print(
            f"{name}: {ext['layers']} layers; bare forward {bare['seconds']:.1f}s wall ({bare['cpu']:.1f}s CPU)"
        )
        print(
            f"  hooked+SRP {ext['seconds']:.1f}s wall ({ext['cpu']:.1f}s CPU); one batch alone {ext['first_batch']:.1f}s, "
            f"of which one-time setup ~{ext['setup']:.1f}s"
        )
        print(
            f"  ratio hooked+SRP / bare: {ext['seconds'] / bare['seconds']:.2f} total, "
            f"{streaming_per_image / bare_per_image:.2f} streaming (batches after the first; target <= 1.3)"
        )
        print(
            f"  ratio exact RSMs + SRP ({args.budget} budget) / bare: {ext['exact'] / bare['seconds']:.2f} "
            f"({ext['exact_cpu'] / bare['cpu']:.2f} in CPU time)"
        )
        print(
            f"  approx (SRP) vs exact RSM over {ext['projected']} projected layers: mean |error| {ext['error_mean']:.4f}, "
            f"median of per-layer max {ext['error_median_max']:.4f}, max {ext['error_max']:.4f}"
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
        f"== memory: every layer of ResNet-50, {args.memory_images} images, exact RSMs + SRP, budget {args.memory_budget}, "
        f"{process_settings()}"
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
    ap.add_argument("--images", type=int, default=96, help="images for the speed ratios")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--budget", default="2GB", help="memory budget of the exact-RSM speed run")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--srp-rows", type=int, default=1000)
    ap.add_argument("--srp-features", type=int, default=500_000)
    ap.add_argument("--memory-images", type=int, default=256)
    ap.add_argument("--memory-budget", default="2GB")
    ap.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="measure with zooscope.runtime.reuse_freed_memory() (docs/performance.md)",
    )
    ap.add_argument(
        "--huge-pages",
        action="store_true",
        help="measure with zooscope.runtime.use_huge_pages() (docs/performance.md)",
    )
    ap.add_argument("--child", choices=["bare", "extract"], help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(speed_child(args)))
        return
    sections = args.only or ["speed", "throughput", "memory"]
    for section in sections:
        {"speed": speed, "throughput": throughput, "memory": memory}[section](args)
    print(f"(this process: peak RSS {peak_rss_bytes() / 1e9:.2f} GB)")


if __name__ == "__main__":
    main()
