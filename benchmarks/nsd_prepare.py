"""Time and peak memory of ``zooscope nsd prepare`` at NSD scale (4 subjects, 1000 shared images).

Builds (once, not timed) a synthetic tree: 4 subjects x 4 sessions x 750 trials (1000 shared
images x 3 repetitions), ~2000 OTC/EVC candidate voxels per subject, 425 x 425 stimuli. Then
runs, each in a fresh process so that peak RSS is its own:

- ``zooscope nsd prepare`` from the HDF5 betas (the default path) and from the ``.nii.gz`` betas;
- a naive reference: per session, ``nibabel.load(...).get_fdata()`` of the whole NIfTI volume,
  then index the voxels (what most NSD loaders do), for one subject.

Usage::

    python benchmarks/nsd_prepare.py [--root /tmp/zooscope_nsd_bench] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SUBJECTS = (1, 2, 5, 7)
VOLUME = (48, 56, 44)  # 118k-voxel grid (NSD: 81 x 104 x 83 = 699k)
ROI_DENSITY = 0.07  # ~2000 OTC + EVC candidate voxels per subject


def build(root: Path) -> None:
    import numpy as np

    from zooscope.nsd import write_synthetic

    t0 = time.perf_counter()
    # Random features keep the build quick; the reader's cost does not depend on them.
    features = np.random.default_rng(0).standard_normal((1000, 64))
    write_synthetic(
        root,
        subjects=SUBJECTS,
        n_images=1000,
        n_sessions=4,
        n_unique=0,
        seed=0,
        features=features,
        image_size=425,
        volume_shape=VOLUME,
        roi_density=ROI_DENSITY,
    )
    print(f"built synthetic tree in {time.perf_counter() - t0:.0f} s (not counted)")


def measured(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; return its wall time and peak RSS."""
    wrapper = textwrap.dedent(
        """
        import json, sys, time
        sys.path.insert(0, {here!r})
        from _memory import peak_rss_bytes
        t0 = time.perf_counter()
        {code}
        wall = time.perf_counter() - t0
        rss = peak_rss_bytes() / 2**20
        print("RESULT" + json.dumps({{"wall_s": wall, "peak_rss_mb": rss}}))
        """
    ).format(
        here=str(Path(__file__).parent),
        code=textwrap.indent(textwrap.dedent(code), "").strip().replace("\n", "\n"),
    )
    out = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[6:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/zooscope_nsd_bench"))
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    root = args.root
    if args.rebuild or not (root / "zooscope_synthetic_truth.json").exists():
        build(root)
    subjects = " ".join(f"-s {s}" for s in SUBJECTS)
    results = {}
    for fmt in ("hdf5", "nii.gz"):
        out = root.parent / f"zooscope_bench_{fmt}.h5"
        results[f"prepare ({fmt}, 4 subjects)"] = measured(
            f"""
            import subprocess, sys
            from zooscope.cli import app
            try:
                app(["nsd", "prepare", "--nsd-root", "{root}", "--out", "{out}",
                     {", ".join(repr(a) for a in subjects.split())}, "--beta-format", "{fmt}"])
            except SystemExit as e:
                assert not e.code, e.code
            """
        )
    results["naive whole-volume NIfTI (1 subject)"] = measured(
        f"""
        import numpy as np, nibabel as nib
        from scipy import stats
        from zooscope.benchmark import Benchmark
        b = Benchmark.open("{root.parent / "zooscope_bench_hdf5.h5"}")
        u = b.units
        xyz = u.loc[u["subject"] == 1, ["x", "y", "z"]].to_numpy()
        out = []
        for s in range(1, 5):
            p = "{root}/nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session%02d.nii.gz" % s
            data = nib.load(p).get_fdata()
            out.append(stats.zscore(data[xyz[:, 0], xyz[:, 1], xyz[:, 2]] / 300, axis=1))
        """
    )
    from zooscope.benchmark import Benchmark

    with Benchmark.open(root.parent / "zooscope_bench_hdf5.h5") as b:
        counts = {k: int(v.size) for k, v in b.groups().items()}
        print(f"benchmark: {b.n_units} units x {b.n_images} images x {b.n_reps} reps; {counts}")
    for name, r in results.items():
        print(f"{name:40s} {r['wall_s']:7.1f} s   peak RSS {r['peak_rss_mb']:7.0f} MB")
    naive = results["naive whole-volume NIfTI (1 subject)"]
    for fmt in ("hdf5", "nii.gz"):
        r = results[f"prepare ({fmt}, 4 subjects)"]
        print(
            f"ratio naive(1 subject)/prepare({fmt}, 4 subjects): time "
            f"{naive['wall_s'] / r['wall_s']:.2f}x, peak memory "
            f"{naive['peak_rss_mb'] / r['peak_rss_mb']:.2f}x  "
            f"(per subject, time: {4 * naive['wall_s'] / r['wall_s']:.2f}x)"
        )
    ok = all(
        r["wall_s"] < 120 and r["peak_rss_mb"] < 2048 for k, r in results.items() if "prepare" in k
    )
    print("acceptance (< 2 min, < 2 GB):", "PASS" if ok else "FAIL")


if __name__ == "__main__":
    main()
