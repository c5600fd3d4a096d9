"""Measure what each conwell2024 setting changes on demo data, one setting at a time.

For each setting where the ``default`` profile differs from ``conwell2024``, the survey runs with
that one setting switched to the paper's value (the rest default), then with the whole profile.
Printed: the best-layer test score (mean over subjects, OTC) per metric and model, its change
from the default, and the number of scored layers. The degenerate-row filter changes only the
selection, so it is applied to the default rows without a rerun.

    python benchmarks/profile_effects.py --root /tmp/effects [--n-images 100 --subjects 1,2]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

logger = logging.getLogger("profile_effects")

VARIANTS = {  # the cheap ones first: the scikit-learn projection draws its matrices slowly
    "default": {},
    "no centre crop (preprocessing)": {"preprocessing": "conwell2024"},
    "root, values dedup, second half (layer_policy)": {"layer_policy": "conwell2024"},
    "centred LOO train predictions (train_predictions)": {"train_predictions": "loo_centred"},
    "conwell2024 (all six)": None,
    "sklearn SRP, small layers projected (srp_mode, srp_upsample)": {
        "srp_mode": "sklearn",
        "srp_upsample": True,
    },
}


def main() -> None:
    from zooscope.analyses.degenerate import best_layers
    from zooscope.config import RunOptions, ScoringConfig
    from zooscope.nsd import prepare, write_synthetic
    from zooscope.pipeline.survey import survey
    from zooscope.profiles import CONWELL_DEGENERATE_Z
    from zooscope.results.db import ResultsDB

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--n-images", type=int, default=100)
    parser.add_argument("--subjects", default="1,2")
    parser.add_argument("--models", default="effnet_lite0,effnet_lite0_random")
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    subjects = tuple(int(s) for s in args.subjects.split(","))
    bench = args.root / "benchmark.h5"
    if not bench.exists():
        write_synthetic(
            args.root / "nsd",
            subjects=subjects,
            n_images=args.n_images,
            n_sessions=3,
            image_size=args.image_size,
        )
        prepare(args.root / "nsd", bench, subjects=subjects, rois=("OTC", "EVC"))
    options = RunOptions(device="cpu", batch_size=32, progress=False)
    models = args.models.split(",")
    rows = []
    for label, settings in VARIANTS.items():
        logger.info("variant: %s", label)
        config = ScoringConfig.conwell2024() if settings is None else ScoringConfig(**settings)
        db_path = args.root / f"effects_{config.hash}.duckdb"
        survey("demo", bench, db_path, config, options, models=models, n_sims=5)
        with ResultsDB(db_path, read_only=True) as db:
            scores = db.scores(config_hash=config.hash)
            n_layers = db.layers(config_hash=config.hash).groupby("model_uid").size()
        selections = [(label, config.degenerate_z)]
        if settings == {}:
            selections.append(("degenerate-row filter (degenerate_z)", CONWELL_DEGENERATE_Z))
        for name, threshold in selections:
            if scores.empty:
                continue
            best = best_layers(scores, threshold)
            best = best[best["roi"] == "OTC"].groupby(["model_uid", "metric"])["test_score"].mean()
            for (model, metric), value in best.items():
                rows.append(
                    {
                        "variant": name,
                        "model": model,
                        "metric": metric,
                        "score": value,
                        "layers": n_layers[model],
                    }
                )
        _print(rows)  # after every variant, so a partial run still reports


def _print(rows: list[dict]) -> None:
    """The rows as a table: score and change from the default per metric."""
    table = pd.DataFrame(rows)
    base = table[table["variant"] == "default"].set_index(["model", "metric"])["score"]
    table["change"] = table["score"] - table.set_index(["model", "metric"]).index.map(base)
    wide = table.pivot_table(
        index=["variant", "layers", "model"],
        columns="metric",
        values=["score", "change"],
        sort=False,
    )
    print(wide.round(3).to_string(), flush=True)


if __name__ == "__main__":
    main()
