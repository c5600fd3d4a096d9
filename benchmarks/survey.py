"""Benchmark: what scoring one model costs at NSD scale, stage by stage.

Builds (once, not timed) a synthetic benchmark file of NSD's size: 1000 natural-looking images
(425 x 425, like NSD's shared images), 29,000 voxels over 4 subjects (one OTC ROI each), 3
repetitions, responses with a shared low-rank signal plus noise. Then, in a fresh process so that
the peak RSS is the survey's own, runs ``zooscope.survey`` on one model with the chosen profile's scoring
(default: cRSA on exact RSMs, veRSA and encoding r on SRP features, every layer), without the
benchmark's noise ceilings (computed once per benchmark, not per model), and prints the wall and
CPU time of each stage and in all, and the peak RSS. Time only on a quiet machine: under load
even CPU seconds inflate (up to threefold on 2 cores), so the load average is printed too.

Stages (``zooscope._timing``, exclusive: a stage's time excludes the stages inside it):
load (the model), forward (the forward passes, image decoding and preprocessing, layer
discovery, the replay checks), srp (drawing and applying the projections), gram (copying full
activations and the Gram / RSM products), ridge (RidgeGCV fit and predictions), rsa (RSMs of
predictions and their comparison with the brain's, cRSA), layer_stats (effective
dimensionality), keep (the best layers' RSMs and predictions kept while layers stream past),
brain (reading the responses, brain RSMs), verify (the benchmark's content hash), db (writing
to DuckDB). "other" is what no stage covers.

    python benchmarks/survey.py --threads 2 --budget 6GB                        # every layer
    python benchmarks/survey.py --threads 2 --budget 6GB --profile conwell2024  # the paper's layers
    python benchmarks/survey.py --voxels 7250 --layers 'blocks\\.\\d\\.0$'    # scaled down
    python benchmarks/survey.py --model effnet_lite0 --device cuda

The survey runs ``--threads`` torch threads (default: torch's default).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from zooscope.runtime import command_settings

command_settings()  # what the zooscope command does, before torch is imported

SUBJECTS = (1, 2, 5, 7)
STAGES = (
    "load", "forward", "srp", "gram", "cka_gram", "ridge", "rsa", "layer_stats", "keep", "brain",
    "verify", "db",
)  # fmt: skip


def build(path: Path, n_images: int, n_voxels: int, image_size: int, seed: int = 0) -> None:
    """A Benchmark file with NSD's shape: responses = shared rank-20 signal x ncsnr + noise."""
    import numpy as np
    import pandas as pd

    from zooscope.benchmark import Benchmark
    from zooscope.nsd.synthetic import natural_images

    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((20, n_images)).astype(np.float32)
    loadings = rng.standard_normal((n_voxels, 20)).astype(np.float32) / np.sqrt(20)
    ncsnr = rng.uniform(0.05, 1.2, n_voxels).astype(np.float32)
    signal = (loadings @ latent) * ncsnr[:, None]
    responses = signal[:, :, None] + rng.standard_normal((n_voxels, n_images, 3), dtype=np.float32)
    subject = np.repeat(SUBJECTS, -(-n_voxels // len(SUBJECTS)))[:n_voxels]
    units = pd.DataFrame({"subject": subject, "ncsnr": ncsnr, "otc": np.ones(n_voxels, bool)})
    stimuli = natural_images(n_images, image_size=image_size, seed=seed)
    Benchmark.from_arrays(
        path, responses, stimuli, units, attrs={"source": "benchmarks/survey.py synthetic"}
    )


def child(args: argparse.Namespace) -> dict[str, float]:
    """Score the model once in this process; what was measured, as a dict."""
    import torch
    from _memory import peak_rss_bytes

    from zooscope import _timing
    from zooscope.pipeline import RunOptions, ScoringConfig, survey
    from zooscope.zoo import get_entry

    if args.threads:
        torch.set_num_threads(args.threads)
    entry = get_entry(args.model, args.manifest)
    if args.weights == "random":
        entry = replace(entry, weights="random")
    config = ScoringConfig.from_profile(args.profile, layers=args.layers)
    options = RunOptions(
        device=args.device,
        batch_size=args.batch_size,
        memory_budget=args.budget,
        progress=False,
        replay=not args.no_replay,
    )
    db = Path(args.root) / f"survey_{os.getpid()}.duckdb"
    _timing.reset()
    t0, c0 = time.perf_counter(), time.process_time()
    report = survey([entry], args.benchmark, db, config, options, ceilings=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    db.unlink(missing_ok=True)
    if report.failed:
        raise SystemExit(f"scoring failed: {report.failed[0]}")
    return {
        "wall": wall,
        "cpu": cpu,
        "peak_rss": peak_rss_bytes(),
        "gpu_peak": torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0,
        "threads": torch.get_num_threads(),
        "stages": _timing.totals("wall"),
        "stages_cpu": _timing.totals("cpu"),
    }


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--root", default="/tmp/zooscope_survey_bench", help="benchmark file folder")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--voxels", type=int, default=29_000, help="over 4 subjects")
    ap.add_argument("--image-size", type=int, default=425)
    ap.add_argument("--model", default="effnet_lite0")
    ap.add_argument("--manifest", default="demo")
    ap.add_argument("--weights", choices=["random"], default=None, help="random: random init")
    ap.add_argument("--profile", default="default", help="scoring profile (default, conwell2024)")
    ap.add_argument("--layers", default=None, help="regex of layer names (default: every layer)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--budget", default=None, help="extraction memory budget (default: automatic)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--no-replay", action="store_true", help="every pass from the images")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--benchmark", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def benchmark_file(args: argparse.Namespace) -> Path:
    """The synthetic benchmark of these sizes, built once (not timed)."""
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    bench = root / f"nsd_like_{args.images}i_{args.voxels}v_{args.image_size}px.h5"
    if not bench.exists():
        t0 = time.perf_counter()
        build(bench, args.images, args.voxels, args.image_size)
        print(f"built {bench} in {time.perf_counter() - t0:.0f}s (not timed below)")
    return bench


def measure(args: argparse.Namespace) -> dict:
    """Score the model in a fresh process (so the peak RSS is the survey's own); its figures."""
    command = [sys.executable, __file__, "--child", "--benchmark", str(benchmark_file(args))]
    for name in (
        "root", "model", "manifest", "weights", "profile", "layers", "device", "batch_size",
        "budget", "threads",
    ):  # fmt: skip
        value = getattr(args, name)
        if value is not None:
            command += [f"--{name.replace('_', '-')}", str(value)]
    if args.no_replay:
        command.append("--no-replay")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"survey child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def stage_rows(result: dict) -> list[tuple[str, float, float]]:
    """(stage, wall s, CPU s) for every stage that took time, and "other" (what none covers)."""
    rows = [
        (name, result["stages"].get(name, 0.0), result["stages_cpu"].get(name, 0.0))
        for name in STAGES
    ]
    known = set(STAGES)
    extra = sorted(set(result["stages"]) - known)  # a stage added since this list was written
    rows += [(name, result["stages"][name], result["stages_cpu"][name]) for name in extra]
    rows.append(
        (
            "other",
            result["wall"] - sum(wall for _, wall, _ in rows),
            result["cpu"] - sum(cpu for _, _, cpu in rows),
        )
    )
    return [row for row in rows if row[1] > 0.0005 or row[0] == "other"]


def main() -> None:
    args = arguments()
    if args.child:
        print(json.dumps(child(args)))
        return
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    result = measure(args)
    layers = args.layers or "every layer"
    print(
        f"== survey of {args.model} ({layers}, profile {args.profile}): {args.images} images, "
        f"{args.voxels} voxels over {len(SUBJECTS)} subjects, {args.device}, "
        f"{result['threads']} torch threads, budget {args.budget or 'automatic'}"
        + (", no replay" if args.no_replay else "")
    )
    print(f"  {'stage':<11} {'wall s':>8} {'%':>6} {'CPU s':>8} {'%':>6}")
    for name, wall, cpu in stage_rows(result):
        print(
            f"  {name:<11} {wall:8.1f} {100 * wall / result['wall']:6.1f} {cpu:8.1f} "
            f"{100 * cpu / result['cpu']:6.1f}"
        )
    print(
        f"  total {result['wall']:.1f} s wall ({result['wall'] / 60:.1f} min), {result['cpu']:.1f} s CPU "
        f"({result['cpu'] / 60:.1f} min); peak RSS {result['peak_rss'] / 1e9:.2f} GB"
        + (f"; peak GPU memory {result['gpu_peak'] / 1e9:.2f} GB" if result.get("gpu_peak") else "")
    )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
