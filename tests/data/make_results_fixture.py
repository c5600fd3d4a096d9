"""Write ``results_before_house.duckdb.gz``: a results database written by zooscope before issue 28.

Run once (``python tests/data/make_results_fixture.py``) with the code of commit 19612df (main
before "the house, second pass"); ``tests/test_config_hashes.py`` opens the file and checks that
today's configs hash to the stored ones, so results scored before a refactor stay resumable.

Three reduced surveys of one random-init ResNet-18 (one layer) on a random 24-image benchmark:
the default config, profile ``conwell2024`` and ``predictivity`` (its settings enter the hash).
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
OUT = HERE / "results_before_house.duckdb"  # gzipped next to it (4 MB of mostly empty blocks)


def main() -> None:
    from zooscope.benchmark import Benchmark
    from zooscope.pipeline import RunOptions, ScoringConfig, survey

    rng = np.random.default_rng(0)
    n_units, n_images = 12, 24
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bench = Benchmark.from_arrays(
            tmp / "bench.h5",
            rng.normal(size=(n_units, n_images, 3)),
            rng.integers(0, 255, size=(n_images, 32, 32, 3), dtype=np.uint8),
            {"subject": np.repeat(["1", "2"], n_units // 2), "OTC": np.ones(n_units, bool)},
            images={"object_name": np.tile(["a", "b", "c", "d"], n_images // 4)},
        )
        manifest = tmp / "manifest.csv"
        manifest.write_text(
            "model_uid,source,name,weights,display_name,arch_class,task,task_cluster,train_data,seed\n"
            "resnet18_random,torchvision,resnet18,random,ResNet-18,Convolutional,random,,,0\n",
            encoding="utf-8",
        )
        OUT.unlink(missing_ok=True)
        options = RunOptions(device="cpu", batch_size=8, progress=False)
        layer = r"^layer4\.1\.conv2$"
        for config in (
            ScoringConfig(layers=layer),
            ScoringConfig.conwell2024(layers=layer),
            ScoringConfig(metrics=("predictivity",), layers=layer, regression="ridge"),
        ):
            survey(manifest, bench.path, OUT, config, options, n_sims=3, log_file=False)
    with (
        OUT.open("rb") as raw,
        gzip.GzipFile(OUT.with_suffix(".duckdb.gz"), "wb", 9, mtime=0) as gz,
    ):
        shutil.copyfileobj(raw, gz)
    OUT.unlink()
    print(f"wrote {OUT.with_suffix('.duckdb.gz')}")


if __name__ == "__main__":
    main()
