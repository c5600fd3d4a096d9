"""Benchmark: how a survey's cost grows with the number of images and of layers.

Scores the trained EfficientNet-Lite0 on the synthetic NSD-sized benchmarks of
``benchmarks/survey.py`` (29,000 voxels over 4 subjects), each run in a fresh process:

* images: 250, 500, 1000, 2000 at a fixed set of layers (the first block of each stage);
* layers: every 16th, 8th, 4th and 2nd layer at 1000 images;

fits ``cost = a * size**b`` (least squares on log-log) per stage and in all, prints the table
and the exponents, and draws the log-log figure (``--figure docs/img/scaling.png``).

    python benchmarks/scaling.py --threads 2 --budget 6GB --figure docs/img/scaling.png

Time it on a quiet machine: the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from survey import arguments, measure, stage_rows

#: the first block of each of the 7 stages, by its last convolution (``blocks.N.0`` itself is only
#: an alias of an inner module's identical output, and selections match names, not aliases)
FIXED_LAYERS = r"^(blocks\.0\.0\.conv_pw|blocks\.[1-6]\.0\.conv_pwl)$"
#: stages shown in the figure; the rest is summed into "other"
SHOWN = ("forward", "gram", "ridge", "rsa", "srp")


def layers_every(step: int) -> str:
    """A regex of every ``step``-th layer of EfficientNet-Lite0 (by the demo's layer list)."""
    from zooscope.benchmark import Benchmark  # noqa: F401  (torch and zooscope loaded once)
    from zooscope.feature_extraction import list_layers
    from zooscope.zoo import get_entry, load_model

    model = load_model(get_entry("effnet_lite0", "demo"))
    pixels = np.zeros((3, 224, 224, 3), np.uint8)
    names = [layer.name for layer in list_layers(model, pixels)][::step]
    return "^(" + "|".join(name.replace(".", r"\.") for name in names) + ")$"


def fit(sizes: list[float], costs: list[float]) -> tuple[float, float]:
    """``(a, b)`` of ``cost = a * size**b``."""
    b, log_a = np.polyfit(np.log(sizes), np.log(costs), 1)
    return float(np.exp(log_a)), float(b)


def sweep(points: list[tuple[float, list[str]]], common: list[str]) -> list[dict]:
    runs = []
    for size, argv in points:
        result = measure(arguments([*common, *argv]))
        stages = {name: cpu for name, _wall, cpu in stage_rows(result)}
        runs.append({"size": size, "cpu": result["cpu"], "stages": stages})
        print(
            f"  {size:>6g}: {result['cpu']:8.1f} CPU s  peak RSS {result['peak_rss'] / 1e9:.2f} GB"
        )
    return runs


def report(title: str, runs: list[dict]) -> dict[str, float]:
    sizes = [run["size"] for run in runs]
    exponents = {"total": fit(sizes, [run["cpu"] for run in runs])[1]}
    for name in SHOWN:
        costs = [run["stages"].get(name, 0.0) for run in runs]
        if min(costs) > 0:
            exponents[name] = fit(sizes, costs)[1]
    print(f"  {title}: " + ", ".join(f"{k} {v:.2f}" for k, v in exponents.items()))
    return exponents


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", default="6GB")
    ap.add_argument("--images", default="250,500,1000,2000")
    ap.add_argument("--steps", default="16,8,4,2", help="every k-th layer, at 1000 images")
    ap.add_argument("--figure", type=Path, default=None, help="write the log-log figure here")
    ap.add_argument("--json", type=Path, default=None, help="write the measurements here")
    own = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    common = ["--threads", str(own.threads), "--budget", own.budget]
    print("== cost against images (7 layers: the first block of each stage)")
    by_images = sweep(
        [(float(n), ["--images", n, "--layers", FIXED_LAYERS]) for n in own.images.split(",")],
        common,
    )
    image_exponents = report("exponents against images", by_images)
    print("== cost against layers (1000 images)")
    points = []
    for step in (int(s) for s in own.steps.split(",")):
        regex = layers_every(step)
        points.append((float(regex.count("|") + 1), ["--layers", regex]))
    by_layers = sweep(points, common)
    layer_exponents = report("exponents against layers", by_layers)
    data = {"images": by_images, "layers": by_layers, "exponents": {
        "images": image_exponents, "layers": layer_exponents}}  # fmt: skip
    if own.json:
        own.json.write_text(json.dumps(data, indent=1))
    if own.figure:
        draw(data, own.figure)
        print(f"figure: {own.figure}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


def draw(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, key, label in (
        (axes[0], "images", "images (7 layers)"),
        (axes[1], "layers", "layers (1000 images)"),
    ):
        runs = data[key]
        sizes = [run["size"] for run in runs]
        exponents = data["exponents"][key]
        ax.loglog(sizes, [run["cpu"] for run in runs], "o-", color="black",
                  label=f"total (b = {exponents['total']:.2f})")  # fmt: skip
        for name in SHOWN:
            costs = [run["stages"].get(name, 0.0) for run in runs]
            if min(costs) > 0:
                ax.loglog(sizes, costs, ".--", label=f"{name} (b = {exponents[name]:.2f})")
        ax.set_xlabel(label)
        ax.set_ylabel("CPU seconds")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("EfficientNet-Lite0, 29,000 voxels, cost = a * size^b")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
