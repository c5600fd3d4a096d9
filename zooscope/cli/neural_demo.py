"""``zooscope demo --neural``: synthetic brainio assembly -> import -> predictivity survey -> commitments."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import typer

from zooscope.analyses.commitment import committed_layers, display_columns
from zooscope.cli.output import emit, emit_sections
from zooscope.config import RunOptions, ScoringConfig
from zooscope.neural.brainio import import_brainio
from zooscope.neural.synthetic import write_synthetic_assembly
from zooscope.pipeline.survey import survey
from zooscope.report.html import build_report
from zooscope.results.db import ResultsDB

logger = logging.getLogger(__name__)

__all__ = ["DEMO_LAYERS", "DEMO_MODELS", "run_neural_demo"]

#: The trained EfficientNet-Lite0 that drives the synthetic neurons, and its random twin.
DEMO_MODELS = ("effnet_lite0", "effnet_lite0_random")
#: Stem, block outputs and head (11 layers): enough to place V1, V4 and IT, and fast.
DEMO_LAYERS = r"^(conv_stem|blocks\.\d\.\d+|conv_head)$"

_SUMMARY_COLUMNS = [
    "profile",
    "roi",
    "rank",
    "model_uid",
    "score",
    "n_subjects",
    "ceiling",
    "explained_variance",
]


def run_neural_demo(
    out: Path,
    models: Sequence[str] | None = None,
    layers: str | None = None,
    memory_budget: str | None = None,
    report: bool = True,
    n_images: int = 200,
    profile: str = "default",
    n_pca_images: int = 100,
) -> dict[str, pd.DataFrame]:
    """Write the synthetic assembly under ``out/neural``, import it, survey ``demo`` with predictivity.

    Parameters
    ----------
    out : Path
        Demo folder; everything goes to ``out / "neural"``.
    models : sequence of str, optional
        Model uids of the demo manifest (default: :data:`DEMO_MODELS`).
    layers : str, optional
        Regex of the layers to score (default: :data:`DEMO_LAYERS`).
    memory_budget : str, optional
    report : bool
        Also write the HTML report to ``out/neural/report``.
    n_images : int
        Stimuli of the synthetic assembly.
    profile : {"default", "brainscore"}
        ``brainscore`` (:mod:`zooscope.neural.brainscore`): commits each region's layer on a
        second synthetic assembly (the commitment set, its 70-170 ms bin) with a layer PCA fitted
        on ``n_pca_images`` stand-in images, and scores all images of the first.
    n_pca_images : int
        brainscore: stand-in images (photo crops, not the 1,000 ImageNet validation images
        Brain-Score uses) and PCA components.

    Returns
    -------
    dict
        ``{"summary": ..., "commitments": ...}`` tables (also printed).
    """
    root = Path(out) / "neural"
    bench_path, db_path = root / "benchmark.h5", root / "results.duckdb"
    if profile == "brainscore":
        bench_path, config = _brainscore_inputs(root, n_images, n_pca_images, layers)
    else:
        if not bench_path.exists():
            paths = write_synthetic_assembly(root / "brainio", n_images=n_images)
            import_brainio(paths["assembly"], paths["stimuli"], paths["images"], bench_path)
        config = ScoringConfig.from_profile(
            profile, metrics=("predictivity",), layers=layers or DEMO_LAYERS
        )
    models = models or DEMO_MODELS
    outcome = survey(
        "demo",
        bench_path,
        db_path,
        config,
        RunOptions(device="auto", memory_budget=memory_budget, keep_grams=True),
        models=models,
    )
    with ResultsDB(db_path, read_only=True) as database:
        summary = database.summary(metric="predictivity", profile=config.profile)
        commitments = committed_layers(database, profile=config.profile)
        emit_sections(
            summary[_SUMMARY_COLUMNS], "table", by=["roi"],
            title="models ranked by best-layer test score",
        )  # fmt: skip
        typer.echo("")
        emit(
            commitments[display_columns(commitments)], "table",
            title="committed layers (best on the commitment images, scored on held-out images):",
        )  # fmt: skip
        if report:
            typer.echo(f"report: {build_report(database, root / 'report', profile=config.profile)}")
    typer.echo(
        f"scored {len(outcome.scored)} models, {len(outcome.failed)} failed; results in {db_path}"
    )
    return {"summary": summary, "commitments": commitments}


def _brainscore_inputs(
    root: Path, n_images: int, n_pca_images: int, layers: str | None
) -> tuple[Path, Any]:
    """The brainscore profile's demo inputs: target and commitment sets, stand-in PCA images."""
    # lazy: `zooscope --help` stays fast
    import typer
    from PIL import Image

    from zooscope.config import ScoringConfig
    from zooscope.neural.brainio import import_brainio
    from zooscope.neural.synthetic import write_synthetic_assembly
    from zooscope.nsd.synthetic import natural_images

    target, commit = root / "benchmark_brainscore.h5", root / "commitment_brainscore.h5"
    for path, folder, seed in ((target, "brainio", 0), (commit, "brainio_commitment", 1)):
        if not path.exists():  # shown at 8 degrees, the model's field of view: placed unchanged
            paths = write_synthetic_assembly(root / folder, n_images=n_images, seed=seed)
            import_brainio(
                paths["assembly"], paths["stimuli"], paths["images"], path, image_size=None,
                degrees=8.0,
            )  # fmt: skip
    pca = root / "pca_stand_in"
    if len(list(pca.glob("*.png"))) != n_pca_images:
        pca.mkdir(parents=True, exist_ok=True)
        for k, pixels in enumerate(natural_images(n_pca_images, image_size=224, seed=7)):
            Image.fromarray(pixels).save(pca / f"{k:04d}.png")
    typer.echo(
        f"brainscore profile: layer PCA fitted on {n_pca_images} stand-in images ({pca}: crops "
        "of scikit-image photos) with as many components, where Brain-Score uses 1,000 ImageNet "
        "validation images; layers committed on a second synthetic assembly (70-170 ms)"
    )
    config = ScoringConfig.from_profile(
        "brainscore", layers=layers or DEMO_LAYERS, commit_on=(str(commit),),
        pca_images=str(pca), pca_components=n_pca_images, commit_time_bin="70-170",
    )  # fmt: skip
    return target, config
